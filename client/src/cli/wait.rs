//! `codex-jobs wait`: block until a job ends.

use std::{process::ExitCode, time::Duration};

use super::{Output, job_exit_code, poll::print_window};
use crate::{Client, ClientError, is_finished};

#[derive(Debug, clap::Args)]
pub struct Args {
    job_id: String,
    /// Give up after this many seconds (exit status 124) [default: wait as long as it takes]
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
    /// Lines of the transcript to print at the end.
    #[arg(long, default_value_t = 20)]
    tail: u32,
}

pub async fn run(client: &mut Client, args: Args, out: Output) -> Result<ExitCode, ClientError> {
    let timeout = args.timeout.map(Duration::from_secs);
    let response = client.wait(&args.job_id, timeout, args.tail).await?;
    print_window(&response, out);
    let job = response.job.unwrap_or_default();
    Ok(if is_finished(&job) {
        job_exit_code(&job)
    } else {
        ExitCode::from(124)
    })
}
