//! `kill -9` the server while jobs run: after a restart every job is found as it
//! really is.

use codex_jobs_test_support as support;

use support::{ServerOptions, TestServer, pb, process_alive};

#[tokio::test]
async fn jobs_survive_a_server_killed_mid_run_with_true_exit_codes_and_whole_output() {
    let mut server = TestServer::with(ServerOptions::default().args(["--max-running", "3"])).await;
    // Ends with status 7 while the server is down.
    let ends_while_down = server
        .start_job("say before the crash\nsleep 1\nsay after the crash\nexit 7")
        .await;
    // Still running when the server comes back.
    let outlives = server
        .start_job("lines 1000 early\nsleep 3\nlines 1000 late")
        .await;
    // Its runner dies with the server: no exit record.
    let lost = server.start_job("grandchild\nsleep 60").await;
    // Waits in the queue across the crash.
    let queued = server.start_job("say queued across the crash").await;
    assert_eq!(queued.state(), pb::JobState::Queued);
    for job in [&ends_while_down, &outlives, &lost] {
        server.wait_for_state(&job.id, pb::JobState::Running).await;
    }
    let lost_grandchild = server.pid_file("grandchild.pid").await;
    // The runner records Codex's identity right after starting it.
    let status_file = server
        .state_dir()
        .join("jobs")
        .join(&lost.id)
        .join("status.json");
    let status: serde_json::Value = support::eventually(
        "the lost job's runner names its codex",
        std::time::Duration::from_secs(20),
        || {
            let status_file = status_file.clone();
            async move {
                let status: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(status_file).ok()?).ok()?;
                status["codex"]["pid"].is_i64().then_some(status)
            }
        },
    )
    .await;
    let lost_runner = status["runner"]["pid"].as_i64().unwrap() as i32;
    let lost_codex = status["codex"]["pid"].as_i64().unwrap() as i32;

    server.kill9();
    // The lost job's runner dies too; what it ran must not run on unwatched.
    unsafe { libc::kill(lost_runner, libc::SIGKILL) };
    // Let the first job end while nothing is watching it.
    let exit_record = server
        .state_dir()
        .join("jobs")
        .join(&ends_while_down.id)
        .join("status.json");
    support::eventually(
        "the job ends while the server is down",
        std::time::Duration::from_secs(20),
        || {
            let exit_record = exit_record.clone();
            async move {
                let text = std::fs::read_to_string(exit_record).ok()?;
                text.contains("\"exit\":{").then_some(())
            }
        },
    )
    .await;
    server.launch().await;

    let (job, transcript) = server.wait_finished(&ends_while_down.id).await;
    assert_eq!(job.state(), pb::JobState::Failed);
    assert_eq!(
        job.exit_code,
        Some(7),
        "the true exit code survived: {job:?}"
    );
    assert_eq!(transcript, "before the crash\nafter the crash\n");

    // The job that outlived the crash is adopted and can still be followed to its end.
    let mut stream = server.follow(&outlives.id).await;
    let mut bytes = Vec::new();
    let mut last_job = None;
    while let Some(message) = stream.message().await.unwrap() {
        match message.event.unwrap() {
            pb::follow_response::Event::Output(chunk) => {
                assert_eq!(chunk.offset, bytes.len() as u64);
                bytes.extend_from_slice(&chunk.data);
            }
            pb::follow_response::Event::Job(job) => last_job = Some(job),
        }
    }
    let last_job = last_job.unwrap();
    assert_eq!(last_job.state(), pb::JobState::Succeeded, "{last_job:?}");
    let text = String::from_utf8(bytes).unwrap();
    assert_eq!(
        text.lines()
            .filter(|line| line.starts_with("early "))
            .count(),
        1000
    );
    assert_eq!(
        text.lines()
            .filter(|line| line.starts_with("late "))
            .count(),
        1000
    );
    assert!(!last_job.thread_id.is_empty());

    let (lost_job, _) = server.wait_finished(&lost.id).await;
    assert_eq!(lost_job.state(), pb::JobState::Failed);
    assert_eq!(lost_job.failure_reason(), pb::FailureReason::Lost);
    assert!(
        lost_job.error.contains("without recording an exit status"),
        "{}",
        lost_job.error
    );
    assert!(!process_alive(lost_runner));
    assert!(!process_alive(lost_codex), "codex outlived its runner");
    assert!(
        !process_alive(lost_grandchild),
        "codex's child outlived its runner"
    );

    let (queued, _) = server.wait_finished(&queued.id).await;
    assert_eq!(queued.state(), pb::JobState::Succeeded);
    assert_eq!(queued.final_message, "queued across the crash");
}
