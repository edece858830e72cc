//! MCP Tasks (`io.modelcontextprotocol/tasks`, protocol 2026-07-28): a client that
//! declares the extension gets a task for each job it starts, ending with the
//! finished job. Driven by the MCP Inspector 2.x CLI, which speaks the extension,
//! and on the wire by hand for what that CLI does not expose (tasks/get and
//! tasks/cancel across a restart of the bridge).

use codex_jobs_test_support as support;

use std::{process::Command, time::Duration};

use serde_json::{Value, json};
use support::{McpStdio, TestServer, pb};

const INSPECTOR: &str = "@modelcontextprotocol/inspector@2.12.0";

fn bridge_to(server: &TestServer) -> Vec<String> {
    vec!["--endpoint".into(), server.endpoint()]
}

/// The capabilities of a client that takes tasks.
fn with_tasks() -> Value {
    json!({"extensions": {"io.modelcontextprotocol/tasks": {}}})
}

#[tokio::test]
async fn the_inspector_gets_the_finished_job_through_a_task() {
    let Some(inspector) = support::npm_tool("mcp-inspector-2", "mcp-inspector", INSPECTOR) else {
        return;
    };
    let server = TestServer::start().await;
    let bridge = support::bin("codex-jobs-mcp");
    let cwd = server.work_dir().display().to_string();
    // One call of a tool, as the Inspector's CLI reports it: (exit ok, what it printed).
    let call = |era: &str, tool: &str, args: Value| -> (bool, Value) {
        let output = Command::new(&inspector)
            .args(["--cli", "--protocol-era", era, "--format", "json"])
            .args(["--method", "tools/call", "--tool-name", tool])
            .args(["--tool-args-json", &args.to_string()])
            .arg(&bridge)
            .args(bridge_to(&server))
            .output()
            .unwrap();
        // The result goes to stdout, an error to stderr.
        let text = if output.status.success() {
            &output.stdout
        } else {
            &output.stderr
        };
        let printed = serde_json::from_slice(text).unwrap_or_else(|_| {
            panic!(
                "not JSON: {}\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        });
        (output.status.success(), printed)
    };

    // On 2026-07-28 the Inspector declares the extension, takes the task and asks
    // after it until it ends: the call's result is the finished job.
    let (ok, printed) = call(
        "modern",
        "codex_start",
        json!({"prompt": "say through a task", "cwd": cwd}),
    );
    assert!(ok, "{printed}");
    let job = &printed["result"]["structuredContent"];
    assert_eq!(job["state"], "succeeded", "{printed}");
    assert_eq!(job["final_message"], "through a task");
    assert!(job["output"].as_str().unwrap().contains("through a task\n"));

    // codex_reply too: its task ends with the follow-up job.
    let (ok, printed) = call(
        "modern",
        "codex_reply",
        json!({"job_id": job["job_id"], "prompt": "say and a reply"}),
    );
    assert!(ok, "{printed}");
    let reply = &printed["result"]["structuredContent"];
    assert_eq!(reply["state"], "succeeded", "{printed}");
    assert_eq!(reply["final_message"], "and a reply");
    assert_eq!(reply["thread_id"], job["thread_id"]);

    // A job that fails fails its task, with the job's error.
    let (ok, printed) = call(
        "modern",
        "codex_start",
        json!({"prompt": "fail it broke", "cwd": cwd}),
    );
    assert!(!ok, "{printed}");
    assert_eq!(
        printed["error"]["message"],
        "codex exited with status 1: it broke"
    );

    // On an earlier protocol the same client gets today's answer at once.
    let (ok, printed) = call(
        "legacy",
        "codex_start",
        json!({"prompt": "sleep 30", "cwd": cwd}),
    );
    assert!(ok, "{printed}");
    let job = &printed["result"]["structuredContent"];
    assert!(
        ["queued", "running"].contains(&job["state"].as_str().unwrap()),
        "{printed}"
    );
    server
        .client()
        .await
        .cancel(job["job_id"].as_str().unwrap())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_task_is_its_job_across_a_restart_of_the_bridge_and_cancels_it() {
    let server = TestServer::start().await;
    let cwd = server.work_dir().display().to_string();
    let mut session = McpStdio::start_stateless(&bridge_to(&server), with_tasks());
    let started = session.request(
        "tools/call",
        json!({"name": "codex_start",
               "arguments": {"prompt": "say halfway there\nsleep 60", "cwd": cwd}}),
    );
    let task = &started["result"];
    assert_eq!(task["resultType"], "task", "{started}");
    assert_eq!(task["status"], "working");
    assert_eq!(task["ttlMs"], Value::Null, "kept as long as the job is");
    let task_id = task["taskId"].as_str().unwrap().to_string();
    // The task id is the job's id.
    let job = server.wait_for_state(&task_id, pb::JobState::Running).await;
    assert_eq!(job.spec.unwrap().prompt, "say halfway there\nsleep 60");

    // While it runs, its status message is the latest line of the transcript.
    let get = |session: &mut McpStdio| session.request("tasks/get", json!({"taskId": task_id}));
    let message = support::eventually("the message", Duration::from_secs(10), || {
        let answer = get(&mut session);
        async move {
            let message = answer["result"]["statusMessage"].as_str()?.to_string();
            (message != "running").then_some(message)
        }
    })
    .await;
    assert_eq!(message, "halfway there");

    // A new bridge (the client restarted it) knows the task: it lives in the server.
    drop(session);
    let mut session = McpStdio::start_stateless(&bridge_to(&server), with_tasks());
    let answer = get(&mut session);
    assert_eq!(answer["result"]["taskId"], task_id.as_str(), "{answer}");
    assert_eq!(answer["result"]["status"], "working");

    // Cancelling the task cancels the job, and the task then says so.
    let acknowledged = session.request("tasks/cancel", json!({"taskId": task_id}));
    assert!(acknowledged.get("error").is_none(), "{acknowledged}");
    let (job, _) = server.wait_finished(&task_id).await;
    assert_eq!(job.state(), pb::JobState::Cancelled);
    let answer = get(&mut session);
    assert_eq!(answer["result"]["status"], "cancelled", "{answer}");

    // An id that is no job is the caller's mistake.
    let unknown = uuid::Uuid::now_v7().to_string();
    let answer = session.request("tasks/get", json!({"taskId": unknown}));
    assert_eq!(answer["error"]["code"], -32602, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&unknown),
        "{answer}"
    );
}

#[tokio::test]
async fn a_client_that_does_not_declare_tasks_gets_the_job_at_once() {
    let server = TestServer::start().await;
    let cwd = server.work_dir().display().to_string();
    let mut session = McpStdio::start_stateless(&bridge_to(&server), json!({}));
    let started = session.call("codex_start", json!({"prompt": "say no task", "cwd": cwd}));
    assert_eq!(started["resultType"], "complete", "{started}");
    let job_id = started["structuredContent"]["job_id"].as_str().unwrap();
    server.wait_finished(job_id).await;
    // Nor may it ask after tasks: the extension is not its to use.
    let answer = session.request("tasks/get", json!({"taskId": job_id}));
    assert!(answer.get("error").is_some(), "{answer}");
}
