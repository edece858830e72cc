//! Named, scoped tokens from a tokens file, who started each job, and the audit log.

use codex_jobs_test_support as support;

use std::{process::Command, time::Duration};

use support::{Certs, Client, ServerOptions, TestServer, pb};

/// A new token from `codex-jobs-server token new`: its secret and its line.
fn new_token(name: &str, scope: &str) -> (String, String) {
    let output = Command::new(support::bin("codex-jobs-server"))
        .args(["token", "new", name, "--scope", scope])
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    let field = |label: &str| {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(label))
            .unwrap()
            .trim()
            .to_string()
    };
    (field("token:"), field("line:"))
}

/// Replaces the tokens file the way an editor or a config tool would.
fn write_tokens(path: &std::path::Path, lines: &[&str]) {
    let temp = path.with_extension("new");
    std::fs::write(&temp, lines.join("\n") + "\n").unwrap();
    std::fs::rename(temp, path).unwrap();
}

#[tokio::test]
async fn tokens_have_names_and_scopes_and_jobs_record_who_started_them() {
    let (reader, reader_line) = new_token("ci", "read");
    let (writer, writer_line) = new_token("alice", "write");
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    write_tokens(
        &tokens,
        &["# who may use this host", &reader_line, &writer_line],
    );
    assert!(!std::fs::read_to_string(&tokens).unwrap().contains(&writer));
    let mut options = ServerOptions::default().args(["--tokens-file", tokens.to_str().unwrap()]);
    options.credentials.token = Some(writer.clone());
    let server = TestServer::with(options).await;

    let job = server.start_job("say hi").await;
    assert_eq!(job.created_by, "token alice");
    let mut read_only = Client::connect(&server.endpoint(), Some(&reader))
        .await
        .unwrap();
    let polled = read_only
        .poll(pb::PollRequest {
            job_id: job.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(polled.job.unwrap().created_by, "token alice");
    assert!(read_only.list(pb::ListRequest::default()).await.is_ok());
    let denied = read_only
        .start(pb::StartRequest {
            spec: Some(server.spec("say no")),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        denied
            .to_string()
            .contains("this call needs a token with scope write; token ci has scope read"),
        "{denied}"
    );
    assert_eq!(support::code(denied), tonic::Code::PermissionDenied);
    assert_eq!(
        support::code(read_only.cancel(&job.id).await.unwrap_err()),
        tonic::Code::PermissionDenied
    );

    // The CLI shows who started a job.
    let output = Command::new(support::bin("codex-jobs"))
        .args(["--endpoint", &server.endpoint(), "--json", "poll", &job.id])
        .env("CODEX_JOBS_TOKEN", &reader)
        .output()
        .unwrap();
    let shown: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(shown["created_by"], "token alice");

    // Every Start and Cancel leaves one audit line: who, from where, which job, how.
    server.client().await.cancel(&job.id).await.unwrap();
    let log = server.log();
    let audit: Vec<&str> = log
        .lines()
        .filter(|line| line.contains(" audit:"))
        .collect();
    let start = audit
        .iter()
        .find(|line| line.contains("action=\"start\"") && line.contains(&job.id))
        .unwrap_or_else(|| panic!("no audit line for the start in\n{log}"));
    assert!(start.contains("who=token alice"), "{start}");
    assert!(start.contains("peer=127.0.0.1:"), "{start}");
    assert!(start.contains("outcome=\"created\""), "{start}");
    let refused = audit
        .iter()
        .find(|line| line.contains("action=\"start\"") && line.contains("who=token ci"));
    assert!(
        refused.is_none(),
        "a call refused for its scope is not a start"
    );
    assert!(
        audit
            .iter()
            .any(|line| line.contains("action=\"cancel\"") && line.contains(&job.id)),
        "{log}"
    );
}

#[tokio::test]
async fn the_tokens_file_is_read_again_when_it_changes() {
    let (first, first_line) = new_token("first", "write");
    let (second, second_line) = new_token("second", "write");
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    write_tokens(&tokens, &[&first_line]);
    let mut options = ServerOptions::default().args(["--tokens-file", tokens.to_str().unwrap()]);
    options.credentials.token = Some(first.clone());
    let server = TestServer::with(options).await;
    let mut client = Client::connect(&server.endpoint(), Some(&second))
        .await
        .unwrap();
    let refused = client.list(pb::ListRequest::default()).await.unwrap_err();
    assert_eq!(support::code(refused), tonic::Code::Unauthenticated);

    // A new token, and the old one revoked, without a restart.
    write_tokens(&tokens, &[&second_line]);
    support::eventually("the new token is accepted", Duration::from_secs(10), || {
        let mut client = client.clone();
        async move { client.list(pb::ListRequest::default()).await.ok() }
    })
    .await;
    let mut revoked = Client::connect(&server.endpoint(), Some(&first))
        .await
        .unwrap();
    let refused = revoked.list(pb::ListRequest::default()).await.unwrap_err();
    assert_eq!(support::code(refused), tonic::Code::Unauthenticated);

    // A broken file keeps the tokens that were in force, and says why.
    write_tokens(&tokens, &["second write sha256:nothex"]);
    support::eventually(
        "the server reports the bad line",
        Duration::from_secs(10),
        || {
            let log = server.log();
            async move { log.contains("kept the previous tokens").then_some(()) }
        },
    )
    .await;
    assert!(client.list(pb::ListRequest::default()).await.is_ok());
}

#[tokio::test]
async fn a_client_certificate_or_the_local_user_is_who_started_a_job() {
    let certs = Certs::new();
    let server =
        TestServer::with(ServerOptions::default().tls(&certs, "server").mtls(&certs)).await;
    let job = server.start_job("say hi").await;
    assert_eq!(job.created_by, "certificate alice");

    // On the Unix socket, with no token needed, the kernel names the user.
    let mut local = Client::connect(&format!("unix:{}", server.socket().display()), None)
        .await
        .unwrap();
    let started = local
        .start(pb::StartRequest {
            spec: Some(server.spec("say local")),
            ..Default::default()
        })
        .await
        .unwrap();
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    assert_eq!(started.job.unwrap().created_by, format!("uid {uid}"));
}
