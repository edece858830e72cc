//! `codex-jobs wait`: block until a job ends, or with `--any`, the first of several.

use std::{process::ExitCode, time::Duration};

use super::{Output, job_exit_code, poll::print_window};
use crate::{Client, ClientError, is_finished};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The job to wait for; with --any, several.
    #[arg(required = true, value_name = "JOB_ID")]
    job_ids: Vec<String>,
    /// Return when the first of the jobs ends, and print that one.
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
