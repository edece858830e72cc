//! The `codex-jobs` CLI, run as a person or a script would run it.

use codex_jobs_test_support as support;

use serde_json::Value;
use support::{ServerOptions, TestServer, pb};

fn json(output: &std::process::Output) -> Value {
    assert!(
        output.status.success(),
        "codex-jobs failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    serde_json::from_slice(&output.stdout).expect("--json prints JSON")
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[tokio::test]
async fn start_wait_poll_and_list_print_the_documented_shapes() {
    let server = TestServer::start().await;
    let started = json(&server.cli(&[
        "start",
        "--json",
        "--sandbox",
        "workspace-write",
        "--label",
        "team=cli",
        "--request-id",
        "cli-1",
        "say from the cli",
    ]));
    let id = started["job_id"].as_str().unwrap().to_string();
    assert!(matches!(
        started["status"].as_str(),
        Some("queued" | "running")
    ));
    assert_eq!(
        started["cwd"],
        server.work_dir().display().to_string(),
        "cwd defaults to the current dir"
    );
    assert_eq!(started["labels"]["team"], "cli");

    // No --timeout: as long as it takes.
    let waited = server.cli(&["wait", &id, "--json"]);
    assert_eq!(waited.status.code(), Some(0));
    let waited = json(&waited);
    for key in [
        "job_id",
        "status",
        "state",
        "exit_code",
        "output",
        "next_offset",
        "final_message",
        "thread_id",
        "usage",
        "prompt",
        "cwd",
        "created_at",
        "started_at",
        "finished_at",
        "error",
    ] {
        assert!(
            waited.get(key).is_some(),
            "wait --json lacks {key}: {waited}"
        );
    }
    assert_eq!(waited["status"], "done");
    assert_eq!(waited["state"], "succeeded");
    assert_eq!(waited["exit_code"], 0);
    assert_eq!(waited["final_message"], "from the cli");
    assert!(
        waited["output"]
            .as_str()
            .unwrap()
            .starts_with("from the cli\n")
    );
    assert!(waited["finished_at"].as_str().unwrap().ends_with('Z'));

    let next = waited["next_offset"].as_u64().unwrap();
    let polled = json(&server.cli(&["poll", &id, "--json", "--since", &next.to_string()]));
    assert_eq!(polled["output"], "", "nothing new after next_offset");
    assert_eq!(polled["next_offset"], next);

    let text = stdout(&server.cli(&["poll", &id, "--tail", "1"]));
    assert!(
        text.starts_with(&format!("{id}  succeeded  exit 0")),
        "{text}"
    );
    assert!(text.contains("-- turn completed"), "{text}");

    let again = json(&server.cli(&[
        "start",
        "--json",
        "--request-id",
        "cli-1",
        "say from the cli",
    ]));
    assert_eq!(
        again["job_id"],
        id.as_str(),
        "the request id returns the same job"
    );

    let listed = json(&server.cli(&[
        "list",
        "--json",
        "--label",
        "team=cli",
        "--state",
        "succeeded",
    ]));
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(listed["jobs"][0]["job_id"], id.as_str());
    assert!(listed["next_page_token"].is_null());
    let table = stdout(&server.cli(&["list"]));
    assert!(table.lines().next().unwrap().starts_with("ID "), "{table}");
    assert!(
        table.contains(&id) && table.contains("say from the cli"),
        "{table}"
    );
}

#[tokio::test]
async fn follow_prints_the_transcript_live_and_exits_with_the_jobs_outcome() {
    let server = TestServer::start().await;
    let ok = json(&server.cli(&["start", "--json", "say one\nsleep 0.5\nsay two"]));
    let followed = server.cli(&["follow", ok["job_id"].as_str().unwrap()]);
    assert_eq!(followed.status.code(), Some(0));
    assert!(
        stdout(&followed).starts_with("one\ntwo\n-- turn completed"),
        "{}",
        stdout(&followed)
    );
    assert!(String::from_utf8_lossy(&followed.stderr).contains("succeeded"));

    let failing = json(&server.cli(&["start", "--json", "say oops\nexit 4"]));
    let failing = failing["job_id"].as_str().unwrap();
    server.wait_finished(failing).await;
    let followed = server.cli(&["follow", failing, "--from", "2"]);
    assert_eq!(
        followed.status.code(),
        Some(1),
        "a failed job fails the follow"
    );
    assert_eq!(stdout(&followed), "ps\n", "--from starts at the offset");
}

#[tokio::test]
async fn cancel_and_wait_timeout_and_a_prompt_from_stdin() {
    let server = TestServer::start().await;
    let started = server.cli_with_stdin(&["start", "--json", "-"], "say from stdin\nsleep 60");
    let id = json(&started)["job_id"].as_str().unwrap().to_string();
    let waited = server.cli(&["wait", &id, "--timeout", "1", "--json"]);
    assert_eq!(
        waited.status.code(),
        Some(124),
        "still running when the wait ran out"
    );
    let waited: Value = serde_json::from_slice(&waited.stdout).unwrap();
    assert_eq!(waited["status"], "running");

    let cancelled = json(&server.cli(&["cancel", &id, "--json"]));
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["prompt"], "say from stdin\nsleep 60");
    let job = server.client().await.cancel(&id).await.unwrap();
    assert_eq!(job.state(), pb::JobState::Cancelled);
}

#[tokio::test]
async fn errors_go_to_stderr_with_a_nonzero_exit() {
    let server = TestServer::start().await;
    let unknown = uuid::Uuid::now_v7().to_string();
    let output = server.cli(&["poll", &unknown]);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("not found: no job with id {unknown}")),
        "{stderr}"
    );

    let output = server.cli(&["cancel", "../etc"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("invalid argument: job id must be a UUID v7")
    );

    let output = server.cli(&["--endpoint", "unix:/nonexistent/socket", "list"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot reach codex-jobs-server at unix:/nonexistent/socket"),
        "{stderr}"
    );
    assert!(
        stderr.contains("Start it with `codex-jobs-server`"),
        "{stderr}"
    );
}

#[tokio::test]
async fn wait_any_prints_the_first_job_to_end_and_exits_with_its_status() {
    let server = TestServer::start().await;
    let slow = server.start_job("sleep 30").await;
    let failing = server.start_job("sleep 0.3\nfail it broke").await;
    let waited = server.cli(&["wait", "--any", &slow.id, &failing.id, "--json"]);
    assert_eq!(
        waited.status.code(),
        Some(1),
        "the exit status of the job that ended"
    );
    let waited: Value = serde_json::from_slice(&waited.stdout).unwrap();
    assert_eq!(waited["job_id"], failing.id.as_str());
    assert_eq!(waited["status"], "error");

    let other = server.start_job("sleep 30").await;
    let timed_out = server.cli(&["wait", "--any", &slow.id, &other.id, "--timeout", "1"]);
    assert_eq!(timed_out.status.code(), Some(124), "none ended in time");

    let refused = server.cli(&["wait", &slow.id, &other.id]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--any"),
        "the error says how to wait for several"
    );
    let mut client = server.client().await;
    client.cancel(&slow.id).await.unwrap();
    client.cancel(&other.id).await.unwrap();
}

#[tokio::test]
async fn list_watch_prints_the_jobs_then_each_change_as_it_happens() {
    use std::io::BufRead;
    let server = TestServer::start().await;
    let before = server
        .start_spec(pb::JobSpec {
            labels: [("group".to_string(), "watched".to_string())].into(),
            ..server.spec("say before")
        })
        .await;
    server.wait_finished(&before.id).await;
    let mut watching = std::process::Command::new(support::bin("codex-jobs"))
        .args(["list", "--watch", "--json", "--label", "group=watched"])
        .env("CODEX_JOBS_ENDPOINT", server.endpoint())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (lines, received) = std::sync::mpsc::channel();
    let stdout = watching.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if lines.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let next = || -> Value {
        let line = received
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("a line within 30 s");
        serde_json::from_str(&line).expect("one JSON job a line")
    };
    let first = next();
    assert_eq!(first["job_id"], before.id.as_str());
    assert_eq!(first["status"], "done");

    let later = server
        .start_spec(pb::JobSpec {
            labels: [("group".to_string(), "watched".to_string())].into(),
            ..server.spec("sleep 0.5\nsay later")
        })
        .await;
    let mut statuses = Vec::new();
    while statuses.last().is_none_or(|status| status != "done") {
        let line = next();
        assert_eq!(
            line["job_id"],
            later.id.as_str(),
            "only jobs with the label"
        );
        statuses.push(line["status"].as_str().unwrap().to_string());
    }
    assert!(statuses.contains(&"running".to_string()), "{statuses:?}");
    watching.kill().unwrap();
    watching.wait().unwrap();
}

#[test]
fn completions_and_the_man_page_come_from_the_parser() {
    let cli = support::bin("codex-jobs");
    let generate = |args: &[&str]| {
        let output = std::process::Command::new(&cli)
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        stdout(&output)
    };
    let scripts = tempfile::tempdir().unwrap();
    let bash_script = scripts.path().join("codex-jobs.bash");
    std::fs::write(&bash_script, generate(&["completions", "bash"])).unwrap();
    // What bash offers as a person types: the words so far, the last one partial.
    let complete = |words: &[&str]| -> String {
        let quoted: Vec<String> = words.iter().map(|word| format!("'{word}'")).collect();
        let current = words.len() - 1;
        let script = format!(
            "source '{}'; COMP_WORDS=({}); COMP_CWORD={current}; \
             _codex__jobs codex-jobs \"${{COMP_WORDS[{current}]}}\" \"${{COMP_WORDS[{}]}}\"; \
             echo \"${{COMPREPLY[*]}}\"",
            bash_script.display(),
            quoted.join(" "),
            current - 1
        );
        let output = std::process::Command::new("bash")
            .args(["-c", &script])
            .output()
            .unwrap();
        stdout(&output).trim().to_string()
    };
    assert_eq!(complete(&["codex-jobs", "li"]), "list");
    assert_eq!(complete(&["codex-jobs", "list", "--st"]), "--state");
    assert_eq!(
        complete(&["codex-jobs", "list", "--state", ""]),
        "queued running succeeded failed cancelled"
    );
    assert_eq!(
        complete(&["codex-jobs", "start", "--reasoning-effort", ""]),
        "low medium high"
    );
    assert!(generate(&["completions", "zsh"]).starts_with("#compdef codex-jobs"));
    assert!(generate(&["completions", "fish"]).contains("complete -c codex-jobs"));

    let page = generate(&["man"]);
    assert!(page.contains(".TH codex-jobs 1"), "{page}");
    for subcommand in ["start", "poll", "wait", "follow", "cancel", "list"] {
        assert!(
            page.contains(&format!("codex\\-jobs\\-{subcommand}(1)")),
            "{page}"
        );
    }

    let unknown = std::process::Command::new(&cli)
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("bash, elvish, fish, powershell, zsh")
    );
}

#[tokio::test]
async fn states_are_coloured_on_a_terminal_only_and_never_with_no_color() {
    let server = TestServer::start().await;
    let good = server.start_job("say fine").await;
    let bad = server.start_job("fail broken").await;
    server.wait_finished(&good.id).await;
    server.wait_finished(&bad.id).await;
    // On a terminal: `script` runs the CLI on a pseudo-terminal of its own.
    let on_a_terminal = |command: &str, no_color: bool| -> String {
        let mut script = std::process::Command::new("script");
        script
            .args(["-qec", command, "/dev/null"])
            .env("CODEX_JOBS_ENDPOINT", server.endpoint())
            .env_remove("NO_COLOR");
        if no_color {
            script.env("NO_COLOR", "1");
        }
        let output = script.output().unwrap();
        assert!(output.status.success(), "{output:?}");
        stdout(&output)
    };
    let cli = support::bin("codex-jobs").display().to_string();
    let coloured = on_a_terminal(&format!("{cli} list"), false);
    assert!(coloured.contains("\x1b[32msucceeded"), "{coloured:?}");
    assert!(
        coloured.contains("\x1b[31mfailed   \x1b[0m"),
        "{coloured:?}"
    );
    let polled = on_a_terminal(&format!("{cli} poll {}", good.id), false);
    assert!(polled.contains("\x1b[32msucceeded\x1b[0m"), "{polled:?}");

    for plain in [
        on_a_terminal(&format!("{cli} list"), true),
        on_a_terminal(&format!("{cli} list --json"), false),
        stdout(&server.cli(&["list"])),
    ] {
        assert!(!plain.contains('\x1b'), "{plain:?}");
        assert!(plain.contains("succeeded") && plain.contains("failed"));
    }
}

#[tokio::test]
async fn hosts_lists_the_server_itself_and_start_names_a_pool_it_serves() {
    let server = TestServer::with(ServerOptions::default().args([
        "--host-id",
        "build-1",
        "--pool",
        "default",
        "--pool",
        "gpu",
    ]))
    .await;
    let hosts = json(&server.cli(&["hosts", "--json"]));
    assert_eq!(hosts[0]["id"], "build-1");
    assert_eq!(hosts[0]["pools"], serde_json::json!(["default", "gpu"]));
    assert_eq!(hosts[0]["alive"], true);
    let table = stdout(&server.cli(&["hosts"]));
    assert!(table.starts_with("HOST"), "{table}");
    assert!(
        table.contains("build-1") && table.contains("default,gpu"),
        "{table}"
    );

    let started = json(&server.cli(&["start", "--json", "--pool", "gpu", "say on a gpu"]));
    let id = started["job_id"].as_str().unwrap();
    let done = json(&server.cli(&["wait", "--json", id]));
    assert_eq!(done["state"], "succeeded");
    assert_eq!(
        (done["pool"].as_str(), done["host"].as_str()),
        (Some("gpu"), Some("build-1"))
    );
    // A pool this host does not serve: refused, and the hosts named.
    let refused = server.cli(&["start", "--pool", "tpu", "say never"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("no live host serves pool tpu"), "{stderr}");
    assert!(stderr.contains("build-1 (pools default, gpu)"), "{stderr}");
}
