//! The MCP bridge, driven by MCP clients this project did not write: the official
//! Python SDK (`mcp` on PyPI, through `fixtures/mcp_client.py`) and the MCP
//! Inspector CLI (npm), over stdio, against a real server.

use codex_jobs_test_support as support;

use std::{process::Command, time::Duration};

use serde_json::{Value, json};
use support::{ServerOptions, TestServer, pb, process_alive};

/// Runs `steps` in one MCP session with the bridge and returns each step's result.
/// `None` when the Python SDK cannot be had here (outside CI).
fn run_steps(bridge_args: &[String], env: Value, steps: Value) -> Option<Vec<Value>> {
    let python = support::python()?;
    let scratch = tempfile::tempdir().unwrap();
    let scenario = scratch.path().join("scenario.json");
    let bridge = support::bin("codex-jobs-mcp");
    let mut env = env;
    // The SDK starts the bridge with a clean environment plus what we give it.
    for key in ["PATH", "HOME"] {
        if let Ok(value) = std::env::var(key) {
            env[key] = Value::String(value);
        }
    }
    let scenario_json = json!({"command": bridge, "args": bridge_args, "env": env, "steps": steps});
    std::fs::write(&scenario, scenario_json.to_string()).unwrap();
    let output = Command::new(python)
        .arg(support::fixture("mcp_client.py"))
        .arg(&scenario)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the MCP client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_slice(&output.stdout).unwrap();
    Some(result["steps"].as_array().unwrap().clone())
}

/// The bridge's arguments for a test server.
fn bridge_to(server: &TestServer) -> Vec<String> {
    vec!["--endpoint".into(), server.endpoint()]
}

fn call(tool: &str, args: Value) -> Value {
    json!({"call": tool, "args": args})
}

#[tokio::test]
async fn the_tools_are_listed_with_schemas_and_annotations() {
    let server = TestServer::start().await;
    let Some(steps) = run_steps(
        &bridge_to(&server),
        json!({}),
        json!([{"list_tools": true}]),
    ) else {
        return;
    };
    let tools = steps[0]["tools"].as_array().unwrap();
    let tool = |name: &str| {
        tools
            .iter()
            .find(|tool| tool["name"] == name)
            .unwrap_or_else(|| panic!("no {name}"))
    };
    let names: Vec<&str> = tools
        .iter()
        .map(|tool| tool["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 10, "{names:?}");
    for name in [
        "codex_start",
        "codex_poll",
        "codex_wait",
        "codex_await_any",
        "codex_cancel",
        "codex_list",
        "codex_reply",
        "codex_diff",
        "codex_apply",
        "codex_wait_group",
    ] {
        let tool = tool(name);
        let schema = &tool["outputSchema"];
        assert_eq!(schema["type"], "object", "{name} has an output schema");
        // Its body sits where a client's meta-schema check does not walk (see
        // `output_schema`), and the reference finds it.
        assert!(schema.get("properties").is_none(), "{schema}");
        let target = schema["$ref"].as_str().unwrap().trim_start_matches('#');
        assert!(
            schema.pointer(target).unwrap()["properties"]["job_id"].is_object()
                || schema.pointer(target).unwrap()["properties"]["jobs"].is_object(),
            "{schema}"
        );
        assert!(
            tool["description"].as_str().unwrap().len() > 80,
            "{name} explains itself"
        );
    }
    for read_only in [
        "codex_poll",
        "codex_wait",
        "codex_await_any",
        "codex_list",
        "codex_diff",
        "codex_wait_group",
    ] {
        assert_eq!(
            tool(read_only)["annotations"]["readOnlyHint"],
            true,
            "{read_only}"
        );
    }
    assert_eq!(tool("codex_cancel")["annotations"]["destructiveHint"], true);
    assert_eq!(tool("codex_cancel")["annotations"]["idempotentHint"], true);
    assert_eq!(tool("codex_start")["annotations"]["readOnlyHint"], false);
    let start = &tool("codex_start")["inputSchema"];
    assert_eq!(start["required"], json!(["prompt", "cwd"]));
    for param in [
        "approval_policy",
        "model",
        "sandbox",
        "timeout_seconds",
        "labels",
        "request_id",
        "worktree",
        "base",
        "attempts",
    ] {
        assert!(
            start["properties"].get(param).is_some(),
            "codex_start takes {param}"
        );
    }
    assert_eq!(
        tool("codex_poll")["inputSchema"]["properties"]["tail_lines"]["default"],
        100
    );
    assert_eq!(
        tool("codex_wait")["inputSchema"]["properties"]["timeout_seconds"]["default"],
        50
    );
    assert_eq!(
        tool("codex_list")["inputSchema"]["properties"]["limit"]["default"],
        20
    );
    assert!(
        tool("codex_wait")["description"]
            .as_str()
            .unwrap()
            .contains("in a loop")
    );
}

#[tokio::test]
async fn an_agent_runs_attempts_in_worktrees_compares_them_and_applies_one() {
    let server = TestServer::start().await;
    let scratch = tempfile::tempdir().unwrap();
    let repo = support::git_repository(&scratch.path().join("repo"), &[("README", "hello\n")]);
    let cwd = repo.display().to_string();
    let steps = json!([
        call(
            "codex_start",
            json!({
                "prompt": "run echo from-mcp > mcp.txt\nsay written", "cwd": cwd,
                "approval_policy": "auto-edit", "attempts": 2,
            })
        ),
        call(
            "codex_wait_group",
            json!({"group": "$0.group", "timeout_seconds": 30})
        ),
        call("codex_diff", json!({"job_id": "$0.job_id"})),
        call("codex_apply", json!({"job_id": "$0.job_id"})),
        call(
            "codex_start",
            json!({
                "prompt": "say hi", "cwd": scratch.path().display().to_string(), "worktree": true,
            })
        ),
    ]);
    let Some(results) = run_steps(&bridge_to(&server), json!({}), steps) else {
        return;
    };
    let started = &results[0]["structured"];
    assert_eq!(
        started["attempts"].as_array().unwrap().len(),
        2,
        "{started}"
    );
    assert_eq!(started["attempts"][0], started["job_id"]);
    assert_eq!(
        started["worktree_base"].as_str().unwrap().len(),
        40,
        "{started}"
    );

    let attempts = results[1]["structured"]["jobs"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{}", results[1]);
    for attempt in attempts {
        assert_eq!(attempt["status"], "done", "{attempt}");
        assert_eq!(attempt["group"], started["group"]);
        let change = &attempt["change"];
        assert_eq!(change["files_changed"], 1, "{attempt}");
        assert_eq!(change["lines_added"], 1);
        assert_eq!(change["files"][0]["path"], "mcp.txt");
    }

    let diff = &results[2]["structured"];
    let patch = diff["patch"].as_str().unwrap();
    assert!(
        patch.contains("+++ b/mcp.txt\n@@ -0,0 +1 @@\n+from-mcp\n"),
        "{patch}"
    );
    assert_eq!(diff["truncated"], false);
    assert_eq!(diff["next_offset"], diff["change"]["patch_bytes"]);

    assert_eq!(
        results[3]["structured"]["files"],
        json!(["mcp.txt"]),
        "{}",
        results[3]
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("mcp.txt")).unwrap(),
        "from-mcp\n"
    );

    assert_eq!(results[4]["is_error"], true);
    assert!(
        results[4]["text"]
            .as_str()
            .unwrap()
            .contains("is not in a git repository"),
        "{}",
        results[4]
    );
}

#[tokio::test]
async fn an_agent_starts_waits_with_progress_polls_and_lists() {
    let server = TestServer::start().await;
    let cwd = server.work_dir().display().to_string();
    let steps = json!([
        call("codex_start", json!({
            "prompt": "say one\nsleep 1\nthink Checking the second step\nplan x One; Two\nsay two\nsleep 1\nsay three",
            "cwd": cwd, "approval_policy": "auto-edit", "labels": {"by": "mcp"},
        })),
        {"call": "codex_wait", "args": {"job_id": "$0.job_id", "timeout_seconds": 30}, "progress": true},
        call("codex_poll", json!({"job_id": "$0.job_id", "since_offset": "$1.next_offset"})),
        call("codex_poll", json!({"job_id": "$0.job_id", "tail_lines": 2})),
        call("codex_list", json!({"limit": 5, "state": "done"})),
    ]);
    let Some(results) = run_steps(&bridge_to(&server), json!({}), steps) else {
        return;
    };
    for result in &results {
        assert_eq!(result["is_error"], false, "{result}");
        // Text-only clients get the same JSON as text.
        let text: Value = serde_json::from_str(result["text"].as_str().unwrap()).unwrap();
        assert_eq!(text, result["structured"]);
    }
    let started = &results[0]["structured"];
    assert!(matches!(
        started["status"].as_str(),
        Some("queued" | "running")
    ));
    assert_eq!(started["cwd"], cwd);
    // Answers to an agent's own calls are lean: no nulls, no empty fields, and not
    // the prompt it just sent; codex_poll keeps every key codex-async returned.
    let lean = started.as_object().unwrap();
    assert!(!lean.contains_key("prompt"), "{started}");
    assert!(
        lean.values().all(|value| !value.is_null() && value != ""),
        "{started}"
    );
    let polled = results[3]["structured"].as_object().unwrap();
    for key in [
        "job_id",
        "status",
        "exit_code",
        "output",
        "started_at",
        "finished_at",
        "prompt",
        "cwd",
    ] {
        assert!(polled.contains_key(key), "codex_poll has {key}: {polled:?}");
    }

    let waited = &results[1];
    assert_eq!(waited["structured"]["status"], "done");
    assert_eq!(waited["structured"]["exit_code"], 0);
    assert_eq!(waited["structured"]["final_message"], "three");
    assert!(waited["structured"]["thread_id"].is_string());
    assert!(
        waited["structured"]["usage"]["output_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
    let output = waited["structured"]["output"].as_str().unwrap();
    assert!(
        output.starts_with(
            "one\n* Checking the second step\n= plan 1/2: [x] One; [ ] Two\ntwo\nthree\n"
        ),
        "{output}"
    );
    // New output arrived as progress while the job ran; progress only goes up.
    let progress = waited["progress"].as_array().unwrap();
    let said: String = progress
        .iter()
        .map(|p| p["message"].as_str().unwrap_or(""))
        .collect();
    assert!(
        said.contains("two") && said.contains("three"),
        "{progress:?}"
    );
    // What Codex thinks and plans reaches the waiting agent too.
    assert!(
        said.contains("* Checking the second step") && said.contains("= plan 1/2"),
        "{progress:?}"
    );
    let values: Vec<f64> = progress
        .iter()
        .map(|p| p["progress"].as_f64().unwrap())
        .collect();
    assert!(
        values.windows(2).all(|pair| pair[0] < pair[1]),
        "{values:?}"
    );

    // At the end, since_offset returns nothing new.
    assert_eq!(results[2]["structured"]["output"], "");
    assert_eq!(
        results[2]["structured"]["next_offset"],
        waited["structured"]["next_offset"]
    );
    assert!(
        results[3]["structured"]["output"]
            .as_str()
            .unwrap()
            .starts_with("three\n-- turn completed")
    );
    let jobs = results[4]["structured"]["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["job_id"], started["job_id"]);
    assert_eq!(jobs[0]["labels"]["by"], "mcp");
    let argv = std::fs::read_to_string(server.argv_log()).unwrap();
    assert!(
        argv.contains("-s workspace-write"),
        "auto-edit maps to workspace-write: {argv}"
    );
}

#[tokio::test]
async fn a_wait_returns_running_at_its_timeout_and_a_cancelled_wait_leaves_the_job_alone() {
    let server = TestServer::start().await;
    let cwd = server.work_dir().display().to_string();
    let steps = json!([
        call("codex_start", json!({"prompt": "say working\nsleep 60", "cwd": cwd})),
        call("codex_wait", json!({"job_id": "$0.job_id", "timeout_seconds": 1})),
        {"call": "codex_wait", "args": {"job_id": "$0.job_id", "timeout_seconds": 50},
         "cancel_after": 1, "read_timeout": 5},
        call("codex_poll", json!({"job_id": "$0.job_id"})),
        call("codex_cancel", json!({"job_id": "$0.job_id"})),
        call("codex_cancel", json!({"job_id": "$0.job_id"})),
    ]);
    let Some(results) = run_steps(&bridge_to(&server), json!({}), steps) else {
        return;
    };
    let timed_out = &results[1];
    assert_eq!(timed_out["is_error"], false, "{timed_out}");
    assert_eq!(timed_out["structured"]["status"], "running");
    let elapsed = timed_out["elapsed"].as_f64().unwrap();
    assert!(
        (0.9..10.0).contains(&elapsed),
        "the wait lasted {elapsed} s"
    );

    let cancelled_wait = &results[2];
    assert_eq!(cancelled_wait["cancelled"], true);
    assert!(
        cancelled_wait["elapsed"].as_f64().unwrap() < 10.0,
        "{cancelled_wait}"
    );
    assert_eq!(
        results[3]["structured"]["status"], "running",
        "the job outlived the cancelled wait"
    );

    assert_eq!(results[4]["structured"]["status"], "cancelled");
    assert_eq!(
        results[5]["structured"], results[4]["structured"],
        "cancel is idempotent"
    );
}

#[tokio::test]
async fn reply_continues_the_codex_thread_of_an_earlier_job() {
    let server = TestServer::start().await;
    let cwd = server.work_dir().display().to_string();
    let steps = json!([
        call(
            "codex_start",
            json!({"prompt": "say first turn", "cwd": cwd, "model": "gpt-test",
                   "sandbox": "workspace-write", "reasoning_effort": "low"})
        ),
        call("codex_wait", json!({"job_id": "$0.job_id"})),
        call(
            "codex_reply",
            json!({"job_id": "$0.job_id", "prompt": "say second turn"})
        ),
        call("codex_wait", json!({"job_id": "$2.job_id"})),
    ]);
    let Some(results) = run_steps(&bridge_to(&server), json!({}), steps) else {
        return;
    };
    let first = &results[1]["structured"];
    let second = &results[3]["structured"];
    assert_ne!(
        results[2]["structured"]["job_id"], first["job_id"],
        "a new job"
    );
    assert_eq!(second["status"], "done", "{second}");
    assert_eq!(second["final_message"], "second turn");
    assert_eq!(second["thread_id"], first["thread_id"]);
    assert_eq!(second["cwd"], cwd);
    let argv = std::fs::read_to_string(server.argv_log()).unwrap();
    let resumed = argv.lines().nth(1).unwrap();
    let thread = first["thread_id"].as_str().unwrap();
    assert!(
        resumed.ends_with(&format!(
            "-m gpt-test -s workspace-write -c model_reasoning_effort=low resume {thread} say second turn"
        )),
        "{resumed}"
    );
}

#[tokio::test]
async fn failures_are_tool_errors_that_say_what_to_do() {
    let server = TestServer::start().await;
    let cwd = server.work_dir().display().to_string();
    let unknown = uuid::Uuid::now_v7().to_string();
    let steps = json!([
        call("codex_poll", json!({"job_id": unknown})),
        call("codex_cancel", json!({"job_id": "../../etc/passwd"})),
        call(
            "codex_start",
            json!({"prompt": "hi", "cwd": cwd, "approval_policy": "yolo"})
        ),
        call("codex_start", json!({"prompt": "", "cwd": cwd})),
        call("codex_list", json!({"state": "finished"})),
        call("codex_poll", json!({})),
        call(
            "codex_start",
            json!({"prompt": "hi", "cwd": cwd, "reasoning_effort": "max"})
        ),
    ]);
    let Some(results) = run_steps(&bridge_to(&server), json!({}), steps) else {
        return;
    };
    let expected = [
        format!("no job with id {unknown}. codex_list shows the jobs that exist"),
        "job id must be a UUID v7".to_string(),
        "approval_policy must be one of suggest, auto-edit, full-auto; got \"yolo\"".to_string(),
        "prompt must not be empty".to_string(),
        "state must be one of queued, running, succeeded, failed, cancelled (or done, error)"
            .to_string(),
        "job_id".to_string(),
        "reasoning effort must be one of low, medium, high; got \"max\"".to_string(),
    ];
    for (result, expected) in results.iter().zip(expected) {
        assert_eq!(result["is_error"], true, "{result}");
        assert!(
            result.get("protocol_error").is_none(),
            "an ordinary failure is a tool error: {result}"
        );
        let text = result["text"].as_str().unwrap();
        assert!(text.contains(&expected), "{text:?} should say {expected:?}");
    }

    // Replying to a job that is still running would run two Codex on one thread.
    let steps = json!([
        call("codex_start", json!({"prompt": "sleep 30", "cwd": cwd})),
        call(
            "codex_reply",
            json!({"job_id": "$0.job_id", "prompt": "and then?"})
        ),
        call("codex_cancel", json!({"job_id": "$0.job_id"})),
    ]);
    let results = run_steps(&bridge_to(&server), json!({}), steps).unwrap();
    assert_eq!(results[1]["is_error"], true);
    let text = results[1]["text"].as_str().unwrap();
    assert!(
        text.contains("is still running: wait for it to finish (codex_wait)"),
        "{text}"
    );

    // A server that is not there: the bridge stays up and says how to start one.
    let nowhere = vec![
        "--endpoint".to_string(),
        format!("unix:{}", server.dir.path().join("none.sock").display()),
    ];
    let results = run_steps(
        &nowhere,
        json!({}),
        json!([call("codex_list", json!({})), call("codex_list", json!({}))]),
    )
    .unwrap();
    for result in &results {
        assert_eq!(result["is_error"], true);
        let text = result["text"].as_str().unwrap();
        assert!(text.contains("cannot reach codex-jobs-server"), "{text}");
        assert!(text.contains("Start it with `codex-jobs-server`"), "{text}");
    }
}

#[tokio::test]
async fn with_no_endpoint_the_bridge_starts_a_server_that_outlives_it() {
    let home = tempfile::tempdir().unwrap();
    let data_home = home.path().join("data");
    let work = home.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let env = json!({
        "XDG_DATA_HOME": data_home,
        "CODEX_JOBS_CODEX_BIN": support::fake_codex(),
    });
    let steps = json!([
        call(
            "codex_start",
            json!({"prompt": "say started for you", "cwd": work})
        ),
        call("codex_wait", json!({"job_id": "$0.job_id"})),
    ]);
    let Some(results) = run_steps(&[], env, steps) else {
        return;
    };
    assert_eq!(
        results[1]["structured"]["final_message"], "started for you",
        "{results:?}"
    );

    // The bridge has exited; the server it started is still there, with the job.
    let socket = data_home.join("codex-jobs/codex-jobs.sock");
    let mut client = support::Client::connect(&format!("unix:{}", socket.display()), None)
        .await
        .unwrap();
    let jobs = client.list(pb::ListRequest::default()).await.unwrap().jobs;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].state(), pb::JobState::Succeeded);

    // Stop it: it is found by the data dir it was started with.
    let marker = format!("XDG_DATA_HOME={}", data_home.display());
    let servers = processes_with_env(&marker);
    assert_eq!(servers.len(), 1, "one server was started: {servers:?}");
    for pid in servers {
        unsafe { libc::kill(pid, libc::SIGTERM) };
        support::eventually("the server stops", Duration::from_secs(10), || async move {
            (!process_alive(pid)).then_some(())
        })
        .await;
    }
}

/// Processes named codex-jobs-server whose environment holds `entry`.
fn processes_with_env(entry: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|proc| proc.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            comm.trim() == "codex-jobs-serv"
                && process_alive(*pid)
                && environ
                    .split(|&b| b == 0)
                    .any(|var| var == entry.as_bytes())
        })
        .collect()
}

#[tokio::test]
async fn the_mcp_inspector_cli_lists_and_calls_the_tools() {
    let Some(inspector) = support::npm_tool(
        "mcp-inspector",
        "mcp-inspector",
        "@modelcontextprotocol/inspector@0.15.0",
    ) else {
        return;
    };
    let server = TestServer::with(ServerOptions::default()).await;
    let bridge = support::bin("codex-jobs-mcp");
    let inspect = |args: &[&str]| -> Value {
        let output = Command::new(&inspector)
            .arg("--cli")
            .arg(&bridge)
            .args(["--endpoint", &server.endpoint()])
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.stderr.is_empty(),
            "the inspector warned: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let listed = inspect(&["--method", "tools/list"]);
    assert_eq!(listed["tools"].as_array().unwrap().len(), 10);

    let cwd = format!("cwd={}", server.work_dir().display());
    let started = inspect(&[
        "--method",
        "tools/call",
        "--tool-name",
        "codex_start",
        "--tool-arg",
        "prompt=say inspected",
        "--tool-arg",
        &cwd,
    ]);
    assert_eq!(started["isError"], false);
    let job_id = started["structuredContent"]["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    server.wait_finished(&job_id).await;
    let polled = inspect(&[
        "--method",
        "tools/call",
        "--tool-name",
        "codex_poll",
        "--tool-arg",
        &format!("job_id={job_id}"),
    ]);
    assert_eq!(polled["structuredContent"]["status"], "done");
    assert_eq!(polled["structuredContent"]["final_message"], "inspected");
}

#[tokio::test]
async fn a_request_too_large_to_take_is_answered_with_an_error_not_dropped() {
    let server = TestServer::start().await;
    let mut session = support::McpStdio::start(&bridge_to(&server));
    // Past rmcp's own 16 MiB line limit, which would drop it without an answer.
    let huge = "x".repeat(17 << 20);
    let request = json!({"jsonrpc": "2.0", "id": 41, "method": "tools/call", "params": {
        "name": "codex_start", "arguments": {"prompt": huge, "cwd": server.work_dir()}}});
    session.send_line(&request.to_string());
    let answer = session.receive();
    assert_eq!(answer["id"], 41, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message
            .contains("more than the 8388608 codex-jobs-mcp takes; a prompt may be at most 1 MiB"),
        "{message}"
    );
    // The session goes on.
    let listed = session.call("codex_list", json!({}));
    assert_eq!(listed["isError"], false, "{listed}");
}

#[tokio::test]
async fn wait_with_job_ids_and_await_any_return_the_first_job_to_end() {
    let server = TestServer::start().await;
    let cwd = server.work_dir().display().to_string();
    let labelled = |prompt: &str| json!({"prompt": prompt, "cwd": cwd, "labels": {"batch": "b1"}});
    let steps = json!([
        call("codex_start", labelled("sleep 60")),
        call("codex_start", labelled("sleep 0.3\nsay first")),
        call(
            "codex_wait",
            json!({"job_ids": ["$0.job_id", "$1.job_id"], "timeout_seconds": 30})
        ),
        call("codex_start", labelled("sleep 0.3\nsay second")),
        // This session's jobs still running: the sleeper and the second.
        call("codex_await_any", json!({"timeout_seconds": 30})),
        call(
            "codex_await_any",
            json!({"label": "batch=b1", "timeout_seconds": 1})
        ),
        call("codex_cancel", json!({"job_id": "$0.job_id"})),
        call("codex_await_any", json!({"timeout_seconds": 1})),
        call("codex_wait", json!({"timeout_seconds": 1})),
        call(
            "codex_await_any",
            json!({"label": "batch", "timeout_seconds": 1})
        ),
    ]);
    let Some(results) = run_steps(&bridge_to(&server), json!({}), steps) else {
        return;
    };
    let first = &results[2]["structured"];
    assert_eq!(
        first["job_id"], results[1]["structured"]["job_id"],
        "{first}"
    );
    assert_eq!(first["status"], "done");
    assert_eq!(first["final_message"], "first");

    let second = &results[4]["structured"];
    assert_eq!(
        second["job_id"], results[3]["structured"]["job_id"],
        "{second}"
    );
    assert_eq!(second["final_message"], "second");

    // By label, only the sleeper runs: at the timeout it comes back still running.
    let by_label = &results[5]["structured"];
    assert_eq!(by_label["job_id"], results[0]["structured"]["job_id"]);
    assert_eq!(by_label["status"], "running");

    // Nothing of this session runs any more, and bad arguments say what to give.
    for (index, needle) in [
        (7, "no job this session started"),
        (8, "give job_id"),
        (9, "KEY=VALUE"),
    ] {
        assert_eq!(results[index]["is_error"], true, "{}", results[index]);
        assert!(
            results[index]["text"].as_str().unwrap().contains(needle),
            "{}",
            results[index]
        );
    }
}

#[tokio::test]
async fn every_result_validates_against_its_output_schema_in_both_sdks() {
    let server = TestServer::start().await;
    let (Some(python), Some(_)) = (
        support::python(),
        support::npm_tool(
            "mcp-inspector",
            "mcp-inspector",
            "@modelcontextprotocol/inspector@0.15.0",
        ),
    ) else {
        return;
    };
    let mut session = support::McpStdio::start(&bridge_to(&server));
    let listed = session.request("tools/list", json!({}));
    let schema = |name: &str| {
        listed["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|tool| tool["name"] == name)
            .unwrap()["outputSchema"]
            .clone()
    };
    let cwd = server.work_dir().display().to_string();
    let started = session.call("codex_start", json!({"prompt": "say hi", "cwd": cwd}));
    let job_id = started["structuredContent"]["job_id"].clone();
    let results = [
        ("codex_start", started),
        (
            "codex_wait",
            session.call("codex_wait", json!({"job_id": job_id})),
        ),
        (
            "codex_poll",
            session.call("codex_poll", json!({"job_id": job_id})),
        ),
        ("codex_list", session.call("codex_list", json!({}))),
        (
            "codex_cancel",
            session.call("codex_cancel", json!({"job_id": job_id})),
        ),
    ];
    // The TypeScript SDK comes with the MCP Inspector; the script imports it by name.
    let node_script = support::target_dir().join("mcp-inspector/sdk_validate.mjs");
    std::fs::copy(support::fixture("sdk_validate.mjs"), &node_script).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (tool, result) in results {
        assert_eq!(result["isError"], false, "{tool}: {result}");
        let case = dir.path().join(format!("{tool}.json"));
        let content = json!({"schema": schema(tool), "result": result["structuredContent"]});
        std::fs::write(&case, content.to_string()).unwrap();
        for (sdk, mut command) in [
            ("Python", Command::new(&python)),
            ("TypeScript", Command::new("node")),
        ] {
            let script = if sdk == "Python" {
                support::fixture("sdk_validate.py")
            } else {
                node_script.clone()
            };
            let output = command.arg(script).arg(&case).arg("1").output().unwrap();
            assert!(
                output.status.success(),
                "the {sdk} SDK refuses the {tool} result: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}
