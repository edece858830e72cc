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

/// A test server whose jobs run the real Codex against the mock, with what it needs
/// kept alive; `None` where the real Codex cannot be had (outside CI).
async fn real_codex_server() -> Option<(TestServer, MockApi, tempfile::TempDir)> {
    let codex = real_codex()?;
    let scratch = tempfile::tempdir().unwrap();
    let mock = MockApi::start(scratch.path()).await;
    let codex_home = scratch.path().join("codex-home");
    std::fs::create_dir_all(&codex_home).unwrap();
    std::fs::write(
        codex_home.join("config.toml"),
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
"#,
            port = mock.port
        ),
    )
    .unwrap();
    let server = TestServer::with(
        ServerOptions {
            codex_bin: codex,
            ..ServerOptions::default()
        }
        .env("CODEX_HOME", codex_home.display().to_string())
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
