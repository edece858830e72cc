//! Follow: live output with offsets, state updates, and resuming without loss or
//! duplication.

use codex_jobs_test_support as support;

use support::{TestServer, pb};

/// Reads a Follow stream to its end: the bytes (checked to be contiguous from
/// `start`) and the job messages in order.
async fn follow_to_end(
    server: &TestServer,
    job_id: &str,
    start: Option<pb::follow_request::Start>,
) -> (Vec<u8>, Vec<pb::Job>) {
    let mut client = server.client().await;
    let mut stream = client
        .follow(pb::FollowRequest {
            job_id: job_id.into(),
            start,
            stream: pb::OutputStream::Transcript.into(),
        })
        .await
        .unwrap();
    let mut bytes = Vec::new();
    let mut jobs = Vec::new();
    let mut next: Option<u64> = None;
    let mut last_was_job = false;
    while let Some(message) = stream.message().await.unwrap() {
        match message.event.unwrap() {
            pb::follow_response::Event::Output(chunk) => {
                if let Some(next) = next {
                    assert_eq!(chunk.offset, next, "chunks are contiguous");
                }
                next = Some(chunk.offset + chunk.data.len() as u64);
                bytes.extend_from_slice(&chunk.data);
                last_was_job = false;
            }
            pb::follow_response::Event::Job(job) => {
                assert!(
                    !jobs.last().is_some_and(codex_jobs_client::is_finished),
                    "nothing follows the final state"
                );
                jobs.push(job);
                last_was_job = true;
            }
        }
    }
    assert!(last_was_job, "the stream ends with the job");
    assert!(
        codex_jobs_client::is_finished(jobs.last().unwrap()),
        "in its final state"
    );
    (bytes, jobs)
}

fn transcript_file(server: &TestServer, job_id: &str) -> Vec<u8> {
    std::fs::read(
        server
            .state_dir()
            .join("jobs")
            .join(job_id)
            .join("transcript.log"),
    )
    .unwrap()
}

#[tokio::test]
async fn follow_streams_a_job_live_and_ends_with_its_final_state() {
    let server = TestServer::start().await;
    let job = server
        .start_job("say first\nsleep 0.3\nsay second\nsleep 0.3\nsay third")
        .await;
    let (bytes, jobs) = follow_to_end(&server, &job.id, None).await;
    assert_eq!(bytes, transcript_file(&server, &job.id), "every byte, once");
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.starts_with("first\nsecond\nthird\n"), "{text}");
    // First the job as it was, last the job as it ended; states never go back.
    let states: Vec<_> = jobs.iter().map(|job| job.state()).collect();
    assert_eq!(
        *states.last().unwrap(),
        pb::JobState::Succeeded,
        "{states:?}"
    );
    assert!(states.contains(&pb::JobState::Running) || states[0] == pb::JobState::Queued);
    assert_eq!(jobs.last().unwrap().final_message, "third");
}

#[tokio::test]
async fn follow_delivers_each_line_as_it_is_written() {
    let server = TestServer::start().await;
    let job = server.start_job("say early bird\nsleep 30").await;
    let mut client = server.client().await;
    let mut stream = server.follow(&job.id).await;
    // The line arrives while the job is still running, long before it would end.
    let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            if let Some(pb::follow_response::Event::Output(chunk)) =
                stream.message().await.unwrap().unwrap().event
            {
                return chunk;
            }
        }
    })
    .await
    .expect("the output arrived live");
    assert_eq!(chunk.offset, 0);
    assert_eq!(chunk.data, b"early bird\n");
    // What Codex reported so far shows while the job runs.
    let endpoint = server.endpoint();
    support::eventually(
        "the thread id shows while running",
        std::time::Duration::from_secs(10),
        || {
            let endpoint = endpoint.clone();
            let id = job.id.clone();
            async move {
                let mut client = support::Client::connect(&endpoint, None).await.ok()?;
                let polled = client
                    .poll(pb::PollRequest {
                        job_id: id,
                        ..Default::default()
                    })
                    .await
                    .ok()?;
                let job = polled.job?;
                (job.state() == pb::JobState::Running
                    && !job.thread_id.is_empty()
                    && job.output_size == 11)
                    .then_some(())
            }
        },
    )
    .await;
    let cancelled = client.cancel(&job.id).await.unwrap();
    assert_eq!(cancelled.state(), pb::JobState::Cancelled);
    // The stream ends with the final state.
    let mut last = None;
    while let Some(message) = stream.message().await.unwrap() {
        last = message.event;
    }
    match last {
        Some(pb::follow_response::Event::Job(job)) => {
            assert_eq!(job.state(), pb::JobState::Cancelled)
        }
        other => panic!("the stream ended with {other:?}"),
    }
}

#[tokio::test]
async fn a_follower_that_reconnects_at_its_offset_loses_and_repeats_nothing() {
    let server = TestServer::start().await;
    let job = server
        .start_job("lines 20000 first half\nsleep 0.5\nlines 20000 second half")
        .await;
    // Read part of the stream, then hang up mid-job.
    let mut stream = server.follow(&job.id).await;
    let mut received = Vec::new();
    while received.len() < 100_000 {
        if let Some(pb::follow_response::Event::Output(chunk)) =
            stream.message().await.unwrap().unwrap().event
        {
            assert_eq!(chunk.offset, received.len() as u64);
            received.extend_from_slice(&chunk.data);
        }
    }
    drop(stream);

    // Resume where we stopped, on a new connection.
    let start = Some(pb::follow_request::Start::FromOffset(received.len() as u64));
    let (rest, jobs) = follow_to_end(&server, &job.id, start).await;
    received.extend_from_slice(&rest);
    assert_eq!(jobs.last().unwrap().state(), pb::JobState::Succeeded);
    let whole = transcript_file(&server, &job.id);
    assert_eq!(received.len(), whole.len());
    assert!(received == whole, "the resumed stream differs from the log");
    assert_eq!(String::from_utf8(whole).unwrap().lines().count(), 40_001);
}

#[tokio::test]
async fn follow_can_start_at_the_last_lines_of_a_finished_job() {
    let server = TestServer::start().await;
    let job = server.start_job("lines 100 row").await;
    server.wait_finished(&job.id).await;
    let (bytes, jobs) = follow_to_end(
        &server,
        &job.id,
        Some(pb::follow_request::Start::TailLines(2)),
    )
    .await;
    assert!(
        String::from_utf8(bytes)
            .unwrap()
            .starts_with("row 100\n-- turn completed")
    );
    // A finished job: the bytes, then its final state, once.
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].state(), pb::JobState::Succeeded);

    let mut client = server.client().await;
    let err = client
        .follow(pb::FollowRequest {
            job_id: job.id.clone(),
            start: Some(pb::follow_request::Start::FromOffset(1 << 30)),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(support::code(err), tonic::Code::InvalidArgument);
}
