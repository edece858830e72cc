//! `codex_reply`: continue the Codex conversation of an earlier job as a new job.

use codex_jobs_client::pb;
use rmcp::{Json, handler::server::wrapper::Parameters, tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;

use super::{Bridge, Lean};

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ReplyArgs {
    /// The job whose Codex conversation to continue.
    pub job_id: String,
    /// The next message to Codex in that conversation.
    pub prompt: String,
}

#[tool_router(router = reply_router, vis = "pub(super)")]
impl Bridge {
    /// Continue the Codex conversation of an earlier job (`codex exec resume`): starts
    /// a new job in the same directory, with the same model and sandbox, that
    /// remembers everything the earlier one did. Returns the new job at once; wait for
    /// it with codex_wait. The earlier job must have finished.
    #[tool(
        output_schema = super::output_schema::<Lean>(),
        annotations(
        read_only_hint = false,
        destructive_hint = false,
        idempotent_hint = false,
        open_world_hint = true
    ))]
    pub async fn codex_reply(
        &self,
        Parameters(args): Parameters<ReplyArgs>,
    ) -> Result<Json<Lean>, String> {
        let request = pb::PollRequest {
            job_id: args.job_id.clone(),
            ..Default::default()
        };
        let earlier = self.poll(request).await?.job.unwrap_or_default();
        if !codex_jobs_client::is_finished(&earlier) {
            return Err(format!(
                "job {} is still {}: wait for it to finish (codex_wait) before replying",
                args.job_id,
                codex_jobs_client::names::status_name(earlier.state())
            ));
        }
        if earlier.thread_id.is_empty() {
            return Err(format!(
                "job {} has no Codex conversation to continue: Codex never reported a thread id for it",
                args.job_id
            ));
        }
        let mut spec = earlier.spec.unwrap_or_default();
        // A job in a worktree goes on in a new one, from the commit of its work.
        if let Some(change) = earlier.change {
            spec.base = change.head_commit;
        }
        let request = pb::StartRequest {
            spec: Some(pb::JobSpec {
                prompt: args.prompt,
                resume_thread_id: earlier.thread_id,
                ..spec
            }),
            request_id: String::new(),
            attempts: 0,
        };
        self.start(request).await.map(|job| Json(Lean(job)))
    }
}
