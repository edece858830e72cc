//! Jobs that have ended leave the server with their logs: one by Delete, many by
//! Prune, and all of them past the retention time by the server itself.

use codex_jobs_test_support as support;

use std::time::Duration;

use support::{ServerOptions, TestServer, pb};

fn job_dir(server: &TestServer, id: &str) -> std::path::PathBuf {
    server.state_dir().join("jobs").join(id)
}

#[tokio::test]
async fn delete_removes_an_ended_job_and_refuses_one_that_still_runs() {
    let server = TestServer::start().await;
    let ended = server.start_job("lines 100 a line of output").await;
    let (ended, _) = server.wait_finished(&ended.id).await;
    // Its size on disk: every log in its directory, in whole blocks.
    assert!(ended.disk_bytes >= ended.output_size, "{ended:?}");
    assert_eq!(ended.disk_bytes % 512, 0);
    let running = server.start_job("sleep 30").await;
    server
        .wait_for_state(&running.id, pb::JobState::Running)
        .await;
    let mut client = server.client().await;

    let refused = client.delete(&running.id).await.unwrap_err();
    let message = support::message(&refused);
    assert_eq!(support::code(refused), tonic::Code::FailedPrecondition);
    assert!(message.contains("is running: cancel it first"), "{message}");
    server
        .wait_for_state(&running.id, pb::JobState::Running)
        .await;

    let deleted = client.delete(&ended.id).await.unwrap();
    assert_eq!(deleted.id, ended.id);
    assert!(!job_dir(&server, &ended.id).exists());
    let gone = client
        .poll(pb::PollRequest {
            job_id: ended.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(support::code(gone), tonic::Code::NotFound);
    let again = client.delete(&ended.id).await.unwrap_err();
    assert_eq!(support::code(again), tonic::Code::NotFound);
    let listed = client.list(pb::ListRequest::default()).await.unwrap().jobs;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, running.id);

    // Cancelled, it has ended: now it may go.
    client.cancel(&running.id).await.unwrap();
    client.delete(&running.id).await.unwrap();
    assert!(!job_dir(&server, &running.id).exists());
}

#[tokio::test]
async fn prune_deletes_by_age_and_state_and_the_cli_says_how_much() {
    let server = TestServer::with(ServerOptions::default().args(["--retain-finished", "0"])).await;
    let mut ids = Vec::new();
    for prompt in ["lines 200 kept", "say kept too", "fail broken"] {
        let job = server.start_job(prompt).await;
        server.wait_finished(&job.id).await;
        ids.push(job.id);
    }
    let running = server.start_job("sleep 30").await;
    server
        .wait_for_state(&running.id, pb::JobState::Running)
        .await;
    let cli = |args: &[&str]| {
        let output = server.cli(args);
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).to_string(),
            String::from_utf8_lossy(&output.stderr).to_string(),
        )
    };

    // Nothing ended an hour ago, nor before any clock.
    for age in ["1h", "300000000years"] {
        let (code, out, _) = cli(&["prune", "--older-than", age]);
        assert_eq!(
            (code, out.as_str()),
            (Some(0), "deleted 0 jobs, freed 0 B\n")
        );
    }
    // The failed one only.
    let (code, out, err) = cli(&["prune", "--older-than", "0s", "--state", "failed"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("deleted 1 jobs, freed "), "{out}");
    assert!(!job_dir(&server, &ids[2]).exists());
    assert!(job_dir(&server, &ids[0]).exists() && job_dir(&server, &ids[1]).exists());
    // A state that does not end a job is refused, in words.
    let (code, _, err) = cli(&["prune", "--older-than", "0s", "--state", "running"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("states may name only states that end a job"),
        "{err}"
    );

    // The size shows in the list, and filters it: the 200 lines take more than the
    // one message, and the running job has no size of record yet.
    let (_, table, _) = cli(&["list"]);
    assert!(table.lines().next().unwrap().contains("SIZE"), "{table}");
    let big = server
        .client()
        .await
        .poll(pb::PollRequest {
            job_id: ids[0].clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .job
        .unwrap();
    let (_, larger, _) = cli(&[
        "list",
        "--json",
        "--larger-than",
        &big.disk_bytes.to_string(),
    ]);
    let larger: serde_json::Value = serde_json::from_str(&larger).unwrap();
    let listed: Vec<&str> = larger["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| job["job_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [ids[0].as_str()]);
    assert_eq!(larger["jobs"][0]["disk_bytes"], big.disk_bytes);
    let (code, _, err) = cli(&["list", "--larger-than", "lots"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("not a size"), "{err}");

    let (code, out, _) = cli(&["delete", &ids[1]]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with(&format!("deleted {} (", ids[1])), "{out}");
}

#[tokio::test]
async fn jobs_past_the_retention_time_are_deleted_by_the_server() {
    let server = TestServer::with(ServerOptions::default().args(["--retain-finished", "2s"])).await;
    let ended = server.start_job("say soon gone").await;
    server.wait_finished(&ended.id).await;
    let running = server.start_job("sleep 30").await;
    let mut client = server.client().await;
    support::eventually(
        "the server deletes the job past its retention time",
        Duration::from_secs(30),
        || {
            let mut client = client.clone();
            let id = ended.id.clone();
            async move {
                let polled = client
                    .poll(pb::PollRequest {
                        job_id: id,
                        ..Default::default()
                    })
                    .await;
                polled.is_err().then_some(())
            }
        },
    )
    .await;
    // The record goes first; the directory and the log line follow it.
    support::eventually(
        "the server logs what it deleted",
        Duration::from_secs(10),
        || {
            let logged = server
                .log()
                .contains("deleted jobs past the retention time");
            async move { logged.then_some(()) }
        },
    )
    .await;
    assert!(!job_dir(&server, &ended.id).exists());
    // A job that has not ended is never the retention's.
    let still = client
        .poll(pb::PollRequest {
            job_id: running.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .job
        .unwrap();
    assert_eq!(still.state(), pb::JobState::Running);
    client.cancel(&running.id).await.unwrap();

    let bad = std::process::Command::new(support::bin("codex-jobs-server"))
        .args(["--retain-finished", "soon"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("give a duration like 30d"));
}
