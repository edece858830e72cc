//! The server's command line: every flag, its environment variable and default.

use std::{net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use clap::Parser;

use crate::{job::Sandbox, tls::TlsFiles};

/// Runs OpenAI Codex CLI jobs (`codex exec`) in the background and serves them over
/// gRPC (service codex.jobs.v1.CodexJobs). Jobs outlive this server: stop and start
/// it at will.
#[derive(Debug, Parser)]
#[command(
    name = "codex-jobs-server",
    version,
    args_conflicts_with_subcommands = true
)]
pub struct ServerArgs {
    #[command(subcommand)]
    pub command: Option<ServerCommand>,

    /// Directory for the job database and the jobs' output [default: the user's data
    /// dir, e.g. ~/.local/share/codex-jobs]
    #[arg(long, env = "CODEX_JOBS_STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    /// Keep the jobs in this PostgreSQL database (`postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`,
    /// `?sslmode=require` for TLS) instead of the SQLite file in the state dir. Its
    /// schema is created or brought up to date at start
    #[arg(
        long,
        env = "CODEX_JOBS_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,

    /// PEM file of the CA that signs the database's certificate, trusted besides the
    /// system's roots (with `?sslmode=require` in --database-url)
    #[arg(
        long,
        env = "CODEX_JOBS_DATABASE_CA_CERT",
        value_name = "FILE",
        requires = "database_url"
    )]
    pub database_ca_cert: Option<PathBuf>,

    /// Where to listen, repeatable: `unix:PATH` or `HOST:PORT` [default:
    /// unix:<state dir>/codex-jobs.sock, which the CLI and the MCP bridge use when given
    /// no endpoint]. Non-loopback addresses need TLS (--tls-cert, --tls-key) and a
    /// token or client certificates (--token, --tls-client-ca).
    #[arg(long = "listen", value_name = "ADDR")]
    pub listen: Vec<Listen>,

    /// The Codex CLI to run.
    #[arg(long, env = "CODEX_JOBS_CODEX_BIN", default_value = "codex")]
    pub codex_bin: PathBuf,

    /// The codex-jobs-runner executable [default: the one next to this server]
    #[arg(long, env = "CODEX_JOBS_RUNNER_BIN", value_name = "FILE")]
    pub runner_bin: Option<PathBuf>,

    /// Once listening, write the addresses (one per line, a TCP port 0 as the port
    /// it got) to this file, for supervisors and scripts.
    #[arg(long, value_name = "FILE")]
    pub ready_file: Option<PathBuf>,

    /// Jobs that run at once; later ones wait in a first-in, first-out queue.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_running: u32,

    /// Jobs that may wait in the queue; Start beyond it fails with RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_queued: u32,

    /// Timeout in seconds of jobs that set none.
    #[arg(long, value_name = "SECS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=604_800))]
    pub default_timeout: u64,

    /// Seconds between SIGTERM and SIGKILL when a job is cancelled or times out.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = grace_period)]
    pub kill_grace: Duration,

    /// Seconds Codex may linger after reporting `turn.completed` before it is ended
    /// (the job then counts as finished by its own report).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = grace_period)]
    pub exit_grace: Duration,

    /// The most output (transcript, events and stderr together) kept of one job;
    /// past it the logs stop, with a last line saying so, and the job carries on.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 30, value_parser = clap::value_parser!(u64).range(4096..))]
    pub max_output_bytes: u64,

    /// The highest sandbox a job may ask for: read-only, workspace-write,
    /// danger-full-access or bypass (--dangerously-bypass-approvals-and-sandbox).
    #[arg(long, default_value = "danger-full-access")]
    pub max_sandbox: Sandbox,

    /// This host's name among the hosts that share the job database, 1-64
    /// characters of [A-Za-z0-9._-]; jobs name it to run here [default: the
    /// machine's hostname]. A host restarted with the same id takes its running
    /// jobs back.
    #[arg(long, env = "CODEX_JOBS_HOST_ID", value_name = "NAME", value_parser = host_name)]
    pub host_id: Option<String>,

    /// The URL the other hosts reach this one's service at (`http://HOST:PORT` or
    /// `https://HOST:PORT`, one of --listen), to read the output of the jobs that run
    /// here. Needed when hosts share a database
    #[arg(long, env = "CODEX_JOBS_ADVERTISE", value_name = "URL", value_parser = advertised)]
    pub advertise: Option<String>,

    /// A pool whose jobs this host takes, repeatable [default: default]
    #[arg(long = "pool", value_name = "NAME", value_parser = host_name)]
    pub pools: Vec<String>,

    /// How long another host may go without a heartbeat before the jobs it was
    /// running end as failed, reason lost (until then they show host_unreachable):
    /// `10m`, `1h`
    #[arg(long, value_name = "AGE", default_value = "10m", value_parser = lost_after)]
    pub host_lost_after: Duration,

    /// The bearer token this host presents to the other hosts when it reads or
    /// cancels a job that runs there
    #[arg(long, env = "CODEX_JOBS_FLEET_TOKEN", hide_env_values = true)]
    pub fleet_token: Option<String>,

    /// PEM file of the CA that signs the other hosts' certificates, for https://
    /// addresses [default: the system's roots]
    #[arg(long, env = "CODEX_JOBS_FLEET_CA_CERT", value_name = "FILE")]
    pub fleet_ca_cert: Option<PathBuf>,

    /// Directories a job's cwd must lie under, repeatable [default: anywhere].
    #[arg(long = "allow-cwd", value_name = "DIR")]
    pub allowed_cwd_roots: Vec<PathBuf>,

    /// Delete jobs (their records and logs) this long after they ended: `30d`, `12h`,
    /// `90m`; `0` keeps them until deleted by hand (codex-jobs delete, prune)
    #[arg(long, value_name = "AGE", default_value = "30d", value_parser = retention)]
    pub retain_finished: Duration,

    /// A bearer token that calls must carry (`authorization: Bearer <token>`): a
    /// shortcut for one token named `token` with scope write.
    #[arg(long, env = "CODEX_JOBS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Tokens, one per line: `NAME SCOPE sha256:HASH`, scope `read` (Poll, List,
    /// Follow) or `write` (everything). Make one with `codex-jobs-server token new
    /// NAME`. Read again when it changes.
    #[arg(long, env = "CODEX_JOBS_TOKENS_FILE", value_name = "FILE")]
    pub tokens_file: Option<PathBuf>,

    /// PEM certificate (chain) to serve TLS with on every TCP listener. Re-read when
    /// it changes; open connections carry on.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// PEM file of the CA that signs client certificates: every TLS client must then
    /// present one (mutual TLS).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,

    /// Serve the service to browsers too, as gRPC-Web (HTTP/1.1 or HTTP/2) on HOST:PORT,
    /// with the same TLS and token rules as --listen. Off by default
    #[arg(long, value_name = "ADDR")]
    pub web: Option<SocketAddr>,

    /// Serve Prometheus metrics at http://ADDR/metrics (HOST:PORT; no TLS or token:
    /// counts and timings only, no job's content). Off by default
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,

    /// DANGER: serve non-loopback TCP addresses without TLS, or without a token or
    /// client certificates. Anyone who can reach the port can then run code on
    /// this host, and tokens and output cross the network in plain text.
    #[arg(long)]
    pub insecure_no_auth: bool,
}

/// What the server binary does besides serving.
#[derive(Debug, clap::Subcommand)]
pub enum ServerCommand {
    /// Manage the tokens of --tokens-file.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Make a new token: prints its secret (shown this once; give it to the client)
    /// and the line to add to the tokens file (which holds only its hash).
    New {
        /// Who the token is for; jobs it starts record `token NAME`.
        name: String,
        /// read: Poll, List, Follow; write: everything.
        #[arg(long, value_parser = ["read", "write"], default_value = "write")]
        scope: String,
    },
}

/// A retention time: a humantime duration (`30d`, `1h 30m`) or `0`.
fn retention(text: &str) -> Result<Duration, String> {
    if text.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(text)
        .map_err(|err| format!("{err}: give a duration like 30d, 12h or 90m, or 0 to keep jobs"))
}

/// A host's or a pool's name.
fn host_name(text: &str) -> Result<String, String> {
    let fits = (1..=64).contains(&text.len())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !fits {
        return Err("expected 1-64 characters of A-Z a-z 0-9 . _ -".into());
    }
    Ok(text.to_string())
}

/// An address other hosts reach this one at.
fn advertised(text: &str) -> Result<String, String> {
    let rest = text
        .strip_prefix("http://")
        .or_else(|| text.strip_prefix("https://"))
        .ok_or("expected http://HOST:PORT or https://HOST:PORT")?;
    if rest.is_empty() || rest.contains('/') {
        return Err("expected http://HOST:PORT or https://HOST:PORT, without a path".into());
    }
    Ok(text.to_string())
}

/// How long a host may be gone: at least the time of three missed heartbeats.
fn lost_after(text: &str) -> Result<Duration, String> {
    let age = humantime::parse_duration(text)
        .map_err(|err| format!("{err}: give a duration like 10m or 1h"))?;
    if age < Duration::from_secs(15) {
        return Err("must be at least 15s: a host heartbeats every 5 s".into());
    }
    Ok(age)
}

/// A grace period in seconds: 0 to 3600, fractions allowed.
fn grace_period(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .filter(|secs| (0.0..=3600.0).contains(secs))
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("expected seconds between 0 and 3600, got {text:?}"))
}

/// One address to listen on.
#[derive(Clone, Debug, PartialEq)]
pub enum Listen {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl FromStr for Listen {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("unix: needs a socket path, e.g. unix:/run/codex-jobs.sock".into());
            }
            return Ok(Listen::Unix(path.into()));
        }
        use std::net::ToSocketAddrs;
        text.to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .map(Listen::Tcp)
            .ok_or_else(|| format!("{text:?} is neither HOST:PORT nor unix:PATH"))
    }
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Unix(path) => write!(f, "unix:{}", path.display()),
            Listen::Tcp(addr) => write!(f, "{addr}"),
        }
    }
}

impl ServerArgs {
    pub fn state_dir(&self) -> PathBuf {
        self.state_dir
            .clone()
            .unwrap_or_else(codex_jobs_api::defaults::state_dir)
    }

    /// This host's id: --host-id, else the machine's hostname (what of it a host id
    /// may hold).
    pub fn host_id(&self) -> String {
        if let Some(id) = &self.host_id {
            return id.clone();
        }
        let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let id: String = name
            .trim()
            .chars()
            .map(|c| match c {
                'A'..='Z' | 'a'..='z' | '0'..='9' | '.' | '_' | '-' => c,
                _ => '-',
            })
            .take(64)
            .collect();
        if id.is_empty() {
            "localhost".into()
        } else {
            id
        }
    }

    /// The pools this host serves.
    pub fn pools(&self) -> Vec<String> {
        if self.pools.is_empty() {
            vec![crate::job::DEFAULT_POOL.to_string()]
        } else {
            self.pools.clone()
        }
    }

    pub fn listen(&self) -> Vec<Listen> {
        if self.listen.is_empty() {
            vec![Listen::Unix(self.state_dir().join("codex-jobs.sock"))]
        } else {
            self.listen.clone()
        }
    }

    fn has_tokens(&self) -> bool {
        self.token.is_some() || self.tokens_file.is_some()
    }

    /// The TLS files, when TLS is on.
    pub fn tls(&self) -> Option<TlsFiles> {
        Some(TlsFiles {
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
            client_ca: self.tls_client_ca.clone(),
        })
    }

    /// Refuses to expose the service beyond this host without TLS, and without a
    /// token or client certificates, unless told to in so many words.
    pub fn check_exposure(&self) -> Result<(), String> {
        for addr in self.tcp_addresses() {
            if addr.ip().is_loopback() || self.insecure_no_auth {
                continue;
            }
            if self.tls().is_none() {
                return Err(format!(
                    "refusing to listen on {addr} without TLS: tokens and job output would cross the \
                     network in plain text. Pass --tls-cert FILE --tls-key FILE (and --token or \
                     --tls-client-ca), or --insecure-no-auth if you really mean it"
                ));
            }
            if !self.has_tokens() && self.tls_client_ca.is_none() {
                return Err(format!(
                    "refusing to listen on {addr} without a token or client certificates: anyone \
                     who reaches it could run code on this host. Pass --tokens-file (or --token) \
                     or --tls-client-ca, or --insecure-no-auth if you really mean it"
                ));
            }
        }
        Ok(())
    }

    /// The non-loopback TCP addresses served with less than TLS plus a token or
    /// client certificates (only under --insecure-no-auth).
    pub fn insecure_addresses(&self) -> Vec<SocketAddr> {
        let secured =
            self.tls().is_some() && (self.token.is_some() || self.tls_client_ca.is_some());
        self.tcp_addresses()
            .into_iter()
            .filter(|addr| !addr.ip().is_loopback() && !secured)
            .collect()
    }

    /// Every TCP address the service is served on: the --listen ones and --web.
    fn tcp_addresses(&self) -> Vec<SocketAddr> {
        self.listen()
            .into_iter()
            .filter_map(|listen| match listen {
                Listen::Tcp(addr) => Some(addr),
                Listen::Unix(_) => None,
            })
            .chain(self.web)
            .collect()
    }
}
