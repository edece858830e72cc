//! The MCP Tasks extension (`io.modelcontextprotocol/tasks`, SEP-2663). For a client
//! that declares it, `codex_start` and `codex_reply` answer with a task instead of
//! the job: the client then asks `tasks/get` until the task ends, and gets the
//! finished job as the call's result, however long the job ran. The task id is the
//! job id, and every answer is read from the job server, so the bridge keeps no
//! task of its own: a task outlives a restart of the bridge. Clients that do not
//! declare the extension get the tools' plain results.

use codex_jobs_client::{ClientError, json::JobView, pb};
use rmcp::{
    ErrorData, RoleServer,
    model::{
        CallToolResponse, CallToolResult, CreateTaskResult, DetailedTask, ProtocolVersion, Task,
        TaskPayload,
    },
    service::RequestContext,
};
use serde_json::{Value, json};

use super::{Bridge, Lean, poll::window};

/// The tools whose calls become tasks: those that start a job.
pub(super) const TASK_TOOLS: [&str; 2] = ["codex_start", "codex_reply"];

/// Whether the caller takes a task for an answer: it declared the extension, on the
/// protocol that defines it (2026-07-28). Earlier protocols had tasks of another
/// shape, and a client on one may declare the extension without reading this one.
pub(super) fn takes_tasks(context: &RequestContext<RoleServer>) -> bool {
    context
        .protocol_version()
        .is_some_and(|version| version >= ProtocolVersion::V_2026_07_28)
        && context
            .client_capabilities()
            .is_some_and(|client| client.supports_tasks())
}

/// How often a client should ask after a task: a Codex job takes minutes, and each
/// `tasks/get` is one Poll of the server.
const POLL_INTERVAL_MS: u64 = 2000;

/// The transcript lines a finished task's result carries, as `codex_wait` does.
const RESULT_TAIL_LINES: u32 = 10;

/// A start tool's result as a task for the job it started, made from the result
/// itself (a second call that failed would hide a job that exists). A tool error
/// stays the tool's answer: there is no job to follow.
pub(super) fn answer_with_task(response: CallToolResponse) -> CallToolResponse {
    let CallToolResponse::Complete(result) = &response else {
        return response;
    };
    let Some(job) = result
        .structured_content
        .as_ref()
        .filter(|job| result.is_error != Some(true) && job["job_id"].is_string())
    else {
        return response;
    };
    let created = job["created_at"].as_str().unwrap_or_default();
    let updated = job["started_at"].as_str().unwrap_or(created);
    let message = match job["state"].as_str() {
        Some("queued") => QUEUED,
        _ => "running",
    };
    let task = Task::new(
        job["job_id"].as_str().unwrap_or_default(),
        rmcp::model::TaskStatus::Working,
        created,
        updated,
    )
    .with_status_message(message)
    .with_poll_interval_ms(POLL_INTERVAL_MS);
    CallToolResponse::Task(CreateTaskResult::new(task))
}

/// The status message of a job that waits in the queue.
const QUEUED: &str = "queued: waiting for a run slot";

impl Bridge {
    /// The task that is the job `task_id`, as the server has it now.
    pub(super) async fn task(&self, task_id: &str) -> Result<DetailedTask, ErrorData> {
        let request = pb::PollRequest {
            job_id: task_id.to_string(),
            window: Some(window(RESULT_TAIL_LINES, None)),
            ..Default::default()
        };
        let response = self
            .try_rpc(|mut client| {
                let request = request.clone();
                async move { client.poll(request).await }
            })
            .await
            .map_err(|err| task_error(task_id, err))?;
        Ok(detailed_task(&response))
    }

    /// Cancels the job `task_id` and acknowledges at once, as the extension asks:
    /// the task shows the job cancelled once it has stopped.
    pub(super) async fn cancel_job_of_task(&self, task_id: &str) -> Result<(), ErrorData> {
        // An unknown task is an error the caller hears of now; the server stops the
        // job whether or not anyone waits for its answer.
        self.task(task_id).await?;
        let mut client = self
            .client()
            .await
            .map_err(|err| task_error(task_id, err))?;
        let job_id = task_id.to_string();
        tokio::spawn(async move {
            if let Err(err) = client.cancel(&job_id).await {
                tracing::warn!(job = %job_id, "tasks/cancel: {err}");
            }
        });
        Ok(())
    }
}

/// A job as a task: working while it is queued or runs (with its latest line of
/// output as the status message), then completed with the finished job as the
/// call's result, failed with the job's error, or cancelled.
fn detailed_task(response: &pb::PollResponse) -> DetailedTask {
    let view = JobView::from(response);
    let job = response.job.clone().unwrap_or_default();
    let created = view.created_at.clone().unwrap_or_default();
    let updated = [&view.finished_at, &view.started_at, &view.created_at]
        .into_iter()
        .find_map(Clone::clone)
        .unwrap_or_default();
    let latest_line = String::from_utf8_lossy(&response.output)
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .map(str::to_string);
    let (message, payload) = match job.state() {
        pb::JobState::Unspecified | pb::JobState::Queued => {
            (Some(QUEUED.to_string()), TaskPayload::Working)
        }
        pb::JobState::Running => (latest_line.or(Some("running".into())), TaskPayload::Working),
        pb::JobState::Succeeded => (
            Some(view.final_message.clone()).filter(|text| !text.is_empty()),
            TaskPayload::Completed {
                result: tool_result(view),
            },
        ),
        pb::JobState::Failed => {
            let error = view
                .error
                .clone()
                .unwrap_or_else(|| "the job failed".into());
            let data = serde_json::to_value(Lean(view)).unwrap_or_default();
            (
                Some(error.clone()),
                TaskPayload::Failed {
                    error: object(json!({"code": -32603, "message": error, "data": data})),
                },
            )
        }
        pb::JobState::Cancelled => (view.error.clone(), TaskPayload::Cancelled),
    };
    let mut task = Task::new(job.id, payload.status(), created, updated)
        .with_poll_interval_ms(POLL_INTERVAL_MS);
    task.status_message = message;
    DetailedTask::new(task, payload)
}

/// The finished job as `codex_wait` returns it: the result of the call the task
/// stands for.
fn tool_result(view: JobView) -> rmcp::model::JsonObject {
    let job = serde_json::to_value(Lean(view)).unwrap_or_default();
    object(serde_json::to_value(CallToolResult::structured(job)).unwrap_or_default())
}

fn object(value: Value) -> rmcp::model::JsonObject {
    match value {
        Value::Object(map) => map,
        _ => rmcp::model::JsonObject::new(),
    }
}

/// An unknown task is the caller's mistake; anything else is ours.
fn task_error(task_id: &str, err: ClientError) -> ErrorData {
    match &err {
        ClientError::Status(status)
            if matches!(
                status.code(),
                tonic::Code::NotFound | tonic::Code::InvalidArgument
            ) =>
        {
            ErrorData::invalid_params(format!("no task {task_id}: {err}"), None)
        }
        _ => ErrorData::internal_error(err.to_string(), None),
    }
}
