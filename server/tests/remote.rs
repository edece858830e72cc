//! A job host on the network: TLS and mutual TLS, certificate rotation, what the
//! server refuses to expose, and the health and reflection services, checked with
//! gRPC's own Python clients.

use codex_jobs_test_support as support;

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use support::{Certs, Client, Credentials, ServerOptions, TestServer, pb};

fn trusting(certs: &Certs, ca: &str) -> Credentials {
    Credentials {
        ca_cert: Some(certs.path(&format!("{ca}.pem"))),
        ..Credentials::default()
    }
}

/// Why a connection or its first call failed.
async fn refusal(endpoint: &str, credentials: &Credentials) -> String {
    let err = match Client::connect_with(endpoint, credentials).await {
        Err(err) => err,
        Ok(mut client) => client
            .list(pb::ListRequest::default())
            .await
            .expect_err("the call is refused"),
    };
    format!("{err}")
}

#[tokio::test]
async fn a_tls_host_serves_clients_that_trust_its_ca_and_no_others() {
    let certs = Certs::new();
    let server = TestServer::with(ServerOptions::default().tls(&certs, "server")).await;
    assert!(server.endpoint().starts_with("https://"));
    // The whole life of a job over TLS.
    let job = server.start_job("say over tls").await;
    let mut follow = server.follow(&job.id).await;
    let mut output = Vec::new();
    while let Some(message) = follow.message().await.unwrap() {
        if let Some(pb::follow_response::Event::Output(chunk)) = message.event {
            output.extend(chunk.data);
        }
    }
    assert!(String::from_utf8_lossy(&output).contains("over tls"));

    // The system's roots do not know a private CA; nor does another CA.
    let untrusted = refusal(&server.endpoint(), &Credentials::default()).await;
    assert!(untrusted.contains("UnknownIssuer"), "{untrusted}");
    let other = refusal(&server.endpoint(), &trusting(&certs, "other-ca")).await;
    assert!(other.contains("UnknownIssuer"), "{other}");
    // A plain-text client gets an error, not a hang.
    let plain = server.endpoint().replace("https://", "http://");
    let refused = tokio::time::timeout(
        Duration::from_secs(10),
        refusal(&plain, &Credentials::default()),
    )
    .await
    .expect("a plain-text client is answered at once");
    assert!(!refused.is_empty());
}

#[tokio::test]
async fn an_expired_certificate_is_refused_by_clients() {
    let certs = Certs::new();
    // The server starts with it (it cannot know its clients' clocks) ...
    let server = TestServer::with(ServerOptions::default().tls(&certs, "expired")).await;
    // ... but no client accepts it.
    let expired = refusal(&server.endpoint(), &trusting(&certs, "ca")).await;
    assert!(expired.contains("Expired"), "{expired}");
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate_from_the_ca() {
    let certs = Certs::new();
    let server =
        TestServer::with(ServerOptions::default().tls(&certs, "server").mtls(&certs)).await;
    // The test support presents the client certificate.
    let job = server.start_job("say hello, alice").await;
    let (done, _) = server.wait_finished(&job.id).await;
    assert_eq!(done.state(), pb::JobState::Succeeded);

    // Under TLS 1.3 the client learns only that the connection was closed; the
    // server's log says why.
    let without = refusal(&server.endpoint(), &trusting(&certs, "ca")).await;
    assert!(without.contains("transport error"), "{without}");
    let log = server.log();
    assert!(
        log.contains("TLS handshake failed") && log.contains("certificate"),
        "{log}"
    );
    // A certificate from a CA the server does not trust.
    let mut stranger = trusting(&certs, "ca");
    stranger.client_cert = Some(certs.path("other-client.pem"));
    stranger.client_key = Some(certs.path("other-client.key"));
    let refused = refusal(&server.endpoint(), &stranger).await;
    assert!(refused.contains("transport error"), "{refused}");
    assert!(server.log().contains("UnknownIssuer"), "{}", server.log());
    assert!(
        !server.log().contains("panicked"),
        "the server survives bad handshakes"
    );
}

#[tokio::test]
async fn a_rotated_certificate_is_served_to_new_connections_while_open_streams_go_on() {
    let certs = Certs::new();
    // The server reads its certificate from files it does not own, as on a host
    // whose certificates are rotated by another tool.
    let live = tempfile::tempdir().unwrap();
    let (cert, key) = (live.path().join("tls.pem"), live.path().join("tls.key"));
    std::fs::copy(certs.path("server.pem"), &cert).unwrap();
    std::fs::copy(certs.path("server.key"), &key).unwrap();
    let mut options = ServerOptions::default().args([
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    options.tls = true;
    options.credentials = trusting(&certs, "ca");
    let server = TestServer::with(options).await;

    let job = server.start_job("say before\nsleep 2\nsay after").await;
    let mut follow = server.follow(&job.id).await;
    // Rotate to a certificate from another CA, the way tools do: write, rename.
    for (from, to) in [("other-server.key", &key), ("other-server.pem", &cert)] {
        let temp = live.path().join("incoming");
        std::fs::copy(certs.path(from), &temp).unwrap();
        std::fs::rename(&temp, to).unwrap();
    }
    let endpoint = server.endpoint();
    support::eventually(
        "new connections get the new certificate",
        Duration::from_secs(20),
        || {
            let endpoint = endpoint.clone();
            let credentials = trusting(&certs, "other-ca");
            async move {
                let mut client = Client::connect_with(&endpoint, &credentials).await.ok()?;
                client.list(pb::ListRequest::default()).await.ok()
            }
        },
    )
    .await;
    let old = refusal(&server.endpoint(), &trusting(&certs, "ca")).await;
    assert!(old.contains("UnknownIssuer"), "{old}");

    // The Follow opened before the rotation carries on to the job's end.
    let mut output = Vec::new();
    let mut last = None;
    while let Some(message) = follow.message().await.expect("the open stream goes on") {
        match message.event {
            Some(pb::follow_response::Event::Output(chunk)) => output.extend(chunk.data),
            Some(pb::follow_response::Event::Job(job)) => last = Some(job),
            None => {}
        }
    }
    assert!(String::from_utf8_lossy(&output).contains("after"));
    assert_eq!(last.unwrap().state(), pb::JobState::Succeeded);
}

#[tokio::test]
async fn the_cli_and_the_bridge_reach_a_tls_host_with_a_private_ca() {
    let certs = Certs::new();
    let server = TestServer::with(
        ServerOptions::default()
            .tls(&certs, "server")
            .args(["--token", "s3cret"]),
    )
    .await;
    let output = Command::new(support::bin("codex-jobs"))
        .args(["--json", "start", "--cwd"])
        .arg(server.work_dir())
        .arg("say hello over https")
        .env("CODEX_JOBS_ENDPOINT", server.endpoint())
        .env("CODEX_JOBS_TOKEN", "s3cret")
        .env("CODEX_JOBS_CA_CERT", certs.path("ca.pem"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let started: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let wait = Command::new(support::bin("codex-jobs"))
        .args(["--endpoint", &server.endpoint(), "--token", "s3cret"])
        .arg("--ca-cert")
        .arg(certs.path("ca.pem"))
        .args(["wait", started["job_id"].as_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        wait.status.success(),
        "{}",
        String::from_utf8_lossy(&wait.stderr)
    );

    // The bridge, as an MCP client would start it, answers over TLS.
    let args = [
        "--endpoint",
        &server.endpoint(),
        "--token",
        "s3cret",
        "--ca-cert",
    ]
    .map(String::from);
    let mut args = args.to_vec();
    args.push(certs.path("ca.pem").display().to_string());
    let listed = support::McpStdio::start(&args).call("codex_list", serde_json::json!({}));
    assert_eq!(listed["isError"], false, "{listed}");
    assert_eq!(
        listed["structuredContent"]["jobs"][0]["job_id"],
        started["job_id"]
    );
}

#[test]
fn a_network_address_needs_tls_and_a_token_or_client_certificates() {
    let certs = Certs::new();
    let state = tempfile::tempdir().unwrap();
    let start = |args: &[&str]| {
        let output = Command::new(support::bin("codex-jobs-server"))
            .arg("--state-dir")
            .arg(state.path())
            .args(["--listen", "0.0.0.0:0"])
            .args(args)
            .env_remove("CODEX_JOBS_TOKEN")
            .output()
            .unwrap();
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let plain_token = start(&["--token", "s3cret"]);
    assert!(
        plain_token.contains("without TLS")
            && plain_token.contains("--tls-cert FILE --tls-key FILE"),
        "{plain_token}"
    );
    let cert = certs.path("server.pem");
    let key = certs.path("server.key");
    let tls_alone = start(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    assert!(
        tls_alone.contains("without a token or client certificates"),
        "{tls_alone}"
    );
    let help = Command::new(support::bin("codex-jobs-server"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("--insecure-no-auth") && help.contains("DANGER"),
        "{help}"
    );
}

/// Runs the operator-tools fixture; `None` where Python's gRPC cannot be had.
fn operator(server: &TestServer, args: &[&str], token: Option<&str>) -> Option<String> {
    let python = support::python()?;
    let mut command = Command::new(python);
    command
        .arg(support::fixture("grpc_operator.py"))
        .arg(args[0])
        .arg(format!("127.0.0.1:{}", server.port))
        .args(&args[1..])
        .env_remove("CODEX_JOBS_TOKEN");
    if let Some(token) = token {
        command.env("CODEX_JOBS_TOKEN", token);
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(String::from_utf8(output.stdout).unwrap())
}

#[tokio::test]
async fn health_answers_without_a_token_and_reflection_only_with_one() {
    let server = TestServer::with(ServerOptions::default().token("s3cret")).await;
    for service in ["", "codex.jobs.v1.CodexJobs"] {
        let Some(status) = operator(&server, &["check", service], None) else {
            return;
        };
        assert_eq!(status.trim(), "SERVING", "health of {service:?}");
    }
    let unknown = operator(&server, &["check", "no.such.Service"], None).unwrap();
    assert!(unknown.starts_with("error NOT_FOUND"), "{unknown}");

    let anonymous = operator(&server, &["reflect"], None).unwrap();
    assert!(anonymous.contains("UNAUTHENTICATED"), "{anonymous}");
    // With the token, a tool that has no proto file lists the service and calls it.
    server.start_job("say listed").await;
    let reflected = operator(&server, &["reflect"], Some("s3cret")).unwrap();
    let mut lines = reflected.lines();
    let services: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    let services = services["services"].to_string();
    assert!(services.contains("codex.jobs.v1.CodexJobs"), "{services}");
    assert!(services.contains("grpc.health.v1.Health"), "{services}");
    let called: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(
        called["methods"],
        serde_json::json!([
            "Start",
            "Poll",
            "Cancel",
            "List",
            "Follow",
            "Watch",
            "Delete",
            "Prune",
            "ListHosts",
            "Diff",
            "Apply"
        ])
    );
    assert_eq!(
        called["list"]["jobs"].as_array().unwrap().len(),
        1,
        "{called}"
    );
}

#[tokio::test]
async fn health_turns_not_serving_when_the_server_shuts_down() {
    let mut server = TestServer::start().await;
    let Some(python) = support::python() else {
        return;
    };
    let mut watch = Command::new(python)
        .arg(support::fixture("grpc_operator.py"))
        .args(["watch", &format!("127.0.0.1:{}", server.port), ""])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::{BufRead, BufReader};
    let mut statuses = BufReader::new(watch.stdout.take().unwrap()).lines();
    assert_eq!(statuses.next().unwrap().unwrap(), "SERVING");
    server.terminate();
    assert_eq!(statuses.next().unwrap().unwrap(), "NOT_SERVING");
    let _ = watch.kill();
    let _ = watch.wait();
}

/// A TLS host with a token in the server namespace of `net`, serving from `dir`.
struct NamespacedHost {
    process: std::process::Child,
    /// `https://ADDRESS:PORT`.
    endpoint: String,
    /// `unix:PATH`, reachable from any namespace.
    socket: String,
}

impl Drop for NamespacedHost {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

async fn host_in(net: &support::NetPair, certs: &Certs, dir: &std::path::Path) -> NamespacedHost {
    certs.server_for_ip("host", &net.server_ip);
    let ready = dir.join("ready");
    let socket = format!("unix:{}", dir.join("server.sock").display());
    std::fs::create_dir_all(dir.join("work")).unwrap();
    let process = net
        .command_in(&net.server_ns, &support::bin("codex-jobs-server"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .args(["--listen", &format!("{}:0", net.server_ip)])
        .arg("--listen")
        .arg(&socket)
        .arg("--ready-file")
        .arg(&ready)
        .arg("--codex-bin")
        .arg(support::fake_codex())
        .arg("--tls-cert")
        .arg(certs.path("host.pem"))
        .arg("--tls-key")
        .arg(certs.path("host.key"))
        .args(["--token", "s3cret", "--kill-grace", "1"])
        .env(support::TEST_MARK, dir)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addresses = support::eventually("the server listens", Duration::from_secs(20), || {
        let ready = ready.clone();
        async move { std::fs::read_to_string(ready).ok() }
    })
    .await;
    let address = addresses.lines().next().unwrap().to_string();
    NamespacedHost {
        process,
        endpoint: format!("https://{address}"),
        socket,
    }
}

/// The CLI in the client namespace of `net`, talking to `host`.
fn cli_in(
    net: &support::NetPair,
    host: &NamespacedHost,
    certs: &Certs,
    dir: &std::path::Path,
    args: &[&str],
) -> Command {
    let mut command = net.command_in(&net.client_ns, &support::bin("codex-jobs"));
    command
        .args(["--endpoint", &host.endpoint, "--token", "s3cret"])
        .arg("--ca-cert")
        .arg(certs.path("ca.pem"))
        .args(args)
        .env(support::TEST_MARK, dir);
    command
}

fn succeeded(mut command: Command) -> String {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn a_client_in_another_network_namespace_reaches_the_host_over_tls() {
    let Some(net) = support::NetPair::new() else {
        return;
    };
    let certs = Certs::new();
    let dir = tempfile::tempdir().unwrap();
    let host = host_in(&net, &certs, dir.path()).await;
    let sent_before = net.server_sent_bytes();
    let work = dir.path().join("work").display().to_string();
    let cli = |args: &[&str]| succeeded(cli_in(&net, &host, &certs, dir.path(), args));
    let started: serde_json::Value = serde_json::from_str(&cli(&[
        "--json",
        "start",
        "--cwd",
        &work,
        "say across the wire",
    ]))
    .unwrap();
    let job_id = started["job_id"].as_str().unwrap();
    cli(&["wait", job_id]);
    let followed = cli(&["follow", job_id]);
    assert!(followed.contains("across the wire"), "{followed}");
    assert!(
        net.server_sent_bytes() > sent_before + 1000,
        "the answers crossed the veth link"
    );
}

#[tokio::test]
async fn a_follower_behind_a_dead_network_path_is_dropped_within_a_minute() {
    let Some(net) = support::NetPair::new() else {
        return;
    };
    let certs = Certs::new();
    let dir = tempfile::tempdir().unwrap();
    let host = host_in(&net, &certs, dir.path()).await;
    let work = dir.path().join("work").display().to_string();
    let started: serde_json::Value = serde_json::from_str(&succeeded(cli_in(
        &net,
        &host,
        &certs,
        dir.path(),
        &["--json", "start", "--cwd", &work, "say waiting\nsleep 300"],
    )))
    .unwrap();
    let job_id = started["job_id"].as_str().unwrap().to_string();
    let mut follower = cli_in(&net, &host, &certs, dir.path(), &["follow", &job_id])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The server's connections from the client, as the kernel lists them.
    let connections = || {
        let output = Command::new("ip")
            .args([
                "netns",
                "exec",
                &net.server_ns,
                "ss",
                "-Htn",
                "state",
                "established",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|line| line.contains(&net.client_ip))
            .count()
    };
    support::eventually("the follower is connected", Duration::from_secs(20), || {
        let open = connections();
        async move { (open > 0).then_some(()) }
    })
    .await;

    // The path dies without a word: no FIN, no RST ever arrives.
    net.cut();
    let cut_at = std::time::Instant::now();
    support::eventually(
        "the server drops the dead connection",
        Duration::from_secs(90),
        || {
            let open = connections();
            async move { (open == 0).then_some(()) }
        },
    )
    .await;
    let noticed = cut_at.elapsed();
    assert!(noticed <= Duration::from_secs(60), "took {noticed:?}");
    let _ = follower.kill();
    let _ = follower.wait();
    // The job is still running: end it, over the socket, which needs no network.
    let mut local = Client::connect(&host.socket, Some("s3cret")).await.unwrap();
    local.cancel(&job_id).await.unwrap();
}

#[tokio::test]
async fn reflection_v1_lists_the_services_to_a_caller_with_the_token() {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let server = TestServer::with(ServerOptions::default().token("s3cret")).await;
    let channel = tonic::transport::Endpoint::from_shared(server.endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let list = |token: Option<&'static str>| {
        let channel = channel.clone();
        async move {
            let mut client = ServerReflectionClient::with_interceptor(
                channel,
                move |mut request: tonic::Request<()>| {
                    if let Some(token) = token {
                        let value = format!("Bearer {token}").parse().unwrap();
                        request.metadata_mut().insert("authorization", value);
                    }
                    Ok(request)
                },
            );
            let asked = ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            };
            let mut answers = client
                .server_reflection_info(tokio_stream::iter([asked]))
                .await?
                .into_inner();
            let answer = answers.message().await?.expect("an answer");
            match answer.message_response {
                Some(MessageResponse::ListServicesResponse(list)) => Ok(list
                    .service
                    .into_iter()
                    .map(|service| service.name)
                    .collect::<Vec<_>>()),
                other => panic!("not a list of services: {other:?}"),
            }
        }
    };
    let refused: Result<Vec<String>, tonic::Status> = list(None).await;
    assert_eq!(refused.unwrap_err().code(), tonic::Code::Unauthenticated);
    let services = list(Some("s3cret")).await.unwrap();
    assert!(
        services.contains(&"codex.jobs.v1.CodexJobs".to_string()),
        "{services:?}"
    );
    assert!(
        services.contains(&"grpc.health.v1.Health".to_string()),
        "{services:?}"
    );
}

/// The npm packages a browser page would speak gRPC-Web with, in `target/grpc-web`,
/// with the scenario script beside them.
fn grpc_web_client() -> Option<std::path::PathBuf> {
    let dir = "grpc-web";
    support::npm_packages(
        dir,
        "node_modules/@connectrpc/connect-web/package.json",
        &[
            "@connectrpc/connect@2.1.2",
            "@connectrpc/connect-web@2.1.2",
            "@bufbuild/protobuf@2.13.0",
        ],
    )?;
    let script = support::target_dir().join(dir).join("grpc_web_client.mjs");
    std::fs::copy(support::fixture("grpc_web_client.mjs"), &script).unwrap();
    Some(script)
}

#[tokio::test]
async fn browsers_reach_the_service_over_grpc_web_with_the_same_token() {
    let Some(script) = grpc_web_client() else {
        return;
    };
    let port = support::free_port();
    let server = TestServer::with(
        ServerOptions::default()
            .token("web-s3cret")
            .args(["--web", &format!("127.0.0.1:{port}")]),
    )
    .await;
    let descriptors = server.dir.path().join("jobs.binpb");
    std::fs::write(&descriptors, codex_jobs_api::FILE_DESCRIPTOR_SET).unwrap();
    let run = |token: Option<&str>| -> Vec<serde_json::Value> {
        let mut command = std::process::Command::new("node");
        command
            .arg(&script)
            .arg(format!("http://127.0.0.1:{port}"))
            .arg(&descriptors)
            .arg(server.work_dir());
        command.args(token);
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    };

    let steps = run(Some("web-s3cret"));
    assert_eq!(steps[0]["step"], "follow", "{steps:?}");
    assert_eq!(
        steps[0]["output"]
            .as_str()
            .unwrap()
            .matches("from a browser\n")
            .count(),
        1
    );
    assert_eq!(steps[0]["finalMessage"], "and done");
    // The stream ends with the job's final state (SUCCEEDED is 3).
    assert_eq!(steps[0]["states"].as_array().unwrap().last().unwrap(), 3);
    // Errors come through as gRPC statuses (NOT_FOUND is 5), in the server's words.
    assert_eq!(steps[1]["code"], 5, "{steps:?}");
    assert!(
        steps[1]["message"]
            .as_str()
            .unwrap()
            .contains("no job with id")
    );
    // The token is required as on every listener (UNAUTHENTICATED is 16).
    let refused = run(None);
    assert_eq!(refused[0]["code"], 16, "{refused:?}");
}
