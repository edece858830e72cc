//! Follow: stream a job's output as it is written, with its state changes, until
//! its final state and last byte. Woken by changes, never by a timer.

use std::{fs::File, os::unix::fs::FileExt, sync::Arc};

use tokio::sync::mpsc;

use super::JobManager;
use crate::{
    error::{Error, Result},
    job::{Job, JobId},
    output::Log,
    runner::record::OutputStream,
};

/// Bytes per output chunk.
const CHUNK: usize = 256 * 1024;

/// Where a Follow begins.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FollowStart {
    Offset(u64),
    /// At the beginning of the last N lines (at most `max_bytes` back).
    TailLines {
        lines: usize,
        max_bytes: usize,
    },
}

/// One message of a Follow stream.
#[derive(Debug, PartialEq)]
pub enum FollowEvent {
    Job(Box<Job>),
    Output { offset: u64, data: Vec<u8> },
}

impl JobManager {
    /// Checks the request and streams the job: first the job as it is, then output
    /// chunks in order and the job again on every state change; last the job in its
    /// terminal state, after the last chunk. The stream stops early if the receiver
    /// is dropped.
    pub fn follow(
        self: &Arc<Self>,
        id: JobId,
        start: FollowStart,
        stream: OutputStream,
    ) -> Result<mpsc::Receiver<Result<FollowEvent>>> {
        let path = self.log_path(id, stream);
        self.get(id)?;
        let log = Log::open(&path)?;
        let mut offset = match start {
            FollowStart::Offset(offset) if offset > log.size() => {
                return Err(Error::InvalidArgument(format!(
                    "from_offset {offset} is past the end of the output ({} bytes)",
                    log.size()
                )));
            }
            FollowStart::Offset(offset) => offset,
            FollowStart::TailLines { lines, max_bytes } => log.tail(lines, max_bytes)?.start,
        };
        let (events, receiver) = mpsc::channel(16);
        let manager = self.clone();
        tokio::spawn(async move {
            let mut changed = manager.subscribe(id);
            let mut file: Option<File> = None;
            let mut last_sent_state = None;
            loop {
                if let Some(changed) = changed.as_mut() {
                    changed.borrow_and_update();
                }
                // The state is read before the log: a finished job's log is complete.
                let job = match manager.get(id) {
                    Ok(job) => job,
                    Err(err) => {
                        let _ = events.send(Err(err)).await;
                        return;
                    }
                };
                let terminal = job.state.is_terminal();
                let mut job_is_last = false;
                if last_sent_state != Some(job.state) {
                    last_sent_state = Some(job.state);
                    if events
                        .send(Ok(FollowEvent::Job(Box::new(job.clone()))))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    job_is_last = true;
                }
                if file.is_none() {
                    file = File::open(&path).ok();
                }
                if let Some(file) = &file {
                    let mut buffer = vec![0u8; CHUNK];
                    loop {
                        let read = match file.read_at(&mut buffer, offset) {
                            Ok(read) => read,
                            Err(err) => {
                                let _ = events.send(Err(err.into())).await;
                                return;
                            }
                        };
                        if read == 0 {
                            break;
                        }
                        let data = buffer[..read].to_vec();
                        let chunk = FollowEvent::Output { offset, data };
                        if events.send(Ok(chunk)).await.is_err() {
                            return;
                        }
                        offset += read as u64;
                        job_is_last = false;
                    }
                }
                if terminal {
                    if !job_is_last {
                        let _ = events.send(Ok(FollowEvent::Job(Box::new(job)))).await;
                    }
                    return;
                }
                match changed.as_mut() {
                    Some(receiver) => {
                        if receiver.changed().await.is_err() {
                            // Finished: one more round reads the rest.
                            changed = None;
                        }
                    }
                    None => {
                        // Not live but not terminal cannot happen; do not spin.
                        return;
                    }
                }
            }
        });
        Ok(receiver)
    }
}
