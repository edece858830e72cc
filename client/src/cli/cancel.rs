//! `codex-jobs cancel`: stop a job.

use std::process::ExitCode;

use super::Output;
use crate::{Client, ClientError};

#[derive(Debug, clap::Args)]
pub struct Args {
    job_id: String,
}

pub async fn run(client: &mut Client, args: Args, out: Output) -> Result<ExitCode, ClientError> {
    let job = client.cancel(&args.job_id).await?;
    out.job(&job);
    Ok(ExitCode::SUCCESS)
}
