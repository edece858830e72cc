//! codex-jobs-server: runs Codex CLI jobs in the background and serves them over
//! gRPC.
//!
//! - [`job`]: the job model;
//! - [`manager`]: the job manager, the plain-Rust heart (start, get, poll, follow,
//!   cancel, list);
//! - [`store`]: job metadata in SQLite;
//! - [`runner`]: the per-job runner process and the on-disk record it keeps;
//! - [`output`]: reading output logs by offset;
//! - [`service`]: the gRPC adapter; [`tls`]: TLS on TCP listeners; [`config`]: the
//!   command line.

pub mod config;
pub mod error;
pub mod job;
pub mod manager;
pub mod metrics;
pub mod output;
pub mod runner;
pub mod service;
pub mod store;
pub mod tls;
pub mod watch;
pub mod web;
pub mod worktree;

use std::{
    future::Future, os::unix::fs::PermissionsExt, path::Path, path::PathBuf, sync::Arc,
    time::Duration,
};

use anyhow::Context;
use codex_jobs_api::v1::codex_jobs_server::CodexJobsServer;
use tokio::{
    net::{TcpListener, UnixListener},
    task::JoinSet,
};
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{
    service::interceptor::InterceptedService,
    transport::{
        Server,
        server::{Router, TcpIncoming},
    },
};
use tonic_health::server::HealthReporter;

use config::{Listen, ServerArgs};
use manager::{HostConfig, JobManager, ManagerConfig};
use runner::RunnerConfig;
use service::{
    JobService,
    auth::{Authenticate, Tokens},
    limit::{MAX_REQUEST_BYTES, RequestLimit},
};

/// HTTP/2 streams one connection may have open at once: one client cannot tie up
/// the server with Follows.
const MAX_STREAMS_PER_CONNECTION: u32 = 256;

/// A server that is up: every listener is bound, and it serves until the shutdown
/// future given to [`run`] completes.
pub struct Running {
    addresses: Vec<Listen>,
    serving: tokio::task::JoinHandle<()>,
}

impl Running {
    /// The addresses it listens on; a TCP port 0 in the config is the real port here.
    pub fn addresses(&self) -> &[Listen] {
        &self.addresses
    }

    /// The first TCP address it listens on.
    pub fn tcp_address(&self) -> Option<std::net::SocketAddr> {
        self.addresses.iter().find_map(|listen| match listen {
            Listen::Tcp(addr) => Some(*addr),
            Listen::Unix(_) => None,
        })
    }

    /// Returns once it has shut down. Running jobs are left to their runners.
    pub async fn stopped(self) {
        let _ = self.serving.await;
    }
}

/// Opens the state dir, takes over the jobs found there, binds every listener and
/// serves until `shutdown` completes. Returns as soon as it serves.
pub async fn run(
    args: ServerArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Running> {
    args.check_exposure().map_err(anyhow::Error::msg)?;
    // Absolute, since Codex runs elsewhere and is handed paths inside it.
    let state_dir = std::path::absolute(args.state_dir())?;
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("cannot create the state dir {}", state_dir.display()))?;
    std::fs::set_permissions(&state_dir, std::fs::Permissions::from_mode(0o700))?;
    // One server per state dir: a second one would adopt the same runners and write
    // to the same job directories.
    let only_server = lock_state_dir(&state_dir)?;
    let tls = args.tls().map(tls::Tls::load).transpose()?;
    for addr in args.insecure_addresses() {
        tracing::warn!(
            "--insecure-no-auth: serving {addr} without TLS plus a token or client certificates; \
             anyone who can reach it can run code on this host"
        );
    }
    let manager = JobManager::open(manager_config(&args, state_dir)?).await?;
    let metrics = args.metrics.map(|_| Arc::new(metrics::Metrics::default()));
    if let (Some(addr), Some(metrics)) = (args.metrics, &metrics) {
        let bound = metrics::serve(addr, metrics.clone(), manager.clone()).await?;
        tracing::info!("metrics on http://{bound}/metrics");
    }
    let (router, web, health) = services(manager, metrics, &args).await?;

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut servers = JoinSet::new();
    let mut addresses = Vec::new();
    for listen in args.listen() {
        let router = router.clone();
        let mut stopped = stopped.clone();
        let shutdown = async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        match &listen {
            Listen::Unix(path) => {
                let incoming = UnixListenerStream::new(bind_unix(path)?);
                servers.spawn(router.serve_with_incoming_shutdown(incoming, shutdown));
                addresses.push(listen);
            }
            Listen::Tcp(addr) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr}"))?;
                // Port 0 picks a free port: report the one we got.
                addresses.push(Listen::Tcp(listener.local_addr()?));
                match &tls {
                    Some(tls) => {
                        let incoming = tls.clone().incoming(listener);
                        servers.spawn(router.serve_with_incoming_shutdown(incoming, shutdown))
                    }
                    None => {
                        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
                        servers.spawn(router.serve_with_incoming_shutdown(incoming, shutdown))
                    }
                };
            }
        }
    }
    if let Some(addr) = args.web {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} for --web"))?;
        let bound = listener.local_addr()?;
        let mut stopped = stopped.clone();
        let shutdown = async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        match &tls {
            Some(tls) => {
                let incoming = tls.clone().incoming(listener);
                servers.spawn(web.serve_with_incoming_shutdown(incoming, shutdown));
            }
            None => {
                let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
                servers.spawn(web.serve_with_incoming_shutdown(incoming, shutdown));
            }
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        tracing::info!("serving gRPC-Web on {scheme}://{bound}");
    }
    for address in &addresses {
        let scheme = match (address, &tls) {
            (Listen::Tcp(_), Some(_)) => "https://",
            (Listen::Tcp(_), None) => "http://",
            (Listen::Unix(_), _) => "",
        };
        tracing::info!("listening on {scheme}{address}");
    }
    if let Some(path) = &args.ready_file {
        write_ready_file(path, &addresses)?;
    }

    let serving = tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down; running jobs carry on under their runners");
        health
            .set_not_serving::<CodexJobsServer<JobService>>()
            .await;
        health
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
        let _ = stop.send(true);
        // Open Follow streams would hold a graceful shutdown forever: give them a moment.
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while servers.join_next().await.is_some() {}
        })
        .await;
        drop(only_server);
    });
    Ok(Running { addresses, serving })
}

/// The host's policy and limits, from the command line.
fn manager_config(args: &ServerArgs, state_dir: PathBuf) -> anyhow::Result<ManagerConfig> {
    let allowed_cwd_roots = args
        .allowed_cwd_roots
        .iter()
        .map(|root| {
            root.canonicalize()
                .with_context(|| format!("--allow-cwd {}", root.display()))
        })
        .collect::<anyhow::Result<_>>()?;
    let runner_bin = match &args.runner_bin {
        Some(runner) => runner.clone(),
        None => installed_runner()?,
    };
    Ok(ManagerConfig {
        state_dir,
        database: args.database_url.clone().map(|url| store::PostgresConfig {
            url,
            ca_cert: args.database_ca_cert.clone(),
        }),
        max_running: args.max_running as usize,
        max_queued: args.max_queued as usize,
        default_timeout: Duration::from_secs(args.default_timeout),
        max_sandbox: args.max_sandbox,
        allowed_cwd_roots,
        retain_finished: Some(args.retain_finished).filter(|age| !age.is_zero()),
        runner: RunnerConfig {
            runner_bin,
            codex_bin: args.codex_bin.clone(),
            kill_grace: args.kill_grace,
            exit_grace: args.exit_grace,
            max_output_bytes: args.max_output_bytes,
        },
        host: HostConfig {
            id: args.host_id(),
            address: args.advertise.clone().unwrap_or_default(),
            pools: args.pools(),
            lost_after: args.host_lost_after,
        },
    })
}

/// How this host reaches the others that share its store.
fn fleet_credentials(args: &ServerArgs) -> codex_jobs_client::Credentials {
    codex_jobs_client::Credentials {
        token: args.fleet_token.clone(),
        ca_cert: args.fleet_ca_cert.clone(),
        ..Default::default()
    }
}

/// The --web router: the web view's page, and the job service and health as
/// gRPC-Web, over HTTP/1.1 too.
type WebRouter = Router<
    tower::layer::util::Stack<
        tonic_web::GrpcWebLayer,
        tower::layer::util::Stack<web::PageLayer, tower::layer::util::Identity>,
    >,
>;

/// The gRPC services every listener serves, the same for browsers (--web), and
/// the reporter that tells health checks whether they do.
async fn services(
    manager: Arc<JobManager>,
    metrics: Option<Arc<metrics::Metrics>>,
    args: &ServerArgs,
) -> anyhow::Result<(Router, WebRouter, HealthReporter)> {
    let tokens = Tokens::load(args.token.as_deref(), args.tokens_file.as_deref())?;
    let auth = Authenticate::new(tokens);
    // The token first, then the size: a stranger learns nothing of the limits.
    let jobs = metrics::Measured {
        inner: InterceptedService::new(
            RequestLimit(
                CodexJobsServer::new(JobService::new(manager, fleet_credentials(args)))
                    .max_decoding_message_size(MAX_REQUEST_BYTES),
            ),
            auth.clone(),
        ),
        metrics,
    };
    // Health answers without a token, for load balancers and probes.
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<CodexJobsServer<JobService>>().await;
    // Reflection shows what the service offers: it needs the same token.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(codex_jobs_api::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = InterceptedService::new(reflection().build_v1()?, auth.clone());
    let reflection_v1alpha = InterceptedService::new(reflection().build_v1alpha()?, auth);
    let web = Server::builder()
        .accept_http1(true)
        .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION))
        .layer(web::PageLayer)
        .layer(tonic_web::GrpcWebLayer::new())
        .add_service(health_service.clone())
        .add_service(jobs.clone());
    let router = Server::builder()
        // A peer behind a dead network path is noticed within a minute.
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION))
        .add_service(health_service)
        .add_service(jobs)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);
    Ok((router, web, health))
}

/// Writes the addresses the server listens on to `path`, one per line, atomically:
/// a supervisor or a test that started it on port 0 reads them there.
fn write_ready_file(path: &Path, addresses: &[Listen]) -> anyhow::Result<()> {
    let text: String = addresses
        .iter()
        .map(|address| format!("{address}\n"))
        .collect();
    let dir = path.parent().filter(|dir| !dir.as_os_str().is_empty());
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .context("--ready-file must name a file")?;
    runner::record::write_atomically(dir.unwrap_or(Path::new(".")), name, text.as_bytes(), false)
        .with_context(|| format!("cannot write --ready-file {}", path.display()))
}

/// Takes the state dir's lock for as long as the returned file stays open.
fn lock_state_dir(state_dir: &Path) -> anyhow::Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    let path = state_dir.join("server.lock");
    let file = std::fs::File::create(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    // SAFETY: flock only takes a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        anyhow::bail!(
            "another codex-jobs-server is already using the state dir {}",
            state_dir.display()
        );
    }
    Ok(file)
}

/// `codex-jobs-runner`, installed next to this server's executable.
fn installed_runner() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let runner = exe.with_file_name("codex-jobs-runner");
    anyhow::ensure!(
        runner.is_file(),
        "{} is missing: it must be installed next to {}",
        runner.display(),
        exe.display()
    );
    Ok(runner)
}

/// Binds a Unix socket readable and writable by this user only, replacing a stale
/// socket file but never a live server's.
fn bind_unix(path: &Path) -> anyhow::Result<UnixListener> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!(
                "another server is already listening on unix:{}",
                path.display()
            );
        }
        std::fs::remove_file(path)?;
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let listener = UnixListener::bind(path)
        .with_context(|| format!("cannot listen on unix:{}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Completes on SIGTERM or SIGINT: the shutdown a server run from a terminal or a
/// service manager wants.
pub async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut terminate), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot listen for SIGTERM and SIGINT; stop the server with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
}
