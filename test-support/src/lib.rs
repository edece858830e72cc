//! Shared setup of the end-to-end tests and the benchmark: a real
//! `codex-jobs-server` on a temporary state dir and a free loopback port, with the
//! fake `codex` of `fixtures/`, and the outside tools the tests drive.
//!
//! The tests run the workspace's binaries from the target directory they were built
//! into: `cargo test --workspace` (the README's test command) builds every one of
//! them first.

pub mod postgres;

use std::{
    collections::HashMap,
    future::Future,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::Duration,
};

pub use codex_jobs_client::{Client, ClientError, Credentials, pb};
use codex_jobs_server::runner::record::JobDir;
use tempfile::TempDir;

/// A file of `fixtures/`: the fake Codex CLI, the mock Responses API, Python clients.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// The fake Codex CLI.
pub fn fake_codex() -> PathBuf {
    fixture("fake-codex")
}

/// The directory the running test executable was built into (`target/debug` or
/// `target/release`), where cargo puts the workspace's binaries too.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    // target/<profile>/deps/<test>-<hash>
    let dir = exe.parent().expect("the test's directory");
    match dir.file_name() {
        Some(name) if name == "deps" => dir.parent().unwrap().to_path_buf(),
        _ => dir.to_path_buf(),
    }
}

/// A binary of this workspace (`codex-jobs-server`, `codex-jobs-runner`,
/// `codex-jobs`, `codex-jobs-mcp`), as cargo built it for this test run.
pub fn bin(name: &str) -> PathBuf {
    let path = profile_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: run the tests with `cargo test --workspace`, which builds every binary they run",
        path.display()
    );
    path
}

/// The workspace's `target` directory, where tests install the outside tools they
/// drive (the real Codex CLI, MCP clients).
pub fn target_dir() -> PathBuf {
    profile_dir()
        .parent()
        .expect("the profile dir lives in target/")
        .to_path_buf()
}

/// `target/<dir>/<bin>`, installed by `install` (run in `target/<dir>`'s parent) the
/// first time. `None` if it is not there and cannot be installed: then the caller
/// skips, except in CI, where it fails.
pub fn outside_tool(dir: &str, bin: &str, install: &[&str]) -> Option<PathBuf> {
    static INSTALLING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = INSTALLING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let path = target_dir().join(dir).join(bin);
    if !path.exists() {
        let installed = Command::new(install[0])
            .args(&install[1..])
            .current_dir(target_dir())
            .status();
        if !matches!(installed, Ok(status) if status.success()) || !path.exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must have {dir}/{bin}: `{}` failed",
                install.join(" ")
            );
            eprintln!(
                "SKIPPED: {dir}/{bin} is not installed and `{}` failed",
                install.join(" ")
            );
            return None;
        }
    }
    Some(path)
}

/// The executable `bin` of the npm `package`, installed into `target/<dir>`.
pub fn npm_tool(dir: &str, bin: &str, package: &str) -> Option<PathBuf> {
    npm_packages(dir, &format!("node_modules/.bin/{bin}"), &[package])
}

/// The npm `packages`, installed together into `target/<dir>`; `target/<dir>/<marker>`
/// is there once they are.
pub fn npm_packages(dir: &str, marker: &str, packages: &[&str]) -> Option<PathBuf> {
    let mut install = vec![
        "npm",
        "install",
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
        "--prefix",
        dir,
    ];
    install.extend_from_slice(packages);
    outside_tool(dir, marker, &install)
}

/// Runs git in `dir` as a person named test would, and returns what it printed;
/// panics if it fails.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("git prints UTF-8")
}

/// Makes `dir` (created if need be) a git repository with `files` (path, text)
/// committed on `main`, and returns it.
pub fn git_repository(dir: &Path, files: &[(&str, &str)]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "--quiet", "--initial-branch=main"]);
    for (path, text) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    git(dir, &["add", "--all"]);
    git(dir, &["commit", "--quiet", "-m", "the start"]);
    dir.to_path_buf()
}

/// A loopback TCP port that is free now, for a server that must be told its port
/// before it starts (an address to advertise, a second listener).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// The distribution's Chromium, for the web view's test (`apt-get install
/// chromium`). `None` if it is not installed: then the caller skips, except in CI,
/// where it fails.
pub fn chromium() -> Option<PathBuf> {
    let path = PathBuf::from("/usr/bin/chromium");
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must have {}: apt-get install chromium",
        path.display()
    );
    eprintln!("SKIPPED: {} is not installed", path.display());
    None
}

/// Python with the clients the tests drive (`fixtures/requirements.txt`, from
/// PyPI), in `target/py-venv`.
pub fn python() -> Option<PathBuf> {
    let requirements = fixture("requirements.txt");
    // The marker is named after the requirements, so a change installs them anew.
    let marker = format!(
        "installed-{:x}",
        checksum(&std::fs::read(&requirements).unwrap())
    );
    outside_tool(
        "py-venv",
        &marker,
        &[
            "sh",
            "-c",
            &format!(
                "python3 -m venv py-venv && py-venv/bin/pip install --quiet -r {} && touch py-venv/{marker}",
                requirements.display()
            ),
        ],
    )?;
    Some(target_dir().join("py-venv/bin/python"))
}

/// The workspace's root directory.
pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("test-support lives in the workspace")
        .to_path_buf()
}

/// Python (as [`python`]) with the `codex-jobs` package of `client/python`
/// installed the way a user installs it, `pip install ./client/python`; installed
/// anew whenever the package or the proto changes.
pub fn python_package() -> Option<PathBuf> {
    let python = python()?;
    let package = workspace_dir().join("client/python");
    let marker = format!("codex-jobs-{:x}", tree_checksum(&[&package, &proto_dir()]));
    outside_tool(
        "py-venv",
        &marker,
        &[
            "sh",
            "-c",
            &format!(
                "py-venv/bin/pip install --quiet {} && touch py-venv/{marker}",
                package.display()
            ),
        ],
    )?;
    Some(python)
}

/// A fresh npm project, `target/ts-client`, with the `codex-jobs` package of
/// `client/typescript` installed the way a user installs it, `npm install
/// --install-links ./client/typescript`; installed anew whenever the package or the
/// proto changes.
pub fn node_package() -> Option<PathBuf> {
    let package = workspace_dir().join("client/typescript");
    let marker = format!("codex-jobs-{:x}", tree_checksum(&[&package, &proto_dir()]));
    outside_tool(
        "ts-client",
        &marker,
        &[
            "sh",
            "-c",
            &format!(
                "rm -rf ts-client && mkdir ts-client && cd ts-client && npm init -y >/dev/null \
                 && npm install --no-audit --no-fund --loglevel=error --install-links {} \
                 && touch {marker}",
                package.display()
            ),
        ],
    )?;
    Some(target_dir().join("ts-client"))
}

fn proto_dir() -> PathBuf {
    workspace_dir().join("proto")
}

/// A checksum of the files under `roots`, leaving out what builds and installs
/// leave there.
fn tree_checksum(roots: &[&Path]) -> u64 {
    fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if matches!(
                name.as_ref(),
                "node_modules" | "dist" | "gen" | "build" | "__pycache__"
            ) || name.ends_with(".egg-info")
            {
                continue;
            }
            if path.is_dir() {
                walk(&path, files);
            } else {
                files.push(path);
            }
        }
    }
    let mut files = Vec::new();
    for root in roots {
        walk(root, &mut files);
    }
    files.sort();
    let mut bytes = Vec::new();
    for file in files {
        bytes.extend(file.to_string_lossy().as_bytes());
        bytes.extend(std::fs::read(&file).unwrap_or_default());
    }
    checksum(&bytes)
}

/// FNV-1a: a stable name for a file's content.
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |hash, &byte| {
        (hash ^ byte as u64).wrapping_mul(0x100000001b3)
    })
}

/// How to start a test server.
pub struct ServerOptions {
    pub args: Vec<String>,
    pub env: HashMap<String, String>,
    pub codex_bin: PathBuf,
    /// Serve this state dir instead of a fresh one.
    pub state_dir: Option<PathBuf>,
    /// TCP with TLS: the endpoint is `https://`.
    pub tls: bool,
    /// What the test's clients present.
    pub credentials: Credentials,
    /// Keep the jobs in the SQLite file in the state dir even where the suite runs
    /// on PostgreSQL (`postgres::SWITCH`): for tests of that file.
    pub sqlite: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            // Short grace periods keep cancel and timeout tests quick.
            args: ["--kill-grace", "2", "--exit-grace", "1"]
                .map(String::from)
                .into(),
            env: HashMap::new(),
            codex_bin: fake_codex(),
            state_dir: None,
            tls: false,
            credentials: Credentials::default(),
            sqlite: false,
        }
    }
}

impl ServerOptions {
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<const N: usize>(mut self, args: [&str; N]) -> Self {
        self.args.extend(args.map(String::from));
        self
    }

    /// Serves TLS with `certs`' server certificate (`server`, or another of its
    /// names); the test's clients trust `certs`' CA.
    pub fn tls(mut self, certs: &Certs, server: &str) -> Self {
        self.args.extend([
            "--tls-cert".into(),
            certs.path(&format!("{server}.pem")).display().to_string(),
            "--tls-key".into(),
            certs.path(&format!("{server}.key")).display().to_string(),
        ]);
        self.tls = true;
        self.credentials.ca_cert = Some(certs.path("ca.pem"));
        self
    }

    /// Requires `token`, which the test's clients send.
    pub fn token(mut self, token: &str) -> Self {
        self.args.extend(["--token".into(), token.into()]);
        self.credentials.token = Some(token.into());
        self
    }

    /// Requires client certificates signed by `certs`' CA; the test's clients
    /// present `client`.
    pub fn mtls(mut self, certs: &Certs) -> Self {
        self.args.extend([
            "--tls-client-ca".into(),
            certs.path("ca.pem").display().to_string(),
        ]);
        self.credentials.client_cert = Some(certs.path("client.pem"));
        self.credentials.client_key = Some(certs.path("client.key"));
        self
    }

    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }
}

/// A running `codex-jobs-server`, killed (with every job it started) on drop.
pub struct TestServer {
    pub dir: TempDir,
    /// The loopback port the server picked (it is started on port 0).
    pub port: u16,
    pub options: ServerOptions,
    child: Option<Child>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::with(ServerOptions::default()).await
    }

    pub async fn with(options: ServerOptions) -> TestServer {
        let dir = tempfile::tempdir().expect("a temp dir");
        std::fs::create_dir_all(dir.path().join("work")).unwrap();
        let mut server = TestServer {
            dir,
            port: 0,
            options,
            child: None,
        };
        server.launch().await;
        server
    }

    /// Starts the server process on this server's state dir and a free port, and
    /// waits until it answers.
    pub async fn launch(&mut self) {
        let ready_file = self.dir.path().join("ready");
        let _ = std::fs::remove_file(&ready_file);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .unwrap();
        let mut command = Command::new(bin("codex-jobs-server"));
        let database_given = self.options.args.iter().any(|arg| arg == "--database-url");
        if postgres::switched_on() && !self.options.sqlite && !database_given {
            command
                .arg("--database-url")
                .arg(postgres::database_for(&self.state_dir()));
        }
        let child = command
            .arg("--state-dir")
            .arg(self.state_dir())
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--listen")
            .arg(format!("unix:{}", self.socket().display()))
            .arg("--ready-file")
            .arg(&ready_file)
            .arg("--codex-bin")
            .arg(&self.options.codex_bin)
            .args(&self.options.args)
            .envs(&self.options.env)
            .env(TEST_MARK, self.dir.path())
            .env("FAKE_CODEX_PID_DIR", self.pid_dir())
            .env("FAKE_CODEX_ARGV_LOG", self.argv_log())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("the server starts");
        self.child = Some(child);
        // The server writes the addresses it got once it listens.
        let log = self.dir.path().join("server.log");
        self.port = eventually(
            "the server writes its ready file",
            Duration::from_secs(20),
            || {
                let ready_file = ready_file.clone();
                let log = log.clone();
                async move {
                    let Ok(addresses) = std::fs::read_to_string(ready_file) else {
                        let log = std::fs::read_to_string(log).unwrap_or_default();
                        assert!(
                            !log.contains(" ERROR "),
                            "the server failed to start:\n{log}"
                        );
                        return None;
                    };
                    addresses
                        .lines()
                        .find_map(|address| address.strip_prefix("127.0.0.1:")?.parse().ok())
                }
            },
        )
        .await;
        // Over the socket, which needs no certificate whatever the test's TLS.
        let socket = format!("unix:{}", self.socket().display());
        eventually("the server answers", Duration::from_secs(20), || {
            let socket = socket.clone();
            async move { Client::connect(&socket, None).await.ok() }
        })
        .await;
    }

    /// The server process's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server is running").id()
    }

    pub fn state_dir(&self) -> PathBuf {
        match &self.options.state_dir {
            Some(dir) => dir.clone(),
            None => self.dir.path().join("state"),
        }
    }

    /// A directory jobs can run in.
    pub fn work_dir(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("server.sock")
    }

    /// Where the fake codex writes `codex.pid` and `grandchild.pid`.
    pub fn pid_dir(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// Every command line the fake codex was started with, one per line.
    pub fn argv_log(&self) -> PathBuf {
        self.dir.path().join("codex-argv.log")
    }

    pub fn endpoint(&self) -> String {
        let scheme = if self.options.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub async fn client(&self) -> Client {
        Client::connect_with(&self.endpoint(), &self.options.credentials)
            .await
            .expect("connect")
    }

    /// `kill -9` the server; its jobs' runners carry on.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL the server");
            child.wait().unwrap();
        }
    }

    /// Sends SIGTERM and waits for the server to exit; returns its exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("the server is running");
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        child.wait().unwrap()
    }

    /// Runs the `codex-jobs` CLI against this server.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_with_stdin(args, "")
    }

    pub fn cli_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        use std::io::Write;
        let mut child = Command::new(bin("codex-jobs"))
            .args(args)
            .env("CODEX_JOBS_ENDPOINT", self.endpoint())
            .env_remove("CODEX_JOBS_TOKEN")
            .current_dir(self.work_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("codex-jobs runs");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// Starts a job running `prompt` (fake codex directives) in the work dir.
    pub async fn start_job(&self, prompt: &str) -> pb::Job {
        self.start_spec(self.spec(prompt)).await
    }

    pub fn spec(&self, prompt: &str) -> pb::JobSpec {
        pb::JobSpec {
            prompt: prompt.into(),
            cwd: self.work_dir().display().to_string(),
            ..Default::default()
        }
    }

    pub async fn start_spec(&self, spec: pb::JobSpec) -> pb::Job {
        self.client()
            .await
            .start(pb::StartRequest {
                spec: Some(spec),
                ..Default::default()
            })
            .await
            .expect("Start succeeds")
            .job
            .expect("Start returns the job")
    }

    /// Follows a job's transcript from its beginning.
    pub async fn follow(&self, job_id: &str) -> tonic::Streaming<pb::FollowResponse> {
        self.client()
            .await
            .follow(pb::FollowRequest {
                job_id: job_id.into(),
                ..Default::default()
            })
            .await
            .expect("Follow succeeds")
    }

    /// Long-polls through this server until the job's transcript holds `text`, and
    /// returns the transcript so far.
    pub async fn wait_for_output(&self, job_id: &str, text: &str) -> String {
        let mut client = self.client().await;
        let mut said = String::new();
        let mut offset = 0;
        while !said.contains(text) {
            let response = client
                .poll(pb::PollRequest {
                    job_id: job_id.into(),
                    window: Some(pb::poll_request::Window::SinceOffset(offset)),
                    wait: Some(prost_types::Duration {
                        seconds: 10,
                        nanos: 0,
                    }),
                    ..Default::default()
                })
                .await
                .expect("Poll succeeds");
            offset = response.next_offset;
            said += &String::from_utf8_lossy(&response.output);
        }
        said
    }

    /// Long-polls until the job is finished (at most 30 s) and returns it with its
    /// whole transcript.
    pub async fn wait_finished(&self, job_id: &str) -> (pb::Job, String) {
        let mut client = self.client().await;
        let response = client
            .wait(job_id, Some(Duration::from_secs(30)), 10_000)
            .await
            .expect("Poll succeeds");
        let job = response.job.unwrap();
        assert!(
            codex_jobs_client::is_finished(&job),
            "job {job_id} did not finish in time: {job:?}\n{}",
            self.log()
        );
        (job, String::from_utf8(response.output).unwrap())
    }

    /// Waits until the job is in `state`.
    pub async fn wait_for_state(&self, job_id: &str, state: pb::JobState) -> pb::Job {
        let client = self.client().await;
        eventually(
            &format!("job {job_id} is {state:?}"),
            Duration::from_secs(20),
            || {
                let client = client.clone();
                let job_id = job_id.to_string();
                async move {
                    let job = poll_job(client, &job_id).await;
                    (job.state() == state).then_some(job)
                }
            },
        )
        .await
    }

    /// The pid the fake codex wrote to `name` in the pid dir, once it is there.
    pub async fn pid_file(&self, name: &str) -> i32 {
        let path = self.pid_dir().join(name);
        eventually(
            &format!("{name} is written"),
            Duration::from_secs(20),
            || {
                let path = path.clone();
                async move { std::fs::read_to_string(path).ok()?.trim().parse().ok() }
            },
        )
        .await
    }
}

async fn poll_job(mut client: Client, job_id: &str) -> pb::Job {
    client
        .poll(pb::PollRequest {
            job_id: job_id.into(),
            ..Default::default()
        })
        .await
        .expect("Poll succeeds")
        .job
        .unwrap()
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
        // End whatever runners and Codex processes the test left behind, as their
        // records name them.
        if let Ok(jobs) = std::fs::read_dir(self.state_dir().join("jobs")) {
            for job in jobs.flatten() {
                let Ok(Some(status)) = JobDir::new(job.path()).read_status() else {
                    continue;
                };
                if let Some(codex) = status.codex {
                    codex.kill_session();
                }
                status.runner.kill_session();
            }
        }
        // Then nothing the test started may be left.
        let leaked = leftover_processes(self.dir.path());
        if !leaked.is_empty() {
            for pid in &leaked {
                unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
            }
            if !std::thread::panicking() {
                panic!("processes this test started outlived it: {leaked:?}");
            }
        }
    }
}

/// The environment variable that marks every process a `TestServer` starts (the
/// server, its runners, Codex and whatever Codex starts) with its temp dir.
pub const TEST_MARK: &str = "CODEX_JOBS_TEST_DIR";

/// The live processes marked with `dir`, once those that are dying have had up to
/// five seconds to go.
pub fn leftover_processes(dir: &Path) -> Vec<u32> {
    let mark = format!("{TEST_MARK}={}", dir.display()).into_bytes();
    let marked = || -> Vec<u32> {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| process_alive(*pid as i32))
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|environ| environ.split(|&b| b == 0).any(|var| var == mark))
            })
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let left = marked();
        if left.is_empty() || std::time::Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Retries `check` until it returns `Some` or `timeout` passes (then panics with
/// `what`). For waiting on things that have no event to wait for.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The MCP bridge on pipes, spoken to in raw JSON-RPC lines, for what an MCP SDK
/// would hide: the wire itself, and timing. The session is initialized; the bridge
/// is killed on drop.
pub struct McpStdio {
    bridge: Child,
    input: std::process::ChildStdin,
    output: std::io::BufReader<std::process::ChildStdout>,
    next_id: u64,
    /// What every request carries in `_meta` on the stateless protocol.
    meta: Option<serde_json::Value>,
}

impl McpStdio {
    fn spawn(args: &[String]) -> McpStdio {
        let mut bridge = Command::new(bin("codex-jobs-mcp"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the bridge starts");
        McpStdio {
            input: bridge.stdin.take().unwrap(),
            output: std::io::BufReader::new(bridge.stdout.take().unwrap()),
            bridge,
            next_id: 0,
            meta: None,
        }
    }

    /// A session on the stateless protocol (2026-07-28): no `initialize`; each
    /// request names the protocol version and the client's `capabilities`.
    pub fn start_stateless(args: &[String], capabilities: serde_json::Value) -> McpStdio {
        let mut session = McpStdio::spawn(args);
        session.meta = Some(serde_json::json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": capabilities,
        }));
        session
    }

    pub fn start(args: &[String]) -> McpStdio {
        let mut session = McpStdio::spawn(args);
        session.request(
            "initialize",
            serde_json::json!({"protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "test", "version": "1"}}),
        );
        session.send_line(
            &serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
                .to_string(),
        );
        session
    }

    /// Writes one line as it is.
    pub fn send_line(&mut self, line: &str) {
        use std::io::Write;
        self.input.write_all(line.as_bytes()).unwrap();
        self.input.write_all(b"\n").unwrap();
        self.input.flush().unwrap();
    }

    /// Reads the next message the bridge writes.
    pub fn receive(&mut self) -> serde_json::Value {
        use std::io::BufRead;
        let mut line = String::new();
        self.output.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line:?}"))
    }

    /// Sends a request and returns its answer.
    pub fn request(&mut self, method: &str, mut params: serde_json::Value) -> serde_json::Value {
        if let Some(meta) = &self.meta {
            params["_meta"] = meta.clone();
        }
        self.next_id += 1;
        let id = self.next_id;
        self.send_line(
            &serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
                .to_string(),
        );
        let answer = self.receive();
        assert_eq!(answer["id"], id, "{answer}");
        answer
    }

    /// Calls a tool and returns its result.
    pub fn call(&mut self, tool: &str, arguments: serde_json::Value) -> serde_json::Value {
        let answer = self.request(
            "tools/call",
            serde_json::json!({"name": tool, "arguments": arguments}),
        );
        answer["result"].clone()
    }
}

impl Drop for McpStdio {
    fn drop(&mut self) {
        let _ = self.bridge.kill();
        let _ = self.bridge.wait();
    }
}

/// Two network namespaces joined by a veth pair, so that traffic between a server
/// in one and a client in the other really leaves loopback. Deleted on drop.
pub struct NetPair {
    pub server_ns: String,
    pub client_ns: String,
    pub server_ip: String,
    pub client_ip: String,
    server_link: String,
}

impl NetPair {
    /// `None` where namespaces cannot be made (not root, no `ip`): the caller
    /// skips, except in CI, where it fails.
    pub fn new() -> Option<NetPair> {
        // Unique per process and per pair, as tests run in parallel.
        static PAIRS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = PAIRS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("{}x{n}", std::process::id());
        let (a, b) = (200 + n % 50, std::process::id() % 250);
        let pair = NetPair {
            server_ns: format!("cj-srv-{id}"),
            client_ns: format!("cj-cli-{id}"),
            server_ip: format!("10.{a}.{b}.1"),
            client_ip: format!("10.{a}.{b}.2"),
            server_link: format!("cjs{id}"),
        };
        let client_link = format!("cjc{id}");
        let steps: Vec<Vec<String>> = vec![
            vec!["netns".into(), "add".into(), pair.server_ns.clone()],
            vec!["netns".into(), "add".into(), pair.client_ns.clone()],
            [
                "link",
                "add",
                &pair.server_link,
                "type",
                "veth",
                "peer",
                "name",
                &client_link,
            ]
            .map(String::from)
            .into(),
            ["link", "set", &pair.server_link, "netns", &pair.server_ns]
                .map(String::from)
                .into(),
            ["link", "set", &client_link, "netns", &pair.client_ns]
                .map(String::from)
                .into(),
        ];
        let mut ok = steps.iter().all(|args| ip(args));
        for (ns, link, address) in [
            (&pair.server_ns, &pair.server_link, &pair.server_ip),
            (&pair.client_ns, &client_link, &pair.client_ip),
        ] {
            let cidr = format!("{address}/30");
            ok = ok
                && ip(&["-n", ns, "addr", "add", &cidr, "dev", link].map(String::from))
                && ip(&["-n", ns, "link", "set", link, "up"].map(String::from))
                && ip(&["-n", ns, "link", "set", "lo", "up"].map(String::from));
        }
        if !ok {
            drop(pair);
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must be able to make network namespaces (it runs as root)"
            );
            eprintln!("SKIPPED: cannot make network namespaces here (not root?)");
            return None;
        }
        Some(pair)
    }

    /// `command` to run inside the server's (or the client's) namespace.
    pub fn command_in(&self, ns: &str, program: &Path) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", ns]).arg(program);
        command
    }

    /// Cuts the path between the two without a word: the client's end of the link
    /// goes down, so nothing the server sends arrives, and nothing comes back.
    pub fn cut(&self) {
        let client_link = self.server_link.replacen("cjs", "cjc", 1);
        assert!(ip(&[
            "-n",
            &self.client_ns,
            "link",
            "set",
            &client_link,
            "down"
        ]
        .map(String::from)));
    }

    /// Bytes the server's end of the link has sent.
    pub fn server_sent_bytes(&self) -> u64 {
        let output = Command::new("ip")
            .args([
                "-n",
                &self.server_ns,
                "-s",
                "link",
                "show",
                &self.server_link,
            ])
            .output()
            .expect("ip runs");
        // "TX:  bytes packets ..." then the numbers on the next line.
        let text = String::from_utf8_lossy(&output.stdout);
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            if line.trim_start().starts_with("TX:") {
                return lines
                    .next()
                    .and_then(|numbers| numbers.split_whitespace().next()?.parse().ok())
                    .unwrap_or(0);
            }
        }
        0
    }
}

fn ip(args: &[String]) -> bool {
    Command::new("ip")
        .args(args)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

impl Drop for NetPair {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of the pair, and so the other.
        for ns in [&self.server_ns, &self.client_ns] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A small filesystem of its own (tmpfs), to fill up; unmounted on drop.
pub struct SmallDisk {
    dir: TempDir,
}

impl SmallDisk {
    /// `None` where mounting is not allowed (not root): the caller skips, except
    /// in CI, where it fails.
    pub fn mount(bytes: u64) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().expect("a temp dir");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .status();
        if !matches!(mounted, Ok(status) if status.success()) {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must be able to mount a tmpfs (it runs as root)"
            );
            eprintln!("SKIPPED: cannot mount a tmpfs here (not root?)");
            return None;
        }
        Some(SmallDisk { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazily: a process of the test may still hold a file open on it.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Certificates for TLS tests, made with the openssl command line in a temp dir,
/// each as `<name>.pem` and `<name>.key`:
/// - `ca`: the private CA; `server` (for 127.0.0.1 and localhost) and `client` (for
///   `alice`) are signed by it, and so is `expired`, a server certificate that
///   expired yesterday;
/// - `other-ca`, and `other-server` and `other-client` signed by it: a CA nobody
///   was told to trust.
pub struct Certs {
    dir: TempDir,
}

impl Default for Certs {
    fn default() -> Self {
        Self::new()
    }
}

impl Certs {
    pub fn new() -> Certs {
        let certs = Certs {
            dir: tempfile::tempdir().expect("a temp dir"),
        };
        certs.ca("ca");
        certs.ca("other-ca");
        let server = "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth";
        certs.leaf("server", "ca", "localhost", server, 30);
        certs.leaf("expired", "ca", "localhost", server, -1);
        certs.leaf("other-server", "other-ca", "localhost", server, 30);
        let client = "subjectAltName=DNS:alice\nextendedKeyUsage=clientAuth";
        certs.leaf("client", "ca", "alice", client, 30);
        certs.leaf("other-client", "other-ca", "mallory", client, 30);
        certs
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Adds `<name>.pem` and `.key`: a server certificate from `ca` for `ip`.
    pub fn server_for_ip(&self, name: &str, ip: &str) {
        let ext = format!("subjectAltName=IP:{ip}\nextendedKeyUsage=serverAuth");
        self.leaf(name, "ca", ip, &ext, 30);
    }

    fn openssl(&self, args: &[&str]) {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("openssl runs");
        assert!(
            output.status.success(),
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn ca(&self, name: &str) {
        let (key, pem, subject) = (
            format!("{name}.key"),
            format!("{name}.pem"),
            format!("/CN={name}"),
        );
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &pem,
            "-days",
            "30",
            "-subj",
            &subject,
        ]);
    }

    /// A certificate for `cn`, signed by `ca`, with the extensions `ext`, valid for
    /// `days` (-1: it expired yesterday).
    fn leaf(&self, name: &str, ca: &str, cn: &str, ext: &str, days: i32) {
        let (key, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        let ext_file = format!("{name}.ext");
        std::fs::write(self.path(&ext_file), ext).unwrap();
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={cn}"),
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            &days.to_string(),
            "-extfile",
            &ext_file,
        ]);
    }
}

/// True while `pid` is a live process (not a zombie).
pub fn process_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .chars()
                .next();
            !matches!(state, Some('Z' | 'X') | None)
        }
        Err(_) => false,
    }
}

/// The gRPC status code of a failed call.
pub fn code(err: ClientError) -> tonic::Code {
    match err {
        ClientError::Status(status) => status.code(),
        other => panic!("expected a gRPC status, got {other}"),
    }
}

/// The message of a failed call.
pub fn message(err: &ClientError) -> String {
    err.to_string()
}
