//! The MCP tools, one module per tool, each a few lines over the typed client.
//! Tool names and parameters keep the original codex-async tools working.

mod cancel;
mod change;
mod list;
mod poll;
mod reply;
mod start;
mod task;
mod wait;

use codex_jobs_client::{Client, ClientError, json::JobView, pb};
use rmcp::{
    ErrorData, RoleServer, ServerHandler,
    handler::server::{router::tool::ToolRouter, tool::ToolCallContext},
    model::{
        CallToolRequestParams, CallToolResponse, CancelTaskParams, CustomRequest, CustomResult,
        ErrorCode, GetTaskParams, GetTaskResult, Implementation, ServerCapabilities, ServerConfig,
    },
    service::RequestContext,
    tool_handler,
};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::Mutex;

use crate::{connect::Target, stdin::TOO_LARGE_METHOD};

/// The MCP server: the tools plus a connection to codex-jobs-server.
pub struct Bridge {
    target: Target,
    /// Connected on first use and again after the server went away.
    client: Mutex<Option<Client>>,
    /// The jobs this session started, for codex_await_any.
    started: std::sync::Mutex<Vec<String>>,
    tool_router: ToolRouter<Self>,
}

const INSTRUCTIONS: &str = "Runs OpenAI Codex CLI jobs in the background on this host. \
codex_start returns at once with a job_id; then call codex_wait in a loop until status is \
no longer queued or running (each call blocks up to timeout_seconds; pass the next_offset \
you got as since_offset to read only new output), or codex_poll to peek. \
With several jobs, codex_await_any (or codex_wait with job_ids) returns the first to end. \
Status: queued (waiting for a slot), running, done (succeeded; see final_message), error \
(failed; see error and exit_code), cancelled. Pass next_offset back as since_offset to read \
only new output. codex_reply continues a finished job's Codex conversation as a new job. \
With worktree=true (or attempts=N for best of N) a job edits a git worktree of its own: \
codex_wait_group waits for the attempts, codex_diff shows a job's patch, and codex_apply \
takes the one you pick into the checkout.";

impl Bridge {
    pub fn new(target: Target) -> Bridge {
        Bridge {
            target,
            client: Mutex::new(None),
            started: std::sync::Mutex::new(Vec::new()),
            tool_router: Self::start_router()
                + Self::poll_router()
                + Self::wait_router()
                + Self::cancel_router()
                + Self::list_router()
                + Self::reply_router()
                + Self::change_router(),
        }
    }

    /// Connects now (starting the local server if that is the bridge's to do).
    pub async fn warm_up(&self) -> Result<(), ClientError> {
        self.client().await.map(|_| ())
    }

    async fn client(&self) -> Result<Client, ClientError> {
        let mut cached = self.client.lock().await;
        if let Some(client) = cached.as_ref() {
            return Ok(client.clone());
        }
        let client = self.target.connect().await?;
        *cached = Some(client.clone());
        Ok(client)
    }

    /// Runs one RPC. If the server has gone away, connects afresh (restarting the
    /// local server where that is the bridge's to do) and tries once more.
    async fn rpc<T, F, Fut>(&self, call: F) -> Result<T, String>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        self.try_rpc(call).await.map_err(describe)
    }

    /// `rpc`, with the error as the client reported it.
    async fn try_rpc<T, F, Fut>(&self, call: F) -> Result<T, ClientError>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let first = match self.client().await {
            Ok(client) => call(client).await,
            Err(err) => Err(err),
        };
        match first {
            Err(err) if is_connection_error(&err) => {
                *self.client.lock().await = None;
                call(self.client().await?).await
            }
            result => result,
        }
    }
}

/// The RPCs the tools make, each through `rpc`.
impl Bridge {
    async fn poll(&self, request: pb::PollRequest) -> Result<pb::PollResponse, String> {
        self.rpc(|mut client| {
            let request = request.clone();
            async move { client.poll(request).await }
        })
        .await
    }

    /// Starts a job and returns it as the tools show it. A request without an id
    /// gets one, so that `rpc`'s retry can never start the job twice.
    async fn start(&self, mut request: pb::StartRequest) -> Result<JobView, String> {
        if request.request_id.is_empty() {
            request.request_id = format!("codex-jobs-mcp-{}", uuid::Uuid::now_v7());
        }
        let response = self
            .rpc(|mut client| {
                let request = request.clone();
                async move { client.start(request).await }
            })
            .await?;
        let job = response.job.unwrap_or_default();
        let ids: Vec<String> = response.attempts.iter().map(|job| job.id.clone()).collect();
        let mut view = JobView::from(&job);
        if ids.len() > 1 {
            self.started.lock().unwrap().extend(ids.iter().cloned());
            view.attempts = Some(ids);
        } else {
            self.started.lock().unwrap().push(job.id.clone());
        }
        Ok(view)
    }
}

/// Where an output schema keeps its definitions. Not a JSON Schema keyword, so a
/// client's meta-schema check does not walk into it (the Python MCP SDK runs that
/// check on every tool result: some 10 ms for a schema whose properties sit at its
/// root, under 1 ms this way); `$ref` still finds the body by its JSON pointer.
const DEFS: &str = "x-defs";

/// The output schema of a tool that returns `T`: what rmcp would derive (JSON
/// Schema 2020-12, as `T` serializes), with the body moved under `x-defs` and a
/// root of only `$schema`, `type: object` and a `$ref` to it.
fn output_schema<T: JsonSchema>() -> std::sync::Arc<rmcp::model::JsonObject> {
    let settings = schemars::generate::SchemaSettings::draft2020_12()
        .for_serialize()
        .with(|settings| settings.definitions_path = format!("/{DEFS}").into());
    let Value::Object(mut body) = settings
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value()
    else {
        unreachable!("a schema of an object is an object");
    };
    let dialect = body.remove("$schema");
    // As rmcp does: the tool's own description says what the result is.
    body.remove("title");
    body.remove("description");
    let mut definitions = match body.remove(DEFS) {
        Some(Value::Object(definitions)) => definitions,
        _ => serde_json::Map::new(),
    };
    let name = T::schema_name().into_owned();
    assert!(
        name.chars().all(|c| c.is_ascii_alphanumeric()) && !definitions.contains_key(&name),
        "{name} must be a plain name of its own in a JSON pointer"
    );
    definitions.insert(name.clone(), Value::Object(body));
    let mut root = serde_json::Map::new();
    if let Some(dialect) = dialect {
        root.insert("$schema".into(), dialect);
    }
    root.insert("type".into(), "object".into());
    root.insert("$ref".into(), format!("#/{DEFS}/{name}").into());
    root.insert(DEFS.into(), Value::Object(definitions));
    std::sync::Arc::new(root)
}

/// A job as an agent pays for it: without null and empty fields, the prompt it sent
/// and the job's size on disk (codex_poll has every key). Its schema is `JobView`'s with only
/// the keys that are always there required.
pub struct Lean(pub JobView);

/// The keys a lean job always has.
const ALWAYS: [&str; 4] = ["job_id", "status", "state", "next_offset"];

impl Serialize for Lean {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut value = serde_json::to_value(&self.0).map_err(serde::ser::Error::custom)?;
        if let Value::Object(fields) = &mut value {
            fields.retain(|key, value| {
                ALWAYS.contains(&key.as_str())
                    || (!["prompt", "disk_bytes"].contains(&key.as_str())
                        && match value {
                            Value::Null => false,
                            Value::String(text) => !text.is_empty(),
                            Value::Object(map) => !map.is_empty(),
                            _ => true,
                        })
            });
        }
        value.serialize(serializer)
    }
}

impl JsonSchema for Lean {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "LeanJobView".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let mut schema = JobView::json_schema(generator);
        schema.insert("required".into(), ALWAYS.to_vec().into());
        schema
    }
}

fn is_connection_error(err: &ClientError) -> bool {
    match err {
        ClientError::Unreachable { .. } => true,
        ClientError::Status(status) => status.code() == tonic::Code::Unavailable,
        _ => false,
    }
}

/// A failed call as a sentence for the model: what went wrong and what to do.
fn describe(err: ClientError) -> String {
    match &err {
        ClientError::Status(status) if status.code() == tonic::Code::NotFound => {
            format!("{err}. codex_list shows the jobs that exist.")
        }
        _ => err.to_string(),
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Bridge {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tasks()
                .build(),
        )
        .with_server_info(Implementation::new(
            "codex-jobs-mcp",
            env!("CARGO_PKG_VERSION"),
        ))
        .with_instructions(INSTRUCTIONS)
    }

    /// The tools, with a job-starting call answered by a task for a client that
    /// takes tasks (see `task`).
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let as_task =
            task::TASK_TOOLS.contains(&request.name.as_ref()) && task::takes_tasks(&context);
        let response = self
            .tool_router
            .call(ToolCallContext::new(self, request, context))
            .await?;
        if as_task {
            Ok(task::answer_with_task(response))
        } else {
            Ok(response)
        }
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        _: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        Ok(GetTaskResult::new(self.task(&request.task_id).await?))
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        _: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.cancel_job_of_task(&request.task_id).await
    }

    /// Answers a request that was too large to take (see `stdin`), by its id.
    async fn on_custom_request(
        &self,
        request: CustomRequest,
        _: RequestContext<RoleServer>,
    ) -> Result<CustomResult, ErrorData> {
        if request.method != TOO_LARGE_METHOD {
            return Err(ErrorData::new(
                ErrorCode::METHOD_NOT_FOUND,
                request.method,
                None,
            ));
        }
        let params = request.params.unwrap_or_default();
        Err(ErrorData::invalid_request(
            format!(
                "the request is {} bytes, more than the {} codex-jobs-mcp takes; a prompt may be at most 1 MiB",
                params["bytes"], params["limit"]
            ),
            None,
        ))
    }
}
