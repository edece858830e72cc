//! Conversions between `codex.jobs.v1` messages and the job model. Every field a
//! caller sends is checked here, so the manager never sees an unchecked value; each
//! error says what was wrong and what is allowed.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use codex_jobs_api::v1 as pb;
use prost_types::Timestamp;

use crate::{
    error::Error,
    job::{
        Change, DEFAULT_POOL, FailureReason, Isolation, Job, JobId, JobSpec, JobState, Millis,
        OutputStream, ReasoningEffort, Sandbox,
    },
    manager::{HostStatus, MAX_ATTEMPTS},
};

pub const MAX_PROMPT_BYTES: usize = 1024 * 1024;
pub const MAX_TAIL_LINES: u32 = 10_000;
pub const DEFAULT_MAX_BYTES: usize = 256 * 1024;
pub const MAX_BYTES: u32 = 4 * 1024 * 1024;
pub const MAX_WAIT: Duration = Duration::from_secs(300);
/// The longest job timeout: a week.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 60 * 60);
pub const DEFAULT_PAGE_SIZE: usize = 20;
pub const MAX_PAGE_SIZE: u32 = 1000;
const MAX_LABELS: usize = 16;
const MAX_LABEL_KEY: usize = 64;
const MAX_LABEL_VALUE: usize = 256;
const MAX_REQUEST_ID: usize = 128;
const MAX_MODEL: usize = 256;
/// The prompts one Start's answer may carry, well under the 4 MiB message most
/// gRPC clients take by default.
const MAX_ANSWER_PROMPTS: usize = 3 * 1024 * 1024;
/// The longest worktree base.
const MAX_BASE: usize = 256;
/// The longest pool or host name.
pub const MAX_HOST_NAME: usize = 64;

/// The longest cwd: Linux's PATH_MAX.
const MAX_CWD: usize = 4096;

fn invalid(message: String) -> Error {
    Error::InvalidArgument(message)
}

/// Caller input quoted in an error message, cut short: a message travels in a
/// response header, and an echo of a huge value would break the response.
pub fn quoted(text: &str) -> String {
    const SHOWN: usize = 64;
    if text.len() <= SHOWN {
        return format!("{text:?}");
    }
    let mut end = SHOWN;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}... ({} bytes)", &text[..end], text.len())
}

pub fn job_id(text: &str) -> Result<JobId, Error> {
    text.parse()
        .map_err(|err: crate::job::BadJobId| invalid(err.to_string()))
}

/// States to filter by, each checked.
pub fn job_states(values: Vec<i32>) -> Result<Vec<JobState>, Error> {
    values.into_iter().map(job_state).collect()
}

/// The most job ids one Watch may name.
pub const MAX_WATCHED_IDS: usize = 1000;

/// A list of job ids, each checked, without repeats.
pub fn job_ids(texts: &[String]) -> Result<Vec<JobId>, Error> {
    if texts.len() > MAX_WATCHED_IDS {
        return Err(invalid(format!(
            "at most {MAX_WATCHED_IDS} job_ids are allowed, got {}",
            texts.len()
        )));
    }
    let mut ids = Vec::with_capacity(texts.len());
    for text in texts {
        let id = job_id(text)?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

pub fn spec(spec: Option<pb::JobSpec>) -> Result<JobSpec, Error> {
    let spec = spec.ok_or_else(|| invalid("spec is required".into()))?;
    if spec.prompt.trim().is_empty() {
        return Err(invalid("prompt must not be empty".into()));
    }
    if spec.prompt.contains('\0') {
        return Err(invalid("prompt must not contain NUL characters".into()));
    }
    if spec.prompt.len() > MAX_PROMPT_BYTES {
        return Err(invalid(format!(
            "prompt must be at most {MAX_PROMPT_BYTES} bytes, got {}",
            spec.prompt.len()
        )));
    }
    if !spec.cwd.starts_with('/') || spec.cwd.contains('\0') || spec.cwd.len() > MAX_CWD {
        return Err(invalid(format!(
            "cwd must be the absolute path (at most {MAX_CWD} bytes) of the directory to run Codex in, got {}",
            quoted(&spec.cwd)
        )));
    }
    if spec.model.len() > MAX_MODEL
        || spec.model.starts_with('-')
        || spec.model.chars().any(char::is_control)
    {
        return Err(invalid(format!(
            "model must be a model name of at most {MAX_MODEL} characters, not starting with '-', got {}",
            quoted(&spec.model)
        )));
    }
    let sandbox = sandbox(spec.sandbox)?;
    let reasoning_effort = reasoning_effort(spec.reasoning_effort)?;
    let timeout = match spec.timeout {
        None => None,
        Some(timeout) if timeout.seconds == 0 && timeout.nanos == 0 => None,
        Some(timeout) => Some(
            Duration::try_from(timeout)
                .ok()
                .filter(|timeout| (Duration::from_secs(1)..=MAX_TIMEOUT).contains(timeout))
                .ok_or_else(|| {
                    invalid(format!(
                        "timeout must be between 1 and {} seconds, got {} s",
                        MAX_TIMEOUT.as_secs(),
                        timeout.seconds
                    ))
                })?,
        ),
    };
    let labels = labels(spec.labels.into_iter().collect())?;
    // A thread id lands in Codex's argv: only a real UUID can never pass for a flag.
    let thread = &spec.resume_thread_id;
    if !thread.is_empty() && (thread.len() != 36 || uuid::Uuid::try_parse(thread).is_err()) {
        return Err(invalid(format!(
            "resume_thread_id must be a Codex thread id (a UUID), got {}",
            quoted(thread)
        )));
    }
    let pool = match spec.pool.as_str() {
        "" => DEFAULT_POOL.to_string(),
        pool => host_name("pool", pool)?,
    };
    let host = match spec.host.as_str() {
        "" => String::new(),
        host => host_name("host", host)?,
    };
    let isolation = isolation(spec.isolation, spec.base)?;
    Ok(JobSpec {
        prompt: spec.prompt,
        cwd: PathBuf::from(spec.cwd),
        model: spec.model,
        sandbox,
        timeout,
        labels,
        resume_thread_id: spec.resume_thread_id,
        reasoning_effort,
        pool,
        host,
        isolation,
    })
}

/// Where Codex works, with the base of a worktree.
fn isolation(value: i32, base: String) -> Result<Isolation, Error> {
    let worktree = match pb::Isolation::try_from(value) {
        Ok(pb::Isolation::Unspecified | pb::Isolation::None) => false,
        Ok(pb::Isolation::Worktree) => true,
        Err(_) => {
            return Err(invalid(format!(
                "unknown isolation {value}; allowed: ISOLATION_NONE (1), ISOLATION_WORKTREE (2)"
            )));
        }
    };
    if !worktree {
        if !base.is_empty() {
            return Err(invalid(
                "base is the commit a worktree starts at: it needs isolation ISOLATION_WORKTREE"
                    .into(),
            ));
        }
        return Ok(Isolation::None);
    }
    // It lands in git's argv (after --end-of-options): never a flag, never a line.
    if base.len() > MAX_BASE
        || base.starts_with('-')
        || base.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(invalid(format!(
            "base must be a commit, branch or tag of at most {MAX_BASE} characters, without \
             spaces and not starting with '-', got {}",
            quoted(&base)
        )));
    }
    Ok(Isolation::Worktree { base })
}

/// How many attempts a Start asks for: zero means one. Each comes back in the
/// answer with its prompt, which must fit a gRPC message as most clients take it.
pub fn attempts(attempts: u32, spec: &JobSpec) -> Result<usize, Error> {
    let attempts = match attempts as usize {
        0 => 1,
        n @ 1..=MAX_ATTEMPTS => n,
        n => {
            return Err(invalid(format!(
                "attempts must be between 1 and {MAX_ATTEMPTS}, got {n}"
            )));
        }
    };
    // The answer holds the first attempt twice (`job` and `attempts`).
    let fits = (MAX_ANSWER_PROMPTS / spec.prompt.len().max(1)).saturating_sub(1);
    if attempts > 1 && attempts > fits {
        return Err(invalid(format!(
            "{attempts} attempts of a prompt of {} bytes make an answer too large: at most \
             {fits} attempts of it, or a prompt of at most {} bytes for {attempts}",
            spec.prompt.len(),
            MAX_ANSWER_PROMPTS / (attempts + 1)
        )));
    }
    Ok(attempts)
}

/// A group id filter: empty, or a group's id (a UUID v7).
pub fn group(text: String) -> Result<String, Error> {
    if !text.is_empty() {
        text.parse::<JobId>().map_err(|_| {
            invalid(format!(
                "group must be a group id (a UUID v7), got {}",
                quoted(&text)
            ))
        })?;
    }
    Ok(text)
}

/// A pool's or a host's name, as `what` of a job.
fn host_name(what: &str, name: &str) -> Result<String, Error> {
    if !is_token(name, MAX_HOST_NAME) {
        return Err(invalid(format!(
            "{what} must be 1-{MAX_HOST_NAME} characters of A-Z a-z 0-9 . _ -, got {}",
            quoted(name)
        )));
    }
    Ok(name.to_string())
}

fn is_token(text: &str, max: usize) -> bool {
    !text.is_empty()
        && text.len() <= max
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

pub fn labels(labels: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, Error> {
    if labels.len() > MAX_LABELS {
        return Err(invalid(format!(
            "at most {MAX_LABELS} labels are allowed, got {}",
            labels.len()
        )));
    }
    for (key, value) in &labels {
        if !is_token(key, MAX_LABEL_KEY) {
            return Err(invalid(format!(
                "label key {} must be 1-{MAX_LABEL_KEY} characters of A-Z a-z 0-9 . _ -",
                quoted(key)
            )));
        }
        if value.len() > MAX_LABEL_VALUE {
            return Err(invalid(format!(
                "label {} must have a value of at most {MAX_LABEL_VALUE} bytes",
                quoted(key)
            )));
        }
    }
    Ok(labels)
}

pub fn request_id(text: String) -> Result<Option<String>, Error> {
    if text.is_empty() {
        return Ok(None);
    }
    if text.len() > MAX_REQUEST_ID || text.chars().any(char::is_control) {
        return Err(invalid(format!(
            "request_id must be at most {MAX_REQUEST_ID} characters without control characters"
        )));
    }
    Ok(Some(text))
}

fn sandbox(value: i32) -> Result<Sandbox, Error> {
    match pb::Sandbox::try_from(value) {
        Ok(pb::Sandbox::Unspecified | pb::Sandbox::ReadOnly) => Ok(Sandbox::ReadOnly),
        Ok(pb::Sandbox::WorkspaceWrite) => Ok(Sandbox::WorkspaceWrite),
        Ok(pb::Sandbox::DangerFullAccess) => Ok(Sandbox::DangerFullAccess),
        Ok(pb::Sandbox::Bypass) => Ok(Sandbox::Bypass),
        Err(_) => Err(invalid(format!(
            "unknown sandbox {value}; allowed: READ_ONLY, WORKSPACE_WRITE, DANGER_FULL_ACCESS, BYPASS"
        ))),
    }
}

fn reasoning_effort(value: i32) -> Result<Option<ReasoningEffort>, Error> {
    match pb::ReasoningEffort::try_from(value) {
        Ok(pb::ReasoningEffort::Unspecified) => Ok(None),
        Ok(pb::ReasoningEffort::Low) => Ok(Some(ReasoningEffort::Low)),
        Ok(pb::ReasoningEffort::Medium) => Ok(Some(ReasoningEffort::Medium)),
        Ok(pb::ReasoningEffort::High) => Ok(Some(ReasoningEffort::High)),
        Err(_) => Err(invalid(format!(
            "unknown reasoning effort {value}; allowed: LOW, MEDIUM, HIGH (or unset for Codex's default)"
        ))),
    }
}

pub fn output_stream(value: i32) -> Result<OutputStream, Error> {
    match pb::OutputStream::try_from(value) {
        Ok(pb::OutputStream::Unspecified | pb::OutputStream::Transcript) => {
            Ok(OutputStream::Transcript)
        }
        Ok(pb::OutputStream::Events) => Ok(OutputStream::Events),
        Ok(pb::OutputStream::Stderr) => Ok(OutputStream::Stderr),
        Err(_) => Err(invalid(format!(
            "unknown output stream {value}; allowed: TRANSCRIPT, EVENTS, STDERR"
        ))),
    }
}

pub fn job_state(value: i32) -> Result<JobState, Error> {
    match pb::JobState::try_from(value) {
        Ok(pb::JobState::Queued) => Ok(JobState::Queued),
        Ok(pb::JobState::Running) => Ok(JobState::Running),
        Ok(pb::JobState::Succeeded) => Ok(JobState::Succeeded),
        Ok(pb::JobState::Failed) => Ok(JobState::Failed),
        Ok(pb::JobState::Cancelled) => Ok(JobState::Cancelled),
        _ => Err(invalid(format!(
            "unknown job state {value}; allowed: QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED"
        ))),
    }
}

pub fn tail_lines(lines: u32) -> Result<usize, Error> {
    if lines > MAX_TAIL_LINES {
        return Err(invalid(format!(
            "tail_lines must be between 0 and {MAX_TAIL_LINES}, got {lines}"
        )));
    }
    Ok(lines as usize)
}

pub fn max_bytes(bytes: u32) -> Result<usize, Error> {
    match bytes {
        0 => Ok(DEFAULT_MAX_BYTES),
        1..=MAX_BYTES => Ok(bytes as usize),
        _ => Err(invalid(format!(
            "max_bytes must be between 1 and {MAX_BYTES} (0 for the default), got {bytes}"
        ))),
    }
}

pub fn wait(wait: Option<prost_types::Duration>) -> Result<Option<Duration>, Error> {
    let Some(wait) = wait else { return Ok(None) };
    Duration::try_from(wait)
        .ok()
        .filter(|wait| *wait <= MAX_WAIT)
        .map(Some)
        .ok_or_else(|| {
            invalid(format!(
                "wait must be between 0 and {} seconds, got {} s",
                MAX_WAIT.as_secs(),
                wait.seconds
            ))
        })
}

/// Prune's age: required, not negative.
pub fn older_than(age: Option<prost_types::Duration>) -> Result<Duration, Error> {
    let age = age.ok_or_else(|| {
        invalid("older_than is required: how long ago the jobs to delete ended (0 for all)".into())
    })?;
    Duration::try_from(age).map_err(|_| {
        invalid(format!(
            "older_than must not be negative, got {} s",
            age.seconds
        ))
    })
}

/// Prune's states: each one that ends a job.
pub fn ended_states(values: Vec<i32>) -> Result<Vec<JobState>, Error> {
    let states = job_states(values)?;
    if let Some(state) = states.iter().find(|state| !state.is_terminal()) {
        return Err(invalid(format!(
            "states may name only states that end a job (succeeded, failed, cancelled), got {}",
            state.name()
        )));
    }
    Ok(states)
}

pub fn page_size(size: u32) -> Result<usize, Error> {
    match size {
        0 => Ok(DEFAULT_PAGE_SIZE),
        1..=MAX_PAGE_SIZE => Ok(size as usize),
        _ => Err(invalid(format!(
            "page_size must be between 1 and {MAX_PAGE_SIZE} (0 for the default), got {size}"
        ))),
    }
}

pub fn page_token(token: &str) -> Result<Option<JobId>, Error> {
    if token.is_empty() {
        return Ok(None);
    }
    token
        .parse()
        .map(Some)
        .map_err(|_| invalid("page_token is not one this server returned".into()))
}

pub fn timestamp(millis: Millis) -> Timestamp {
    Timestamp {
        seconds: millis.div_euclid(1000),
        nanos: (millis.rem_euclid(1000) * 1_000_000) as i32,
    }
}

impl From<JobState> for pb::JobState {
    fn from(state: JobState) -> Self {
        match state {
            JobState::Queued => pb::JobState::Queued,
            JobState::Running => pb::JobState::Running,
            JobState::Succeeded => pb::JobState::Succeeded,
            JobState::Failed => pb::JobState::Failed,
            JobState::Cancelled => pb::JobState::Cancelled,
        }
    }
}

impl From<FailureReason> for pb::FailureReason {
    fn from(reason: FailureReason) -> Self {
        match reason {
            FailureReason::NonZeroExit => pb::FailureReason::NonZeroExit,
            FailureReason::Signaled => pb::FailureReason::Signaled,
            FailureReason::TimedOut => pb::FailureReason::TimedOut,
            FailureReason::StartFailed => pb::FailureReason::StartFailed,
            FailureReason::Lost => pb::FailureReason::Lost,
            FailureReason::DiskFull => pb::FailureReason::DiskFull,
        }
    }
}

impl From<Sandbox> for pb::Sandbox {
    fn from(sandbox: Sandbox) -> Self {
        match sandbox {
            Sandbox::ReadOnly => pb::Sandbox::ReadOnly,
            Sandbox::WorkspaceWrite => pb::Sandbox::WorkspaceWrite,
            Sandbox::DangerFullAccess => pb::Sandbox::DangerFullAccess,
            Sandbox::Bypass => pb::Sandbox::Bypass,
        }
    }
}

impl From<Job> for pb::Job {
    fn from(job: Job) -> Self {
        let spec = job.spec;
        pb::Job {
            id: job.id.to_string(),
            spec: Some(pb::JobSpec {
                prompt: spec.prompt,
                cwd: spec.cwd.display().to_string(),
                model: spec.model,
                sandbox: pb::Sandbox::from(spec.sandbox).into(),
                timeout: spec
                    .timeout
                    .and_then(|t| prost_types::Duration::try_from(t).ok()),
                labels: spec.labels.into_iter().collect(),
                resume_thread_id: spec.resume_thread_id,
                reasoning_effort: spec
                    .reasoning_effort
                    .map_or(pb::ReasoningEffort::Unspecified, |effort| match effort {
                        ReasoningEffort::Low => pb::ReasoningEffort::Low,
                        ReasoningEffort::Medium => pb::ReasoningEffort::Medium,
                        ReasoningEffort::High => pb::ReasoningEffort::High,
                    })
                    .into(),
                pool: spec.pool,
                host: spec.host,
                isolation: match spec.isolation {
                    Isolation::None => pb::Isolation::Unspecified,
                    Isolation::Worktree { .. } => pb::Isolation::Worktree,
                }
                .into(),
                base: spec.isolation.base().unwrap_or_default().to_string(),
            }),
            state: pb::JobState::from(job.state).into(),
            failure_reason: job
                .outcome
                .failure_reason
                .map_or(pb::FailureReason::Unspecified, Into::into)
                .into(),
            error: job.outcome.error,
            exit_code: job.outcome.exit_code,
            signal: job.outcome.signal,
            created_at: Some(timestamp(job.created_at)),
            started_at: job.started_at.map(timestamp),
            finished_at: job.finished_at.map(timestamp),
            thread_id: job.thread_id,
            final_message: job.final_message,
            usage: job.usage.map(|usage| pb::TokenUsage {
                input_tokens: usage.input_tokens,
                cached_input_tokens: usage.cached_input_tokens,
                output_tokens: usage.output_tokens,
            }),
            output_size: job.output_size,
            disk_bytes: job.disk_bytes,
            request_id: job.request_id.unwrap_or_default(),
            created_by: job.created_by,
            output_note: job.outcome.output_note,
            host: job.host,
            host_unreachable: job.host_unreachable,
            group: job.group,
            change: job.change.map(Into::into),
        }
    }
}

impl From<Change> for pb::Change {
    fn from(change: Change) -> Self {
        pb::Change {
            base_commit: change.base_commit,
            head_commit: change.head_commit,
            branch: change.branch,
            files: change
                .files
                .into_iter()
                .map(|file| {
                    let (added, removed) = file.lines.unwrap_or_default();
                    pb::FileChange {
                        path: file.path,
                        lines_added: added,
                        lines_removed: removed,
                        binary: file.lines.is_none(),
                    }
                })
                .collect(),
            patch_size: change.patch_size,
        }
    }
}

impl From<HostStatus> for pb::Host {
    fn from(status: HostStatus) -> Self {
        let host = status.host;
        pb::Host {
            id: host.id,
            address: host.address,
            pools: host.pools,
            max_running: host.max_running,
            running: host.running,
            started_at: Some(timestamp(host.started_at)),
            heartbeat_at: Some(timestamp(host.heartbeat_at)),
            alive: status.alive,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(err: Error) -> String {
        match err {
            Error::InvalidArgument(message) => message,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    fn spec() -> pb::JobSpec {
        pb::JobSpec {
            prompt: "fix the tests".into(),
            cwd: "/src/app".into(),
            ..Default::default()
        }
    }

    fn refused(change: impl FnOnce(&mut pb::JobSpec)) -> String {
        let mut spec = spec();
        change(&mut spec);
        message(super::spec(Some(spec)).unwrap_err())
    }

    #[test]
    fn a_good_spec_converts_with_its_defaults() {
        let converted = super::spec(Some(spec())).unwrap();
        assert_eq!(converted.prompt, "fix the tests");
        assert_eq!(converted.cwd, PathBuf::from("/src/app"));
        assert_eq!(converted.sandbox, Sandbox::ReadOnly);
        assert_eq!(converted.timeout, None);
        assert!(converted.labels.is_empty());
    }

    #[test]
    fn each_bad_spec_field_is_refused_with_what_is_allowed() {
        assert_eq!(message(super::spec(None).unwrap_err()), "spec is required");
        assert!(refused(|s| s.prompt = " \n".into()).contains("must not be empty"));
        assert!(refused(|s| s.prompt = "a\0b".into()).contains("NUL"));
        let huge = "x".repeat(MAX_PROMPT_BYTES + 1);
        assert!(refused(|s| s.prompt = huge).contains("at most 1048576 bytes"));
        assert!(refused(|s| s.cwd = "src".into()).contains("absolute path"));
        assert!(refused(|s| s.model = "--yolo".into()).contains("not starting with '-'"));
        assert!(refused(|s| s.sandbox = 99).contains("allowed: READ_ONLY"));
        let week_and_a_second = prost_types::Duration {
            seconds: 7 * 24 * 3600 + 1,
            nanos: 0,
        };
        assert!(refused(|s| s.timeout = Some(week_and_a_second)).contains("between 1 and"));
        assert!(
            refused(|s| s.labels = [("bad key".into(), "v".into())].into()).contains("A-Z a-z 0-9")
        );
        assert!(refused(|s| s.resume_thread_id = "-c x".into()).contains("UUID"));
    }

    #[test]
    fn echoes_of_caller_input_are_cut_short() {
        let key = "k".repeat(100_000);
        let message = refused(|s| s.labels = [(key, "v".into())].into());
        assert!(message.len() < 200, "{message}");
        assert!(message.contains("... (100000 bytes)"), "{message}");
        // Cut at a character boundary: 32 two-byte characters make 64 bytes.
        assert_eq!(
            quoted(&"é".repeat(40)),
            format!("\"{}\"... (80 bytes)", "é".repeat(32))
        );
    }

    #[test]
    fn window_and_page_bounds() {
        assert_eq!(tail_lines(10_000).unwrap(), 10_000);
        assert_eq!(
            message(tail_lines(10_001).unwrap_err()),
            "tail_lines must be between 0 and 10000, got 10001"
        );
        assert_eq!(max_bytes(0).unwrap(), DEFAULT_MAX_BYTES);
        assert!(max_bytes(MAX_BYTES + 1).is_err());
        assert_eq!(page_size(0).unwrap(), DEFAULT_PAGE_SIZE);
        assert!(page_size(MAX_PAGE_SIZE + 1).is_err());
        assert_eq!(page_token("").unwrap(), None);
        assert!(page_token("../etc").is_err());
        let five_minutes_and_a_second = prost_types::Duration {
            seconds: 301,
            nanos: 0,
        };
        assert!(wait(Some(five_minutes_and_a_second)).is_err());
        assert_eq!(wait(None).unwrap(), None);
    }

    #[test]
    fn enums_accept_known_values_only() {
        assert_eq!(output_stream(0).unwrap(), OutputStream::Transcript);
        assert_eq!(
            output_stream(pb::OutputStream::Stderr as i32).unwrap(),
            OutputStream::Stderr
        );
        assert!(output_stream(42).is_err());
        assert_eq!(
            job_state(pb::JobState::Failed as i32).unwrap(),
            JobState::Failed
        );
        // Unspecified is no state a job can be listed by.
        assert!(job_state(0).is_err());
        assert!(message(job_id("nope").unwrap_err()).contains("UUID v7"));
    }

    #[test]
    fn a_job_converts_to_its_message() {
        let mut job = Job::queued(
            super::spec(Some(spec())).unwrap(),
            Some("req".into()),
            "token ci".into(),
        );
        job.state = JobState::Failed;
        job.outcome.failure_reason = Some(FailureReason::TimedOut);
        job.outcome.exit_code = Some(124);
        job.finished_at = Some(1_500);
        let message = pb::Job::from(job.clone());
        assert_eq!(message.id, job.id.to_string());
        assert_eq!(message.state(), pb::JobState::Failed);
        assert_eq!(message.failure_reason(), pb::FailureReason::TimedOut);
        assert_eq!(message.exit_code, Some(124));
        assert_eq!(message.request_id, "req");
        assert_eq!(
            message.finished_at,
            Some(Timestamp {
                seconds: 1,
                nanos: 500_000_000
            })
        );
        assert_eq!(message.spec.unwrap().cwd, "/src/app");
    }
}
