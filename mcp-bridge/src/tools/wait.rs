//! `codex_wait`: block until a job ends (or a timeout well under the ~60 s that MCP
//! clients allow a call), reporting new output as progress while it runs; or until
//! the first of several ends. `codex_await_any`: the same for every job still
//! running that this session started, or that carries a label.

use std::time::Duration;

use codex_jobs_client::{is_finished, json::JobView, pb};
use rmcp::{
    Json, RoleServer,
    handler::server::wrapper::Parameters,
    model::{ProgressNotificationParam, ProgressToken},
    service::RequestContext,
    tool, tool_router,
};
use schemars::JsonSchema;
use serde::Deserialize;
use tokio::time::Instant;

use super::{Bridge, Lean, poll::window};

/// The longest one call waits: MCP clients give up on a call after about 60 s.
const MAX_WAIT_SECONDS: u64 = 55;

/// How long a call asked to wait `seconds` waits: 1 to `MAX_WAIT_SECONDS`.
pub(super) fn wait_time(seconds: u64) -> Duration {
    Duration::from_secs(seconds.clamp(1, MAX_WAIT_SECONDS))
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct WaitArgs {
    /// The job_id codex_start returned.
    pub job_id: Option<String>,
    /// Several job_ids instead: return when the first of them ends (the result's
    /// job_id says which).
    pub job_ids: Option<Vec<String>>,
    /// Return after this many seconds even if the job still runs (1-55).
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// Return only the output after this byte offset (a previous next_offset) instead
    /// of the last lines; with job_ids, for the job that ended.
    pub since_offset: Option<u64>,
    /// How many of the last transcript lines to return without since_offset (0-10000).
    #[serde(default = "default_tail_lines")]
    pub tail_lines: u32,
}

/// A short tail: the final message is in the result already.
fn default_tail_lines() -> u32 {
    10
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct AwaitAnyArgs {
    /// Return after this many seconds even if every job still runs (1-55).
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// Wait for the running jobs that carry this label (KEY=VALUE) instead of those
    /// this session started.
    pub label: Option<String>,
}

pub(super) fn default_timeout() -> u64 {
    50
}

#[tool_router(router = wait_router, vis = "pub(super)")]
impl Bridge {
    /// Wait for a Codex job to finish: blocks until its status is done, error or
    /// cancelled, or until timeout_seconds pass (then status is still running: call
    /// codex_wait again). Calling it in a loop, each time with the next_offset you got
    /// as since_offset so you read only new output, is the cheap way to get a job's
    /// result: the finished job comes with its final_message and the last few lines
    /// of its transcript. If you ask for progress, new output lines arrive as
    /// progress notifications while you wait.
    #[tool(
        output_schema = super::output_schema::<Lean>(),
        annotations(read_only_hint = true, open_world_hint = false))]
    pub async fn codex_wait(
        &self,
        Parameters(args): Parameters<WaitArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<Json<Lean>, String> {
        let timeout = wait_time(args.timeout_seconds);
        let ids: Vec<String> = args
            .job_id
            .into_iter()
            .chain(args.job_ids.into_iter().flatten())
            .collect();
        let job_id = match ids.as_slice() {
            [] => return Err("give job_id, or job_ids to wait for the first of several".into()),
            [job_id] => {
                let deadline = Instant::now() + timeout;
                let progress = context.meta.get_progress_token();
                let waited = self.wait_until_finished(job_id, deadline, progress, &context);
                tokio::select! {
                    result = waited => result?,
                    // The client gave up on this call: stop waiting (the job goes on).
                    _ = context.ct.cancelled() => return Err("the wait was cancelled; the job goes on".into()),
                }
                job_id.clone()
            }
            several => self.first_to_end(several, timeout, &context).await?,
        };
        self.job_with_output(job_id, args.tail_lines, args.since_offset)
            .await
    }

    /// Wait for the first of your running Codex jobs to finish: those this session
    /// started (with codex_start or codex_reply), or those with a label. Blocks until
    /// one ends or timeout_seconds pass, and returns that job (at the timeout, one
    /// still running: call again). Cheaper than polling each job.
    #[tool(
        output_schema = super::output_schema::<Lean>(),
        annotations(read_only_hint = true, open_world_hint = false))]
    pub async fn codex_await_any(
        &self,
        Parameters(args): Parameters<AwaitAnyArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<Json<Lean>, String> {
        let timeout = wait_time(args.timeout_seconds);
        let ids = match &args.label {
            Some(label) => self.running_with_label(label).await?,
            None => self.running_started_here().await?,
        };
        if ids.is_empty() {
            return Err(match &args.label {
                Some(label) => format!("no queued or running job has the label {label}"),
                None => {
                    "no job this session started is queued or running; codex_list shows the others"
                        .into()
                }
            });
        }
        let job_id = self.first_to_end(&ids, timeout, &context).await?;
        self.job_with_output(job_id, default_tail_lines(), None)
            .await
    }
}

impl Bridge {
    /// The first of `ids` to end within `timeout`, or the first of them if none does.
    async fn first_to_end(
        &self,
        ids: &[String],
        timeout: Duration,
        context: &RequestContext<RoleServer>,
    ) -> Result<String, String> {
        let waited = self.rpc(|mut client| {
            let ids = ids.to_vec();
            async move { client.wait_any(&ids, Some(timeout)).await }
        });
        let ended = tokio::select! {
            result = waited => result?,
            _ = context.ct.cancelled() => return Err("the wait was cancelled; the jobs go on".into()),
        };
        Ok(ended.map_or_else(|| ids[0].clone(), |job| job.id))
    }

    /// A job with the last `tail_lines` lines of its transcript, or what came after
    /// `since_offset`.
    async fn job_with_output(
        &self,
        job_id: String,
        tail_lines: u32,
        since_offset: Option<u64>,
    ) -> Result<Json<Lean>, String> {
        let request = pb::PollRequest {
            job_id,
            window: Some(window(tail_lines, since_offset)),
            ..Default::default()
        };
        let response = self.poll(request).await?;
        Ok(Json(Lean(JobView::from(&response))))
    }

    /// The queued and running jobs with `label` (KEY=VALUE), at most 1000.
    async fn running_with_label(&self, label: &str) -> Result<Vec<String>, String> {
        let Some((key, value)) = label.split_once('=') else {
            return Err(format!("label must be KEY=VALUE, not {label:?}"));
        };
        let request = pb::ListRequest {
            states: vec![pb::JobState::Queued.into(), pb::JobState::Running.into()],
            labels: [(key.to_string(), value.to_string())].into(),
            page_size: 1000,
            ..Default::default()
        };
        let response = self
            .rpc(|mut client| {
                let request = request.clone();
                async move { client.list(request).await }
            })
            .await?;
        Ok(response.jobs.into_iter().map(|job| job.id).collect())
    }

    /// The jobs this session started that have not ended, as far as it has seen;
    /// forgets those that have.
    async fn running_started_here(&self) -> Result<Vec<String>, String> {
        let started = self.started.lock().unwrap().clone();
        let (mut running, mut ended) = (Vec::new(), Vec::new());
        for job_id in started {
            let request = pb::PollRequest {
                job_id: job_id.clone(),
                ..Default::default()
            };
            let response = self.poll(request).await?;
            if response.job.as_ref().is_some_and(is_finished) {
                ended.push(job_id);
            } else {
                running.push(job_id);
            }
        }
        self.started
            .lock()
            .unwrap()
            .retain(|id| !ended.contains(id));
        Ok(running)
    }

    /// Long-polls the job's transcript until the job ends or `deadline`, sending each
    /// new piece of output as a progress notification when the client asked for them.
    async fn wait_until_finished(
        &self,
        job_id: &str,
        deadline: Instant,
        progress: Option<ProgressToken>,
        context: &RequestContext<RoleServer>,
    ) -> Result<(), String> {
        // Progress reports start at what exists now: only new output is news.
        let mut offset: Option<u64> = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let window = match offset {
                Some(offset) => pb::poll_request::Window::SinceOffset(offset),
                None => pb::poll_request::Window::TailLines(0),
            };
            let request = pb::PollRequest {
                job_id: job_id.to_string(),
                window: Some(window),
                wait: offset.map(|_| prost_types::Duration::try_from(left).unwrap_or_default()),
                ..Default::default()
            };
            let response = self.poll(request).await?;
            if let (Some(token), false, Some(_)) = (&progress, response.output.is_empty(), offset) {
                let message = String::from_utf8_lossy(&response.output)
                    .trim_end()
                    .to_string();
                let note =
                    ProgressNotificationParam::new(token.clone(), response.next_offset as f64)
                        .with_message(message);
                // A client that cannot take the notification still gets the result.
                let _ = context.peer.notify_progress(note).await;
            }
            offset = Some(response.next_offset);
            let finished = response.job.as_ref().is_some_and(is_finished);
            if finished || left.is_zero() {
                return Ok(());
            }
        }
    }
}
