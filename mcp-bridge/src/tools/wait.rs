//! `codex_wait`: block until a job ends (or a timeout well under the ~60 s that MCP
//! clients allow a call), reporting new output as progress while it runs.

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

use super::{Bridge, poll::window};

/// The longest one call waits: MCP clients give up on a call after about 60 s.
const MAX_WAIT_SECONDS: u64 = 55;

#[derive(Debug, Deserialize, JsonSchema)]
pub struct WaitArgs {
    /// The job_id codex_start returned.
    pub job_id: String,
    /// Return after this many seconds even if the job still runs (1-55).
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// Return only the output after this byte offset (a previous next_offset) instead
    /// of the last 100 lines.
    pub since_offset: Option<u64>,
}

fn default_timeout() -> u64 {
    50
}

#[tool_router(router = wait_router, vis = "pub(super)")]
impl Bridge {
    /// Wait for a Codex job to finish: blocks until its status is done, error or
    /// cancelled, or until timeout_seconds pass (then status is still running: just
    /// call codex_wait again). Calling it in a loop is the way to get a job's result.
    /// Returns the job with the last 100 lines of its transcript (or the output after
    /// since_offset). If you ask for progress, new output lines arrive as progress
    /// notifications while you wait.
    #[tool(annotations(read_only_hint = true, open_world_hint = false))]
    pub async fn codex_wait(
        &self,
        Parameters(args): Parameters<WaitArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<Json<JobView>, String> {
        let timeout = Duration::from_secs(args.timeout_seconds.clamp(1, MAX_WAIT_SECONDS));
        let deadline = Instant::now() + timeout;
        let progress = context.meta.get_progress_token();
        let waited = self.wait_until_finished(&args.job_id, deadline, progress, &context);
        tokio::select! {
            result = waited => result?,
            // The client gave up on this call: stop waiting (the job goes on).
            _ = context.ct.cancelled() => return Err("the wait was cancelled; the job goes on".into()),
        }
        let request = pb::PollRequest {
            job_id: args.job_id.clone(),
            window: Some(window(100, args.since_offset)),
            ..Default::default()
        };
        let response = self.poll(request).await?;
        Ok(Json(JobView::from(&response)))
    }
}

impl Bridge {
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
