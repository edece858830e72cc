//! `codex-jobs wait`: block until a job ends, or with `--any`, the first of several.

use std::{process::ExitCode, time::Duration};

use super::{Output, job_exit_code, poll::print_window};
use crate::{
    Client, ClientError, is_finished,
    json::{ChangeView, JobView},
    pb,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The job to wait for; with --any, several.
    #[arg(required_unless_present = "group", value_name = "JOB_ID")]
    job_ids: Vec<String>,
    /// Wait for the attempts of this group (`start --attempts`), and print each with
    /// what it changed.
    #[arg(long, conflicts_with = "job_ids")]
    group: Option<String>,
    /// Return when the first of the jobs ends, and print that one (with --group:
    /// print every attempt as it is then).
    #[arg(long)]
    any: bool,
    /// Give up after this many seconds (exit status 124) [default: wait as long as it takes]
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
    /// Lines of the transcript to print at the end.
    #[arg(long, default_value_t = 20)]
    tail: u32,
}

pub async fn run(client: &mut Client, args: Args, out: Output) -> Result<ExitCode, ClientError> {
    let timeout = args.timeout.map(Duration::from_secs);
    if let Some(group) = &args.group {
        return wait_group(client, group, &args, timeout, out).await;
    }
    let job_id = match args.job_ids.as_slice() {
        [job_id] => job_id.clone(),
        _ if !args.any => {
            return Err(ClientError::Input(
                "wait takes one job id; to wait for the first of several, add --any".into(),
            ));
        }
        job_ids => match client.wait_any(job_ids, timeout).await? {
            Some(job) => job.id,
            // None ended in time: show the first as it is.
            None => job_ids[0].clone(),
        },
    };
    // For the job that ended this returns at once.
    let timeout = if args.any {
        Some(Duration::ZERO)
    } else {
        timeout
    };
    let response = client.wait(&job_id, timeout, args.tail).await?;
    print_window(&response, out);
    let job = response.job.unwrap_or_default();
    Ok(if is_finished(&job) {
        job_exit_code(&job)
    } else {
        ExitCode::from(124)
    })
}

/// `--group`: every attempt, with its change; 0 once one has succeeded, 1 if all
/// ended otherwise, 124 if the wait ran out first.
async fn wait_group(
    client: &mut Client,
    group: &str,
    args: &Args,
    timeout: Option<Duration>,
    out: Output,
) -> Result<ExitCode, ClientError> {
    let jobs = client.wait_group(group, args.any, timeout).await?;
    if out.json {
        let views: Vec<JobView> = jobs.iter().map(JobView::from).collect();
        out.print_json(&views);
    } else {
        for job in &jobs {
            let change = match job.change.as_ref().map(ChangeView::from) {
                Some(change) => format!("  {}", change.stat()),
                None => String::new(),
            };
            println!("{}{change}", super::summary(job, out));
        }
    }
    let done = match args.any {
        true => jobs.iter().any(is_finished),
        false => jobs.iter().all(is_finished),
    };
    Ok(if !done {
        ExitCode::from(124)
    } else if jobs
        .iter()
        .any(|job| job.state() == pb::JobState::Succeeded)
    {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
