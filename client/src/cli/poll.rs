//! `codex-jobs poll`: a job and a window of its output.

use std::{io::Write, process::ExitCode};

use super::{Output, summary};
use crate::{Client, ClientError, json::JobView, pb};

#[derive(Debug, clap::Args)]
pub struct Args {
    job_id: String,
    /// The last N lines of the transcript.
    #[arg(long, default_value_t = 100, conflicts_with = "since")]
    tail: u32,
    /// Everything after this byte offset (a previous poll's next_offset).
    #[arg(long)]
    since: Option<u64>,
}

pub async fn run(client: &mut Client, args: Args, out: Output) -> Result<ExitCode, ClientError> {
    let window = match args.since {
        Some(offset) => pb::poll_request::Window::SinceOffset(offset),
        None => pb::poll_request::Window::TailLines(args.tail),
    };
    let response = client
        .poll(pb::PollRequest {
            job_id: args.job_id,
            window: Some(window),
            ..Default::default()
        })
        .await?;
    print_window(&response, out);
    Ok(ExitCode::SUCCESS)
}

/// A poll result: as JSON, or the job's summary and its output.
pub fn print_window(response: &pb::PollResponse, out: Output) {
    if out.json {
        out.print_json(&JobView::from(response));
        return;
    }
    let job = response.job.clone().unwrap_or_default();
    println!("{}", summary(&job, out));
    let mut stdout = std::io::stdout();
    let _ = stdout.write_all(&response.output);
    if !job.final_message.is_empty() && matches!(job.state(), pb::JobState::Succeeded) {
        let _ = writeln!(stdout, "\nfinal message:\n{}", job.final_message);
    }
    let _ = writeln!(stdout, "next offset: {}", response.next_offset);
}
