//! Security defaults: tokens, local-only listening, the socket's mode.

use codex_jobs_test_support as support;

use std::{os::unix::fs::PermissionsExt, process::Command};

use support::{Client, ServerOptions, TestServer, pb};

#[tokio::test]
async fn a_token_is_checked_on_every_rpc() {
    let server = TestServer::with(ServerOptions::default().args(["--token", "s3cret"])).await;
    let mut anonymous = Client::connect(&server.endpoint(), None).await.unwrap();
    let err = anonymous
        .list(pb::ListRequest::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("missing or wrong token"), "{err}");
    assert_eq!(support::code(err), tonic::Code::Unauthenticated);
    let mut wrong = Client::connect(&server.endpoint(), Some("s3cre"))
        .await
        .unwrap();
    assert_eq!(
        support::code(wrong.poll(pb::PollRequest::default()).await.unwrap_err()),
        tonic::Code::Unauthenticated
    );
    let mut client = Client::connect(&server.endpoint(), Some("s3cret"))
        .await
        .unwrap();
    assert!(client.list(pb::ListRequest::default()).await.is_ok());

    let output = Command::new(support::bin("codex-jobs"))
        .args(["--endpoint", &server.endpoint(), "list"])
        .env("CODEX_JOBS_TOKEN", "s3cret")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn the_unix_socket_is_private_and_serves_the_same_api() {
    let server = TestServer::start().await;
    let mode = std::fs::metadata(server.socket())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let state_mode = std::fs::metadata(server.state_dir())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(state_mode & 0o777, 0o700);
    let endpoint = format!("unix:{}", server.socket().display());
    let mut client = Client::connect(&endpoint, None).await.unwrap();
    let job = server.start_job("say over the socket").await;
    let polled = client
        .poll(pb::PollRequest {
            job_id: job.id,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(polled.job.is_some());
}

#[tokio::test]
async fn a_second_server_does_not_steal_a_live_socket() {
    let server = TestServer::start().await;
    let output = Command::new(support::bin("codex-jobs-server"))
        .arg("--state-dir")
        .arg(server.dir.path().join("other-state"))
        .arg("--listen")
        .arg(format!("unix:{}", server.socket().display()))
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("another server is already listening")
    );
}

#[tokio::test]
async fn a_second_server_does_not_take_over_a_state_dir_in_use() {
    let server = TestServer::start().await;
    let output = Command::new(support::bin("codex-jobs-server"))
        .arg("--state-dir")
        .arg(server.state_dir())
        .arg("--listen")
        .arg(format!(
            "unix:{}",
            server.dir.path().join("second.sock").display()
        ))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("another codex-jobs-server is already using the state dir"),
        "{stderr}"
    );
}
