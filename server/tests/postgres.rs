//! PostgreSQL as the job store, where it can do what SQLite cannot: go away while
//! the server runs. (Everything else runs against PostgreSQL in the whole suite,
//! with `CODEX_JOBS_TEST_POSTGRES=1`.)

use codex_jobs_test_support as support;

use std::time::Duration;

use support::{ServerOptions, TestServer, pb, postgres::Postgres};

/// A server on a database of its own cluster, which the test may stop and start.
async fn server_on_postgres() -> Option<(TestServer, Postgres)> {
    let postgres = Postgres::start()?;
    postgres.create_database("jobs");
    let server =
        TestServer::with(ServerOptions::default().args(["--database-url", &postgres.url("jobs")]))
            .await;
    Some((server, postgres))
}

#[tokio::test]
async fn a_job_runs_on_and_is_followed_through_a_restart_of_postgresql() {
    let Some((server, mut postgres)) = server_on_postgres().await else {
        return;
    };
    let job = server
        .start_job("say before the outage\nsleep 2\nsay after the outage")
        .await;
    server.wait_for_state(&job.id, pb::JobState::Running).await;
    let mut client = server.client().await;
    let mut stream = client
        .follow(pb::FollowRequest {
            job_id: job.id.clone(),
            start: None,
            stream: pb::OutputStream::Transcript.into(),
        })
        .await
        .unwrap();
    // The follower reads the job's output while the database is away and after.
    let follower = tokio::spawn(async move {
        let (mut output, mut states) = (Vec::new(), Vec::new());
        while let Some(message) = stream.message().await.unwrap() {
            match message.event.unwrap() {
                pb::follow_response::Event::Output(chunk) => output.extend(chunk.data),
                pb::follow_response::Event::Job(job) => states.push(job.state()),
            }
        }
        (String::from_utf8(output).unwrap(), states)
    });

    postgres.stop();
    // What needs the database says it is away, and which one.
    let database = postgres.url("jobs");
    let refused = client
        .list(pb::ListRequest::default())
        .await
        .expect_err("no database, no list");
    let message = support::message(&refused);
    assert_eq!(support::code(refused), tonic::Code::Unavailable);
    assert!(
        message.contains(&format!("the job database {database} is unavailable")),
        "{message}"
    );
    let refused = client
        .start(pb::StartRequest {
            spec: Some(server.spec("say never stored")),
            ..Default::default()
        })
        .await
        .expect_err("no database, no start");
    assert_eq!(support::code(refused), tonic::Code::Unavailable);
    // The running job is the runner's, not the database's: it ends meanwhile.
    let transcript = server
        .state_dir()
        .join("jobs")
        .join(&job.id)
        .join("transcript.log");
    support::eventually(
        "the job ends while the database is down",
        Duration::from_secs(20),
        || {
            let transcript = transcript.clone();
            async move {
                std::fs::read_to_string(transcript)
                    .ok()?
                    .contains("turn completed")
                    .then_some(())
            }
        },
    )
    .await;

    // Back: the server reconnects by itself and stores how the job ended.
    postgres.start_again();
    let (finished, _) = server.wait_finished(&job.id).await;
    assert_eq!(finished.state(), pb::JobState::Succeeded, "{finished:?}");
    assert_eq!(finished.final_message, "after the outage");
    let (output, states) = tokio::time::timeout(Duration::from_secs(30), follower)
        .await
        .expect("the follow ends with the job")
        .unwrap();
    assert_eq!(output.matches("before the outage\n").count(), 1, "{output}");
    assert_eq!(output.matches("after the outage\n").count(), 1, "{output}");
    assert_eq!(states.last(), Some(&pb::JobState::Succeeded));
    // And new work is taken again, the one refused during the outage not among it.
    let listed = client.list(pb::ListRequest::default()).await.unwrap().jobs;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let again = server.start_job("say back again").await;
    let (again, _) = server.wait_finished(&again.id).await;
    assert_eq!(again.final_message, "back again");
}

#[tokio::test]
async fn a_server_killed_mid_job_takes_its_jobs_back_from_the_database() {
    let Some((mut server, _postgres)) = server_on_postgres().await else {
        return;
    };
    let running = server.start_job("say started\nsleep 2\nsay done").await;
    server
        .wait_for_state(&running.id, pb::JobState::Running)
        .await;
    let finished = server.start_job("say quick").await;
    server.wait_finished(&finished.id).await;

    server.kill9();
    server.launch().await;
    let (job, transcript) = server.wait_finished(&running.id).await;
    assert_eq!(job.state(), pb::JobState::Succeeded, "{job:?}");
    assert_eq!(job.final_message, "done");
    assert!(transcript.contains("started\n") && transcript.contains("done\n"));
    let listed = server
        .client()
        .await
        .list(pb::ListRequest::default())
        .await
        .unwrap()
        .jobs;
    let ids: Vec<&str> = listed.iter().map(|job| job.id.as_str()).collect();
    assert_eq!(
        ids,
        [finished.id.as_str(), running.id.as_str()],
        "newest first"
    );
}

#[tokio::test]
async fn a_database_a_newer_server_migrated_is_refused_at_start() {
    let Some(postgres) = Postgres::start() else {
        return;
    };
    postgres.create_database("newer");
    // A server makes the schema; then a newer one is said to have moved it on.
    let server =
        TestServer::with(ServerOptions::default().args(["--database-url", &postgres.url("newer")]))
            .await;
    drop(server);
    let moved_on = std::process::Command::new("psql")
        .args([
            &postgres.url("newer"),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
        ])
        .arg("INSERT INTO schema_migrations VALUES (1000, 0)")
        .output()
        .unwrap();
    assert!(moved_on.status.success(), "{moved_on:?}");
    let output = std::process::Command::new(support::bin("codex-jobs-server"))
        .args(["--database-url", &postgres.url("newer")])
        .arg("--state-dir")
        .arg(tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("has schema version 1000, but this codex-jobs-server knows versions up to"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_database_is_reached_over_tls_when_the_url_asks_for_it() {
    let Some(mut postgres) = Postgres::start() else {
        return;
    };
    postgres.create_database("tls");
    let certs = support::Certs::new();
    let start = |url: String, ca: Option<std::path::PathBuf>| {
        let mut command = std::process::Command::new(support::bin("codex-jobs-server"));
        command.args(["--database-url", &url]);
        if let Some(ca) = ca {
            command.arg("--database-ca-cert").arg(ca);
        }
        command
            .arg("--state-dir")
            .arg(tempfile::tempdir().unwrap().path())
            .output()
            .unwrap()
    };
    // A database without TLS is refused when the URL requires it.
    let url = format!("{}?sslmode=require", postgres.url("tls"));
    let refused = start(url.clone(), Some(certs.path("ca.pem")));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("is unavailable") && stderr.contains("TLS"),
        "{stderr}"
    );

    postgres.serve_tls(&certs.path("server.pem"), &certs.path("server.key"));
    // A certificate from a CA nobody trusts is refused...
    let untrusted = start(url.clone(), None);
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert!(!untrusted.status.success());
    assert!(stderr.contains("certificate"), "{stderr}");
    // ...and one from the CA given is taken: the server works over TLS.
    let server = TestServer::with(ServerOptions::default().args([
        "--database-url",
        &url,
        "--database-ca-cert",
        certs.path("ca.pem").to_str().unwrap(),
    ]))
    .await;
    let job = server.start_job("say over tls").await;
    let (job, _) = server.wait_finished(&job.id).await;
    assert_eq!(job.final_message, "over tls");
    let sessions = postgres.psql(
        "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
         WHERE ssl AND application_name = 'codex-jobs-server'",
    );
    let encrypted: u32 = String::from_utf8_lossy(&sessions.stdout)
        .trim()
        .parse()
        .unwrap();
    assert!(encrypted >= 1, "the server's sessions use TLS");
}
