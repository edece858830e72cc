//! `codex_cancel`: stop a job.

use codex_jobs_client::json::JobView;
use rmcp::{Json, handler::server::wrapper::Parameters, tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;

use super::{Bridge, Lean};

#[derive(Debug, Deserialize, JsonSchema)]
pub struct CancelArgs {
    /// The job_id codex_start returned.
    pub job_id: String,
}

#[tool_router(router = cancel_router, vis = "pub(super)")]
impl Bridge {
    /// Cancel a Codex job: a queued job never starts; a running one is stopped with
    /// everything it started. Returns the job once it has stopped, usually with status
    /// cancelled (a job that was already ending, timed out or finishing its turn, keeps
    /// that outcome). A job that already ended is returned unchanged.
    #[tool(
        output_schema = super::output_schema::<Lean>(),
        annotations(
        read_only_hint = false,
        destructive_hint = true,
        idempotent_hint = true,
        open_world_hint = false
    ))]
    pub async fn codex_cancel(
        &self,
        Parameters(args): Parameters<CancelArgs>,
    ) -> Result<Json<Lean>, String> {
        let job = self
            .rpc(|mut client| {
                let job_id = args.job_id.clone();
                async move { client.cancel(&job_id).await }
            })
            .await?;
        Ok(Json(Lean(JobView::from(&job))))
    }
}
