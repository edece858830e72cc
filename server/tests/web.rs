//! The web view (--web): its files served from the binary, and the page itself in
//! a real browser, headless Chromium driven by Playwright
//! (`fixtures/web_view.mjs`).

use codex_jobs_test_support as support;

use std::{
    io::{Read, Write},
    net::TcpStream,
    process::Command,
};

use serde_json::Value;
use support::{ServerOptions, TestServer, pb};

const TOKEN: &str = "web-view-s3cret";

/// A server that requires a token, with the web view on a port of its own.
async fn server_with_web() -> (TestServer, u16) {
    let port = support::free_port();
    let server = TestServer::with(
        ServerOptions::default()
            .token(TOKEN)
            .args(["--web", &format!("127.0.0.1:{port}")]),
    )
    .await;
    (server, port)
}

/// `GET path` over HTTP/1.1: the status line, the headers (names lowercased) and
/// the body.
fn get(port: u16, path: &str) -> (String, Vec<(String, String)>, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("a complete response head");
    let head = String::from_utf8(response[..split].to_vec()).unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap().to_string();
    let headers = lines
        .filter_map(|line| line.split_once(": "))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.to_string()))
        .collect();
    (status, headers, response[split + 4..].to_vec())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

#[tokio::test]
async fn the_page_is_served_from_the_binary_without_a_token_and_under_a_strict_policy() {
    let (_server, port) = server_with_web().await;
    let built = support::workspace_dir().join("server/web");

    let (status, headers, body) = get(port, "/");
    assert!(status.ends_with("200 OK"), "{status}");
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(body, std::fs::read(built.join("index.html")).unwrap());
    let policy = header(&headers, "content-security-policy").unwrap();
    assert!(policy.contains("default-src 'none'"), "{policy}");
    assert!(policy.contains("connect-src 'self'"), "{policy}");
    assert_eq!(header(&headers, "x-content-type-options"), Some("nosniff"));

    let (status, headers, body) = get(port, "/app.js");
    assert!(status.ends_with("200 OK"), "{status}");
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(body, std::fs::read(built.join("dist/app.js")).unwrap());
    let (status, headers, _) = get(port, "/style.css");
    assert!(status.ends_with("200 OK"), "{status}");
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/css; charset=utf-8")
    );

    // Nothing else is served.
    let (status, _, body) = get(port, "/secrets.txt");
    assert!(!status.contains("200"), "{status}");
    assert!(body.is_empty());
}

#[tokio::test]
async fn a_person_follows_a_job_through_a_cut_cancels_it_and_replies_in_a_browser() {
    let Some(chromium) = support::chromium() else {
        return;
    };
    let dir = "web-view";
    let Some(_) = support::npm_packages(
        dir,
        "node_modules/playwright-core/package.json",
        &[
            "playwright-core@1.65.1",
            "@connectrpc/connect@2.1.2",
            "@connectrpc/connect-web@2.1.2",
            "@bufbuild/protobuf@2.13.0",
        ],
    ) else {
        return;
    };
    let script = support::target_dir().join(dir).join("web_view.mjs");
    std::fs::copy(support::fixture("web_view.mjs"), &script).unwrap();
    let shots = support::target_dir().join(dir).join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();

    let (server, port) = server_with_web().await;
    let descriptors = server.dir.path().join("jobs.binpb");
    std::fs::write(&descriptors, codex_jobs_api::FILE_DESCRIPTOR_SET).unwrap();
    // The jobs' directory is a repository, for a job in a worktree of its own.
    support::git_repository(&server.work_dir(), &[("notes.txt", "notes\n")]);
    // Two jobs that have ended, for the list to start with.
    let mut done = Vec::new();
    for prompt in [
        "Say hello\nsay hello",
        "Break something\nfail the tests do not pass",
    ] {
        let mut spec = server.spec(prompt);
        spec.labels.insert("team".into(), "web".into());
        let job = server.start_spec(spec).await;
        done.push(server.wait_finished(&job.id).await.0);
    }

    let mut command = Command::new("node");
    command
        .arg(&script)
        .arg(format!("http://127.0.0.1:{port}"))
        .arg(&descriptors)
        .arg(server.work_dir())
        .arg(TOKEN)
        .arg(&shots)
        .arg(&chromium);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let steps: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert!(
        output.status.success(),
        "the browser scenario failed after {steps:#?}\n{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        server.log()
    );
    let step = |name: &str| {
        steps
            .iter()
            .find(|step| step["step"] == name)
            .unwrap_or_else(|| panic!("no step {name} in {steps:#?}"))
    };

    // The page asked for the token, then listed the jobs, newest first.
    let list = step("list");
    assert_eq!(list["asked"], true);
    let listed: Vec<&str> = list["listed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [done[1].id.as_str(), done[0].id.as_str()]);
    assert_eq!(list["listed"][0]["state"], "failed");

    // A job started elsewhere came to the top of the list while it was open.
    let appeared = step("appeared");
    let id = appeared["id"].as_str().unwrap();
    assert_eq!(appeared["firstRow"], id);

    // Through the cut, the page's transcript is exactly the start of the server's:
    // nothing missing, nothing twice.
    let resumed = step("resumed");
    assert_eq!(resumed["reconnected"], true);
    let during = resumed["during"].as_str().unwrap();
    let server_during = resumed["serverDuring"].as_str().unwrap();
    assert!(during.starts_with(resumed["before"].as_str().unwrap()));
    assert!(
        server_during.starts_with(during),
        "the page shows:\n{during}\nthe server has:\n{server_during}"
    );
    for n in 1..=30 {
        assert_eq!(
            during.matches(&format!("case {n} passed\n")).count(),
            1,
            "{during}"
        );
    }

    // Cancelled, the page shows the whole transcript, as the server has it.
    let cancelled = step("cancelled");
    assert_eq!(cancelled["shown"], cancelled["server"]);
    let (job, _) = server.wait_finished(id).await;
    assert_eq!(job.state(), pb::JobState::Cancelled);
    assert!(job.created_by.starts_with("token"), "{}", job.created_by);

    // The follow-up continued the job's Codex thread.
    let reply = step("reply");
    assert!(!job.thread_id.is_empty());
    assert_eq!(reply["resumes"], job.thread_id.as_str());
    assert_eq!(reply["finalShown"], "follow-up done");

    // The filter shows only failed jobs; on a phone's width nothing spills sideways;
    // and the page's script threw nothing.
    let filter = step("filter");
    assert_eq!(filter["failed"], serde_json::json!(["failed"]));
    assert_eq!(filter["overflows"], false);
    assert_eq!(filter["pageErrors"], serde_json::json!([]));
    // A job in a worktree shows its change, file by file.
    let change = step("change");
    let head = support::git(&server.work_dir(), &["rev-parse", "HEAD"]);
    assert_eq!(change["worktree"], format!("from {}", head.trim()));
    let shown = change["shown"].as_str().unwrap();
    assert!(shown.starts_with("1 file, +1 -0 on codex-jobs/"), "{shown}");
    assert!(shown.ends_with("notes.txt +1 -0"), "{shown}");
    assert_eq!(change["pageErrors"], serde_json::json!([]));
    for shot in ["web-list.png", "web-job.png", "web-list-phone.png"] {
        assert!(
            shots.join(shot).metadata().unwrap().len() > 10_000,
            "{shot}"
        );
    }
}
