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
    /// Checks the request and streams the job: the job whenever its state changes
    /// (first as it is, unless it is finished already) and the output chunks in
    /// order; last, once, the job in its terminal state, after the last chunk. The
    /// stream stops early if the receiver is dropped.
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
            // One buffer for the whole stream, not one per wake-up.
            let mut buffer = vec![0u8; CHUNK];
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
                // The terminal state goes out once, last, after the last byte.
                if !terminal && last_sent_state != Some(job.state) {
                    last_sent_state = Some(job.state);
                    let update = FollowEvent::Job(Box::new(job.clone()));
                    if events.send(Ok(update)).await.is_err() {
                        return;
                    }
                }
                if file.is_none() {
                    file = File::open(&path).ok();
                }
                if let Some(file) = &file {
                    match send_to_end(file, &mut offset, &mut buffer, &events).await {
                        Ok(true) => {}
                        Ok(false) => return,
                        Err(err) => {
                            let _ = events.send(Err(err.into())).await;
                            return;
                        }
                    }
                }
                if terminal {
                    let _ = events.send(Ok(FollowEvent::Job(Box::new(job)))).await;
                    return;
                }
                // Not live but not terminal cannot happen; do not spin.
                let Some(receiver) = changed.as_mut() else {
                    return;
                };
                tokio::select! {
                    result = receiver.changed() => {
                        if result.is_err() {
                            // Finished: one more round reads the rest.
                            changed = None;
                        }
                    }
                    // The client left while the job was quiet.
                    _ = events.closed() => return,
                }
            }
        });
        Ok(receiver)
    }
}

/// Sends the log from `offset` to its current end in chunks, moving `offset` on.
/// `Ok(false)`: the client has gone.
async fn send_to_end(
    file: &File,
    offset: &mut u64,
    buffer: &mut [u8],
    events: &mpsc::Sender<Result<FollowEvent>>,
) -> std::io::Result<bool> {
    loop {
        let read = file.read_at(buffer, *offset)?;
        if read == 0 {
            return Ok(true);
        }
        let chunk = FollowEvent::Output {
            offset: *offset,
            data: buffer[..read].to_vec(),
        };
        if events.send(Ok(chunk)).await.is_err() {
            return Ok(false);
        }
        *offset += read as u64;
    }
}
