//! `codex-jobs follow`: print a job's output as it is written, like `tail -f`,
//! until the job ends. If the connection drops (a server restart, say), it
//! reconnects and resumes at the exact byte where it stopped.

use std::{io::Write, process::ExitCode};

use super::{Output, job_exit_code, summary};
use crate::{Client, ClientError, Reconnect, json::JobView, pb};

#[derive(Debug, clap::Args)]
pub struct Args {
    job_id: String,
    /// Start at this byte offset [default: the beginning]
    #[arg(long, value_name = "OFFSET")]
    from: Option<u64>,
    /// Follow the raw `codex exec --json` events instead of the transcript.
    #[arg(long)]
    events: bool,
}

pub async fn run(client: &mut Client, args: Args, out: Output) -> Result<ExitCode, ClientError> {
    let stream = if args.events {
        pb::OutputStream::Events
    } else {
        pb::OutputStream::Transcript
    };
    let mut offset = args.from.unwrap_or(0);
    let mut stdout = std::io::stdout();
    let mut reconnect = Reconnect::default();
    loop {
        reconnect.pause().await?;
        let request = pb::FollowRequest {
            job_id: args.job_id.clone(),
            start: Some(pb::follow_request::Start::FromOffset(offset)),
            stream: stream.into(),
        };
        let mut responses = match client.follow(request).await {
            Ok(responses) => responses,
            Err(ClientError::Status(status)) => {
                reconnect.broke(status)?;
                continue;
            }
            Err(err) => return Err(err),
        };
        // The stream's last message is the job in its final state.
        let mut last_job = None;
        loop {
            let event = match responses.message().await {
                Ok(Some(response)) => response.event,
                Ok(None) => match last_job {
                    Some(job) if crate::is_finished(&job) => return Ok(finish(&job, offset, out)),
                    _ => {
                        return Err(ClientError::StreamLost(
                            "the stream ended before the job did".into(),
                        ));
                    }
                },
                Err(status) => {
                    reconnect.broke(status)?;
                    break;
                }
            };
            match event {
                Some(pb::follow_response::Event::Output(chunk)) => {
                    let data = &chunk.data;
                    if out.json {
                        let line = serde_json::json!({
                            "offset": chunk.offset,
                            "output": String::from_utf8_lossy(data),
                        });
                        println!("{line}");
                    } else {
                        let _ = stdout.write_all(data);
                        let _ = stdout.flush();
                    }
                    offset = chunk.offset + data.len() as u64;
                    reconnect.progress();
                }
                Some(pb::follow_response::Event::Job(job)) => last_job = Some(job),
                None => {}
            }
        }
    }
}

/// Prints the final job and returns the exit status that reflects it.
fn finish(job: &pb::Job, offset: u64, out: Output) -> ExitCode {
    if out.json {
        let mut view = JobView::from(job);
        view.next_offset = offset;
        out.print_json(&view);
    } else {
        // On stderr: coloured only if that is a terminal too.
        let colour = out.colour && std::io::IsTerminal::is_terminal(&std::io::stderr());
        eprintln!("{}", summary(job, Output { colour, ..out }));
    }
    job_exit_code(job)
}
