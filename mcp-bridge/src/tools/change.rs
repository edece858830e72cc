//! `codex_diff`, `codex_apply` and `codex_wait_group`: jobs in worktrees of their
//! own, what they changed, and taking one's change into the checkout.

use codex_jobs_client::{
    json::{AppliedView, DiffView, JobList, JobView},
    pb,
};
use rmcp::{Json, handler::server::wrapper::Parameters, tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;

use super::{
    Bridge,
    wait::{default_timeout, wait_time},
};

#[derive(Debug, Deserialize, JsonSchema)]
pub struct DiffArgs {
    /// A job started with worktree=true or attempts, once it has ended.
    pub job_id: String,
    /// Where to start in the patch: 0, or the next_offset of a truncated answer.
    #[serde(default)]
    pub offset: u64,
    /// The most bytes of patch to return (1-4194304); omit for 65536.
    pub max_bytes: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ApplyArgs {
    /// The job whose change to apply (one started with worktree=true or attempts).
    pub job_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct WaitGroupArgs {
    /// The group codex_start returned with attempts.
    pub group: String,
    /// Return when the first attempt ends instead of all of them.
    #[serde(default)]
    pub any: bool,
    /// Return after this many seconds even if attempts still run (1-55).
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
}

#[tool_router(router = change_router, vis = "pub(super)")]
impl Bridge {
    /// The patch of what a Codex job in a worktree changed (`git diff` from its base
    /// to its work), with the files changed and their lines added and removed. A
    /// patch larger than max_bytes comes in pages: call again with offset set to
    /// next_offset while truncated is true.
    #[tool(
        output_schema = super::output_schema::<DiffView>(),
        annotations(read_only_hint = true, open_world_hint = false))]
    pub async fn codex_diff(
        &self,
        Parameters(args): Parameters<DiffArgs>,
    ) -> Result<Json<DiffView>, String> {
        let request = pb::DiffRequest {
            job_id: args.job_id,
            offset: args.offset,
            max_bytes: args.max_bytes.unwrap_or(64 * 1024),
        };
        let response = self
            .rpc(|mut client| {
                let request = request.clone();
                async move { client.diff(request).await }
            })
            .await?;
        Ok(Json(DiffView::from(&response)))
    }

    /// Apply what a Codex job in a worktree changed to the checkout it was started
    /// in, by a three-way merge with the checkout's own changes; the files are left
    /// changed and uncommitted. If the checkout's changes conflict, nothing is
    /// changed and the error names the files.
    #[tool(
        output_schema = super::output_schema::<AppliedView>(),
        annotations(
        read_only_hint = false,
        destructive_hint = false,
        idempotent_hint = true,
        open_world_hint = false
    ))]
    pub async fn codex_apply(
        &self,
        Parameters(args): Parameters<ApplyArgs>,
    ) -> Result<Json<AppliedView>, String> {
        let response = self
            .rpc(|mut client| {
                let job_id = args.job_id.clone();
                async move { client.apply(&job_id).await }
            })
            .await?;
        Ok(Json(AppliedView::from(&response)))
    }

    /// Wait for the attempts of a group (codex_start with attempts) to end: all of
    /// them, or with any=true the first. Returns every attempt as it is then, each
    /// with its change (files, lines added and removed) once it has ended, so you can
    /// compare them, read the best with codex_diff and take it with codex_apply. At
    /// the timeout some may still run: call again.
    #[tool(
        output_schema = super::output_schema::<JobList>(),
        annotations(read_only_hint = true, open_world_hint = false))]
    pub async fn codex_wait_group(
        &self,
        Parameters(args): Parameters<WaitGroupArgs>,
    ) -> Result<Json<JobList>, String> {
        let timeout = wait_time(args.timeout_seconds);
        let jobs = self
            .rpc(|mut client| {
                let group = args.group.clone();
                async move { client.wait_group(&group, args.any, Some(timeout)).await }
            })
            .await?;
        let jobs = jobs
            .iter()
            .map(|job| {
                let mut view = JobView::from(job);
                // The prompt is the caller's own, once per attempt.
                view.prompt = String::new();
                view
            })
            .collect();
        Ok(Json(JobList {
            jobs,
            next_page_token: None,
        }))
    }
}
