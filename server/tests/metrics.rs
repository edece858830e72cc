//! Prometheus metrics (`--metrics ADDR`), scraped over HTTP as Prometheus would and
//! read by the Prometheus project's own parser (`prometheus_client` for Python).

use codex_jobs_test_support as support;

use std::io::{Read, Write};

use serde_json::Value;
use support::{ServerOptions, TestServer, pb};

/// `GET path` on the metrics address: (status line, body).
fn get(port: u16, path: &str) -> (String, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}

/// The samples of a scrape, as the parser read them.
fn scrape(port: u16) -> Option<Vec<Value>> {
    let python = support::python()?;
    let (status, body) = get(port, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    let mut parser = std::process::Command::new(python)
        .arg(support::fixture("parse_metrics.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    parser
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let parsed = parser.wait_with_output().unwrap();
    assert!(
        parsed.status.success(),
        "the parser refused the text: {}\n{body}",
        String::from_utf8_lossy(&parsed.stderr)
    );
    Some(serde_json::from_slice::<Vec<Value>>(&parsed.stdout).unwrap())
}

/// The value of the sample `name` with exactly these `labels`.
fn value(samples: &[Value], name: &str, labels: &[(&str, &str)]) -> f64 {
    let wanted: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(key, value)| (key.to_string(), Value::from(*value)))
        .collect();
    samples
        .iter()
        .find(|sample| sample["name"] == name && sample["labels"] == Value::Object(wanted.clone()))
        .unwrap_or_else(|| panic!("no {name} {labels:?} in {samples:#?}"))["value"]
        .as_f64()
        .unwrap()
}

#[tokio::test]
async fn metrics_count_jobs_queue_durations_output_and_rpcs() {
    let port = support::free_port();
    let server = TestServer::with(ServerOptions::default().args([
        "--max-running",
        "1",
        "--metrics",
        &format!("127.0.0.1:{port}"),
    ]))
    .await;
    let ok = server.start_job("lines 50 some output").await;
    let (ok, _) = server.wait_finished(&ok.id).await;
    let bad = server.start_job("fail broken").await;
    let (bad, _) = server.wait_finished(&bad.id).await;
    let running = server.start_job("sleep 30").await;
    server
        .wait_for_state(&running.id, pb::JobState::Running)
        .await;
    let queued = server.start_job("say later").await;
    let mut client = server.client().await;
    let unknown = uuid::Uuid::now_v7().to_string();
    client
        .poll(pb::PollRequest {
            job_id: unknown,
            ..Default::default()
        })
        .await
        .unwrap_err();

    let Some(samples) = scrape(port) else {
        return;
    };
    for (state, jobs) in [
        ("queued", 1.0),
        ("running", 1.0),
        ("succeeded", 1.0),
        ("failed", 1.0),
        ("cancelled", 0.0),
    ] {
        assert_eq!(
            value(&samples, "codex_jobs_jobs", &[("state", state)]),
            jobs,
            "{state}"
        );
    }
    assert_eq!(value(&samples, "codex_jobs_queue_depth", &[]), 1.0);
    assert_eq!(value(&samples, "codex_jobs_running", &[]), 1.0);
    for state in ["succeeded", "failed"] {
        assert_eq!(
            value(
                &samples,
                "codex_jobs_job_duration_seconds_count",
                &[("state", state)]
            ),
            1.0
        );
    }
    assert_eq!(
        value(&samples, "codex_jobs_output_bytes_total", &[]),
        (ok.output_size + bad.output_size) as f64
    );
    assert_eq!(
        value(
            &samples,
            "codex_jobs_rpc_requests_total",
            &[("method", "Start"), ("code", "OK")]
        ),
        4.0
    );
    assert_eq!(
        value(
            &samples,
            "codex_jobs_rpc_requests_total",
            &[("method", "Poll"), ("code", "NOT_FOUND")]
        ),
        1.0
    );
    assert!(
        value(
            &samples,
            "codex_jobs_rpc_duration_seconds_count",
            &[("method", "Start")]
        ) >= 4.0
    );

    // The queue moves on: cancelled, the running job frees its slot for the queued one.
    client.cancel(&running.id).await.unwrap();
    server.wait_finished(&queued.id).await;
    let samples = scrape(port).unwrap();
    assert_eq!(value(&samples, "codex_jobs_queue_depth", &[]), 0.0);
    assert_eq!(
        value(&samples, "codex_jobs_jobs", &[("state", "cancelled")]),
        1.0
    );
    assert_eq!(
        value(&samples, "codex_jobs_jobs", &[("state", "succeeded")]),
        2.0
    );

    let (status, _) = get(port, "/");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
}
