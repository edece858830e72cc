//! `codex_list`: recent jobs.

use codex_jobs_client::{json::JobList, names, pb};
use rmcp::{Json, handler::server::wrapper::Parameters, tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;

use super::Bridge;

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListArgs {
    /// How many jobs to return, newest first (1-1000).
    #[serde(default = "default_limit")]
    pub limit: u32,
    /// Only jobs with this status: queued, running, done, error or cancelled (or
    /// succeeded, failed).
    pub state: Option<String>,
    /// Only the attempts of this group (the `group` codex_start returned).
    pub group: Option<String>,
}

fn default_limit() -> u32 {
    20
}

#[tool_router(router = list_router, vis = "pub(super)")]
impl Bridge {
    /// List Codex jobs on this host, newest first, optionally only those with one
    /// status. Use it to find a job_id you lost.
    #[tool(
        output_schema = super::output_schema::<JobList>(),
        annotations(read_only_hint = true, open_world_hint = false))]
    pub async fn codex_list(
        &self,
        Parameters(args): Parameters<ListArgs>,
    ) -> Result<Json<JobList>, String> {
        let states = match args.state.as_deref() {
            Some(name) => vec![names::parse_state(name)?.into()],
            None => Vec::new(),
        };
        let request = pb::ListRequest {
            states,
            page_size: args.limit,
            group: args.group.unwrap_or_default(),
            ..Default::default()
        };
        let response = self
            .rpc(|mut client| {
                let request = request.clone();
                async move { client.list(request).await }
            })
            .await?;
        Ok(Json(JobList::from(&response)))
    }
}
