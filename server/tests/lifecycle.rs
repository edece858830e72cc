//! How jobs end: success, failure, timeout, cancel (with everything they started),
//! lingering after `turn.completed`, and the run queue.

use codex_jobs_test_support as support;

use support::{ServerOptions, TestServer, pb, process_alive};

#[tokio::test]
async fn cancel_ends_the_whole_process_group_and_returns_when_it_is_gone() {
    let server = TestServer::start().await;
    let job = server.start_job("say working\ngrandchild\nsleep 60").await;
    let grandchild = server.pid_file("grandchild.pid").await;
    let codex = server.pid_file("codex.pid").await;
    assert!(process_alive(grandchild));

    let mut client = server.client().await;
    let cancelled = client.cancel(&job.id).await.unwrap();
    assert_eq!(cancelled.state(), pb::JobState::Cancelled);
    assert_eq!(cancelled.error, "cancelled");
    assert!(cancelled.finished_at.is_some());
    // Cancel returned only once nothing of the job is left.
    assert!(!process_alive(codex), "codex {codex} survived the cancel");
    assert!(
        !process_alive(grandchild),
        "grandchild {grandchild} survived the cancel"
    );

    // Cancelling again changes nothing.
    let again = client.cancel(&job.id).await.unwrap();
    assert_eq!(again, cancelled);
}

#[tokio::test]
async fn a_codex_that_ignores_sigterm_is_killed_after_the_grace_period() {
    let server = TestServer::start().await;
    let job = server
        .start_job("ignore-term\nsay stubborn\nsleep 60")
        .await;
    let codex = server.pid_file("codex.pid").await;
    // Codex ignores SIGTERM once it has said its line: its directives run in order.
    server.wait_for_output(&job.id, "stubborn").await;
    let started = std::time::Instant::now();
    let cancelled = server.client().await.cancel(&job.id).await.unwrap();
    assert_eq!(cancelled.state(), pb::JobState::Cancelled);
    assert_eq!(cancelled.signal, Some(libc::SIGKILL));
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "SIGKILL came before the 2 s grace"
    );
    assert!(!process_alive(codex));
}

#[tokio::test]
async fn cancelling_a_queued_job_takes_it_off_the_queue() {
    let server = TestServer::with(ServerOptions::default().args(["--max-running", "1"])).await;
    let blocker = server.start_job("sleep 60").await;
    let queued = server.start_job("say never").await;
    assert_eq!(queued.state(), pb::JobState::Queued);
    let mut client = server.client().await;
    let cancelled = client.cancel(&queued.id).await.unwrap();
    assert_eq!(cancelled.state(), pb::JobState::Cancelled);
    assert!(cancelled.started_at.is_none());
    client.cancel(&blocker.id).await.unwrap();
    let argv = std::fs::read_to_string(server.argv_log()).unwrap();
    assert_eq!(argv.lines().count(), 1, "the queued job never ran: {argv}");
}

#[tokio::test]
async fn the_queue_runs_jobs_first_in_first_out_within_the_limit() {
    let server = TestServer::with(ServerOptions::default().args(["--max-running", "1"])).await;
    let first = server.start_job("say first\nsleep 0.5").await;
    let second = server.start_job("say second").await;
    let third = server.start_job("say third").await;
    assert_eq!(second.state(), pb::JobState::Queued);
    assert_eq!(third.state(), pb::JobState::Queued);
    let mut finished = Vec::new();
    for job in [&first, &second, &third] {
        let (job, _) = server.wait_finished(&job.id).await;
        assert_eq!(job.state(), pb::JobState::Succeeded);
        finished.push(job);
    }
    // One at a time, in order: each started after the previous one finished.
    for pair in finished.windows(2) {
        let ended = pair[0].finished_at.unwrap();
        let began = pair[1].started_at.unwrap();
        assert!(
            (began.seconds, began.nanos) >= (ended.seconds, ended.nanos),
            "{pair:?}"
        );
    }
}

#[tokio::test]
async fn a_job_past_its_timeout_is_killed_and_failed() {
    let server = TestServer::start().await;
    let mut spec = server.spec("say starting\nsleep 60");
    spec.timeout = Some(prost_types::Duration {
        seconds: 1,
        nanos: 0,
    });
    let job = server.start_spec(spec).await;
    let (job, transcript) = server.wait_finished(&job.id).await;
    assert_eq!(job.state(), pb::JobState::Failed);
    assert_eq!(job.failure_reason(), pb::FailureReason::TimedOut);
    assert_eq!(job.error, "timed out after 1 s");
    assert!(transcript.contains("starting"));
}

#[tokio::test]
async fn the_default_timeout_applies_to_jobs_without_one() {
    let server = TestServer::with(ServerOptions::default().args(["--default-timeout", "1"])).await;
    let job = server.start_job("sleep 60").await;
    let (job, _) = server.wait_finished(&job.id).await;
    assert_eq!(job.failure_reason(), pb::FailureReason::TimedOut);
}

#[tokio::test]
async fn codex_failures_are_reported_with_their_reason() {
    let server = TestServer::start().await;
    let exit = server.start_job("say trying\nexit 3").await;
    let failed = server.start_job("fail the model is unavailable").await;
    let (exit, _) = server.wait_finished(&exit.id).await;
    assert_eq!(exit.state(), pb::JobState::Failed);
    assert_eq!(exit.failure_reason(), pb::FailureReason::NonZeroExit);
    assert_eq!(exit.exit_code, Some(3));
    assert_eq!(exit.error, "codex exited with status 3");

    let (failed, transcript) = server.wait_finished(&failed.id).await;
    assert_eq!(failed.exit_code, Some(1));
    assert_eq!(
        failed.error,
        "codex exited with status 1: the model is unavailable"
    );
    assert!(
        transcript.contains("! turn failed: the model is unavailable"),
        "{transcript}"
    );
}

#[tokio::test]
async fn a_codex_that_lingers_after_turn_completed_counts_as_finished() {
    let server = TestServer::start().await;
    let job = server.start_job("say finished my turn\nhang").await;
    let codex = server.pid_file("codex.pid").await;
    let (job, _) = server.wait_finished(&job.id).await;
    assert_eq!(job.state(), pb::JobState::Succeeded, "{job:?}");
    assert_eq!(job.final_message, "finished my turn");
    assert!(!process_alive(codex));
}

#[tokio::test]
async fn a_codex_that_cannot_start_fails_the_job() {
    let server = TestServer::with(ServerOptions {
        codex_bin: "/nonexistent/codex".into(),
        ..ServerOptions::default()
    })
    .await;
    let job = server.start_job("say hi").await;
    let (job, _) = server.wait_finished(&job.id).await;
    assert_eq!(job.state(), pb::JobState::Failed);
    assert_eq!(job.failure_reason(), pb::FailureReason::StartFailed);
    assert!(job.error.contains("/nonexistent/codex"), "{}", job.error);
}

#[tokio::test]
async fn large_prompts_and_prompts_like_flags_reach_codex_on_stdin() {
    let server = TestServer::start().await;
    let big = format!("say big prompt\n{}", "x".repeat(300 * 1024));
    let job = server.start_job(&big).await;
    let (job, _) = server.wait_finished(&job.id).await;
    assert_eq!(job.final_message, "big prompt");
    let flag_like = server.start_job("--help").await;
    let (flag_like, _) = server.wait_finished(&flag_like.id).await;
    assert_eq!(flag_like.state(), pb::JobState::Succeeded);
    assert_eq!(flag_like.final_message, "echo: --help");
    let argv = std::fs::read_to_string(server.argv_log()).unwrap();
    assert!(argv.lines().all(|line| line.ends_with(" -")), "{argv}");
}

#[tokio::test]
async fn sigterm_stops_the_server_but_not_its_jobs() {
    let mut server = TestServer::start().await;
    let job = server.start_job("sleep 3\nsay outlived the server").await;
    server.wait_for_state(&job.id, pb::JobState::Running).await;
    let stopping = std::time::Instant::now();
    let status = server.terminate();
    eprintln!("shutdown took {:?}", stopping.elapsed());
    assert!(status.success(), "{status:?}\n{}", server.log());
    let codex = server.pid_file("codex.pid").await;
    assert!(process_alive(codex), "the job was touched by the shutdown");
    server.launch().await;
    let (job, _) = server.wait_finished(&job.id).await;
    assert_eq!(job.state(), pb::JobState::Succeeded);
    assert_eq!(job.final_message, "outlived the server");
}

#[tokio::test]
async fn a_job_can_continue_an_earlier_codex_thread() {
    let server = TestServer::start().await;
    let first = server.start_job("say first turn").await;
    let (first, _) = server.wait_finished(&first.id).await;
    let mut spec = server.spec("say second turn");
    spec.resume_thread_id = first.thread_id.clone();
    spec.model = "gpt-test".into();
    let second = server.start_spec(spec).await;
    let (second, _) = server.wait_finished(&second.id).await;
    assert_eq!(second.state(), pb::JobState::Succeeded);
    assert_eq!(
        second.thread_id, first.thread_id,
        "the same Codex thread went on"
    );
    let argv = std::fs::read_to_string(server.argv_log()).unwrap();
    let resumed = argv.lines().nth(1).unwrap();
    assert!(
        resumed.ends_with(&format!(
            "-m gpt-test -s read-only resume {} say second turn",
            first.thread_id
        )),
        "{resumed}"
    );
}

#[tokio::test]
async fn a_grandchild_that_left_the_process_group_is_ended_on_cancel() {
    let server = TestServer::start().await;
    let job = server
        .start_job("grandchild setsid\nsay escaped\nsleep 60")
        .await;
    let grandchild = server.pid_file("grandchild.pid").await;
    let cancelled = server.client().await.cancel(&job.id).await.unwrap();
    assert_eq!(cancelled.state(), pb::JobState::Cancelled);
    assert!(
        !process_alive(grandchild),
        "the escaped grandchild {grandchild} survived"
    );
}

#[tokio::test]
async fn a_job_ends_when_codex_does_even_if_a_grandchild_holds_its_output_open() {
    let server = TestServer::start().await;
    let job = server.start_job("grandchild setsid\nsay done here").await;
    let grandchild = server.pid_file("grandchild.pid").await;
    let (job, _) = server.wait_finished(&job.id).await;
    assert_eq!(job.state(), pb::JobState::Succeeded);
    assert_eq!(job.final_message, "done here");
    assert!(
        !process_alive(grandchild),
        "the grandchild {grandchild} outlived its job"
    );
}
