//! `codex-jobs diff` and `codex-jobs apply`: what a job in a worktree changed, and
//! taking it into the checkout it came from.

use std::{io::Write, process::ExitCode};

use super::Output;
use crate::{
    Client, ClientError,
    json::{AppliedView, ChangeView, DiffView},
    pb,
};

#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The job (started with --worktree or --attempts).
    job_id: String,
    /// Only the files changed, with their lines added and removed.
    #[arg(long)]
    stat: bool,
}

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// The job whose change to apply.
    job_id: String,
}

pub async fn diff(
    client: &mut Client,
    args: DiffArgs,
    out: Output,
) -> Result<ExitCode, ClientError> {
    let (job, patch) = if args.stat {
        let page = client
            .diff(pb::DiffRequest {
                job_id: args.job_id.clone(),
                offset: 0,
                max_bytes: 1,
            })
            .await?;
        (page.job.unwrap_or_default(), Vec::new())
    } else {
        client.whole_diff(&args.job_id).await?
    };
    let change = job.change.as_ref().map(ChangeView::from);
    if out.json {
        let size = patch.len() as u64;
        // With --stat the patch is left out: what follows offset 0 is all of it.
        let left_out = args.stat && change.as_ref().is_some_and(|c| c.patch_bytes > 0);
        out.print_json(&DiffView {
            job_id: job.id.clone(),
            change,
            patch: String::from_utf8_lossy(&patch).into_owned(),
            offset: 0,
            next_offset: size,
            truncated: left_out,
        });
    } else if args.stat {
        if let Some(change) = change {
            print_stat(&change);
        }
    } else {
        // A closed pipe (`| head`) is the reader's choice, not an error.
        let _ = std::io::stdout().write_all(&patch);
    }
    Ok(ExitCode::SUCCESS)
}

/// One line per file, then the totals, as `git diff --stat` would say it.
pub fn print_stat(change: &ChangeView) {
    for file in &change.files {
        if file.binary {
            println!(" {}  (binary)", file.path);
        } else {
            println!(" {}  +{} -{}", file.path, file.added, file.removed);
        }
    }
    println!(" {} (branch {})", change.stat(), change.branch);
}

pub async fn apply(
    client: &mut Client,
    args: ApplyArgs,
    out: Output,
) -> Result<ExitCode, ClientError> {
    let response = client.apply(&args.job_id).await?;
    let applied = AppliedView::from(&response);
    if out.json {
        out.print_json(&applied);
    } else if applied.files.is_empty() {
        println!(
            "nothing to apply: {} has job {}'s change already",
            applied.checkout, applied.job_id
        );
    } else {
        println!(
            "applied job {} to {} (uncommitted):",
            applied.job_id, applied.checkout
        );
        for file in &applied.files {
            println!(" {file}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
