//! What a public-facing host needs to survive: a cap on each job's output, and a
//! disk that fills up while jobs run.

use codex_jobs_test_support as support;

use std::time::Duration;

use support::{ServerOptions, SmallDisk, TestServer, pb};
use tonic::Code;

#[tokio::test]
async fn output_past_the_cap_is_cut_with_a_last_line_and_the_job_carries_on() {
    let server =
        TestServer::with(ServerOptions::default().args(["--max-output-bytes", "8192"])).await;
    let job = server
        .start_job("lines 2000 a line of output\nsay the end")
        .await;
    let (done, transcript) = server.wait_finished(&job.id).await;
    assert_eq!(done.state(), pb::JobState::Succeeded, "{done:?}");
    // Codex's own report still arrives: the final message and the note.
    assert_eq!(done.final_message, "the end");
    assert_eq!(
        done.output_note,
        "the output was cut at 8192 bytes, the most this host keeps of a job (--max-output-bytes)"
    );
    assert!(
        transcript.ends_with(&format!("! {}\n", done.output_note)),
        "{transcript}"
    );
    let dir = server.state_dir().join("jobs").join(&job.id);
    let kept: u64 = ["events.jsonl", "transcript.log", "stderr.log"]
        .iter()
        .map(|log| std::fs::metadata(dir.join(log)).map_or(0, |meta| meta.len()))
        .sum();
    assert!(kept <= 8192 + 200, "{kept} bytes kept");
}

#[tokio::test]
async fn a_full_disk_ends_the_job_with_a_clear_error_and_loses_no_record() {
    let Some(disk) = SmallDisk::mount(8 << 20) else {
        return;
    };
    // The database fills up with the disk: the SQLite file in the state dir.
    let server = TestServer::with(ServerOptions {
        state_dir: Some(disk.path().join("state")),
        sqlite: true,
        ..ServerOptions::default()
    })
    .await;
    let text = "x".repeat(200);
    let job = server.start_job(&format!("lines 100000 {text}")).await;
    let dir = server.state_dir().join("jobs").join(&job.id);
    // The runner records the end despite the full disk: room was kept for it.
    let status = support::eventually(
        "the runner records the end",
        Duration::from_secs(60),
        || {
            let status = dir.join("status.json");
            async move {
                let text = std::fs::read_to_string(status).ok()?;
                text.contains("\"exit\":{").then_some(text)
            }
        },
    )
    .await;
    assert!(status.contains("\"ending\":\"disk_full\""), "{status}");
    assert!(!dir.join(".status.json.tmp").exists());

    let (done, _) = server.wait_finished(&job.id).await;
    assert_eq!(done.state(), pb::JobState::Failed);
    assert_eq!(done.failure_reason(), pb::FailureReason::DiskFull);
    assert!(done.error.contains("disk filled up"), "{}", done.error);
    assert!(
        done.output_note.contains("the server's disk is full"),
        "{done:?}"
    );

    // With the disk full, Start is refused in words, and the server lives on.
    let filler = disk.path().join("filler");
    fill(&filler);
    let mut client = server.client().await;
    let start = pb::StartRequest {
        spec: Some(server.spec("say hi")),
        ..Default::default()
    };
    let refused = client.start(start.clone()).await.unwrap_err();
    let text = refused.to_string();
    assert_eq!(support::code(refused), Code::ResourceExhausted, "{text}");
    assert!(text.contains("disk is full"), "{text}");
    std::fs::remove_file(&filler).unwrap();
    std::fs::remove_file(dir.join("events.jsonl")).unwrap();
    let started = client
        .start(start)
        .await
        .expect("Start works with room again");
    let (done, _) = server.wait_finished(&started.job.unwrap().id).await;
    assert_eq!(done.state(), pb::JobState::Succeeded);
}

/// Writes `path` until the disk is full.
fn fill(path: &std::path::Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 64 * 1024];
    loop {
        match file.write_all(&block) {
            Ok(()) => {}
            Err(err) if err.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(err) => panic!("filling the disk: {err}"),
        }
    }
    // Down to the last block.
    while file.write_all(&[0u8]).is_ok() {}
}

#[tokio::test]
async fn a_finish_the_database_refuses_is_stored_once_it_takes_writes_again() {
    // SQLite's write lock; PostgreSQL going away is tests/postgres.rs's.
    let server = TestServer::with(ServerOptions {
        sqlite: true,
        ..ServerOptions::default()
    })
    .await;
    let job = server.start_job("say hello\nsleep 1").await;
    server.wait_for_state(&job.id, pb::JobState::Running).await;
    // Another process holds the database's write lock past the server's 5 s wait.
    let db = rusqlite::Connection::open(server.state_dir().join("jobs.db")).unwrap();
    db.execute_batch("BEGIN IMMEDIATE").unwrap();
    support::eventually(
        "the server fails to store the finish and says it will retry",
        Duration::from_secs(30),
        || {
            let log = server.log();
            async move {
                log.contains("could not store the finished job, will retry")
                    .then_some(())
            }
        },
    )
    .await;
    let mut client = server.client().await;
    let polled = client.poll(pb::PollRequest {
        job_id: job.id.clone(),
        ..Default::default()
    });
    let still = polled.await.unwrap().job.unwrap();
    assert_eq!(
        still.state(),
        pb::JobState::Running,
        "not finished until stored"
    );
    db.execute_batch("COMMIT").unwrap();
    let (done, transcript) = server.wait_finished(&job.id).await;
    assert_eq!(done.state(), pb::JobState::Succeeded);
    assert!(transcript.contains("hello"));
}

#[tokio::test]
async fn one_connection_holds_at_most_256_streams() {
    let server = TestServer::start().await;
    let job = server.start_job("say waiting\nsleep 120").await;
    server.wait_for_state(&job.id, pb::JobState::Running).await;
    // One client is one HTTP/2 connection.
    let mut client = server.client().await;
    let mut follows = Vec::new();
    for _ in 0..256 {
        let follow = pb::FollowRequest {
            job_id: job.id.clone(),
            ..Default::default()
        };
        follows.push(
            client
                .follow(follow)
                .await
                .expect("a stream within the cap"),
        );
    }
    // The next call waits for a free stream ...
    let mut waiting = client.clone();
    let job_id = job.id.clone();
    let mut poll = tokio::spawn(async move {
        waiting
            .poll(pb::PollRequest {
                job_id,
                ..Default::default()
            })
            .await
    });
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut poll)
            .await
            .is_err(),
        "a 257th stream was opened at once"
    );
    // ... and is answered as soon as one closes.
    follows.pop();
    let answered = tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .expect("answered once a stream is free");
    assert!(answered.unwrap().is_ok());
    drop(follows);
    client.cancel(&job.id).await.unwrap();
}
