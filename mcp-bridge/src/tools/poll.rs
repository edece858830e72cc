//! `codex_poll`: a job's status and a window of its output.

use codex_jobs_client::{json::JobView, pb};
use rmcp::{Json, handler::server::wrapper::Parameters, tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;

use super::Bridge;

#[derive(Debug, Deserialize, JsonSchema)]
pub struct PollArgs {
    /// The job_id codex_start returned.
    pub job_id: String,
    /// How many of the last transcript lines to return (0-10000).
    #[serde(default = "default_tail_lines")]
    pub tail_lines: u32,
    /// Return only the output after this byte offset (the next_offset of your previous
    /// call) instead of the last lines, so nothing is read twice.
    pub since_offset: Option<u64>,
}

fn default_tail_lines() -> u32 {
    100
}

/// The window a poll asks for.
pub(super) fn window(tail_lines: u32, since_offset: Option<u64>) -> pb::poll_request::Window {
    match since_offset {
        Some(offset) => pb::poll_request::Window::SinceOffset(offset),
        None => pb::poll_request::Window::TailLines(tail_lines),
    }
}

#[tool_router(router = poll_router, vis = "pub(super)")]
impl Bridge {
    /// Check a Codex job at once, without waiting: its status and the last lines of
    /// its transcript (or only what came after since_offset). To wait for a job to
    /// finish, use codex_wait instead.
    #[tool(
        output_schema = super::output_schema::<JobView>(),
        annotations(read_only_hint = true, open_world_hint = false))]
    pub async fn codex_poll(
        &self,
        Parameters(args): Parameters<PollArgs>,
    ) -> Result<Json<JobView>, String> {
        let request = pb::PollRequest {
            job_id: args.job_id,
            window: Some(window(args.tail_lines, args.since_offset)),
            ..Default::default()
        };
        let response = self.poll(request).await?;
        Ok(Json(JobView::from(&response)))
    }
}
