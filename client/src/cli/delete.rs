//! `codex-jobs delete` and `codex-jobs prune`: jobs that have ended leave the server,
//! with their logs.

use std::{process::ExitCode, time::Duration};

use super::Output;
use crate::{Client, ClientError, names, pb};

#[derive(Debug, clap::Args)]
pub struct Args {
    job_id: String,
}

pub async fn run(client: &mut Client, args: Args, out: Output) -> Result<ExitCode, ClientError> {
    let job = client.delete(&args.job_id).await?;
    if out.json {
        out.print_json(&crate::json::JobView::from(&job));
    } else {
        println!("deleted {} ({})", job.id, size(job.disk_bytes));
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Jobs that ended at least this long ago: `7d`, `12h`, `0s` for all.
    #[arg(long, value_name = "AGE", value_parser = humantime::parse_duration)]
    older_than: Duration,
    /// Only jobs that ended in this state (succeeded, failed, cancelled), repeatable.
    #[arg(long = "state", value_parser = names::state_arg())]
    states: Vec<pb::JobState>,
}

pub async fn prune(
    client: &mut Client,
    args: PruneArgs,
    out: Output,
) -> Result<ExitCode, ClientError> {
    let response = client
        .prune(pb::PruneRequest {
            older_than: Some(args.older_than.try_into().map_err(|_| {
                ClientError::Input(format!("--older-than {:?} is too long", args.older_than))
            })?),
            states: args.states.into_iter().map(Into::into).collect(),
        })
        .await?;
    if out.json {
        out.print_json(&serde_json::json!({
            "deleted": response.deleted,
            "freed_bytes": response.freed_bytes,
        }));
    } else {
        println!(
            "deleted {} jobs, freed {}",
            response.deleted,
            size(response.freed_bytes)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Bytes as a person reads them: `512 B`, `1.5 KiB`, `20.0 MiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = "B";
    for next in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    format!("{value:.1} {unit}")
}

/// A size as given on the command line: bytes, or with K, M, G or T (powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let shift = match unit
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => {
            return Err(format!(
                "{text:?} is not a size: give bytes, or a number with K, M, G or T"
            ));
        }
    };
    let number: u64 = number.parse().map_err(|_| {
        format!("{text:?} is not a size: give bytes, or a number with K, M, G or T")
    })?;
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_and_print_as_people_write_them() {
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("10K"), Ok(10 << 10));
        assert_eq!(parse_size("2MiB"), Ok(2 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert!(parse_size("ten").unwrap_err().contains("not a size"));
        assert!(parse_size("5X").is_err());
        assert_eq!(size(100), "100 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(20 << 20), "20.0 MiB");
    }
}
