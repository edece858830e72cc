//! The job model in plain Rust: what a job is, the states it moves through and what
//! its run produced. Nothing here knows about gRPC or SQL.

use std::{collections::BTreeMap, fmt, path::PathBuf, str::FromStr, time::Duration};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A job's id: a UUID v7, so ids sort by creation time. Only a parsed `JobId` ever
/// reaches the filesystem, always in canonical form, so no caller-supplied string
/// can name a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(Uuid);

impl JobId {
    /// A fresh id for a job created now.
    pub fn new() -> Self {
        JobId(Uuid::now_v7())
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// Why a string is not a job id.
#[derive(Debug, thiserror::Error)]
#[error("job id must be a UUID v7 like 0192f0c4-6a35-7b21-9c1e-3f0a5d2e8b47, got {0:?}")]
pub struct BadJobId(String);

impl FromStr for JobId {
    type Err = BadJobId;

    /// Accepts only the canonical hyphenated form of a version 7 UUID.
    fn from_str(text: &str) -> Result<Self, BadJobId> {
        let bad = || BadJobId(text.chars().take(64).collect());
        if text.len() != 36 {
            return Err(bad());
        }
        let uuid = Uuid::try_parse(text).map_err(|_| bad())?;
        if uuid.get_version_num() != 7 {
            return Err(bad());
        }
        Ok(JobId(uuid))
    }
}

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    /// Every state, in the order a job moves through them.
    pub const ALL: [JobState; 5] = [
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
    ];

    /// The lower-case name the store and messages use.
    pub fn name(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// The state named `name`.
    pub fn from_name(name: &str) -> Option<JobState> {
        Self::ALL.into_iter().find(|state| state.name() == name)
    }

    /// True for the states a job never leaves.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }
}

/// Why a job failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    NonZeroExit,
    Signaled,
    TimedOut,
    StartFailed,
    Lost,
    DiskFull,
}

impl FailureReason {
    pub const ALL: [FailureReason; 6] = [
        FailureReason::NonZeroExit,
        FailureReason::Signaled,
        FailureReason::TimedOut,
        FailureReason::StartFailed,
        FailureReason::Lost,
        FailureReason::DiskFull,
    ];

    /// The snake-case name the store uses.
    pub fn name(self) -> &'static str {
        match self {
            FailureReason::NonZeroExit => "non_zero_exit",
            FailureReason::Signaled => "signaled",
            FailureReason::TimedOut => "timed_out",
            FailureReason::StartFailed => "start_failed",
            FailureReason::Lost => "lost",
            FailureReason::DiskFull => "disk_full",
        }
    }

    /// The reason named `name`.
    pub fn from_name(name: &str) -> Option<FailureReason> {
        Self::ALL.into_iter().find(|reason| reason.name() == name)
    }
}

/// The Codex sandbox level, from most to least restricted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sandbox {
    #[default]
    ReadOnly,
    WorkspaceWrite,
    DangerFullAccess,
    /// `--dangerously-bypass-approvals-and-sandbox`.
    Bypass,
}

impl Sandbox {
    /// All levels, in order.
    pub const ALL: [Sandbox; 4] = [
        Sandbox::ReadOnly,
        Sandbox::WorkspaceWrite,
        Sandbox::DangerFullAccess,
        Sandbox::Bypass,
    ];

    /// The name used on command lines and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Sandbox::ReadOnly => "read-only",
            Sandbox::WorkspaceWrite => "workspace-write",
            Sandbox::DangerFullAccess => "danger-full-access",
            Sandbox::Bypass => "bypass",
        }
    }
}

impl FromStr for Sandbox {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Sandbox::ALL
            .into_iter()
            .find(|level| level.name() == text)
            .ok_or_else(|| {
                format!(
                    "unknown sandbox {text:?}; allowed: read-only, workspace-write, danger-full-access, bypass"
                )
            })
    }
}

/// What to run. Every field has been validated by the time a `JobSpec` exists.
#[derive(Clone, Debug, PartialEq)]
pub struct JobSpec {
    pub prompt: String,
    pub cwd: PathBuf,
    /// Empty: Codex's default model.
    pub model: String,
    pub sandbox: Sandbox,
    /// `None`: the server's default timeout.
    pub timeout: Option<Duration>,
    pub labels: BTreeMap<String, String>,
    /// Empty: a new thread; else `codex exec resume <thread>`.
    pub resume_thread_id: String,
    /// `None`: Codex's own default.
    pub reasoning_effort: Option<ReasoningEffort>,
    /// The pool of hosts that may run it (`DEFAULT_POOL` unless asked otherwise).
    pub pool: String,
    /// The one host that may run it; empty: any host of the pool.
    pub host: String,
    /// Where Codex works: in the cwd, or in a worktree of its own.
    pub isolation: Isolation,
}

/// Where a job's Codex works.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Isolation {
    /// In the cwd itself.
    #[default]
    None,
    /// In a git worktree of the cwd's repository made for the job, on a branch of its
    /// own, checked out at `base`: a commit once the job is checked, or a ref still
    /// to resolve (empty: HEAD) when the host that takes it will check it.
    Worktree { base: String },
}

impl Isolation {
    /// The base of a worktree; `None` for a job run in its cwd.
    pub fn base(&self) -> Option<&str> {
        match self {
            Isolation::None => None,
            Isolation::Worktree { base } => Some(base),
        }
    }
}

/// What a job in a worktree changed, from its base to the commit of its work.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The commit the worktree was made at.
    pub base_commit: String,
    /// The commit holding the job's work (its base when it changed nothing).
    pub head_commit: String,
    /// The branch that points at it, until the job is deleted.
    pub branch: String,
    /// Every file changed, by path.
    pub files: Vec<FileChange>,
    /// Size in bytes of the patch from base to head (`git diff --binary`).
    pub patch_size: u64,
}

/// One file of a `Change`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FileChange {
    pub path: String,
    /// Lines added and removed; `None` for a binary file.
    pub lines: Option<(u64, u64)>,
}

/// The pool of jobs that name none, and of hosts that serve none.
pub const DEFAULT_POOL: &str = "default";

/// How hard the model reasons (Codex's `model_reasoning_effort`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReasoningEffort {
    Low,
    Medium,
    High,
}

impl ReasoningEffort {
    pub const ALL: [ReasoningEffort; 3] = [Self::Low, Self::Medium, Self::High];

    /// The name Codex's config and our store use.
    pub fn name(self) -> &'static str {
        match self {
            ReasoningEffort::Low => "low",
            ReasoningEffort::Medium => "medium",
            ReasoningEffort::High => "high",
        }
    }

    /// The effort named `name`.
    pub fn from_name(name: &str) -> Option<ReasoningEffort> {
        Self::ALL.into_iter().find(|effort| effort.name() == name)
    }
}

/// Tokens Codex reported in `turn.completed`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
}

/// One of a job's output logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutputStream {
    /// One readable line per message, command, file change and error.
    #[default]
    Transcript,
    /// Codex's `--json` events, as it printed them.
    Events,
    /// Codex's stderr.
    Stderr,
}

/// A process, identified across pid reuse: after a process ends its pid can be
/// given to another, but not with the same start time (in clock ticks since boot,
/// from `/proc/<pid>/stat`). The runner module reads and signals processes by it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessIdentity {
    pub pid: u32,
    /// Clock ticks after boot at which the process started.
    pub start_time: u64,
}

/// Which jobs List returns.
#[derive(Debug, Default)]
pub struct ListFilter {
    /// Any of these states; empty means all.
    pub states: Vec<JobState>,
    /// Every one of these labels.
    pub labels: BTreeMap<String, String>,
    /// Only jobs older than this one (the page token).
    pub before: Option<JobId>,
    pub limit: usize,
    /// Only jobs that ended taking at least this many bytes on disk; zero: any.
    pub min_disk_bytes: u64,
    /// Only the attempts of this group; empty: any.
    pub group: String,
}

/// Which jobs a Watch reports.
#[derive(Clone, Debug, Default)]
pub struct WatchFilter {
    /// The states of the jobs it starts with; empty means all. Changes are
    /// reported whatever state they lead to.
    pub states: Vec<JobState>,
    /// Every one of these labels.
    pub labels: BTreeMap<String, String>,
    /// Only these jobs; empty means any.
    pub ids: Vec<JobId>,
}

impl WatchFilter {
    /// Whether a change of `job` is reported: its labels and id match.
    pub fn follows(&self, job: &Job) -> bool {
        (self.ids.is_empty() || self.ids.contains(&job.id))
            && self
                .labels
                .iter()
                .all(|(key, value)| job.spec.labels.get(key) == Some(value))
    }
}

/// A job host: one server taking jobs from the store's queue.
#[derive(Clone, Debug, PartialEq)]
pub struct Host {
    /// Its --host-id.
    pub id: String,
    /// How other hosts reach it (--advertise); empty if it gave none.
    pub address: String,
    /// The pools whose jobs it takes.
    pub pools: Vec<String>,
    pub max_running: u32,
    /// Jobs it ran at its last heartbeat.
    pub running: u32,
    pub started_at: Millis,
    pub heartbeat_at: Millis,
}

/// What List returns: one page, newest first.
#[derive(Debug, Default)]
pub struct Page {
    pub jobs: Vec<Job>,
    /// The id to continue after, when there are more jobs.
    pub next: Option<JobId>,
}

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// The current time in milliseconds since the Unix epoch.
pub fn now_millis() -> Millis {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    since_epoch.as_millis() as Millis
}

/// How a finished job ended.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    pub failure_reason: Option<FailureReason>,
    /// A sentence a person can act on; empty on success.
    pub error: String,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// Why the output logs stop short (the host's cap, a full disk); empty when
    /// they are complete.
    pub output_note: String,
}

/// A job and what its run produced so far.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub id: JobId,
    pub spec: JobSpec,
    pub request_id: Option<String>,
    pub state: JobState,
    pub outcome: Outcome,
    pub created_at: Millis,
    pub started_at: Option<Millis>,
    pub finished_at: Option<Millis>,
    pub thread_id: String,
    pub final_message: String,
    pub usage: Option<TokenUsage>,
    /// Transcript bytes written so far.
    pub output_size: u64,
    /// Bytes the job's directory takes on disk (all its logs).
    pub disk_bytes: u64,
    /// Who started it (see `service::auth::Caller`).
    pub created_by: String,
    /// The host that runs (or ran) it; empty while it is queued.
    pub host: String,
    /// It runs on a host that has stopped heartbeating: its state is as that host
    /// last told. Never stored: read from the hosts as the job is.
    pub host_unreachable: bool,
    /// The attempts started together with it share this id (see `Start`); empty for
    /// a job started alone.
    pub group: String,
    /// What it changed, once a job in a worktree has ended.
    pub change: Option<Change>,
}

impl Job {
    /// A new job, queued now.
    pub fn queued(spec: JobSpec, request_id: Option<String>, created_by: String) -> Job {
        Job {
            id: JobId::new(),
            spec,
            request_id,
            state: JobState::Queued,
            outcome: Outcome::default(),
            created_at: now_millis(),
            started_at: None,
            finished_at: None,
            thread_id: String::new(),
            final_message: String::new(),
            usage: None,
            output_size: 0,
            disk_bytes: 0,
            created_by,
            host: String::new(),
            host_unreachable: false,
            group: String::new(),
            change: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_round_trip_and_reject_everything_else() {
        let id = JobId::new();
        assert_eq!(id.to_string().parse::<JobId>().unwrap(), id);
        for bad in [
            "",
            "../../etc/passwd",
            "0192f0c4-6a35-4b21-9c1e-3f0a5d2e8b47", // v4
            "{0192f0c4-6a35-7b21-9c1e-3f0a5d2e8b47}",
            "0192f0c46a357b219c1e3f0a5d2e8b47",
            "0192f0c4-6a35-7b21-9c1e-3f0a5d2e8b4/",
        ] {
            assert!(bad.parse::<JobId>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn states_and_reasons_round_trip_through_their_names() {
        for state in JobState::ALL {
            assert_eq!(JobState::from_name(state.name()), Some(state));
        }
        for reason in FailureReason::ALL {
            assert_eq!(FailureReason::from_name(reason.name()), Some(reason));
        }
        assert_eq!(JobState::from_name("done"), None);
    }

    #[test]
    fn sandbox_levels_are_ordered_and_named() {
        assert!(Sandbox::ReadOnly < Sandbox::WorkspaceWrite);
        assert!(Sandbox::DangerFullAccess < Sandbox::Bypass);
        for level in Sandbox::ALL {
            assert_eq!(level.name().parse::<Sandbox>().unwrap(), level);
        }
        assert!("full-auto".parse::<Sandbox>().is_err());
    }
}
