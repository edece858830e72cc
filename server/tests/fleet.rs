//! Several job hosts on one PostgreSQL database, as three servers on this machine
//! with host ids and state dirs of their own: jobs started through one host run on
//! the hosts of their pool, and any host reads, follows and cancels them.

use codex_jobs_test_support as support;

use std::time::Duration;

use support::{ServerOptions, TestServer, code, pb, postgres::Postgres};
use tokio_stream::StreamExt;

const TOKEN: &str = "fleet-s3cret";

/// A host of the fleet: a server on the shared database, reachable by the others,
/// that counts another host lost after 15 s without a heartbeat.
async fn host(postgres: &Postgres, id: &str, pools: &[&str], max_running: u32) -> TestServer {
    host_with(postgres, id, pools, max_running, &[]).await
}

/// `host`, with more arguments.
async fn host_with(
    postgres: &Postgres,
    id: &str,
    pools: &[&str],
    max_running: u32,
    args: &[&str],
) -> TestServer {
    let port = support::free_port();
    let mut options = ServerOptions::default().args([
        "--database-url",
        &postgres.url("fleet"),
        "--host-id",
        id,
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--advertise",
        &format!("http://127.0.0.1:{port}"),
        "--max-running",
        &max_running.to_string(),
        "--host-lost-after",
        "15s",
    ]);
    for pool in pools {
        options = options.args(["--pool", pool]);
    }
    for arg in args {
        options = options.arg(*arg);
    }
    // Every host wants a token, the same one the hosts present to each other.
    let options = options.token(TOKEN).env("CODEX_JOBS_FLEET_TOKEN", TOKEN);
    TestServer::with(options).await
}

/// A PostgreSQL cluster with an empty `fleet` database, and hosts a, b and c:
/// a serves `default`, b `gpu`, c both.
async fn fleet() -> Option<(Postgres, TestServer, TestServer, TestServer)> {
    let postgres = Postgres::start()?;
    postgres.create_database("fleet");
    let a = host(&postgres, "a", &["default"], 2).await;
    let b = host(&postgres, "b", &["gpu"], 2).await;
    let c = host(&postgres, "c", &["default", "gpu"], 2).await;
    Some((postgres, a, b, c))
}

fn spec_for(server: &TestServer, prompt: &str, pool: &str, host: &str) -> pb::JobSpec {
    pb::JobSpec {
        pool: pool.into(),
        host: host.into(),
        ..server.spec(prompt)
    }
}

/// Everything a Follow through `server` from `offset` sends: the output and the
/// states, to the job's end.
async fn follow(server: &TestServer, id: &str, offset: u64) -> (Vec<u8>, Vec<pb::JobState>) {
    let mut client = server.client().await;
    let mut stream = client
        .follow(pb::FollowRequest {
            job_id: id.into(),
            start: Some(pb::follow_request::Start::FromOffset(offset)),
            stream: pb::OutputStream::Transcript.into(),
        })
        .await
        .unwrap();
    let (mut output, mut states) = (Vec::new(), Vec::new());
    let mut next = offset;
    while let Some(message) = tokio::time::timeout(Duration::from_secs(30), stream.next())
        .await
        .expect("the follow goes on")
    {
        match message.unwrap().event.unwrap() {
            pb::follow_response::Event::Output(chunk) => {
                assert_eq!(chunk.offset, next, "chunks come in order, without gaps");
                next += chunk.data.len() as u64;
                output.extend(chunk.data);
            }
            pb::follow_response::Event::Job(job) => states.push(job.state()),
        }
    }
    (output, states)
}

/// The whole transcript, as `server` reads it.
async fn transcript(server: &TestServer, id: &str, since: u64) -> Vec<u8> {
    let mut client = server.client().await;
    let response = client
        .poll(pb::PollRequest {
            job_id: id.into(),
            window: Some(pb::poll_request::Window::SinceOffset(since)),
            max_bytes: 4 << 20,
            ..Default::default()
        })
        .await
        .unwrap();
    response.output
}

#[tokio::test]
async fn jobs_started_through_one_host_run_by_pool_and_are_read_followed_and_cancelled_through_any()
{
    let Some((_postgres, a, b, c)) = fleet().await else {
        return;
    };

    // Every host sees the fleet.
    let hosts = a.client().await.list_hosts().await.unwrap();
    let seen: Vec<(&str, Vec<String>, bool)> = hosts
        .iter()
        .map(|host| (host.id.as_str(), host.pools.clone(), host.alive))
        .collect();
    assert_eq!(
        seen,
        [
            ("a", vec!["default".to_string()], true),
            ("b", vec!["gpu".to_string()], true),
            ("c", vec!["default".to_string(), "gpu".to_string()], true),
        ]
    );
    assert!(hosts[1].address.starts_with("http://127.0.0.1:"));

    // A gpu job started through a, which serves no gpu, runs on b when it names b.
    let lines: String = (1..=40)
        .map(|n| format!("say line {n}\nsleep 0.05\n"))
        .collect();
    let on_b = a
        .start_spec(spec_for(&a, &format!("Count\n{lines}"), "gpu", "b"))
        .await;
    let running = a.wait_for_state(&on_b.id, pb::JobState::Running).await;
    assert_eq!(running.host, "b");
    // Followed through a from the start and from the middle, it is exactly what b has.
    let (followed, states) = follow(&a, &on_b.id, 0).await;
    assert_eq!(states.last(), Some(&pb::JobState::Succeeded));
    let owned = transcript(&b, &on_b.id, 0).await;
    assert_eq!(followed, owned);
    assert_eq!(String::from_utf8_lossy(&owned).matches("line ").count(), 40);
    let middle = owned.len() as u64 / 2;
    assert_eq!(
        follow(&a, &on_b.id, middle).await.0,
        owned[middle as usize..]
    );
    assert_eq!(
        transcript(&a, &on_b.id, middle).await,
        owned[middle as usize..]
    );
    assert_eq!(transcript(&c, &on_b.id, 0).await, owned);

    // Pool default from b, which does not serve it, runs on a or c.
    let default = b
        .start_spec(spec_for(&b, "say anywhere", "default", ""))
        .await;
    let (done, _) = b.wait_finished(&default.id).await;
    assert_eq!(done.state(), pb::JobState::Succeeded);
    assert!(["a", "c"].contains(&done.host.as_str()), "{}", done.host);

    // A job on b, cancelled through c: b's runner ends it.
    let sleeper = a
        .start_spec(spec_for(&a, "say sleeping\nsleep 60", "gpu", "b"))
        .await;
    a.wait_for_state(&sleeper.id, pb::JobState::Running).await;
    let cancelled = c.client().await.cancel(&sleeper.id).await.unwrap();
    assert_eq!(cancelled.state(), pb::JobState::Cancelled);
    assert_eq!(cancelled.host, "b");

    // A pool no host serves, and a host that is not there, are refused at once.
    let mut client = a.client().await;
    for (pool, host, says) in [
        ("tpu", "", "no live host serves pool tpu"),
        ("default", "z", "host z is not live"),
    ] {
        let err = client
            .start(pb::StartRequest {
                spec: Some(spec_for(&a, "say never", pool, host)),
                ..Default::default()
            })
            .await
            .unwrap_err();
        let message = support::message(&err);
        assert_eq!(code(err), tonic::Code::FailedPrecondition);
        assert!(message.contains(says), "{message}");
        assert!(message.contains("c (pools default, gpu)"), "{message}");
    }
}

#[tokio::test]
async fn a_host_killed_mid_job_takes_its_job_back_when_it_starts_again() {
    let Some((_postgres, a, mut b, _c)) = fleet().await else {
        return;
    };
    let job = a
        .start_spec(spec_for(&a, "say before\nsleep 2\nsay after", "gpu", "b"))
        .await;
    // Killed once Codex has said its first line: its runner is recorded by then.
    a.wait_for_output(&job.id, "before\n").await;
    b.kill9();
    b.launch().await;
    // Followed through a, from b again, to its end.
    let (output, states) = follow(&a, &job.id, 0).await;
    assert_eq!(states.last(), Some(&pb::JobState::Succeeded));
    let text = String::from_utf8(output).unwrap();
    assert!(
        text.contains("before\n") && text.contains("after\n"),
        "{text}"
    );
    assert_eq!(b.log().matches("adopted running job").count(), 1);
}

#[tokio::test]
async fn the_jobs_of_a_host_gone_for_good_show_it_then_end_as_lost() {
    let Some((_postgres, a, mut b, _c)) = fleet().await else {
        return;
    };
    let job = a
        .start_spec(spec_for(&a, "say working\nsleep 120", "gpu", "b"))
        .await;
    a.wait_for_state(&job.id, pb::JobState::Running).await;
    let started = std::time::Instant::now();
    b.kill9();
    let client = a.client().await;
    let poll = |client: support::Client| {
        let id = job.id.clone();
        async move {
            let mut client = client;
            let request = pb::PollRequest {
                job_id: id,
                ..Default::default()
            };
            client.poll(request).await.unwrap().job.unwrap()
        }
    };
    // Three heartbeats missed: the job shows its host cannot be reached.
    let unreachable = support::eventually(
        "the job shows its host gone",
        Duration::from_secs(30),
        || {
            let client = client.clone();
            async move { Some(poll(client).await).filter(|job| job.host_unreachable) }
        },
    )
    .await;
    assert_eq!(unreachable.state(), pb::JobState::Running);
    // Its output is on b, which cannot be reached: a clear UNAVAILABLE.
    let err = transcript_error(&a, &job.id).await;
    assert!(err.contains("host b"), "{err}");
    // Past --host-lost-after, it ends as lost.
    let lost = support::eventually("the job ends as lost", Duration::from_secs(40), || {
        let client = client.clone();
        async move { Some(poll(client).await).filter(|job| job.state() == pb::JobState::Failed) }
    })
    .await;
    // 15 s after its last heartbeat, which came at most 5 s before the kill.
    assert!(started.elapsed() >= Duration::from_secs(10));
    assert_eq!(lost.failure_reason(), pb::FailureReason::Lost);
    assert!(
        lost.error.contains("host b stopped heartbeating"),
        "{}",
        lost.error
    );
    assert!(!lost.host_unreachable);
    let hosts = a.client().await.list_hosts().await.unwrap();
    assert!(hosts.iter().any(|host| host.id == "b" && !host.alive));
}

/// Why a Poll of the job's output through `server` fails.
async fn transcript_error(server: &TestServer, id: &str) -> String {
    let mut client = server.client().await;
    let err = client
        .poll(pb::PollRequest {
            job_id: id.into(),
            window: Some(pb::poll_request::Window::SinceOffset(0)),
            ..Default::default()
        })
        .await
        .unwrap_err();
    let message = support::message(&err);
    assert_eq!(code(err), tonic::Code::Unavailable);
    message
}

#[tokio::test]
async fn the_fleet_carries_on_through_a_restart_of_postgresql() {
    let Some((mut postgres, a, _b, _c)) = fleet().await else {
        return;
    };
    let mut jobs = Vec::new();
    for n in 0..4 {
        let prompt = format!("say {n} before\nsleep 2\nsay {n} after");
        jobs.push(a.start_spec(spec_for(&a, &prompt, "gpu", "")).await);
    }
    for job in &jobs {
        a.wait_for_state(&job.id, pb::JobState::Running).await;
    }
    postgres.stop();
    postgres.start_again();
    // Each ended while the database was away or after, and its end is stored.
    for (n, job) in jobs.iter().enumerate() {
        let (done, output) = a.wait_finished(&job.id).await;
        assert_eq!(done.state(), pb::JobState::Succeeded, "{done:?}");
        assert!(output.contains(&format!("{n} after\n")), "{output}");
    }
    // The hosts listen again: a job started now is taken by a gpu host at once.
    let after = a
        .start_spec(spec_for(&a, "say after the restart", "gpu", ""))
        .await;
    let (done, _) = a.wait_finished(&after.id).await;
    assert_eq!(done.state(), pb::JobState::Succeeded);
    assert!(["b", "c"].contains(&done.host.as_str()), "{}", done.host);
}

#[tokio::test]
async fn a_job_one_host_may_not_run_goes_to_another_of_its_pool_or_fails_saying_why() {
    let Some(postgres) = Postgres::start() else {
        return;
    };
    postgres.create_database("fleet");
    // x and y take pool default, each only for directories under its own work dir.
    let x_dir = tempfile::tempdir().unwrap();
    let y_dir = tempfile::tempdir().unwrap();
    let allow = |dir: &tempfile::TempDir| dir.path().display().to_string();
    let (x_allowed, y_allowed) = (allow(&x_dir), allow(&y_dir));
    let x = host_with(
        &postgres,
        "x",
        &["default"],
        2,
        &["--allow-cwd", &x_allowed],
    )
    .await;
    let y = host_with(
        &postgres,
        "y",
        &["default"],
        1,
        &["--allow-cwd", &y_allowed],
    )
    .await;
    let in_dir = |dir: &str, prompt: &str| pb::JobSpec {
        cwd: dir.into(),
        ..x.spec(prompt)
    };

    // While y is busy, x takes the job, may not run it there, and hands it back;
    // once y is free, y runs it.
    let busy = pb::JobSpec {
        host: "y".into(),
        ..in_dir(&y_allowed, "sleep 60")
    };
    let busy = x.start_spec(busy).await;
    x.wait_for_state(&busy.id, pb::JobState::Running).await;
    let job = x.start_spec(in_dir(&y_allowed, "say on y")).await;
    support::eventually("x hands the job back", Duration::from_secs(20), || {
        let handed_back = x.log().contains("handed the job back to the queue");
        async move { handed_back.then_some(()) }
    })
    .await;
    assert_eq!(
        x.client()
            .await
            .poll(pb::PollRequest {
                job_id: job.id.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .job
            .unwrap()
            .state(),
        pb::JobState::Queued
    );
    y.client().await.cancel(&busy.id).await.unwrap();
    let (done, output) = x.wait_finished(&job.id).await;
    assert_eq!(done.state(), pb::JobState::Succeeded, "{done:?}");
    assert_eq!(done.host, "y");
    assert!(output.contains("on y"), "{output}");

    // Under neither: each refuses it once, and it fails with both reasons.
    let nowhere = tempfile::tempdir().unwrap();
    let job = x
        .start_spec(in_dir(&nowhere.path().display().to_string(), "say never"))
        .await;
    let (failed, _) = x.wait_finished(&job.id).await;
    assert_eq!(failed.state(), pb::JobState::Failed);
    assert_eq!(failed.failure_reason(), pb::FailureReason::StartFailed);
    let error = &failed.error;
    assert!(
        error.starts_with("no live host of pool default can run this job"),
        "{error}"
    );
    assert!(error.contains("host x cannot run it") && error.contains("host y cannot run it"));
    assert!(
        error.contains("outside the directories this host allows"),
        "{error}"
    );
}

#[tokio::test]
async fn a_worktree_job_on_one_host_is_diffed_and_applied_through_another() {
    let Some(postgres) = Postgres::start() else {
        return;
    };
    postgres.create_database("fleet");
    let a = host(&postgres, "a", &["default"], 2).await;
    let b = host(&postgres, "b", &["gpu"], 2).await;
    let scratch = tempfile::tempdir().unwrap();
    let repo = support::git_repository(&scratch.path().join("repo"), &[("README", "hello\n")]);
    // Started through a, which runs no gpu job: b checks it, resolves its base (HEAD)
    // and makes its worktree.
    let job = a
        .start_spec(pb::JobSpec {
            cwd: repo.display().to_string(),
            isolation: pb::Isolation::Worktree.into(),
            ..spec_for(&a, "run echo by-b >> README\nsay done", "gpu", "")
        })
        .await;
    let (job, _) = a.wait_finished(&job.id).await;
    assert_eq!(job.state(), pb::JobState::Succeeded, "{job:?}\n{}", b.log());
    assert_eq!(job.host, "b");
    let change = job.change.expect("a change");
    assert_eq!(change.files.len(), 1);
    assert_eq!(change.files[0].path, "README");

    let mut through_a = a.client().await;
    let (_, patch) = through_a.whole_diff(&job.id).await.unwrap();
    let patch = String::from_utf8(patch).unwrap();
    assert!(patch.contains(" hello\n+by-b\n"), "{patch}");
    assert_eq!(patch.len() as u64, change.patch_size);
    let applied = through_a.apply(&job.id).await.unwrap();
    assert_eq!(applied.files, vec!["README".to_string()]);
    // b, which has the worktree, did it (both hosts see the checkout here).
    assert!(
        b.log()
            .lines()
            .any(|line| line.contains("action=\"apply\"") && line.contains(&job.id)),
        "{}",
        b.log()
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("README")).unwrap(),
        "hello\nby-b\n"
    );
    // Its worktree is b's to remove, with the job.
    through_a.delete(&job.id).await.unwrap();
    let worktrees = support::git(&repo, &["worktree", "list"]);
    assert_eq!(worktrees.lines().count(), 1, "{worktrees}");
}
