//! `codex-jobs start`: start a job.

use std::{collections::HashMap, io::Read, process::ExitCode};

use super::Output;
use crate::{Client, ClientError, json::JobView, names, pb};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory to run Codex in [default: the current directory]
    #[arg(long)]
    cwd: Option<std::path::PathBuf>,
    /// Model for Codex (`codex exec -m`).
    #[arg(long, short)]
    model: Option<String>,
    /// How much Codex may do [default: read-only]
    #[arg(long, short, value_parser = names::sandbox_arg())]
    sandbox: Option<pb::Sandbox>,
    /// How hard the model reasons (Codex's model_reasoning_effort) [default: Codex's]
    #[arg(long, value_parser = names::reasoning_effort_arg())]
    reasoning_effort: Option<pb::ReasoningEffort>,
    /// Kill the job after this many seconds [default: the server's]
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
    /// A label KEY=VALUE, repeatable (for `list --label`).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// Idempotency key: starting again with the same id returns the same job.
    #[arg(long)]
    request_id: Option<String>,
    /// The pool of hosts to run on (see `codex-jobs hosts`) [default: default]
    #[arg(long)]
    pool: Option<String>,
    /// The one host to run on, for a cwd that exists only there [default: any host
    /// of the pool]
    #[arg(long)]
    host: Option<String>,
    /// Run Codex in a new git worktree of the cwd's repository, on a branch of its
    /// own, so that its edits stay apart until applied (`codex-jobs apply`).
    #[arg(long)]
    worktree: bool,
    /// The commit, branch or tag the worktree starts at [default: HEAD]
    #[arg(long, value_name = "REF")]
    base: Option<String>,
    /// Start this many attempts of the prompt, each in a worktree of its own, tied
    /// by a group id (see `wait --group`, `list --group`); implies --worktree.
    #[arg(long, value_name = "N")]
    attempts: Option<u32>,
    /// The prompt; `-` reads it from stdin.
    prompt: String,
}

pub fn parse_label(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))
}

pub async fn run(client: &mut Client, args: Args, out: Output) -> Result<ExitCode, ClientError> {
    let prompt = if args.prompt == "-" {
        let mut prompt = String::new();
        std::io::stdin()
            .read_to_string(&mut prompt)
            .map_err(|err| {
                ClientError::Input(format!("cannot read the prompt from stdin: {err}"))
            })?;
        prompt
    } else {
        args.prompt
    };
    let cwd = match args.cwd {
        Some(cwd) => std::path::absolute(cwd),
        None => std::env::current_dir(),
    }
    .map_err(|err| ClientError::Input(format!("cannot resolve the cwd: {err}")))?;
    let worktree = args.worktree || args.attempts.is_some();
    if args.base.is_some() && !worktree {
        return Err(ClientError::Input(
            "--base is the commit a worktree starts at: add --worktree (or --attempts)".into(),
        ));
    }
    let sandbox = args.sandbox.unwrap_or(pb::Sandbox::ReadOnly);
    let spec = pb::JobSpec {
        prompt,
        cwd: cwd.display().to_string(),
        model: args.model.unwrap_or_default(),
        sandbox: sandbox.into(),
        timeout: args.timeout.map(|secs| prost_types::Duration {
            seconds: secs.min(i64::MAX as u64) as i64,
            nanos: 0,
        }),
        labels: args.labels.into_iter().collect::<HashMap<_, _>>(),
        resume_thread_id: String::new(),
        reasoning_effort: args.reasoning_effort.unwrap_or_default().into(),
        pool: args.pool.unwrap_or_default(),
        host: args.host.unwrap_or_default(),
        isolation: match worktree {
            true => pb::Isolation::Worktree,
            false => pb::Isolation::Unspecified,
        }
        .into(),
        base: args.base.unwrap_or_default(),
    };
    let response = client
        .start(pb::StartRequest {
            spec: Some(spec),
            request_id: args.request_id.unwrap_or_default(),
            attempts: args.attempts.unwrap_or(0),
        })
        .await?;
    let job = response.job.unwrap_or_default();
    if job.group.is_empty() {
        out.job(&job);
    } else if out.json {
        let mut view = JobView::from(&job);
        view.attempts = Some(response.attempts.iter().map(|job| job.id.clone()).collect());
        out.print_json(&view);
    } else {
        for attempt in &response.attempts {
            out.job(attempt);
        }
        println!(
            "group {}: codex-jobs wait --group {} (then diff and apply the one you like)",
            job.group, job.group
        );
    }
    Ok(ExitCode::SUCCESS)
}
