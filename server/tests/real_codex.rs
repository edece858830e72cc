//! End to end with the real Codex CLI (`@openai/codex@0.169.0` from npm), pointed
//! through its config at a small mock of the OpenAI Responses API served on loopback
//! (`fixtures/mock_responses_api.py`), so it runs offline.

use codex_jobs_test_support as support;

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use support::{ServerOptions, TestServer, pb};

const CODEX_PACKAGE: &str = "@openai/codex@0.169.0";

/// The real `codex`: `$CODEX_JOBS_TEST_CODEX`, or the one `.ci/run` (or this test)
/// installs into `target/real-codex`.
fn real_codex() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CODEX_JOBS_TEST_CODEX") {
        return Some(path.into());
    }
    support::npm_tool("real-codex", "codex", CODEX_PACKAGE)
}

/// The mock Responses API, stopped on drop.
struct MockApi {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl MockApi {
    async fn start(dir: &Path) -> MockApi {
        let port_file = dir.join("mock.port");
        let log = dir.join("requests.jsonl");
        let script = support::fixture("mock_responses_api.py");
        let child = Command::new("python3")
            .arg(script)
            .arg("--port-file")
            .arg(&port_file)
            .arg("--log")
            .arg(&log)
            .stdin(Stdio::null())
            .spawn()
            .expect("python3 runs the mock");
        let port =
            support::eventually("the mock reports its port", Duration::from_secs(20), || {
                let port = std::fs::read_to_string(&port_file)
                    .ok()
                    .and_then(|text| text.trim().parse().ok());
                async move { port }
            })
            .await;
        MockApi { child, port, log }
    }

    fn requests(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for MockApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `CODEX_HOME` whose config points Codex at the mock, plus `extra` TOML.
fn codex_home(dir: &Path, mock: &MockApi, extra: &str) -> PathBuf {
    let home = dir.join("codex-home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join("config.toml"),
        format!(
            r#"model = "gpt-5.5"
model_provider = "mock"
allow_login_shell = false

[model_providers.mock]
name = "mock"
base_url = "http://127.0.0.1:{port}/v1"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0

[features]
plugins = false
unbounded_connection_retries = false

[analytics]
enabled = false
{extra}"#,
            port = mock.port
        ),
    )
    .unwrap();
    home
}

/// A test server whose jobs run the real Codex against the mock, with what it needs
/// kept alive; `None` where the real Codex cannot be had (outside CI).
async fn real_codex_server() -> Option<(TestServer, MockApi, tempfile::TempDir)> {
    let codex = real_codex()?;
    let scratch = tempfile::tempdir().unwrap();
    let mock = MockApi::start(scratch.path()).await;
    let codex_home = codex_home(scratch.path(), &mock, "");
    let server = TestServer::with(
        ServerOptions {
            codex_bin: codex,
            ..ServerOptions::default()
        }
        .env("CODEX_HOME", codex_home.display().to_string())
        // Codex snapshots the user's login shell; a home of its own keeps the
        // machine's shell start-up files (and what they start, such as a pyenv
        // rehash in the background) out of the test.
        .env("HOME", scratch.path().display().to_string())
        .env("RUST_BACKTRACE", "0"),
    )
    .await;
    Some((server, mock, scratch))
}

#[tokio::test]
async fn the_real_codex_cli_runs_a_job_and_continues_its_thread() {
    let Some((server, mock, _scratch)) = real_codex_server().await else {
        return;
    };

    let mut spec = server.spec("Check the shell works.\nRUN: echo hello-from-shell");
    spec.sandbox = pb::Sandbox::WorkspaceWrite.into();
    let job = server.start_spec(spec).await;
    let (job, transcript) = server.wait_finished(&job.id).await;
    assert_eq!(
        job.state(),
        pb::JobState::Succeeded,
        "{job:?}\n{transcript}\n{}",
        server.log()
    );
    assert_eq!(job.exit_code, Some(0));
    assert_eq!(job.final_message, "done: hello-from-shell");
    assert!(
        job.thread_id.parse::<uuid::Uuid>().is_ok(),
        "thread id {:?}",
        job.thread_id
    );
    let usage = job.usage.expect("usage from turn.completed");
    assert_eq!((usage.input_tokens, usage.output_tokens), (20, 10));
    assert!(transcript.contains("echo hello-from-shell"), "{transcript}");
    assert!(
        transcript.contains("done: hello-from-shell\n"),
        "{transcript}"
    );
    assert!(
        transcript.contains("-- turn completed: 20 input tokens"),
        "{transcript}"
    );

    // Continue the same thread: Codex resumes it and sends the earlier turn along.
    let mut follow_up = server.spec("What did it print?");
    follow_up.resume_thread_id = job.thread_id.clone();
    let resumed = server.start_spec(follow_up).await;
    let (resumed, _) = server.wait_finished(&resumed.id).await;
    assert_eq!(resumed.state(), pb::JobState::Succeeded, "{resumed:?}");
    assert_eq!(resumed.thread_id, job.thread_id);
    assert_eq!(resumed.final_message, "mock says: What did it print?");
    let last_request = mock.requests().lines().last().unwrap().to_string();
    assert!(
        last_request.contains("hello-from-shell"),
        "the resumed turn carries the history"
    );
}

#[tokio::test]
async fn a_resumed_job_keeps_to_its_own_sandbox() {
    let Some((server, _mock, _scratch)) = real_codex_server().await else {
        return;
    };
    let mut first = server.spec("Check the shell works.\nRUN: echo first-turn");
    first.sandbox = pb::Sandbox::WorkspaceWrite.into();
    let first = server.start_spec(first).await;
    let (first, _) = server.wait_finished(&first.id).await;
    assert_eq!(first.state(), pb::JobState::Succeeded, "{first:?}");

    // `codex exec resume` takes the sandbox from the exec flags before it, as a
    // follow-up (codex_reply) passes them: read-only cannot write, workspace-write can.
    for (sandbox, writes) in [
        (pb::Sandbox::ReadOnly, false),
        (pb::Sandbox::WorkspaceWrite, true),
    ] {
        let file = server
            .work_dir()
            .join(format!("written-in-{}", sandbox.as_str_name()));
        let mut follow_up = server.spec(&format!(
            "Write the file.\nRUN: touch {} && echo wrote",
            file.display()
        ));
        follow_up.sandbox = sandbox.into();
        follow_up.resume_thread_id = first.thread_id.clone();
        let resumed = server.start_spec(follow_up).await;
        let (resumed, transcript) = server.wait_finished(&resumed.id).await;
        assert_eq!(resumed.thread_id, first.thread_id, "the same thread");
        assert_eq!(file.exists(), writes, "{sandbox:?}: {transcript}");
        if writes {
            assert_eq!(resumed.final_message, "done: wrote");
        } else {
            assert!(
                resumed.final_message.contains("Read-only file system"),
                "{}",
                resumed.final_message
            );
        }
    }
}

/// The real Codex as an agent on the other side: an `[mcp_servers]` entry runs our
/// bridge, and the mock model has it look the tools up (Codex defers MCP tools
/// behind its `tool_search`), call `codex_start`, then `codex_wait` on that job.
#[tokio::test]
async fn the_real_codex_cli_starts_and_waits_for_a_job_through_the_bridge() {
    let Some(codex) = real_codex() else {
        return;
    };
    let server = TestServer::start().await;
    let scratch = tempfile::tempdir().unwrap();
    let mock = MockApi::start(scratch.path()).await;
    // `codex exec` never asks for approval, so the entry approves its tools up front.
    let home = codex_home(
        scratch.path(),
        &mock,
        &format!(
            r#"
[mcp_servers.codex_jobs]
command = "{bridge}"
args = ["--endpoint", "{endpoint}"]
default_tools_approval_mode = "approve"
"#,
            bridge = support::bin("codex-jobs-mcp").display(),
            endpoint = server.endpoint(),
        ),
    );
    let work = server.work_dir();
    let prompt = format!(
        "MCP: codex_start {{\"prompt\": \"say started by codex\", \"cwd\": \"{}\"}}\n\
         MCP: codex_wait {{\"job_id\": \"{{{{job_id}}}}\", \"timeout_seconds\": 30}}",
        work.display()
    );
    let run = tokio::process::Command::new(&codex)
        .args(["exec", "--json", "--skip-git-repo-check", "-C"])
        .arg(&work)
        .arg(&prompt)
        .env("CODEX_HOME", &home)
        .env("HOME", scratch.path())
        .env(support::TEST_MARK, scratch.path())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("codex exec ends within two minutes")
        .unwrap();
    let events = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{events}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // Each tool call as Codex reports it: done, with our structured result.
    let result_of = |tool: &str| -> serde_json::Value {
        events
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .find(|event| {
                event["type"] == "item.completed"
                    && event["item"]["type"] == "mcp_tool_call"
                    && event["item"]["tool"] == tool
            })
            .map(|event| {
                assert_eq!(event["item"]["server"], "codex_jobs");
                assert_eq!(event["item"]["status"], "completed", "{event}");
                event["item"]["result"]["structured_content"].clone()
            })
            .unwrap_or_else(|| panic!("no {tool} call in\n{events}"))
    };
    let started = result_of("codex_start");
    let job_id = started["job_id"].as_str().expect("a job id").to_string();
    let waited = result_of("codex_wait");
    assert_eq!(waited["job_id"], job_id.as_str());
    assert_eq!(waited["state"], "succeeded", "{waited}");
    assert_eq!(waited["final_message"], "started by codex");

    // The job is ours: on the server, with the prompt Codex sent.
    let (job, _) = server.wait_finished(&job_id).await;
    assert_eq!(job.state(), pb::JobState::Succeeded);
    assert_eq!(job.spec.unwrap().prompt, "say started by codex");
    // And Codex found our tools through its own search, not a list we handed it.
    assert!(
        mock.requests().contains("\"tool_search_output\""),
        "{}",
        mock.requests()
    );
}
