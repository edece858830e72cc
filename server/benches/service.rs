//! The service's speed, memory and scale, measured in one run with the real binaries
//! on real sockets (loopback TCP) and the fake `codex` of the test fixtures.
//!
//!     cargo bench -p codex-jobs-server --bench service            # the full run
//!     cargo bench -p codex-jobs-server --bench service -- --quick # a few iterations
//!
//! Prints one table: each figure as median and p99 (or peak), with its target.

use codex_jobs_test_support as support;

use std::{
    collections::BTreeMap,
    io::Write,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use codex_jobs_server::{
    job::{DEFAULT_POOL, Isolation, Job, JobSpec, JobState, Sandbox, now_millis},
    store::Store,
};
use support::{Client, ServerOptions, TestServer, pb};

/// How much of everything to do.
struct Scale {
    quick: bool,
    polls: usize,
    starts: usize,
    ticks: usize,
    big_output_bytes: u64,
    follow_bytes: usize,
    stored_jobs: usize,
    running_jobs: usize,
    cpu_window: Duration,
    clients: usize,
    load_window: Duration,
    bridge_calls: usize,
}

impl Scale {
    fn new(quick: bool) -> Scale {
        if quick {
            Scale {
                quick,
                polls: 50,
                starts: 5,
                ticks: 10,
                big_output_bytes: 20 << 20,
                follow_bytes: 2 << 20,
                stored_jobs: 500,
                running_jobs: 20,
                cpu_window: Duration::from_secs(1),
                clients: 10,
                load_window: Duration::from_millis(500),
                bridge_calls: 20,
            }
        } else {
            Scale {
                quick,
                polls: 2000,
                starts: 100,
                ticks: 200,
                big_output_bytes: 1 << 30,
                follow_bytes: 200 << 20,
                stored_jobs: 10_000,
                running_jobs: 1000,
                cpu_window: Duration::from_secs(5),
                clients: 100,
                load_window: Duration::from_secs(3),
                bridge_calls: 300,
            }
        }
    }
}

/// One row of the table.
struct Row {
    figure: String,
    measured: String,
    target: &'static str,
}

#[derive(Default)]
struct Table(Vec<Row>);

impl Table {
    fn add(&mut self, figure: impl Into<String>, measured: String, target: &'static str) {
        let row = Row {
            figure: figure.into(),
            measured,
            target,
        };
        eprintln!("  {}: {}", row.figure, row.measured);
        self.0.push(row);
    }

    fn print(&self) {
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        println!("\ncodex-jobs benchmark ({cores} cores, loopback)\n");
        println!("| figure | measured | target |");
        println!("|---|---|---|");
        for row in &self.0 {
            println!("| {} | {} | {} |", row.figure, row.measured, row.target);
        }
    }
}

/// Median and 99th percentile.
fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99))
}

fn show(duration: Duration) -> String {
    if duration < Duration::from_millis(1) {
        format!("{} µs", duration.as_micros())
    } else {
        format!("{:.2} ms", duration.as_secs_f64() * 1e3)
    }
}

fn show_p50_p99(samples: Vec<Duration>) -> String {
    let (p50, p99) = percentiles(samples);
    format!("p50 {}, p99 {}", show(p50), show(p99))
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Memory only this process uses (private clean + dirty pages), in KiB.
fn private_kib(pid: u32) -> u64 {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    rollup
        .lines()
        .filter(|line| line.starts_with("Private_Clean:") || line.starts_with("Private_Dirty:"))
        .filter_map(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}

/// CPU time a process has used (user + system).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Duration::from_secs_f64(ticks as f64 / per_second)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn job_dir(server: &TestServer, id: &str) -> std::path::PathBuf {
    server.state_dir().join("jobs").join(id)
}

async fn poll_samples(
    client: &mut Client,
    request: &pb::PollRequest,
    count: usize,
) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        client.poll(request.clone()).await.expect("Poll");
        samples.push(started.elapsed());
    }
    samples
}

fn tail_request(job_id: &str, lines: u32) -> pb::PollRequest {
    pb::PollRequest {
        job_id: job_id.into(),
        window: Some(pb::poll_request::Window::TailLines(lines)),
        ..Default::default()
    }
}

/// Poll: tails of a small and a huge log, and "nothing new" since an offset.
async fn bench_poll(server: &TestServer, scale: &Scale, table: &mut Table) -> String {
    let line = "x".repeat(60);
    let one_mb = server.start_job(&format!("lines 16000 {line}")).await;
    let (job, _) = server.wait_finished(&one_mb.id).await;
    let mut client = server.client().await;
    let samples = poll_samples(&mut client, &tail_request(&one_mb.id, 100), scale.polls).await;
    let (small_p50, _) = percentiles(samples.clone());
    table.add(
        format!(
            "Poll, tail 100 lines, {} MB of output",
            job.output_size / 1_000_000
        ),
        show_p50_p99(samples),
        "p50 <= 150 µs, p99 <= 1 ms",
    );

    // A job with a huge transcript. Generating it through Codex would take many
    // minutes, so its log is grown directly; Poll reads it exactly as any other.
    let big = server.start_job("say the start of a long story").await;
    server.wait_finished(&big.id).await;
    let path = job_dir(server, &big.id).join("transcript.log");
    let mut log = std::io::BufWriter::new(
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap(),
    );
    let mut written = 0u64;
    let mut index = 0u64;
    while written < scale.big_output_bytes {
        let text = format!("line {index} {line}\n");
        log.write_all(text.as_bytes()).unwrap();
        written += text.len() as u64;
        index += 1;
    }
    log.flush().unwrap();
    drop(log);
    let samples = poll_samples(&mut client, &tail_request(&big.id, 100), scale.polls).await;
    let (big_p50, _) = percentiles(samples.clone());
    table.add(
        format!("the same, {} MB of output", written / 1_000_000),
        format!(
            "{} ({:+.0}% vs 1 MB)",
            show_p50_p99(samples),
            (big_p50.as_secs_f64() / small_p50.as_secs_f64() - 1.0) * 100.0
        ),
        "within 20% of the 1 MB figure",
    );

    let nothing_new = pb::PollRequest {
        job_id: one_mb.id.clone(),
        window: Some(pb::poll_request::Window::SinceOffset(job.output_size)),
        ..Default::default()
    };
    let samples = poll_samples(&mut client, &nothing_new, scale.polls).await;
    table.add(
        "Poll, since offset, nothing new",
        show_p50_p99(samples),
        "p50 <= 100 µs",
    );

    // The floor under the figures above: the same RPC, refused before it touches
    // the store or a file.
    let refused = tail_request("not-a-job-id", 100);
    let mut samples = Vec::with_capacity(scale.polls);
    for _ in 0..scale.polls {
        let started = Instant::now();
        client
            .poll(refused.clone())
            .await
            .expect_err("a malformed id is refused");
        samples.push(started.elapsed());
    }
    table.add(
        "(floor) a Poll refused as malformed: the gRPC round trip alone",
        show_p50_p99(samples),
        "-",
    );
    one_mb.id
}

/// Start, and Start until the job's first output byte reaches a follower.
/// How long one job took, seen by a client that started it and followed it on the
/// same connection (connecting is not part of the figures).
struct Timed {
    id: String,
    /// Until Start answered.
    started: Duration,
    /// Until the first output byte reached the follower.
    first_output: Duration,
    /// Until the job had ended.
    ended: Duration,
}

/// Starts `spec` and follows the job to its end, which must be a success.
async fn start_and_follow(client: &mut Client, spec: pb::JobSpec) -> Timed {
    let clock = Instant::now();
    let response = client
        .start(pb::StartRequest {
            spec: Some(spec),
            ..Default::default()
        })
        .await
        .expect("Start");
    let started = clock.elapsed();
    let id = response.job.unwrap().id;
    let mut stream = client
        .follow(pb::FollowRequest {
            job_id: id.clone(),
            ..Default::default()
        })
        .await
        .expect("Follow");
    let mut first_output = None;
    while let Some(message) = stream.message().await.expect("stream") {
        match message.event {
            Some(pb::follow_response::Event::Output(_)) if first_output.is_none() => {
                first_output = Some(clock.elapsed());
            }
            Some(pb::follow_response::Event::Job(job)) if codex_jobs_client::is_finished(&job) => {
                assert_eq!(job.state(), pb::JobState::Succeeded, "{job:?}");
            }
            _ => {}
        }
    }
    Timed {
        id,
        started,
        first_output: first_output.expect("output before the end"),
        ended: clock.elapsed(),
    }
}

async fn bench_start(server: &TestServer, scale: &Scale, table: &mut Table) {
    let mut client = server.client().await;
    let mut start_samples = Vec::new();
    let mut followable_samples = Vec::new();
    for _ in 0..scale.starts {
        let timed = start_and_follow(&mut client, server.spec("say ready")).await;
        start_samples.push(timed.started);
        followable_samples.push(timed.first_output);
    }
    table.add(
        "Start RPC (fake codex), until the response",
        show_p50_p99(start_samples),
        "p50 <= 3 ms",
    );
    table.add(
        "Start until the first output byte reaches a follower",
        show_p50_p99(followable_samples),
        "p50 <= 20 ms",
    );
}

/// A git repository of `files` small files, 100 to a directory, committed.
fn big_repository(dir: &Path, files: usize) {
    for n in 0..files {
        let sub = dir.join(format!("src/m{:03}", n / 100));
        if n % 100 == 0 {
            std::fs::create_dir_all(&sub).unwrap();
        }
        let text = format!("// file {n}\npub fn f{n}() -> usize {{\n    {n}\n}}\n");
        std::fs::write(sub.join(format!("f{n}.rs")), text).unwrap();
    }
    support::git(dir, &["init", "--quiet"]);
    support::git(dir, &["add", "--all"]);
    support::git(dir, &["commit", "--quiet", "-m", "files"]);
}

/// What a worktree costs a job: Start, its first output and its end (with the
/// change summed up) in a repository of many files, with and without a worktree.
async fn bench_worktree(server: &TestServer, scale: &Scale, table: &mut Table) {
    let files = if scale.quick { 1_000 } else { 10_000 };
    let scratch = tempfile::tempdir().unwrap();
    let repo = scratch.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    big_repository(&repo, files);
    // The floor: git itself making (and removing) such a worktree.
    let mut by_git = Vec::new();
    for n in 0..scale.starts.min(30) {
        let path = scratch.path().join(format!("by-git-{n}"));
        let path = path.to_str().unwrap();
        let started = Instant::now();
        support::git(&repo, &["worktree", "add", "--quiet", "--detach", path]);
        by_git.push(started.elapsed());
        support::git(&repo, &["worktree", "remove", "--force", path]);
    }
    table.add(
        format!("git worktree add alone, {files}-file repository"),
        show_p50_p99(by_git),
        "(git's own cost)",
    );
    let mut client = server.client().await;
    for isolation in [pb::Isolation::None, pb::Isolation::Worktree] {
        let (mut starts, mut first_output, mut ended) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..scale.starts.min(30) {
            let spec = pb::JobSpec {
                cwd: repo.display().to_string(),
                isolation: isolation.into(),
                ..server.spec("run echo changed >> src/m000/f0.rs\nsay ready")
            };
            let timed = start_and_follow(&mut client, spec).await;
            starts.push(timed.started);
            first_output.push(timed.first_output);
            ended.push(timed.ended);
            client.delete(&timed.id).await.expect("Delete");
            if isolation == pb::Isolation::None {
                // Each plain job starts from the same clean checkout.
                support::git(&repo, &["checkout", "--quiet", "."]);
            }
        }
        let (how, target) = match isolation {
            pb::Isolation::Worktree => ("in a worktree", "(the cost of a worktree)"),
            _ => ("in the checkout", "(the baseline)"),
        };
        table.add(
            format!("Start RPC, {files}-file repository, {how}"),
            show_p50_p99(starts),
            target,
        );
        table.add(
            format!("Start until the first output byte, {files} files, {how}"),
            show_p50_p99(first_output),
            target,
        );
        table.add(
            format!("Start until ended (change summed up), {files} files, {how}"),
            show_p50_p99(ended),
            target,
        );
    }
}

/// For each line of a `ticks` job (the wall-clock time it was printed, in ns), how
/// long it took to reach this follower.
async fn tick_latencies(mut stream: tonic::Streaming<pb::FollowResponse>) -> Vec<Duration> {
    let mut samples = Vec::new();
    while let Some(message) = stream.message().await.expect("stream") {
        if let Some(pb::follow_response::Event::Output(chunk)) = message.event {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            for line in String::from_utf8_lossy(&chunk.data).lines() {
                if let Ok(printed) = line.parse::<u64>() {
                    samples.push(now.saturating_sub(Duration::from_nanos(printed)));
                }
            }
        }
    }
    samples
}

/// Follow: how soon a line Codex prints reaches a follower, and how fast a follower
/// catches up on a big log.
async fn bench_follow(server: &TestServer, scale: &Scale, table: &mut Table) {
    let job = server
        .start_job(&format!("ticks {} 0.01", scale.ticks))
        .await;
    let mut client = server.client().await;
    let samples = tick_latencies(server.follow(&job.id).await).await;
    table.add(
        "Follow: a line printed by codex until a follower has it",
        show_p50_p99(samples),
        "p50 <= 2 ms, p99 <= 10 ms",
    );

    let text = "y".repeat(1000);
    let lines = scale.follow_bytes / 1001;
    let big = server.start_job(&format!("lines {lines} {text}")).await;
    server.wait_finished(&big.id).await;
    let started = Instant::now();
    // On the open connection: connecting is not part of the figure.
    let mut stream = client
        .follow(pb::FollowRequest {
            job_id: big.id.clone(),
            ..Default::default()
        })
        .await
        .expect("Follow");
    let mut bytes = 0usize;
    while let Some(message) = stream.message().await.expect("stream") {
        if let Some(pb::follow_response::Event::Output(chunk)) = message.event {
            bytes += chunk.data.len();
        }
    }
    let rate = bytes as f64 / started.elapsed().as_secs_f64() / 1e6;
    table.add(
        format!("Follow throughput, {} MB log", bytes / 1_000_000),
        format!("{rate:.0} MB/s"),
        ">= 200 MB/s",
    );
}

/// Many pollers at once: their rate and each Poll's latency under that load, on a
/// finished job (answered from memory) and on a running one (a blocking thread
/// reads the log), against the ceiling of the same clients on a bare tonic server
/// that answers the same `PollResponse` from memory.
async fn bench_load(server: &TestServer, job_id: &str, scale: &Scale, table: &mut Table) {
    let running = server
        .start_job("lines 200 a line of the log\nsleep 120")
        .await;
    let nothing_new = |job_id: &str, size| pb::PollRequest {
        job_id: job_id.into(),
        window: Some(pb::poll_request::Window::SinceOffset(size)),
        ..Default::default()
    };
    let mut client = server.client().await;
    let size = client.poll(tail_request(job_id, 0)).await.unwrap().size;
    let finished = nothing_new(job_id, size);
    let answer = client.poll(finished.clone()).await.unwrap();
    let size = support::eventually("the job printed its lines", Duration::from_secs(20), || {
        let mut client = client.clone();
        let id = running.id.clone();
        async move {
            let polled = client.poll(tail_request(&id, 0)).await.ok()?;
            (polled.size > 0 && polled.job?.state() == pb::JobState::Running).then_some(polled.size)
        }
    })
    .await;
    let busy = nothing_new(&running.id, size);

    // The machine's speed drifts: the ceiling is measured before and after the
    // server, and their mean is the figure.
    let mut bare = bare::spawn(&answer);
    let (before_rate, mut bare_samples) = poll_load(&bare.endpoint, &finished, scale).await;
    let mut measured = Vec::new();
    for (what, request) in [("a finished job", &finished), ("a running job", &busy)] {
        measured.push((what, poll_load(&server.endpoint(), request, scale).await));
    }
    let (after_rate, after_samples) = poll_load(&bare.endpoint, &finished, scale).await;
    let _ = bare.process.kill();
    let _ = bare.process.wait();
    bare_samples.extend(after_samples);
    let bare_rate = (before_rate + after_rate) / 2.0;
    for (what, (rate, samples)) in measured {
        table.add(
            format!("{} clients polling {what} at once", scale.clients),
            format!(
                "{rate:.0} polls/s ({:.0}% of the ceiling), {}",
                rate / bare_rate * 100.0,
                show_p50_p99(samples)
            ),
            ">= 50% of the ceiling",
        );
    }
    table.add(
        "(ceiling) the same clients, bare tonic server answering from memory",
        format!("{bare_rate:.0} polls/s, {}", show_p50_p99(bare_samples)),
        "-",
    );
    client.cancel(&running.id).await.expect("Cancel");
}

/// `scale.clients` clients polling `endpoint` with `request` for `scale.load_window`:
/// the rate over all of them, and every Poll's latency.
async fn poll_load(
    endpoint: &str,
    request: &pb::PollRequest,
    scale: &Scale,
) -> (f64, Vec<Duration>) {
    let mut clients = Vec::new();
    for _ in 0..scale.clients {
        clients.push(Client::connect(endpoint, None).await.unwrap());
    }
    let started = Instant::now();
    let deadline = started + scale.load_window;
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            let request = request.clone();
            tokio::spawn(async move {
                let mut samples = Vec::new();
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    client.poll(request.clone()).await.expect("Poll");
                    samples.push(sent.elapsed());
                }
                samples
            })
        })
        .collect();
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await.unwrap());
    }
    let rate = samples.len() as f64 / started.elapsed().as_secs_f64();
    (rate, samples)
}

/// The ceiling for `bench_load`: a tonic server with no job manager behind it,
/// answering every Poll with one fixed response. It runs in a process of its own,
/// as the real server does: this benchmark's executable, started with `--bare-server`.
mod bare {
    use std::{
        io::{BufRead, BufReader, Read},
        pin::Pin,
        process::{Child, Command, Stdio},
    };

    use codex_jobs_api::v1::{
        self as pb,
        codex_jobs_server::{CodexJobs, CodexJobsServer},
    };
    use prost::Message;
    use tonic::{Request, Response, Status};

    pub struct Bare {
        pub process: Child,
        pub endpoint: String,
    }

    /// Starts a bare server that answers `answer` to every Poll.
    pub fn spawn(answer: &pb::PollResponse) -> Bare {
        let mut process = Command::new(std::env::current_exe().unwrap())
            .arg("--bare-server")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the bare server starts");
        use std::io::Write;
        let mut stdin = process.stdin.take().unwrap();
        stdin.write_all(&answer.encode_to_vec()).unwrap();
        drop(stdin);
        let mut line = String::new();
        BufReader::new(process.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        Bare {
            process,
            endpoint: format!("http://{}", line.trim()),
        }
    }

    /// The server side: reads the answer from stdin, prints its address, serves.
    pub async fn serve() {
        let mut bytes = Vec::new();
        std::io::stdin().read_to_end(&mut bytes).unwrap();
        let answer = pb::PollResponse::decode(bytes.as_slice()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", listener.local_addr().unwrap());
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        tonic::transport::Server::builder()
            .add_service(CodexJobsServer::new(Fixed(answer)))
            .serve_with_incoming(incoming)
            .await
            .unwrap();
    }

    struct Fixed(pb::PollResponse);

    type FollowStream =
        Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::FollowResponse, Status>> + Send>>;
    type WatchStream =
        Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::WatchResponse, Status>> + Send>>;

    #[tonic::async_trait]
    impl CodexJobs for Fixed {
        async fn poll(
            &self,
            _: Request<pb::PollRequest>,
        ) -> Result<Response<pb::PollResponse>, Status> {
            Ok(Response::new(self.0.clone()))
        }

        async fn start(
            &self,
            _: Request<pb::StartRequest>,
        ) -> Result<Response<pb::StartResponse>, Status> {
            Err(Status::unimplemented("bare"))
        }

        async fn cancel(
            &self,
            _: Request<pb::CancelRequest>,
        ) -> Result<Response<pb::CancelResponse>, Status> {
            Err(Status::unimplemented("bare"))
        }

        async fn list(
            &self,
            _: Request<pb::ListRequest>,
        ) -> Result<Response<pb::ListResponse>, Status> {
            Err(Status::unimplemented("bare"))
        }

        async fn delete(
            &self,
            _: Request<pb::DeleteRequest>,
        ) -> Result<Response<pb::DeleteResponse>, Status> {
            Err(Status::unimplemented("bare"))
        }

        async fn prune(
            &self,
            _: Request<pb::PruneRequest>,
        ) -> Result<Response<pb::PruneResponse>, Status> {
            Err(Status::unimplemented("bare"))
        }

        async fn list_hosts(
            &self,
            _: Request<pb::ListHostsRequest>,
        ) -> Result<Response<pb::ListHostsResponse>, Status> {
            Err(Status::unimplemented("bare"))
        }

        async fn diff(
            &self,
            _: Request<pb::DiffRequest>,
        ) -> Result<Response<pb::DiffResponse>, Status> {
            Err(Status::unimplemented("bare"))
        }

        async fn apply(
            &self,
            _: Request<pb::ApplyRequest>,
        ) -> Result<Response<pb::ApplyResponse>, Status> {
            Err(Status::unimplemented("bare"))
        }

        type FollowStream = FollowStream;

        async fn follow(
            &self,
            _: Request<pb::FollowRequest>,
        ) -> Result<Response<FollowStream>, Status> {
            Err(Status::unimplemented("bare"))
        }

        type WatchStream = WatchStream;

        async fn watch(
            &self,
            _: Request<pb::WatchRequest>,
        ) -> Result<Response<WatchStream>, Status> {
            Err(Status::unimplemented("bare"))
        }
    }
}

/// TLS: connecting (TCP, the TLS handshake, HTTP/2) and a Poll's round trip, next
/// to the same over plain text.
async fn bench_tls(plain: &TestServer, scale: &Scale, table: &mut Table) {
    let certs = support::Certs::new();
    let tls = TestServer::with(ServerOptions::default().tls(&certs, "server")).await;
    let line = "x".repeat(60);
    let mut rows = Vec::new();
    for (server, name) in [(plain, "plain text"), (&tls, "TLS")] {
        let job = server.start_job(&format!("lines 16000 {line}")).await;
        server.wait_finished(&job.id).await;
        let mut connects = Vec::new();
        for _ in 0..scale.starts {
            let started = Instant::now();
            let client = Client::connect_with(&server.endpoint(), &server.options.credentials)
                .await
                .expect("connect");
            connects.push(started.elapsed());
            drop(client);
        }
        let mut client = server.client().await;
        let polls = poll_samples(&mut client, &tail_request(&job.id, 100), scale.polls).await;
        rows.push((name, connects, polls));
    }
    for (name, connects, _) in &rows {
        table.add(
            format!("connect (TCP, {name}, HTTP/2), until ready"),
            show_p50_p99(connects.clone()),
            "-",
        );
    }
    for (name, _, polls) in rows {
        table.add(
            format!("Poll over {name}, tail 100 lines, 1 MB of output"),
            show_p50_p99(polls),
            "-",
        );
    }
}

/// `codex_poll` through the MCP bridge, from a client on its stdio.
async fn bench_bridge(server: &TestServer, job_id: &str, scale: &Scale, table: &mut Table) {
    let mut session = support::McpStdio::start(&["--endpoint".into(), server.endpoint()]);
    let arguments = serde_json::json!({"job_id": job_id, "tail_lines": 100});
    let mut samples = Vec::new();
    for call in 1..=scale.bridge_calls + 10 {
        let started = Instant::now();
        let result = session.call("codex_poll", arguments.clone());
        assert_eq!(result["isError"], false, "{result}");
        // The first calls warm up the bridge's connection.
        if call > 10 {
            samples.push(started.elapsed());
        }
    }
    table.add(
        "codex_poll through the MCP bridge (stdio), tail 100",
        show_p50_p99(samples),
        "p50 < 0.5 ms",
    );
}

/// Runs a timing script of another language (a fixture), which prints its samples
/// in nanoseconds as one JSON list.
fn timed_samples(name: &str, command: &mut Command) -> Vec<Duration> {
    let output = command.output().expect("the script runs");
    assert!(
        output.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let nanos: Vec<u64> = serde_json::from_slice(&output.stdout).expect("samples");
    nanos.into_iter().map(Duration::from_nanos).collect()
}

/// Poll (tail 100) through each client we ship, in one run: Rust, Python, Node.
async fn bench_clients(server: &TestServer, job_id: &str, scale: &Scale, table: &mut Table) {
    let mut client = server.client().await;
    let request = tail_request(job_id, 100);
    poll_samples(&mut client, &request, 10).await; // warm up
    let rust = poll_samples(&mut client, &request, scale.polls).await;
    let (rust_p50, _) = percentiles(rust.clone());
    table.add(
        "Poll tail 100 through the Rust client",
        show_p50_p99(rust),
        "-",
    );

    let count = scale.polls.to_string();
    let mut runs = Vec::new();
    if let Some(python) = support::python_package() {
        let mut command = Command::new(python);
        command.arg(support::fixture("bench_poll.py"));
        runs.push(("the Python client", command));
    }
    if let Some(project) = support::node_package() {
        // The script imports the package by name, so it runs from the project that has it.
        let script = project.join("bench_poll.mjs");
        std::fs::copy(support::fixture("bench_poll.mjs"), &script).unwrap();
        let mut command = Command::new("node");
        command.arg(script);
        runs.push(("the TypeScript client (Node)", command));
    }
    for (name, mut command) in runs {
        let samples = timed_samples(name, command.args([&server.endpoint(), job_id, &count]));
        let (p50, _) = percentiles(samples.clone());
        table.add(
            format!("the same through {name}"),
            format!(
                "{} ({:.1}x the Rust client)",
                show_p50_p99(samples),
                p50.as_secs_f64() / rust_p50.as_secs_f64()
            ),
            "-",
        );
    }
}

/// What an orchestrating agent reads to get one finished job's result through the
/// MCP bridge: start and then wait (with since_offset, as the tools teach), against
/// start and then a poll every 5 s (codex-async's loop). The job prints a few
/// hundred lines over about a minute; both run at once, each in its own session.
async fn bench_agent_bytes(server: &TestServer, scale: &Scale, table: &mut Table) {
    let seconds = if scale.quick { 3 } else { 60 };
    let prompt =
        "lines 5 a line of the job's progress\nsleep 1\n".repeat(seconds) + "say All done.";
    let cwd = server.work_dir().display().to_string();
    let session = |endpoint: String| support::McpStdio::start(&["--endpoint".into(), endpoint]);
    // The text of a tool result: what the model reads.
    fn text(result: &serde_json::Value) -> usize {
        result["content"][0]["text"].as_str().map_or(0, str::len)
    }
    fn running(result: &serde_json::Value) -> bool {
        matches!(
            result["structuredContent"]["status"].as_str(),
            Some("queued" | "running")
        )
    }
    let start = serde_json::json!({"prompt": prompt, "cwd": cwd});
    let waiting = {
        let mut session = session(server.endpoint());
        let start = start.clone();
        std::thread::spawn(move || {
            let started = session.call("codex_start", start);
            let job_id = started["structuredContent"]["job_id"].clone();
            let mut read = text(&started);
            let mut offset = started["structuredContent"]["next_offset"].clone();
            loop {
                let args = serde_json::json!({"job_id": job_id, "since_offset": offset, "timeout_seconds": 50});
                let result = session.call("codex_wait", args);
                read += text(&result);
                offset = result["structuredContent"]["next_offset"].clone();
                if !running(&result) {
                    assert_eq!(result["structuredContent"]["final_message"], "All done.");
                    return read;
                }
            }
        })
    };
    let polling = {
        let mut session = session(server.endpoint());
        std::thread::spawn(move || {
            let started = session.call("codex_start", start);
            let job_id = started["structuredContent"]["job_id"].clone();
            let mut read = text(&started);
            loop {
                std::thread::sleep(Duration::from_secs(5));
                let result = session.call("codex_poll", serde_json::json!({"job_id": job_id}));
                read += text(&result);
                if !running(&result) {
                    assert_eq!(result["structuredContent"]["final_message"], "All done.");
                    return read;
                }
            }
        })
    };
    let (waited, polled) = (waiting.join().unwrap(), polling.join().unwrap());
    table.add(
        format!(
            "bytes an agent reads for one job ({seconds} s, {} lines): start + wait",
            seconds * 5
        ),
        format!(
            "{waited} bytes ({:.0}% of start + poll every 5 s: {polled} bytes)",
            waited as f64 * 100.0 / polled as f64
        ),
        "<= 20% of start + poll",
    );
}

/// What MCP clients spend checking each tool result against its output schema: the
/// official Python SDK (jsonschema, on every call) and the TypeScript SDK (an ajv
/// validator compiled once), on a codex_poll result with 100 lines of output.
async fn bench_validation(server: &TestServer, job_id: &str, scale: &Scale, table: &mut Table) {
    let mut session = support::McpStdio::start(&["--endpoint".into(), server.endpoint()]);
    let tools = session.request("tools/list", serde_json::json!({}));
    let schema = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|tool| tool["name"] == "codex_poll")
        .expect("codex_poll is listed")["outputSchema"]
        .clone();
    let result = session.call(
        "codex_poll",
        serde_json::json!({"job_id": job_id, "tail_lines": 100}),
    )["structuredContent"]
        .clone();
    let dir = tempfile::tempdir().unwrap();
    let case = dir.path().join("case.json");
    std::fs::write(
        &case,
        serde_json::json!({"schema": schema, "result": result}).to_string(),
    )
    .unwrap();
    let count = (scale.polls / 4).max(20).to_string();
    let mut runs = Vec::new();
    if let Some(python) = support::python() {
        let mut command = Command::new(python);
        command.arg(support::fixture("sdk_validate.py"));
        runs.push(("Python MCP SDK", command));
    }
    if support::npm_tool(
        "mcp-inspector",
        "mcp-inspector",
        "@modelcontextprotocol/inspector@0.15.0",
    )
    .is_some()
    {
        // The inspector brings the SDK; the script imports it by name from there.
        let script = support::target_dir().join("mcp-inspector/sdk_validate.mjs");
        std::fs::copy(support::fixture("sdk_validate.mjs"), &script).unwrap();
        let mut command = Command::new("node");
        command.arg(script);
        runs.push(("TypeScript MCP SDK", command));
    }
    for (name, mut command) in runs {
        let samples = timed_samples(name, command.arg(&case).arg(&count));
        table.add(
            format!("output-schema check of a codex_poll result (100 lines), {name}"),
            show_p50_p99(samples),
            "p50 < 1 ms",
        );
    }
}

/// Memory and CPU with many jobs running silently.
async fn bench_many_running(scale: &Scale, table: &mut Table) {
    let running = scale.running_jobs.to_string();
    let server = TestServer::with(ServerOptions::default().args(["--max-running", &running])).await;
    let mut client = server.client().await;
    let mut ids = Vec::new();
    for _ in 0..scale.running_jobs {
        let response = client
            .start(pb::StartRequest {
                spec: Some(server.spec("sleep 120")),
                ..Default::default()
            })
            .await
            .expect("Start");
        ids.push(response.job.unwrap().id);
    }
    // Every runner has started Codex (its record names it).
    for id in &ids {
        let status = job_dir(&server, id).join("status.json");
        support::eventually("the job's codex runs", Duration::from_secs(120), || {
            let status = status.clone();
            async move {
                std::fs::read_to_string(status)
                    .ok()?
                    .contains("\"codex\":{")
                    .then_some(())
            }
        })
        .await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = server.pid();
    let rss = rss_kib(pid);
    let before = cpu_time(pid);
    tokio::time::sleep(scale.cpu_window).await;
    let cpu = (cpu_time(pid) - before).as_secs_f64() / scale.cpu_window.as_secs_f64() * 100.0;
    let runners: Vec<u64> = ids
        .iter()
        .filter_map(|id| {
            let status = std::fs::read_to_string(job_dir(&server, id).join("status.json")).ok()?;
            let status: serde_json::Value = serde_json::from_str(&status).ok()?;
            Some(private_kib(status["runner"]["pid"].as_u64()? as u32))
        })
        .collect();
    let n = scale.running_jobs;
    table.add(
        format!("{n} jobs running: server memory"),
        format!("{} RSS", mib(rss)),
        "<= 100 MiB RSS",
    );
    table.add(
        format!("{n} jobs running silently: server CPU"),
        format!("{cpu:.2}% of a core"),
        "<= 1% of a core",
    );
    let mean = runners.iter().sum::<u64>() / runners.len().max(1) as u64;
    let peak = runners.iter().copied().max().unwrap_or(0);
    table.add(
        "memory each runner adds (private pages)",
        format!("mean {mean} KiB, peak {peak} KiB"),
        "<= 1 MiB",
    );
    let cancels: Vec<_> = ids
        .into_iter()
        .map(|id| {
            let mut client = client.clone();
            tokio::spawn(async move { client.cancel(&id).await })
        })
        .collect();
    for cancel in cancels {
        cancel.await.unwrap().expect("Cancel");
    }
}

/// Fills a state dir (and the PostgreSQL database at `database`, if given) with
/// finished jobs, the way a server that ran them leaves it; returns their ids.
fn fill_store(state_dir: &Path, database: Option<&str>, count: usize) -> Vec<String> {
    std::fs::create_dir_all(state_dir.join("jobs")).unwrap();
    let store = match database {
        Some(url) => Store::postgres(&codex_jobs_server::store::PostgresConfig {
            url: url.into(),
            ca_cert: None,
        }),
        None => Store::sqlite(&state_dir.join("jobs.db")),
    }
    .unwrap();
    (0..count)
        .map(|index| {
            let spec = JobSpec {
                prompt: format!("job {index}: make the tests pass"),
                cwd: "/tmp".into(),
                model: String::new(),
                sandbox: Sandbox::WorkspaceWrite,
                timeout: None,
                labels: BTreeMap::from([("batch".to_string(), (index % 10).to_string())]),
                resume_thread_id: String::new(),
                reasoning_effort: None,
                pool: DEFAULT_POOL.into(),
                host: String::new(),
                isolation: Isolation::None,
            };
            let mut job = Job::queued(spec, None, String::new());
            store.insert(&job, 0, usize::MAX).unwrap();
            job.state = JobState::Succeeded;
            job.started_at = Some(now_millis());
            job.finished_at = Some(now_millis());
            job.final_message = "All tests pass.".into();
            store.finish(&job, JobState::Queued).unwrap();
            job.id.to_string()
        })
        .collect()
}

/// Start, Poll and List with the jobs in SQLite and in PostgreSQL (a cluster of the
/// benchmark's own on loopback), side by side.
async fn bench_backends(scale: &Scale, table: &mut Table) {
    let Some(postgres) = support::postgres::Postgres::start() else {
        return;
    };
    postgres.create_database("bench");
    let mut figures: Vec<[String; 3]> = Vec::new();
    for database in [None, Some(postgres.url("bench"))] {
        let state = tempfile::tempdir().unwrap();
        let (dir, url, count) = (
            state.path().to_path_buf(),
            database.clone(),
            scale.stored_jobs,
        );
        let stored = tokio::task::spawn_blocking(move || fill_store(&dir, url.as_deref(), count))
            .await
            .unwrap();
        let mut options = ServerOptions {
            state_dir: Some(state.path().to_path_buf()),
            sqlite: database.is_none(),
            ..ServerOptions::default()
        };
        if let Some(url) = &database {
            options = options.args(["--database-url", url]);
        }
        let server = TestServer::with(options).await;
        let mut client = server.client().await;

        let mut starts = Vec::new();
        for _ in 0..scale.starts {
            let started = Instant::now();
            let response = client
                .start(pb::StartRequest {
                    spec: Some(server.spec("say ready")),
                    ..Default::default()
                })
                .await
                .expect("Start");
            starts.push(started.elapsed());
            server.wait_finished(&response.job.unwrap().id).await;
        }
        // Each Poll a finished job not read before: the store answers, not a cache.
        let mut polls = Vec::new();
        for job_id in stored.iter().take(scale.polls) {
            let started = Instant::now();
            client.poll(tail_request(job_id, 10)).await.expect("Poll");
            polls.push(started.elapsed());
        }
        let request = pb::ListRequest {
            page_size: 20,
            ..Default::default()
        };
        let mut lists = Vec::new();
        for _ in 0..scale.polls.min(500) {
            let started = Instant::now();
            client.list(request.clone()).await.expect("List");
            lists.push(started.elapsed());
        }
        figures.push([
            show_p50_p99(starts),
            show_p50_p99(polls),
            show_p50_p99(lists),
        ]);
    }
    let rows = [
        "Start RPC",
        "Poll of a finished job, first read",
        "List, page of 20",
    ];
    for (index, row) in rows.into_iter().enumerate() {
        table.add(
            format!(
                "{row}, {} jobs stored: SQLite / PostgreSQL",
                scale.stored_jobs
            ),
            format!("{} / {}", figures[0][index], figures[1][index]),
            "-",
        );
    }
}

/// How long a fresh server process takes until it answers an RPC.
async fn time_to_first_rpc(state_dir: &Path) -> Duration {
    let socket = state_dir.join("bench.sock");
    let endpoint = format!("unix:{}", socket.display());
    let started = Instant::now();
    let mut server = Command::new(support::bin("codex-jobs-server"))
        .arg("--state-dir")
        .arg(state_dir)
        .arg("--listen")
        .arg(&endpoint)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let elapsed = loop {
        if let Ok(mut client) = Client::connect(&endpoint, None).await
            && client.list(pb::ListRequest::default()).await.is_ok()
        {
            break started.elapsed();
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    };
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    server.wait().unwrap();
    elapsed
}

/// Startup, empty and with many stored jobs, and List over them.
async fn bench_store(scale: &Scale, table: &mut Table) {
    let empty = tempfile::tempdir().unwrap();
    let mut samples = Vec::new();
    for _ in 0..5 {
        samples.push(time_to_first_rpc(empty.path()).await);
    }
    let empty_start = percentiles(samples).0;

    let full = tempfile::tempdir().unwrap();
    fill_store(full.path(), None, scale.stored_jobs);
    let mut samples = Vec::new();
    for _ in 0..5 {
        samples.push(time_to_first_rpc(full.path()).await);
    }
    let full_start = percentiles(samples).0;
    table.add(
        format!(
            "server start until it answers: empty / {} jobs",
            scale.stored_jobs
        ),
        format!("{} / {}", show(empty_start), show(full_start)),
        "<= 50 ms / <= 200 ms",
    );

    // Serve the filled state dir over TCP like the other figures.
    let server = TestServer::with(ServerOptions {
        state_dir: Some(full.path().to_path_buf()),
        ..ServerOptions::default()
    })
    .await;
    let mut client = server.client().await;
    let request = pb::ListRequest {
        page_size: 20,
        ..Default::default()
    };
    let mut samples = Vec::new();
    for _ in 0..scale.polls.min(500) {
        let started = Instant::now();
        let page = client.list(request.clone()).await.expect("List");
        samples.push(started.elapsed());
        assert_eq!(page.jobs.len(), 20);
    }
    table.add(
        format!("List, page of 20, over {} jobs", scale.stored_jobs),
        show_p50_p99(samples),
        "p50 <= 1 ms",
    );
    let idle = rss_kib(server.pid());
    table.add(
        "server idle memory",
        format!("{} RSS", mib(idle)),
        "<= 20 MiB RSS",
    );
}

/// `count` hosts of one fleet on `database`, each taking the default pool, 16 jobs
/// at a time.
async fn fleet_hosts(
    postgres: &support::postgres::Postgres,
    database: &str,
    count: usize,
) -> Vec<TestServer> {
    postgres.create_database(database);
    let mut hosts = Vec::new();
    for n in 0..count {
        let port = support::free_port();
        let options = ServerOptions::default().args([
            "--database-url",
            &postgres.url(database),
            "--host-id",
            &format!("host-{n}"),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--advertise",
            &format!("http://127.0.0.1:{port}"),
            "--max-running",
            "16",
        ]);
        hosts.push(TestServer::with(options).await);
    }
    hosts
}

/// Several job hosts on one PostgreSQL: Start throughput with one host and with
/// three (8 clients at once, spread over the hosts), and Poll and Follow of a job
/// through a host that does not run it, against the host that does.
async fn bench_fleet(scale: &Scale, table: &mut Table) {
    let Some(postgres) = support::postgres::Postgres::start() else {
        return;
    };
    const CLIENTS: usize = 8;
    let mut rates = Vec::new();
    let mut fleet = Vec::new();
    for count in [1, 3] {
        fleet = fleet_hosts(&postgres, &format!("fleet{count}"), count).await;
        let mut clients = tokio::task::JoinSet::new();
        let per_client = (scale.starts * 2 / CLIENTS).max(2);
        let started = Instant::now();
        for n in 0..CLIENTS {
            let host = &fleet[n % count];
            let (mut client, spec) = (host.client().await, host.spec("say ready"));
            clients.spawn(async move {
                for _ in 0..per_client {
                    let request = pb::StartRequest {
                        spec: Some(spec.clone()),
                        ..Default::default()
                    };
                    client.start(request).await.expect("Start");
                }
            });
        }
        clients.join_all().await;
        rates.push((CLIENTS * per_client) as f64 / started.elapsed().as_secs_f64());
    }
    table.add(
        "Start throughput on PostgreSQL, 8 clients: one host / three hosts (one machine)",
        format!("{:.0} / {:.0} Starts/s", rates[0], rates[1]),
        "three ≈ one (the same cores)",
    );

    // A job that ran on host-1, read through host-1 and through host-0.
    let (other, owner) = (&fleet[0], &fleet[1]);
    let pinned = |prompt: &str| pb::JobSpec {
        host: "host-1".into(),
        ..owner.spec(prompt)
    };
    let done = owner
        .start_spec(pinned("lines 16000 a line of the log"))
        .await;
    owner.wait_finished(&done.id).await;
    let request = tail_request(&done.id, 100);
    let mut figures = Vec::new();
    for host in [owner, other] {
        let mut client = host.client().await;
        figures.push(percentiles(poll_samples(&mut client, &request, scale.polls / 4).await).0);
    }
    table.add(
        "Poll tail 100 of a job on another host: through its host / through another",
        format!("p50 {} / {}", show(figures[0]), show(figures[1])),
        "through another <= its host + 1 ms",
    );

    // A line the job prints, until a follower through each host has it.
    let ticking = owner
        .start_spec(pinned(&format!("ticks {} 0.01", scale.ticks)))
        .await;
    let mut followers = Vec::new();
    for host in [owner, other] {
        let stream = host.follow(&ticking.id).await;
        followers.push(tokio::spawn(tick_latencies(stream)));
    }
    let through_owner = followers.remove(0).await.unwrap();
    let through_other = followers.remove(0).await.unwrap();
    table.add(
        "Follow: a printed line until a follower has it, through its host / through another",
        format!(
            "{} / {}",
            show_p50_p99(through_owner),
            show_p50_p99(through_other)
        ),
        "through another <= its host + 2 ms",
    );
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|arg| arg == "--bare-server") {
        return bare::serve().await;
    }
    let quick = std::env::args().any(|arg| arg == "--quick");
    // `--only load`: just the figures of one part (poll, start, follow, load,
    // bridge, validation, agent, tls, clients, worktree, store, backends, running,
    // fleet), when
    // working on it.
    let only = std::env::args().skip_while(|arg| arg != "--only").nth(1);
    let part = |name: &str| only.as_deref().is_none_or(|only| only == name);
    let scale = Scale::new(quick);
    eprintln!("measuring{}...", if scale.quick { " (quick)" } else { "" });
    let mut table = Table::default();
    let server = TestServer::with(ServerOptions::default().args(["--max-running", "16"])).await;
    let small_job = if part("poll") {
        bench_poll(&server, &scale, &mut table).await
    } else {
        let job = server.start_job("lines 16000 a line of the log").await;
        server.wait_finished(&job.id).await;
        job.id
    };
    if part("start") {
        bench_start(&server, &scale, &mut table).await;
    }
    if part("follow") {
        bench_follow(&server, &scale, &mut table).await;
    }
    if part("load") {
        bench_load(&server, &small_job, &scale, &mut table).await;
    }
    if part("bridge") {
        bench_bridge(&server, &small_job, &scale, &mut table).await;
    }
    if part("tls") {
        bench_tls(&server, &scale, &mut table).await;
    }
    if part("validation") {
        bench_validation(&server, &small_job, &scale, &mut table).await;
    }
    if part("agent") {
        bench_agent_bytes(&server, &scale, &mut table).await;
    }
    if part("clients") {
        bench_clients(&server, &small_job, &scale, &mut table).await;
    }
    if part("worktree") {
        bench_worktree(&server, &scale, &mut table).await;
    }
    drop(server);
    if part("store") {
        bench_store(&scale, &mut table).await;
    }
    if part("backends") {
        bench_backends(&scale, &mut table).await;
    }
    if part("running") {
        bench_many_running(&scale, &mut table).await;
    }
    if part("fleet") {
        bench_fleet(&scale, &mut table).await;
    }
    table.print();
}
