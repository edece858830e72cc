//! The proto serves programs in any language: a Python program generates its client
//! from `proto/` with grpcio-tools and drives the real server with it.

use codex_jobs_test_support as support;

use std::{path::Path, process::Command};

use support::TestServer;

#[tokio::test]
async fn a_python_client_generated_from_the_proto_starts_follows_polls_and_lists() {
    let Some(python) = support::python() else {
        return;
    };
    let server = TestServer::start().await;
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let output = Command::new(python)
        .arg(support::fixture("grpc_client.py"))
        .arg(workspace.join("proto"))
        .arg(format!("127.0.0.1:{}", server.port))
        .arg(server.work_dir())
        .arg("say hello from python\nsleep 0.5\nsay goodbye")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(matches!(
        result["created_state"].as_str(),
        Some("JOB_STATE_QUEUED" | "JOB_STATE_RUNNING")
    ));
    assert!(
        result["followed"]
            .as_str()
            .unwrap()
            .starts_with("hello from python\ngoodbye\n"),
        "{result}"
    );
    assert_eq!(result["final_state"], "JOB_STATE_SUCCEEDED");
    assert_eq!(result["final_message"], "goodbye");
    assert_eq!(result["exit_code"], 0);
    assert_eq!(
        result["poll_next_offset"].as_u64().unwrap() as usize,
        result["followed"].as_str().unwrap().len()
    );
    assert_eq!(result["listed"], serde_json::json!([result["job_id"]]));
    assert_eq!(result["not_found_code"], "NOT_FOUND");
}
