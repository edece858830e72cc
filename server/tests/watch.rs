//! Watch: the jobs that match, then every change of their state, resumable at a
//! position that survives reconnects and server restarts.

use codex_jobs_test_support as support;

use std::{collections::HashMap, time::Duration};

use codex_jobs_client::is_finished;
use support::{TestServer, pb};
use tonic::Streaming;

type Changes = Streaming<pb::WatchResponse>;

async fn watch(server: &TestServer, request: pb::WatchRequest) -> Changes {
    server.client().await.watch(request).await.expect("Watch")
}

fn labelled(key: &str, value: &str) -> std::collections::HashMap<String, String> {
    [(key.to_string(), value.to_string())].into()
}

/// The next message, within a bound so that a missing one fails the test.
async fn next(changes: &mut Changes) -> pb::WatchResponse {
    tokio::time::timeout(Duration::from_secs(30), changes.message())
        .await
        .expect("a Watch message within 30 s")
        .expect("the stream is fine")
        .expect("the stream goes on")
}

/// The jobs up to the caught-up marker, and its position.
async fn until_caught_up(changes: &mut Changes) -> (Vec<pb::Job>, u64) {
    let mut jobs = Vec::new();
    let mut last_position = 0;
    loop {
        let message = next(changes).await;
        assert!(message.position >= last_position, "positions never go back");
        last_position = message.position;
        match message.event.expect("an event") {
            pb::watch_response::Event::Job(job) => jobs.push(job),
            pb::watch_response::Event::CaughtUp(_) => return (jobs, message.position),
        }
    }
}

/// Reads changes until `job_id` is seen finished; returns every job message.
async fn until_finished(changes: &mut Changes, job_id: &str) -> Vec<pb::Job> {
    let mut jobs = Vec::new();
    loop {
        let message = next(changes).await;
        let Some(pb::watch_response::Event::Job(job)) = message.event else {
            panic!("only jobs follow the caught-up marker");
        };
        let done = job.id == job_id && is_finished(&job);
        jobs.push(job);
        if done {
            return jobs;
        }
    }
}

fn labelled_spec(server: &TestServer, prompt: &str, label: &str) -> pb::JobSpec {
    pb::JobSpec {
        labels: labelled("group", label),
        ..server.spec(prompt)
    }
}

#[tokio::test]
async fn a_watch_starts_with_the_jobs_as_they_are_then_sends_each_change() {
    let server = TestServer::start().await;
    let done = server
        .start_spec(labelled_spec(&server, "say done", "a"))
        .await;
    server.wait_finished(&done.id).await;
    let sleeper = server
        .start_spec(labelled_spec(&server, "sleep 1\nsay slept", "a"))
        .await;
    let other = server
        .start_spec(labelled_spec(&server, "say other", "b"))
        .await;

    let mut changes = watch(
        &server,
        pb::WatchRequest {
            labels: labelled("group", "a"),
            ..Default::default()
        },
    )
    .await;
    let (jobs, _) = until_caught_up(&mut changes).await;
    let ids: Vec<&str> = jobs.iter().map(|job| job.id.as_str()).collect();
    assert_eq!(
        ids,
        [done.id.as_str(), sleeper.id.as_str()],
        "oldest change first"
    );
    assert_eq!(jobs[0].state(), pb::JobState::Succeeded);

    // A job started now comes too, and each changes until it ends.
    let late = server
        .start_spec(labelled_spec(&server, "say late", "a"))
        .await;
    let mut states: HashMap<String, Vec<pb::JobState>> = HashMap::new();
    while !states
        .get(&late.id)
        .is_some_and(|s| s.contains(&pb::JobState::Succeeded))
        || !states
            .get(&sleeper.id)
            .is_some_and(|s| s.contains(&pb::JobState::Succeeded))
    {
        let message = next(&mut changes).await;
        let Some(pb::watch_response::Event::Job(job)) = message.event else {
            panic!("only jobs follow the caught-up marker");
        };
        assert_ne!(job.id, other.id, "a job without the label is not sent");
        states.entry(job.id.clone()).or_default().push(job.state());
    }
    let late_states = &states[&late.id];
    assert_eq!(late_states.last(), Some(&pb::JobState::Succeeded));
    assert!(
        late_states.windows(2).all(|pair| pair[0] != pair[1]),
        "a state is sent once: {late_states:?}"
    );
}

#[tokio::test]
async fn states_pick_the_jobs_a_watch_starts_with_and_it_sees_them_leave() {
    let server = TestServer::start().await;
    let done = server.start_job("say done").await;
    server.wait_finished(&done.id).await;
    let sleeper = server.start_job("sleep 1\nsay slept").await;
    server
        .wait_for_state(&sleeper.id, pb::JobState::Running)
        .await;

    let mut changes = watch(
        &server,
        pb::WatchRequest {
            states: vec![pb::JobState::Running.into()],
            ..Default::default()
        },
    )
    .await;
    let (jobs, _) = until_caught_up(&mut changes).await;
    let ids: Vec<&str> = jobs.iter().map(|job| job.id.as_str()).collect();
    assert_eq!(ids, [sleeper.id.as_str()]);
    let changed = until_finished(&mut changes, &sleeper.id).await;
    assert_eq!(changed.last().unwrap().state(), pb::JobState::Succeeded);
    assert_eq!(changed.last().unwrap().final_message, "slept");
}

#[tokio::test]
async fn a_watch_resumes_at_its_position_without_losing_a_change_even_across_a_restart() {
    let mut server = TestServer::start().await;
    let before = server.start_job("say before").await;
    server.wait_finished(&before.id).await;
    let mut changes = watch(&server, pb::WatchRequest::default()).await;
    let (_, position) = until_caught_up(&mut changes).await;
    drop(changes);

    // Changes while nobody watches, some of them by a server that is then killed.
    let missed = server.start_job("say missed").await;
    server.wait_finished(&missed.id).await;
    let queued = server.start_job("sleep 30").await;
    server.kill9();
    server.launch().await;
    let cancelled = server.client().await.cancel(&queued.id).await.unwrap();
    assert_eq!(cancelled.state(), pb::JobState::Cancelled);

    let mut changes = watch(
        &server,
        pb::WatchRequest {
            since_position: position,
            ..Default::default()
        },
    )
    .await;
    let (jobs, resumed_at) = until_caught_up(&mut changes).await;
    assert!(resumed_at > position);
    let seen: Vec<(&str, pb::JobState)> = jobs
        .iter()
        .map(|job| (job.id.as_str(), job.state()))
        .collect();
    assert_eq!(
        seen,
        [
            (missed.id.as_str(), pb::JobState::Succeeded),
            (queued.id.as_str(), pb::JobState::Cancelled)
        ],
        "what changed after the position, in its latest state, and nothing before it"
    );
}

#[tokio::test]
async fn a_watch_refuses_unknown_and_malformed_job_ids() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let unknown = "0192f0c4-6a35-7b21-9c1e-3f0a5d2e8b47";
    let err = client
        .watch(pb::WatchRequest {
            job_ids: vec![unknown.into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    let message = support::message(&err);
    assert_eq!(support::code(err), tonic::Code::NotFound);
    assert!(message.contains(unknown), "{message}");

    let err = client
        .watch(pb::WatchRequest {
            job_ids: vec!["nope".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(support::code(err), tonic::Code::InvalidArgument);

    let err = client
        .watch(pb::WatchRequest {
            job_ids: vec![unknown.into(); 1001],
            ..Default::default()
        })
        .await
        .unwrap_err();
    let message = support::message(&err);
    assert_eq!(support::code(err), tonic::Code::InvalidArgument);
    assert!(message.contains("at most 1000"), "{message}");
}

#[tokio::test]
async fn wait_any_returns_the_first_job_to_end() {
    let server = TestServer::start().await;
    let slow = server.start_job("sleep 30").await;
    let quick = server.start_job("sleep 0.5\nsay quick").await;
    let mut client = server.client().await;
    let ids = [slow.id.clone(), quick.id.clone()];
    let ended = client
        .wait_any(&ids, Some(Duration::from_secs(20)))
        .await
        .unwrap()
        .expect("one ends");
    assert_eq!(ended.id, quick.id);
    assert_eq!(ended.final_message, "quick");
    // One that has ended already counts at once; none ending in time gives None.
    let again = client.wait_any(&ids, None).await.unwrap().unwrap();
    assert_eq!(again.id, quick.id);
    let none = client
        .wait_any(
            std::slice::from_ref(&slow.id),
            Some(Duration::from_millis(300)),
        )
        .await
        .unwrap();
    assert!(none.is_none());
    client.cancel(&slow.id).await.unwrap();
}

#[tokio::test]
async fn wait_any_carries_on_across_a_server_restart() {
    let mut server = TestServer::start().await;
    let job = server.start_job("sleep 2\nsay outlived").await;
    server.wait_for_state(&job.id, pb::JobState::Running).await;
    // The socket keeps its path across the restart (the TCP port would not).
    let socket = format!("unix:{}", server.socket().display());
    let mut client = codex_jobs_client::Client::connect(&socket, None)
        .await
        .unwrap();
    let ids = [job.id.clone()];
    let waiting =
        tokio::spawn(async move { client.wait_any(&ids, Some(Duration::from_secs(30))).await });
    server.kill9();
    server.launch().await;
    let ended = waiting
        .await
        .unwrap()
        .unwrap()
        .expect("the job ends in time");
    assert_eq!(ended.id, job.id);
    assert_eq!(ended.final_message, "outlived");
}
