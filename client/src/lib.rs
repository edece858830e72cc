//! The Rust client of `codex-jobs-server`, shared by the `codex-jobs` CLI and the MCP
//! bridge.
//!
//! ```no_run
//! # async fn demo() -> Result<(), codex_jobs_client::ClientError> {
//! use codex_jobs_client::{Client, pb};
//! let mut client = Client::connect(&codex_jobs_client::default_endpoint(), None).await?;
//! let started = client
//!     .start(pb::StartRequest {
//!         spec: Some(pb::JobSpec { prompt: "fix the tests".into(), cwd: "/src/app".into(), ..Default::default() }),
//!         ..Default::default()
//!     })
//!     .await?;
//! # Ok(()) }
//! ```

pub mod cli;
mod connect;
pub mod json;
pub mod names;
mod reconnect;

pub use connect::{ConnectArgs, Credentials};

use std::time::Duration;

pub use codex_jobs_api::v1 as pb;
use pb::codex_jobs_client::CodexJobsClient;
pub use reconnect::{Reconnect, Watching};
use tonic::{
    Request, Status,
    metadata::MetadataValue,
    service::{Interceptor, interceptor::InterceptedService},
    transport::Channel,
};

/// The endpoint a client uses when given none: the default server's Unix socket.
pub fn default_endpoint() -> String {
    codex_jobs_api::defaults::endpoint()
}

/// The state dir of a server started with no `--state-dir`.
pub fn default_state_dir() -> std::path::PathBuf {
    codex_jobs_api::defaults::state_dir()
}

/// What can go wrong talking to a server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("bad endpoint {0:?}: use http://HOST:PORT, https://HOST:PORT or unix:PATH")]
    BadEndpoint(String),
    /// The TLS options cannot be used as given.
    #[error("{0}")]
    BadTls(String),
    #[error("bad token: {0}")]
    BadToken(String),
    #[error(
        "cannot reach codex-jobs-server at {endpoint}: {reason}. Start it with `codex-jobs-server` \
         (or pass --endpoint / set CODEX_JOBS_ENDPOINT)"
    )]
    Unreachable { endpoint: String, reason: String },
    #[error("{}", describe(.0))]
    Status(#[from] Status),
    /// What the caller gave could not be used (stdin, a path), before any request.
    #[error("{0}")]
    Input(String),
    /// A Follow stream broke and could not be resumed.
    #[error("{0}")]
    StreamLost(String),
}

/// A status as a sentence: the server's message already says what to do.
fn describe(status: &Status) -> String {
    use tonic::Code;
    let kind = match status.code() {
        Code::NotFound => "not found",
        Code::InvalidArgument => "invalid argument",
        Code::PermissionDenied => "permission denied",
        Code::ResourceExhausted => "resource exhausted",
        Code::Unauthenticated => "unauthenticated",
        Code::Unavailable => "server unavailable",
        _ => return format!("{:?}: {}", status.code(), with_source(status)),
    };
    format!("{kind}: {}", with_source(status))
}

/// A status's message and, for failures below gRPC (a TLS alert, a reset
/// connection), what caused them.
fn with_source(status: &Status) -> String {
    use std::error::Error;
    let message = status.message();
    match status.source().map(source_chain) {
        // tonic often repeats the message as the source's first words.
        Some(chain) if chain.starts_with(message) => chain,
        Some(chain) => format!("{message}: {chain}"),
        None => message.to_string(),
    }
}

/// Adds `authorization: Bearer <token>` to every request.
#[derive(Clone)]
pub struct BearerToken(Option<MetadataValue<tonic::metadata::Ascii>>);

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A connection to one server. Cloning is cheap and shares the connection.
#[derive(Clone)]
pub struct Client {
    rpc: CodexJobsClient<InterceptedService<Channel, BearerToken>>,
    endpoint: String,
}

impl Client {
    /// Connects to `endpoint` (`http://HOST:PORT`, `https://HOST:PORT` or
    /// `unix:PATH`), sending `token` as a bearer token if given. For TLS options,
    /// see [`Client::connect_with`].
    pub async fn connect(endpoint: &str, token: Option<&str>) -> Result<Client, ClientError> {
        let credentials = Credentials {
            token: token.map(String::from),
            ..Credentials::default()
        };
        Self::connect_with(endpoint, &credentials).await
    }

    /// Connects to `endpoint` with `credentials`: a bearer token, and for `https://`
    /// endpoints the CA to trust (else the system's roots) and a client certificate.
    pub async fn connect_with(
        endpoint: &str,
        credentials: &Credentials,
    ) -> Result<Client, ClientError> {
        let token = credentials
            .token
            .as_deref()
            .filter(|token| !token.is_empty())
            .map(|token| {
                format!("Bearer {token}")
                    .parse()
                    .map_err(|_| ClientError::BadToken("it must be printable ASCII".into()))
            })
            .transpose()?;
        let channel = connect::channel(endpoint, credentials).await?;
        Ok(Client {
            rpc: CodexJobsClient::with_interceptor(channel, BearerToken(token))
                .max_decoding_message_size(64 * 1024 * 1024),
            endpoint: endpoint.to_string(),
        })
    }

    /// The endpoint this client is connected to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub async fn start(
        &mut self,
        request: pb::StartRequest,
    ) -> Result<pb::StartResponse, ClientError> {
        Ok(self.rpc.start(request).await?.into_inner())
    }

    pub async fn poll(
        &mut self,
        request: pb::PollRequest,
    ) -> Result<pb::PollResponse, ClientError> {
        Ok(self.rpc.poll(request).await?.into_inner())
    }

    pub async fn cancel(&mut self, job_id: &str) -> Result<pb::Job, ClientError> {
        let request = pb::CancelRequest {
            job_id: job_id.to_string(),
        };
        let response = self.rpc.cancel(request).await?.into_inner();
        response
            .job
            .ok_or_else(|| Status::internal("Cancel returned no job").into())
    }

    /// Deletes a job that has ended, with its logs; returns it as it was.
    pub async fn delete(&mut self, job_id: &str) -> Result<pb::Job, ClientError> {
        let request = pb::DeleteRequest {
            job_id: job_id.to_string(),
        };
        let response = self.rpc.delete(request).await?.into_inner();
        response
            .job
            .ok_or_else(|| Status::internal("Delete returned no job").into())
    }

    /// A window of the patch of what a job in a worktree changed.
    pub async fn diff(
        &mut self,
        request: pb::DiffRequest,
    ) -> Result<pb::DiffResponse, ClientError> {
        Ok(self.rpc.diff(request).await?.into_inner())
    }

    /// The whole patch of what a job in a worktree changed, read page by page.
    pub async fn whole_diff(&mut self, job_id: &str) -> Result<(pb::Job, Vec<u8>), ClientError> {
        let mut patch = Vec::new();
        loop {
            let page = self
                .diff(pb::DiffRequest {
                    job_id: job_id.to_string(),
                    offset: patch.len() as u64,
                    max_bytes: 0,
                })
                .await?;
            patch.extend_from_slice(&page.patch);
            if page.next_offset >= page.size || page.patch.is_empty() {
                let job = page
                    .job
                    .ok_or_else(|| Status::internal("Diff returned no job"))?;
                return Ok((job, patch));
            }
        }
    }

    /// Applies what a job in a worktree changed to the checkout it came from.
    pub async fn apply(&mut self, job_id: &str) -> Result<pb::ApplyResponse, ClientError> {
        let request = pb::ApplyRequest {
            job_id: job_id.to_string(),
        };
        Ok(self.rpc.apply(request).await?.into_inner())
    }

    pub async fn prune(
        &mut self,
        request: pb::PruneRequest,
    ) -> Result<pb::PruneResponse, ClientError> {
        Ok(self.rpc.prune(request).await?.into_inner())
    }

    /// The hosts that share the server's job database.
    pub async fn list_hosts(&mut self) -> Result<Vec<pb::Host>, ClientError> {
        let request = pb::ListHostsRequest {};
        Ok(self.rpc.list_hosts(request).await?.into_inner().hosts)
    }

    pub async fn list(
        &mut self,
        request: pb::ListRequest,
    ) -> Result<pb::ListResponse, ClientError> {
        Ok(self.rpc.list(request).await?.into_inner())
    }

    pub async fn follow(
        &mut self,
        request: pb::FollowRequest,
    ) -> Result<tonic::Streaming<pb::FollowResponse>, ClientError> {
        Ok(self.rpc.follow(request).await?.into_inner())
    }

    /// The jobs that match the request as they are, then every change of their
    /// state (see `Watch` in the proto).
    pub async fn watch(
        &mut self,
        request: pb::WatchRequest,
    ) -> Result<tonic::Streaming<pb::WatchResponse>, ClientError> {
        Ok(self.rpc.watch(request).await?.into_inner())
    }

    /// `watch`, resumed at its last position after a dropped connection or a server
    /// restart.
    pub fn watching(&self, request: pb::WatchRequest) -> Watching {
        Watching::new(self.clone(), request)
    }

    /// Waits until the first of `job_ids` ends, or `timeout` passes (`None`: however
    /// long it takes), and returns the job that ended (one already ended counts), or
    /// `None` at the timeout. One Watch stream, not a Poll per job, resumed at its
    /// position after a dropped connection.
    pub async fn wait_any(
        &mut self,
        job_ids: &[String],
        timeout: Option<Duration>,
    ) -> Result<Option<pb::Job>, ClientError> {
        let mut changes = self.watching(pb::WatchRequest {
            job_ids: job_ids.to_vec(),
            ..Default::default()
        });
        let watching = async {
            loop {
                if let Some(pb::watch_response::Event::Job(job)) = changes.next().await?.event
                    && is_finished(&job)
                {
                    return Ok(Some(job));
                }
            }
        };
        match timeout {
            Some(timeout) => tokio::time::timeout(timeout, watching)
                .await
                .unwrap_or(Ok(None)),
            None => watching.await,
        }
    }

    /// Waits until every attempt of `group` has ended (with `any`: the first), or
    /// `timeout` passes; returns the attempts as they are then, oldest first.
    pub async fn wait_group(
        &mut self,
        group: &str,
        any: bool,
        timeout: Option<Duration>,
    ) -> Result<Vec<pb::Job>, ClientError> {
        let page = self
            .list(pb::ListRequest {
                group: group.to_string(),
                page_size: 1000,
                ..Default::default()
            })
            .await?;
        let mut jobs: Vec<pb::Job> = page.jobs.into_iter().rev().collect();
        if jobs.is_empty() {
            return Err(ClientError::Input(format!("no job is in group {group}")));
        }
        let done = |jobs: &[pb::Job]| match any {
            true => jobs.iter().any(is_finished),
            false => jobs.iter().all(is_finished),
        };
        let mut changes = self.watching(pb::WatchRequest {
            job_ids: jobs.iter().map(|job| job.id.clone()).collect(),
            ..Default::default()
        });
        let watching = async {
            while !done(&jobs) {
                if let Some(pb::watch_response::Event::Job(job)) = changes.next().await?.event
                    && let Some(known) = jobs.iter_mut().find(|known| known.id == job.id)
                {
                    *known = job;
                }
            }
            Ok::<(), ClientError>(())
        };
        match timeout {
            Some(timeout) => {
                if let Ok(watched) = tokio::time::timeout(timeout, watching).await {
                    watched?;
                }
            }
            None => watching.await?,
        }
        Ok(jobs)
    }

    /// Long-polls until the job ends or `timeout` passes (`None`: however long it
    /// takes), then returns the job and the last `tail_lines` lines of its transcript.
    pub async fn wait(
        &mut self,
        job_id: &str,
        timeout: Option<Duration>,
        tail_lines: u32,
    ) -> Result<pb::PollResponse, ClientError> {
        let deadline = timeout.and_then(|timeout| tokio::time::Instant::now().checked_add(timeout));
        loop {
            let left = deadline
                .map(|deadline| deadline.saturating_duration_since(tokio::time::Instant::now()));
            // The server holds one call for five minutes at most.
            let wait = left.unwrap_or(Duration::MAX).min(Duration::from_secs(300));
            let response = self
                .poll(pb::PollRequest {
                    job_id: job_id.to_string(),
                    // No window while waiting: the call returns only when the job ends.
                    window: None,
                    wait: Some(prost_types::Duration::try_from(wait).unwrap_or_default()),
                    ..Default::default()
                })
                .await?;
            let finished = response.job.as_ref().is_some_and(is_finished);
            if finished || left.is_some_and(|left| left.is_zero()) {
                break;
            }
        }
        self.poll(pb::PollRequest {
            job_id: job_id.to_string(),
            window: Some(pb::poll_request::Window::TailLines(tail_lines)),
            ..Default::default()
        })
        .await
    }
}

/// True once a job is in a terminal state.
pub fn is_finished(job: &pb::Job) -> bool {
    matches!(
        job.state(),
        pb::JobState::Succeeded | pb::JobState::Failed | pb::JobState::Cancelled
    )
}

fn source_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}
