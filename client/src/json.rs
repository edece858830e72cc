//! The JSON shapes of jobs that the CLI's `--json` prints and the MCP tools return,
//! compatible with the original codex-async tools: `job_id`, `status`
//! (`queued|running|done|error|cancelled`), `exit_code`, `output`, `started_at`,
//! `finished_at`, `prompt`, `cwd`, plus `state`, `next_offset`, `final_message`,
//! `thread_id`, `usage`, `created_at` and `error`.

use serde_json::{Map, Value, json};

use crate::pb;

/// The codex-async `status` of a job state.
pub fn status(state: pb::JobState) -> &'static str {
    match state {
        pb::JobState::Queued | pb::JobState::Unspecified => "queued",
        pb::JobState::Running => "running",
        pb::JobState::Succeeded => "done",
        pb::JobState::Failed => "error",
        pb::JobState::Cancelled => "cancelled",
    }
}

/// The lower-case name of a job state, as `state` carries it.
pub fn state_name(state: pb::JobState) -> &'static str {
    match state {
        pb::JobState::Unspecified => "unspecified",
        pb::JobState::Queued => "queued",
        pb::JobState::Running => "running",
        pb::JobState::Succeeded => "succeeded",
        pb::JobState::Failed => "failed",
        pb::JobState::Cancelled => "cancelled",
    }
}

/// An RFC 3339 timestamp, or null.
fn time(timestamp: Option<&prost_types::Timestamp>) -> Value {
    let Some(timestamp) = timestamp else {
        return Value::Null;
    };
    let since_epoch = std::time::Duration::new(
        timestamp.seconds.max(0) as u64,
        timestamp.nanos.max(0) as u32,
    );
    let time = std::time::UNIX_EPOCH + since_epoch;
    Value::String(humantime::format_rfc3339_millis(time).to_string())
}

/// A job as a JSON object. `next_offset` is the transcript's size: where to read on.
pub fn job(job: &pb::Job) -> Map<String, Value> {
    let spec = job.spec.clone().unwrap_or_default();
    let value = json!({
        "job_id": job.id,
        "status": status(job.state()),
        "state": state_name(job.state()),
        "exit_code": job.exit_code,
        "signal": job.signal,
        "error": if job.error.is_empty() { Value::Null } else { Value::String(job.error.clone()) },
        "next_offset": job.output_size,
        "final_message": job.final_message,
        "thread_id": if job.thread_id.is_empty() { Value::Null } else { Value::String(job.thread_id.clone()) },
        "usage": job.usage.map(|usage| json!({
            "input_tokens": usage.input_tokens,
            "cached_input_tokens": usage.cached_input_tokens,
            "output_tokens": usage.output_tokens,
        })),
        "prompt": spec.prompt,
        "cwd": spec.cwd,
        "labels": spec.labels,
        "created_at": time(job.created_at.as_ref()),
        "started_at": time(job.started_at.as_ref()),
        "finished_at": time(job.finished_at.as_ref()),
    });
    match value {
        Value::Object(map) => map,
        _ => unreachable!("json! of an object is an object"),
    }
}

/// A Poll response: the job plus its output window (`output`, `next_offset`,
/// `truncated`).
pub fn poll(response: &pb::PollResponse) -> Map<String, Value> {
    let mut map = response.job.as_ref().map(job).unwrap_or_default();
    map.insert(
        "output".into(),
        String::from_utf8_lossy(&response.output).into(),
    );
    map.insert("next_offset".into(), response.next_offset.into());
    map.insert("truncated".into(), response.truncated.into());
    map
}

/// A List response: `{"jobs": [...], "next_page_token": ...}`.
pub fn list(response: &pb::ListResponse) -> Value {
    json!({
        "jobs": response.jobs.iter().map(job).collect::<Vec<_>>(),
        "next_page_token": if response.next_page_token.is_empty() { Value::Null } else { Value::String(response.next_page_token.clone()) },
    })
}
