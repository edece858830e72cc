//! Several job hosts on one PostgreSQL database, as three servers on this machine
//! with host ids and state dirs of their own: jobs started through one host run on
//! the hosts of their pool, and any host reads, follows and cancels them.

use codex_jobs_test_support as support;

use std::time::Duration;

use support::{ServerOptions, TestServer, code, pb, postgres::Postgres};
use tokio_stream::StreamExt;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A host of the fleet: a server on the shared database, reachable by the others.
async fn host(postgres: &Postgres, id: &str, pools: &[&str], max_running: u32) -> TestServer {
    let port = free_port();
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
    ]);
    for pool in pools {
        options = options.args(["--pool", pool]);
    }
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
    a.wait_for_state(&job.id, pb::JobState::Running).await;
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
