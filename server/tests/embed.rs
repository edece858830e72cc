//! The server as a library: `run()` boots it in this process, reports the port it
//! got, and stops when its shutdown future completes.

use std::time::Duration;

use clap::Parser;
use codex_jobs_server::{config::Listen, config::ServerArgs};
use codex_jobs_test_support as support;
use support::{Client, pb};

fn args(state_dir: &std::path::Path) -> ServerArgs {
    ServerArgs::parse_from([
        "codex-jobs-server".as_ref(),
        "--state-dir".as_ref(),
        state_dir.as_os_str(),
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--runner-bin".as_ref(),
        support::bin("codex-jobs-runner").as_os_str(),
        "--codex-bin".as_ref(),
        support::fake_codex().as_os_str(),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_boots_in_process_reports_its_port_and_stops_on_its_shutdown_future() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = codex_jobs_server::run(args(&state_dir), async {
        let _ = stopped.await;
    })
    .await
    .expect("the server starts");
    let address = server.tcp_address().expect("a TCP address");
    assert_ne!(address.port(), 0, "the port it got, not the one asked for");
    assert_eq!(server.addresses(), [Listen::Tcp(address)]);

    let mut client = Client::connect(&format!("http://{address}"), None)
        .await
        .unwrap();
    let started = client
        .start(pb::StartRequest {
            spec: Some(pb::JobSpec {
                prompt: "say embedded".into(),
                cwd: dir.path().display().to_string(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let done = client
        .wait(&started.job.unwrap().id, Some(Duration::from_secs(30)), 10)
        .await
        .unwrap();
    assert_eq!(done.job.unwrap().final_message, "embedded");

    stop.send(()).unwrap();
    server.stopped().await;
    // It has let go of the state dir: another server may take it.
    let again = codex_jobs_server::run(args(&state_dir), async {}).await;
    again
        .expect("a second server on the freed state dir")
        .stopped()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_a_state_dir_in_use_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let _first = codex_jobs_server::run(args(dir.path()), async {
        let _ = stopped.await;
    })
    .await
    .unwrap();
    let second = codex_jobs_server::run(args(dir.path()), async {}).await;
    let err = second.err().expect("refused").to_string();
    assert!(err.contains("already using the state dir"), "{err}");
}
