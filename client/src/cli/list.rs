//! `codex-jobs list`: jobs, newest first; with `--watch`, then every change of state
//! as it happens.

use std::process::ExitCode;

use super::{Output, start::parse_label};
use crate::{
    Client, ClientError,
    json::{JobList, JobView},
    names, pb,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only jobs in this state (with --watch: the jobs it starts with).
    #[arg(long, value_parser = names::state_arg())]
    state: Option<pb::JobState>,
    /// Only jobs with this label, repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// Jobs per page (1-1000).
    #[arg(long, default_value_t = 20, conflicts_with = "watch")]
    limit: u32,
    /// Continue after a previous page (its next_page_token).
    #[arg(long, conflicts_with = "watch")]
    page_token: Option<String>,
    /// Only jobs that ended taking at least this much disk: `500K`, `20M`, `1G`.
    #[arg(long, value_name = "SIZE", value_parser = super::delete::parse_size, conflicts_with = "watch")]
    larger_than: Option<u64>,
    /// Only the attempts of this group (started with `start --attempts`).
    #[arg(long, conflicts_with = "watch")]
    group: Option<String>,
    /// Print the jobs (oldest change first), then a line each time a job's state
    /// changes, until interrupted; resumes after a dropped connection.
    #[arg(long)]
    watch: bool,
}

pub async fn run(client: &mut Client, args: Args, out: Output) -> Result<ExitCode, ClientError> {
    if args.watch {
        return watch(client, args, out).await;
    }
    let response = client
        .list(pb::ListRequest {
            states: args.state.into_iter().map(Into::into).collect(),
            labels: args.labels.into_iter().collect(),
            page_size: args.limit,
            page_token: args.page_token.unwrap_or_default(),
            min_disk_bytes: args.larger_than.unwrap_or(0),
            group: args.group.unwrap_or_default(),
        })
        .await?;
    if out.json {
        out.print_json(&JobList::from(&response));
        return Ok(ExitCode::SUCCESS);
    }
    print_header();
    for job in &response.jobs {
        print_row(job, out);
    }
    if !response.next_page_token.is_empty() {
        println!(
            "more: codex-jobs list --page-token {}",
            response.next_page_token
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `--watch`: one Watch stream, resumed at its last position if it breaks. With
/// `--json`, one job per line.
async fn watch(client: &mut Client, args: Args, out: Output) -> Result<ExitCode, ClientError> {
    if !out.json {
        print_header();
    }
    let mut changes = client.watching(pb::WatchRequest {
        states: args.state.into_iter().map(Into::into).collect(),
        labels: args.labels.into_iter().collect(),
        ..Default::default()
    });
    loop {
        match changes.next().await?.event {
            Some(pb::watch_response::Event::Job(job)) if out.json => {
                println!("{}", serde_json::to_string(&JobView::from(&job)).unwrap());
            }
            Some(pb::watch_response::Event::Job(job)) => print_row(&job, out),
            Some(pb::watch_response::Event::CaughtUp(_)) if !out.json => {
                eprintln!("-- watching for changes (Ctrl-C to stop)");
            }
            _ => {}
        }
    }
}

fn print_header() {
    println!(
        "{:<36}  {:<9}  {:<4}  {:<20}  {:>9}  {:<12}  PROMPT",
        "ID", "STATE", "EXIT", "CREATED", "SIZE", "HOST"
    );
}

fn print_row(job: &pb::Job, out: Output) {
    let view = JobView::from(job);
    let created = view
        .created_at
        .as_deref()
        .and_then(|at| at.get(..19))
        .unwrap_or("");
    let exit = job
        .exit_code
        .map(|code| code.to_string())
        .unwrap_or_default();
    let prompt: String = job
        .spec
        .as_ref()
        .map(|spec| spec.prompt.replace('\n', " "))
        .unwrap_or_default()
        .chars()
        .take(60)
        .collect();
    // What a job in a worktree changed, and the group of its attempts.
    let mut extra = String::new();
    if let Some(change) = &view.change {
        extra += &format!("  [{}]", change.stat());
    }
    if let Some(group) = &view.group {
        extra += &format!("  group {group}");
    }
    println!(
        "{:<36}  {}  {:<4}  {:<20}  {:>9}  {:<12}  {prompt}{extra}",
        job.id,
        out.state(job.state(), 9),
        exit,
        created,
        super::delete::size(job.disk_bytes),
        job.host,
    );
}
