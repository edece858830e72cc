//! The `codex-jobs` command-line client: one module per subcommand.

mod cancel;
mod change;
mod delete;
mod follow;
mod hosts;
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
    /// Print the patch of what a job in a worktree changed (or, with --stat, its files).
    Diff(change::DiffArgs),
    /// Apply what a job in a worktree changed to the checkout it came from, by a
    /// three-way merge; refused, changing nothing, on conflicts.
    Apply(change::ApplyArgs),
    /// Delete a job that has ended, with its logs (and its worktree and branch).
    Delete(delete::Args),
    /// Delete the jobs that ended longer ago than an age, with their logs.
    Prune(delete::PruneArgs),
    /// List the job hosts that share the server's job database, the server itself
    /// included.
    Hosts,
    /// Print a completion script for SHELL (bash, zsh, fish, elvish, powershell), e.g.
    /// `codex-jobs completions bash > /etc/bash_completion.d/codex-jobs`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `codex-jobs man > ~/.local/share/man/man1/codex-jobs.1`.
    Man,
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
    // What needs no server.
    let mut text = Vec::new();
    match &cli.command {
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut command, "codex-jobs", &mut text);
            if *shell == clap_complete::Shell::Bash {
                // clap_complete 4.6 names the subcommands' cases after "codex__subcmd__jobs"
                // but sets "codex__jobs" as it walks the words (a hyphen in the binary's
                // name is escaped two ways), so no option would ever complete.
                let script = String::from_utf8_lossy(&text)
                    .replace("codex__subcmd__jobs__subcmd__", "codex__jobs__subcmd__");
                text = script.into_bytes();
            }
        }
        Command::Man => clap_mangen::Man::new(<Cli as clap::CommandFactory>::command())
            .render(&mut text)
            .expect("a man page renders into memory"),
        _ => {}
    }
    if !text.is_empty() {
        use std::io::Write;
        // A closed pipe (`| head`) is the reader's choice, not an error.
        let _ = std::io::stdout().write_all(&text);
        return Ok(ExitCode::SUCCESS);
    }
    let endpoint = cli
        .connect
        .endpoint
        .clone()
        .unwrap_or_else(crate::default_endpoint);
    let mut client = Client::connect_with(&endpoint, &cli.connect.credentials()).await?;
    let out = Output {
        json: cli.json,
        colour: !cli.json && colour_wanted(),
    };
    match cli.command {
        Command::Start(args) => start::run(&mut client, args, out).await,
        Command::Poll(args) => poll::run(&mut client, args, out).await,
        Command::Wait(args) => wait::run(&mut client, args, out).await,
        Command::Follow(args) => follow::run(&mut client, args, out).await,
        Command::Cancel(args) => cancel::run(&mut client, args, out).await,
        Command::List(args) => list::run(&mut client, args, out).await,
        Command::Diff(args) => change::diff(&mut client, args, out).await,
        Command::Apply(args) => change::apply(&mut client, args, out).await,
        Command::Delete(args) => delete::run(&mut client, args, out).await,
        Command::Prune(args) => delete::prune(&mut client, args, out).await,
        Command::Hosts => hosts::run(&mut client, out).await,
        Command::Completions { .. } | Command::Man => unreachable!("answered above"),
    }
}

/// Colours on a terminal only, and never where `NO_COLOR` is set (no-color.org).
fn colour_wanted() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Prints results as text or as JSON.
#[derive(Clone, Copy)]
struct Output {
    json: bool,
    /// Colour the states in text (see `colour_wanted`).
    colour: bool,
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
            println!("{}", summary(job, self));
        }
    }

    /// A job's state, padded to `width`, in its colour where colours are wanted:
    /// green succeeded, red failed, yellow running, dim queued and cancelled.
    fn state(self, state: pb::JobState, width: usize) -> String {
        let text = format!("{:<width$}", names::state_name(state));
        let code = match state {
            pb::JobState::Succeeded => "32",
            pb::JobState::Failed => "31",
            pb::JobState::Running => "33",
            _ => "2",
        };
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text
        }
    }
}

/// `<id> <state> ...`: what a person needs to know of a job in one line.
fn summary(job: &pb::Job, out: Output) -> String {
    let mut line = format!("{}  {}", job.id, out.state(job.state(), 0));
    if let Some(code) = job.exit_code {
        line += &format!("  exit {code}");
    }
    if !job.error.is_empty() {
        line += &format!("  ({})", job.error);
    }
    if job.host_unreachable {
        line += &format!("  (host {} cannot be reached)", job.host);
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
