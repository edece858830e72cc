//! The JSON shapes of jobs that the CLI's `--json` prints and the MCP tools return,
//! compatible with the original codex-async tools (`job_id`, `status`, `exit_code`,
//! `output`, `started_at`, `finished_at`, `prompt`, `cwd`) and extended with what
//! long-running work needs. One definition serves both, with its JSON Schema.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{names, pb};

/// A job, as tools and scripts see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = plain_integers)]
pub struct JobView {
    /// The job's id (a UUID v7).
    pub job_id: String,
    /// `queued` (waiting for a run slot), `running`, `done` (succeeded), `error`
    /// (failed: see `error`) or `cancelled`.
    pub status: String,
    /// The precise state: `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub state: String,
    /// Codex's exit status, once it exited.
    pub exit_code: Option<i32>,
    /// The signal that ended Codex, if one did.
    pub signal: Option<i32>,
    /// Why the job failed or was cancelled, in a sentence; null otherwise.
    pub error: Option<String>,
    /// Why the output stops short (the host's cap, a full disk); null when whole.
    pub output_note: Option<String>,
    /// Bytes the job takes on the server's disk (its logs).
    #[serde(default)]
    pub disk_bytes: u64,
    /// Output text: the window that was read (poll, wait), else absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Byte offset where the transcript read ends: pass it as `since_offset` to get
    /// only what comes after.
    pub next_offset: u64,
    /// True when the output window was cut to its size limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<bool>,
    /// Codex's final message, once the job has ended.
    pub final_message: String,
    /// The Codex thread id, once Codex reported it (for continuing the thread).
    pub thread_id: Option<String>,
    /// Tokens Codex reported, once it did.
    pub usage: Option<Usage>,
    /// The prompt the job runs (left out of the answer to the call that sent it).
    pub prompt: String,
    /// The directory Codex runs in.
    pub cwd: String,
    pub labels: BTreeMap<String, String>,
    /// Who started the job: `token NAME`, `certificate CN`, `uid N` or `anonymous`.
    pub created_by: Option<String>,
    /// The pool of hosts the job runs in.
    #[serde(default)]
    pub pool: String,
    /// The host that runs (or ran) the job; null while it is queued.
    #[serde(default)]
    pub host: Option<String>,
    /// True while that host has stopped heartbeating: the state is as it last told.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub host_unreachable: bool,
    /// For a job in a worktree of its own: the commit (or, until a host has checked
    /// the job, the ref) the worktree starts at. Absent for a job run in its cwd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worktree_base: Option<String>,
    /// The group id of attempts started together; absent for a job started alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// In the answer to a start of several attempts: every attempt's id, oldest
    /// first, this one included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<Vec<String>>,
    /// What a job in a worktree changed, once it has ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<ChangeView>,
    /// RFC 3339 times; null until they happen.
    pub created_at: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

/// Token usage from Codex's `turn.completed`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = plain_integers)]
pub struct Usage {
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
}

/// What a job in a worktree changed: its work, committed on its branch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = plain_integers)]
pub struct ChangeView {
    /// The branch holding the work (`codex-jobs/JOB_ID`), until the job is deleted.
    pub branch: String,
    pub base_commit: String,
    pub head_commit: String,
    pub files_changed: u64,
    pub lines_added: u64,
    pub lines_removed: u64,
    /// Each file, with its lines added and removed (none for a binary file).
    pub files: Vec<FileView>,
    /// Size of the patch in bytes (what diff returns, page by page).
    pub patch_bytes: u64,
}

/// One file of a change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = plain_integers)]
pub struct FileView {
    pub path: String,
    pub added: u64,
    pub removed: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub binary: bool,
}

impl From<&pb::Change> for ChangeView {
    fn from(change: &pb::Change) -> Self {
        ChangeView {
            branch: change.branch.clone(),
            base_commit: change.base_commit.clone(),
            head_commit: change.head_commit.clone(),
            files_changed: change.files.len() as u64,
            lines_added: change.files.iter().map(|file| file.lines_added).sum(),
            lines_removed: change.files.iter().map(|file| file.lines_removed).sum(),
            files: change
                .files
                .iter()
                .map(|file| FileView {
                    path: file.path.clone(),
                    added: file.lines_added,
                    removed: file.lines_removed,
                    binary: file.binary,
                })
                .collect(),
            patch_bytes: change.patch_size,
        }
    }
}

impl ChangeView {
    /// `3 files, +10 -2`: the change in a few words.
    pub fn stat(&self) -> String {
        let files = match self.files_changed {
            1 => "1 file".to_string(),
            n => format!("{n} files"),
        };
        format!("{files}, +{} -{}", self.lines_added, self.lines_removed)
    }
}

/// A window of the patch of a job's change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = plain_integers)]
pub struct DiffView {
    pub job_id: String,
    pub change: Option<ChangeView>,
    /// The patch (`git diff --binary BASE HEAD`), from `offset` on.
    pub patch: String,
    pub offset: u64,
    /// Pass as `offset` for the rest when `truncated`.
    pub next_offset: u64,
    /// True when the window was cut to its size limit.
    pub truncated: bool,
}

impl From<&pb::DiffResponse> for DiffView {
    fn from(response: &pb::DiffResponse) -> Self {
        let job = response.job.clone().unwrap_or_default();
        DiffView {
            job_id: job.id,
            change: job.change.as_ref().map(ChangeView::from),
            patch: String::from_utf8_lossy(&response.patch).into_owned(),
            offset: response.start_offset,
            next_offset: response.next_offset,
            truncated: response.truncated,
        }
    }
}

/// What apply did to the checkout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AppliedView {
    pub job_id: String,
    /// The top of the checkout the change went into.
    pub checkout: String,
    /// The files changed there (left uncommitted), relative to `checkout`.
    pub files: Vec<String>,
}

impl From<&pb::ApplyResponse> for AppliedView {
    fn from(response: &pb::ApplyResponse) -> Self {
        AppliedView {
            job_id: response
                .job
                .as_ref()
                .map(|job| job.id.clone())
                .unwrap_or_default(),
            checkout: response.checkout.clone(),
            files: response.files.clone(),
        }
    }
}

/// One page of jobs, newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JobList {
    pub jobs: Vec<JobView>,
    /// Pass to list again for the next page; null on the last page.
    pub next_page_token: Option<String>,
}

/// Drops schemars' integer `format`s (`uint64`, `int32`, ...): they are not JSON
/// Schema formats, and strict clients warn about each one.
fn plain_integers(schema: &mut schemars::Schema) {
    if let Some(object) = schema.as_object_mut()
        && object
            .get("format")
            .and_then(|format| format.as_str())
            .is_some_and(|format| format.starts_with("int") || format.starts_with("uint"))
    {
        object.remove("format");
    }
    schemars::transform::transform_subschemas(&mut plain_integers, schema);
}

/// An RFC 3339 timestamp.
pub(crate) fn time(timestamp: Option<&prost_types::Timestamp>) -> Option<String> {
    let timestamp = timestamp?;
    let since_epoch = std::time::Duration::new(
        timestamp.seconds.max(0) as u64,
        timestamp.nanos.max(0) as u32,
    );
    Some(humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + since_epoch).to_string())
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_string())
}

impl From<&pb::Job> for JobView {
    fn from(job: &pb::Job) -> Self {
        let spec = job.spec.clone().unwrap_or_default();
        let worktree_base =
            (spec.isolation() == pb::Isolation::Worktree).then(|| spec.base.clone());
        JobView {
            job_id: job.id.clone(),
            status: names::status_name(job.state()).into(),
            state: names::state_name(job.state()).into(),
            exit_code: job.exit_code,
            signal: job.signal,
            error: non_empty(&job.error),
            output_note: non_empty(&job.output_note),
            disk_bytes: job.disk_bytes,
            output: None,
            next_offset: job.output_size,
            truncated: None,
            final_message: job.final_message.clone(),
            thread_id: non_empty(&job.thread_id),
            usage: job.usage.map(|usage| Usage {
                input_tokens: usage.input_tokens,
                cached_input_tokens: usage.cached_input_tokens,
                output_tokens: usage.output_tokens,
            }),
            prompt: spec.prompt,
            cwd: spec.cwd,
            labels: spec.labels.into_iter().collect(),
            created_by: non_empty(&job.created_by),
            pool: spec.pool,
            host: non_empty(&job.host),
            host_unreachable: job.host_unreachable,
            worktree_base,
            group: non_empty(&job.group),
            attempts: None,
            change: job.change.as_ref().map(ChangeView::from),
            created_at: time(job.created_at.as_ref()),
            started_at: time(job.started_at.as_ref()),
            finished_at: time(job.finished_at.as_ref()),
        }
    }
}

impl From<&pb::PollResponse> for JobView {
    /// The job plus its output window.
    fn from(response: &pb::PollResponse) -> Self {
        let mut view = response
            .job
            .as_ref()
            .map(JobView::from)
            .unwrap_or_else(|| JobView::from(&pb::Job::default()));
        view.output = Some(String::from_utf8_lossy(&response.output).into_owned());
        view.next_offset = response.next_offset;
        view.truncated = Some(response.truncated);
        view
    }
}

impl From<&pb::ListResponse> for JobList {
    fn from(response: &pb::ListResponse) -> Self {
        JobList {
            jobs: response.jobs.iter().map(JobView::from).collect(),
            next_page_token: non_empty(&response.next_page_token),
        }
    }
}
