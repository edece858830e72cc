//! `codex_start`: start a Codex job in the background.

use std::collections::BTreeMap;

use codex_jobs_client::{names, pb};
use rmcp::{Json, handler::server::wrapper::Parameters, tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;

use super::{Bridge, Lean};

#[derive(Debug, Deserialize, JsonSchema)]
pub struct StartArgs {
    /// What Codex should do.
    pub prompt: String,
    /// Absolute path of the directory (usually a repository) to run Codex in.
    pub cwd: String,
    /// codex-async compatible: `suggest` (read-only), `auto-edit` (may edit files in
    /// cwd) or `full-auto` (no sandbox, no approvals; only where the host allows it).
    pub approval_policy: Option<String>,
    /// Model name for Codex; omit for Codex's default.
    pub model: Option<String>,
    /// `read-only`, `workspace-write`, `danger-full-access` or `bypass`; wins over
    /// approval_policy. Default: read-only.
    pub sandbox: Option<String>,
    /// How hard the model reasons: `low`, `medium` or `high`; omit for Codex's default.
    pub reasoning_effort: Option<String>,
    /// Kill the job after this many seconds; omit for the server's default (1 hour).
    pub timeout_seconds: Option<u64>,
    /// Labels to find the job by later.
    pub labels: Option<BTreeMap<String, String>>,
    /// Idempotency key: calling again with the same request_id returns the same job
    /// instead of starting a second one. Use it when retrying.
    pub request_id: Option<String>,
    /// The pool of job hosts to run on; omit for `default`.
    pub pool: Option<String>,
    /// The one job host to run on, when cwd exists only there; omit for any host.
    pub host: Option<String>,
    /// Run in a new git worktree of cwd's repository, on a branch of its own, so its
    /// edits stay apart from the checkout until you codex_apply them (codex_diff
    /// shows them). cwd must be in a git repository.
    pub worktree: Option<bool>,
    /// With worktree: the commit, branch or tag to start from; omit for HEAD.
    pub base: Option<String>,
    /// Best of N: start this many attempts of the prompt (2-16), each in a worktree
    /// of its own; the result's `attempts` lists their job_ids and `group` ties them
    /// (codex_wait_group waits for them). Implies worktree.
    pub attempts: Option<u32>,
}

/// The proto sandbox for the tool's `sandbox` / `approval_policy` arguments.
fn sandbox(sandbox: Option<&str>, approval_policy: Option<&str>) -> Result<pb::Sandbox, String> {
    match (sandbox, approval_policy) {
        (Some(name), _) => names::parse_sandbox(name),
        (None, None | Some("suggest")) => Ok(pb::Sandbox::ReadOnly),
        (None, Some("auto-edit")) => Ok(pb::Sandbox::WorkspaceWrite),
        (None, Some("full-auto")) => Ok(pb::Sandbox::Bypass),
        (None, Some(other)) => Err(format!(
            "approval_policy must be one of suggest, auto-edit, full-auto; got {other:?}"
        )),
    }
}

#[tool_router(router = start_router, vis = "pub(super)")]
impl Bridge {
    /// Start an OpenAI Codex job (`codex exec`) in the background and return at once
    /// with its job_id and status (queued or running). Codex jobs take minutes to
    /// hours: after starting one, call codex_wait repeatedly until its status is done,
    /// error or cancelled, then read final_message. With worktree (or attempts), the
    /// job works in a git worktree of its own: review its change with codex_diff and
    /// take it into the checkout with codex_apply.
    #[tool(
        output_schema = super::output_schema::<Lean>(),
        annotations(
        read_only_hint = false,
        destructive_hint = false,
        idempotent_hint = false,
        open_world_hint = true
    ))]
    pub async fn codex_start(
        &self,
        Parameters(args): Parameters<StartArgs>,
    ) -> Result<Json<Lean>, String> {
        let sandbox = sandbox(args.sandbox.as_deref(), args.approval_policy.as_deref())?;
        let request = pb::StartRequest {
            spec: Some(pb::JobSpec {
                prompt: args.prompt,
                cwd: args.cwd,
                model: args.model.unwrap_or_default(),
                sandbox: sandbox.into(),
                timeout: args.timeout_seconds.map(|seconds| prost_types::Duration {
                    seconds: seconds.min(i64::MAX as u64) as i64,
                    nanos: 0,
                }),
                labels: args.labels.unwrap_or_default().into_iter().collect(),
                resume_thread_id: String::new(),
                reasoning_effort: args
                    .reasoning_effort
                    .as_deref()
                    .map(names::parse_reasoning_effort)
                    .transpose()?
                    .unwrap_or_default()
                    .into(),
                pool: args.pool.unwrap_or_default(),
                host: args.host.unwrap_or_default(),
                isolation: match args.worktree.unwrap_or(false) || args.attempts.is_some() {
                    true => pb::Isolation::Worktree,
                    false => pb::Isolation::Unspecified,
                }
                .into(),
                base: args.base.unwrap_or_default(),
            }),
            request_id: args.request_id.unwrap_or_default(),
            attempts: args.attempts.unwrap_or(0),
        };
        self.start(request).await.map(|job| Json(Lean(job)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approval_policies_map_to_sandboxes_and_sandbox_wins() {
        assert_eq!(sandbox(None, None), Ok(pb::Sandbox::ReadOnly));
        assert_eq!(sandbox(None, Some("suggest")), Ok(pb::Sandbox::ReadOnly));
        assert_eq!(
            sandbox(None, Some("auto-edit")),
            Ok(pb::Sandbox::WorkspaceWrite)
        );
        assert_eq!(sandbox(None, Some("full-auto")), Ok(pb::Sandbox::Bypass));
        assert_eq!(
            sandbox(Some("read-only"), Some("full-auto")),
            Ok(pb::Sandbox::ReadOnly)
        );
        assert!(
            sandbox(None, Some("yolo"))
                .unwrap_err()
                .contains("suggest, auto-edit, full-auto")
        );
        assert!(sandbox(Some("full-auto"), None).is_err());
    }
}
