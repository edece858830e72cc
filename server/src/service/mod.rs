//! The `codex.jobs.v1.CodexJobs` gRPC service: a thin adapter that converts
//! requests (`convert`), calls the job manager, and converts back.

pub mod auth;
pub mod convert;
pub mod fleet;
pub mod limit;

use std::{pin::Pin, sync::Arc};

use codex_jobs_api::v1::{self as pb, codex_jobs_server::CodexJobs};
use tokio_stream::{Stream, StreamExt, wrappers::ReceiverStream};
use tonic::{Request, Response, Status};

use auth::{Caller, Scope, require};

use crate::{
    error::Error,
    job::{Job, ListFilter, WatchFilter},
    manager::{FollowEvent, FollowStart, JobManager, WatchEvent, WindowRequest},
};

/// The one place where manager errors become gRPC statuses.
impl From<Error> for Status {
    fn from(err: Error) -> Status {
        let status = status(&err);
        // The message travels in a header: keep it well under what peers accept.
        if status.message().len() > MAX_MESSAGE {
            let mut end = MAX_MESSAGE;
            while !status.message().is_char_boundary(end) {
                end -= 1;
            }
            return Status::new(status.code(), format!("{}...", &status.message()[..end]));
        }
        status
    }
}

/// The longest error message a status carries.
const MAX_MESSAGE: usize = 1024;

fn status(err: &Error) -> Status {
    match err {
        Error::NotFound(_) => Status::not_found(err.to_string()),
        Error::InvalidArgument(_) => Status::invalid_argument(err.to_string()),
        Error::PermissionDenied(_) => Status::permission_denied(err.to_string()),
        Error::ResourceExhausted(_) => Status::resource_exhausted(err.to_string()),
        Error::FailedPrecondition(_) => Status::failed_precondition(err.to_string()),
        // The service asks the other host itself: this is for any path that does not.
        Error::RunsElsewhere { .. } | Error::Unavailable(_) => Status::unavailable(err.to_string()),
        Error::Io(io) if io.raw_os_error() == Some(libc::ENOSPC) => {
            Status::resource_exhausted(format!("the server's disk is full: {io}"))
        }
        Error::Store(store) if store.is_unavailable() => Status::unavailable(store.to_string()),
        Error::Store(store) if store.is_disk_full() => {
            Status::resource_exhausted(format!("the server's disk is full: {store}"))
        }
        Error::Store(_) | Error::Io(_) => {
            tracing::error!("internal error: {err}");
            Status::internal(err.to_string())
        }
    }
}

pub struct JobService {
    manager: Arc<JobManager>,
    /// The other hosts, for the jobs that run there.
    fleet: Arc<fleet::Fleet>,
}

impl JobService {
    /// `fleet`: how to reach the other hosts that share the store.
    pub fn new(manager: Arc<JobManager>, fleet: codex_jobs_client::Credentials) -> Self {
        let fleet = Arc::new(fleet::Fleet::new(manager.clone(), fleet));
        JobService { manager, fleet }
    }
}

impl JobService {
    async fn start_job(
        &self,
        caller: &Caller,
        request: pb::StartRequest,
    ) -> Result<(Vec<Job>, bool), Status> {
        let spec = convert::spec(request.spec)?;
        let request_id = convert::request_id(request.request_id)?;
        let attempts = convert::attempts(request.attempts, &spec)?;
        Ok(self
            .manager
            .start_attempts(spec, request_id, caller.name.clone(), attempts)
            .await?)
    }
}

/// One line of the audit log (target `audit`) for a call that changes something.
fn audit(action: &str, caller: &Caller, job: &str, outcome: &str) {
    tracing::info!(
        target: "audit",
        action,
        who = %caller.name,
        peer = %caller.peer,
        job,
        outcome,
    );
}

type FollowStream = Pin<Box<dyn Stream<Item = Result<pb::FollowResponse, Status>> + Send>>;
type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl CodexJobs for JobService {
    async fn start(
        &self,
        request: Request<pb::StartRequest>,
    ) -> Result<Response<pb::StartResponse>, Status> {
        let caller = require(&request, Scope::Write)?;
        let started = self.start_job(&caller, request.into_inner()).await;
        let (job, outcome) = match &started {
            Ok((jobs, created)) => (
                jobs.iter()
                    .map(|job| job.id.to_string())
                    .collect::<Vec<_>>()
                    .join(" "),
                match created {
                    true => "created",
                    false => "existing job returned",
                }
                .to_string(),
            ),
            Err(status) => ("-".into(), status.message().to_string()),
        };
        audit("start", &caller, &job, &outcome);
        let (jobs, created) = started?;
        let attempts: Vec<pb::Job> = jobs.into_iter().map(Into::into).collect();
        Ok(Response::new(pb::StartResponse {
            job: attempts.first().cloned(),
            created,
            attempts,
        }))
    }

    async fn poll(
        &self,
        request: Request<pb::PollRequest>,
    ) -> Result<Response<pb::PollResponse>, Status> {
        use pb::poll_request::Window;
        require(&request, Scope::Read)?;
        let request = request.into_inner();
        let forward = request.clone();
        let id = convert::job_id(&request.job_id)?;
        let window = match request.window {
            None => WindowRequest::Nothing,
            Some(Window::TailLines(lines)) => WindowRequest::Tail(convert::tail_lines(lines)?),
            Some(Window::SinceOffset(offset)) => WindowRequest::Since(offset),
        };
        let stream = convert::output_stream(request.stream)?;
        let max_bytes = convert::max_bytes(request.max_bytes)?;
        let wait = convert::wait(request.wait)?;
        let result = match self.manager.poll(id, window, stream, max_bytes, wait).await {
            Err(Error::RunsElsewhere { host, .. }) => {
                let no_output = forward.window.is_none();
                return match self.fleet.poll(&host, forward).await {
                    // Its record is here: enough for a call that wants no output.
                    Err(status) if status.code() == tonic::Code::Unavailable && no_output => {
                        let mut job = self.manager.get(id).await?;
                        job.host_unreachable = true;
                        let size = job.output_size;
                        Ok(Response::new(pb::PollResponse {
                            job: Some(job.into()),
                            start_offset: size,
                            next_offset: size,
                            size,
                            ..Default::default()
                        }))
                    }
                    answer => Ok(Response::new(answer?)),
                };
            }
            result => result?,
        };
        Ok(Response::new(pb::PollResponse {
            job: Some(result.job.into()),
            output: result.window.bytes,
            start_offset: result.window.start,
            next_offset: result.window.end,
            truncated: result.window.truncated,
            size: result.window.size,
        }))
    }

    async fn cancel(
        &self,
        request: Request<pb::CancelRequest>,
    ) -> Result<Response<pb::CancelResponse>, Status> {
        let caller = require(&request, Scope::Write)?;
        let id = convert::job_id(&request.into_inner().job_id)?;
        let cancelled = match self.manager.cancel(id).await {
            Ok(job) => Ok(job.into()),
            Err(Error::RunsElsewhere { host, .. }) => {
                self.fleet.cancel(&host, &id.to_string()).await
            }
            Err(err) => Err(Status::from(err)),
        };
        let outcome = match &cancelled {
            Ok(job) => codex_jobs_client::names::state_name(job.state()).to_string(),
            Err(status) => status.message().to_string(),
        };
        audit("cancel", &caller, &id.to_string(), &outcome);
        Ok(Response::new(pb::CancelResponse {
            job: Some(cancelled?),
        }))
    }

    async fn delete(
        &self,
        request: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let caller = require(&request, Scope::Write)?;
        let id = convert::job_id(&request.into_inner().job_id)?;
        let deleted = match self.manager.delete(id).await {
            Ok(job) => Ok(job.into()),
            Err(Error::RunsElsewhere { host, .. }) => {
                self.fleet.delete(&host, &id.to_string()).await
            }
            Err(err) => Err(Status::from(err)),
        };
        let outcome = match &deleted {
            Ok(_) => "deleted".to_string(),
            Err(status) => status.message().to_string(),
        };
        audit("delete", &caller, &id.to_string(), &outcome);
        Ok(Response::new(pb::DeleteResponse {
            job: Some(deleted?),
        }))
    }

    async fn prune(
        &self,
        request: Request<pb::PruneRequest>,
    ) -> Result<Response<pb::PruneResponse>, Status> {
        let caller = require(&request, Scope::Write)?;
        let request = request.into_inner();
        let older_than = convert::older_than(request.older_than)?;
        let states = convert::ended_states(request.states)?;
        let pruned = self.manager.prune(older_than, states).await;
        let outcome = match &pruned {
            Ok(pruned) => format!(
                "{} deleted, {} bytes freed",
                pruned.deleted, pruned.freed_bytes
            ),
            Err(err) => err.to_string(),
        };
        audit("prune", &caller, "-", &outcome);
        let pruned = pruned?;
        Ok(Response::new(pb::PruneResponse {
            deleted: pruned.deleted,
            freed_bytes: pruned.freed_bytes,
        }))
    }

    async fn list(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        require(&request, Scope::Read)?;
        let request = request.into_inner();
        let filter = ListFilter {
            states: convert::job_states(request.states)?,
            labels: convert::labels(request.labels.into_iter().collect())?,
            before: convert::page_token(&request.page_token)?,
            limit: convert::page_size(request.page_size)?,
            min_disk_bytes: request.min_disk_bytes,
            group: convert::group(request.group)?,
        };
        let page = self.manager.list(filter).await?;
        Ok(Response::new(pb::ListResponse {
            jobs: page.jobs.into_iter().map(Into::into).collect(),
            next_page_token: page.next.map(|id| id.to_string()).unwrap_or_default(),
        }))
    }

    type FollowStream = FollowStream;

    async fn follow(
        &self,
        request: Request<pb::FollowRequest>,
    ) -> Result<Response<FollowStream>, Status> {
        use pb::follow_request::Start;
        require(&request, Scope::Read)?;
        let request = request.into_inner();
        let forward = request.clone();
        let id = convert::job_id(&request.job_id)?;
        let start = match request.start {
            None => FollowStart::Offset(0),
            Some(Start::FromOffset(offset)) => FollowStart::Offset(offset),
            Some(Start::TailLines(lines)) => FollowStart::TailLines {
                lines: convert::tail_lines(lines)?,
                max_bytes: convert::MAX_BYTES as usize,
            },
        };
        let stream = convert::output_stream(request.stream)?;
        let events = match self.manager.follow(id, start, stream).await {
            Ok(events) => events,
            Err(Error::RunsElsewhere { host, .. }) => {
                let remote = self.fleet.follow(&host, forward).await?;
                return Ok(Response::new(Box::pin(remote)));
            }
            Err(err) => return Err(err.into()),
        };
        // A job another host takes while it is followed is followed on there.
        let (responses, receiver) = tokio::sync::mpsc::channel(16);
        let fleet = self.fleet.clone();
        tokio::spawn(async move {
            use pb::follow_response::Event;
            let mut events = ReceiverStream::new(events);
            while let Some(event) = events.next().await {
                let event = match event {
                    Ok(FollowEvent::Job(job)) => Event::Job((*job).into()),
                    Ok(FollowEvent::Output { offset, data }) => {
                        Event::Output(pb::OutputChunk { offset, data })
                    }
                    Ok(FollowEvent::Elsewhere { host, offset }) => {
                        let request = pb::FollowRequest {
                            start: Some(Start::FromOffset(offset)),
                            ..forward
                        };
                        match fleet.follow(&host, request).await {
                            Ok(mut remote) => loop {
                                // The caller may leave while the job is quiet.
                                let message = tokio::select! {
                                    message = remote.next() => message,
                                    () = responses.closed() => return,
                                };
                                let Some(message) = message else { return };
                                if responses.send(message).await.is_err() {
                                    return;
                                }
                            },
                            Err(status) => {
                                let _ = responses.send(Err(status)).await;
                            }
                        }
                        return;
                    }
                    Err(err) => {
                        let _ = responses.send(Err(err.into())).await;
                        return;
                    }
                };
                let message = pb::FollowResponse { event: Some(event) };
                if responses.send(Ok(message)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn diff(
        &self,
        request: Request<pb::DiffRequest>,
    ) -> Result<Response<pb::DiffResponse>, Status> {
        require(&request, Scope::Read)?;
        let request = request.into_inner();
        let id = convert::job_id(&request.job_id)?;
        let max_bytes = convert::max_bytes(request.max_bytes)?;
        let diff = match self.manager.diff(id, request.offset, max_bytes).await {
            Ok(diff) => diff,
            Err(Error::RunsElsewhere { host, .. }) => {
                return Ok(Response::new(self.fleet.diff(&host, request).await?));
            }
            Err(err) => return Err(err.into()),
        };
        Ok(Response::new(pb::DiffResponse {
            job: Some(diff.job.into()),
            patch: diff.window.bytes,
            start_offset: diff.window.start,
            next_offset: diff.window.end,
            size: diff.window.size,
            truncated: diff.window.truncated,
        }))
    }

    async fn apply(
        &self,
        request: Request<pb::ApplyRequest>,
    ) -> Result<Response<pb::ApplyResponse>, Status> {
        let caller = require(&request, Scope::Write)?;
        let id = convert::job_id(&request.into_inner().job_id)?;
        let applied = match self.manager.apply(id).await {
            Ok(applied) => Ok(pb::ApplyResponse {
                job: Some(applied.job.into()),
                checkout: applied.checkout,
                files: applied.files,
            }),
            Err(Error::RunsElsewhere { host, .. }) => {
                self.fleet.apply(&host, &id.to_string()).await
            }
            Err(err) => Err(Status::from(err)),
        };
        let outcome = match &applied {
            Ok(applied) => format!(
                "{} files changed in {}",
                applied.files.len(),
                applied.checkout
            ),
            Err(status) => status.message().to_string(),
        };
        audit("apply", &caller, &id.to_string(), &outcome);
        Ok(Response::new(applied?))
    }

    async fn list_hosts(
        &self,
        request: Request<pb::ListHostsRequest>,
    ) -> Result<Response<pb::ListHostsResponse>, Status> {
        require(&request, Scope::Read)?;
        let hosts = self.manager.hosts().await?;
        Ok(Response::new(pb::ListHostsResponse {
            hosts: hosts.into_iter().map(Into::into).collect(),
        }))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        require(&request, Scope::Read)?;
        let request = request.into_inner();
        let filter = WatchFilter {
            states: convert::job_states(request.states)?,
            labels: convert::labels(request.labels.into_iter().collect())?,
            ids: convert::job_ids(&request.job_ids)?,
        };
        let events = self.manager.watch(filter, request.since_position).await?;
        let responses = ReceiverStream::new(events).map(|event| {
            use pb::watch_response::Event;
            Ok(match event? {
                WatchEvent::Job { job, position } => pb::WatchResponse {
                    event: Some(Event::Job((*job).into())),
                    position,
                },
                WatchEvent::CaughtUp { position } => pb::WatchResponse {
                    event: Some(Event::CaughtUp(pb::WatchCaughtUp {})),
                    position,
                },
            })
        });
        Ok(Response::new(Box::pin(responses)))
    }
}
