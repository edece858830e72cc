//! The `codex-jobs` command-line client: one module per subcommand.

mod cancel;
mod follow;
mod list;
mod poll;
mod start;
mod wait;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::{Client, ClientError, ConnectArgs, json, names, pb};

/// Run and watch Codex jobs on a codex-jobs-server.
#[derive(Debug, Parser)]
#[command(name = "codex-jobs", version)]
pub struct Cli {
    #[command(flatten)]
    connect: ConnectArgs,

    /// Print JSON (the shapes the MCP tools return) instead of text.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a job and print it (it runs in the background).
    Start(start::Args),
    /// Show a job and a window of its output.
    Poll(poll::Args),
    /// Wait for a job to end (exit status 0 only if it succeeded, 124 if still running).
    Wait(wait::Args),
    /// Print a job's output live until it ends (exit status 0 only if it succeeded).
    Follow(follow::Args),
    /// Cancel a job and print it once it has stopped.
    Cancel(cancel::Args),
    /// List jobs, newest first.
    List(list::Args),
}

/// Parses the command line, runs it, and turns errors into a message on stderr.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("codex-jobs: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode, ClientError> {
    let endpoint = cli
        .connect
        .endpoint
        .clone()
        .unwrap_or_else(crate::default_endpoint);
    let mut client = Client::connect_with(&endpoint, &cli.connect.credentials()).await?;
    let out = Output { json: cli.json };
    match cli.command {
        Command::Start(args) => start::run(&mut client, args, out).await,
        Command::Poll(args) => poll::run(&mut client, args, out).await,
        Command::Wait(args) => wait::run(&mut client, args, out).await,
        Command::Follow(args) => follow::run(&mut client, args, out).await,
        Command::Cancel(args) => cancel::run(&mut client, args, out).await,
        Command::List(args) => list::run(&mut client, args, out).await,
    }
}

/// Prints results as text or as JSON.
#[derive(Clone, Copy)]
struct Output {
    json: bool,
}

impl Output {
    fn print_json(self, value: &impl serde::Serialize) {
        println!(
            "{}",
            serde_json::to_string_pretty(value).expect("JSON values serialize")
        );
    }

    /// A job: its JSON, or a one-line summary.
    fn job(self, job: &pb::Job) {
        if self.json {
            self.print_json(&json::JobView::from(job));
        } else {
            println!("{}", summary(job));
        }
    }
}

/// `<id> <state> ...`: what a person needs to know of a job in one line.
fn summary(job: &pb::Job) -> String {
    let mut line = format!("{}  {}", job.id, names::state_name(job.state()));
    if let Some(code) = job.exit_code {
        line += &format!("  exit {code}");
    }
    if !job.error.is_empty() {
        line += &format!("  ({})", job.error);
    }
    line
}

/// 0 if the job succeeded, 1 if it ended otherwise.
fn job_exit_code(job: &pb::Job) -> ExitCode {
    match job.state() {
        pb::JobState::Succeeded => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}
