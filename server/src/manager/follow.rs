//! Follow: stream a job's output as it is written, with its state changes, until
//! its final state and last byte. Woken by changes, never by a timer.

use std::{fs::File, os::unix::fs::FileExt, path::Path, sync::Arc};

use tokio::sync::mpsc;

use super::JobManager;
use crate::{
    error::{Error, Result},
    job::{Job, JobId, OutputStream},
    output::Log,
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
    Output {
        offset: u64,
        data: Vec<u8>,
    },
    /// The last message when another host took the job while it was followed:
    /// that host streams it on from `offset`.
    Elsewhere {
        host: String,
        offset: u64,
    },
}

impl JobManager {
    /// Checks the request and streams the job: the job whenever its state changes
    /// (first as it is, unless it is finished already) and the output chunks in
    /// order; last, once, the job in its terminal state, after the last chunk. The
    /// stream stops early if the receiver is dropped.
    pub async fn follow(
        self: &Arc<Self>,
        id: JobId,
        start: FollowStart,
        stream: OutputStream,
    ) -> Result<mpsc::Receiver<Result<FollowEvent>>> {
        let path = self.log_path(id, stream);
        let offset = self
            .blocking(move |manager| manager.follow_start(id, start, stream))
            .await?;
        let (events, receiver) = mpsc::channel(16);
        let manager = self.clone();
        tokio::spawn(async move {
            if let Err(err) = manager.stream_job(id, &path, offset, &events).await {
                let _ = events.send(Err(err)).await;
            }
        });
        Ok(receiver)
    }

    /// The offset a Follow starts at, once the job and the request are checked. A
    /// job that runs (or ran) on another host is followed there.
    fn follow_start(&self, id: JobId, start: FollowStart, stream: OutputStream) -> Result<u64> {
        let job = self.job(id)?;
        if let Some(host) = self.elsewhere(&job) {
            return Err(Error::RunsElsewhere {
                id,
                host: host.to_string(),
            });
        }
        let log = Log::open(&self.log_path(id, stream))?;
        match start {
            FollowStart::Offset(offset) if offset > log.size() => {
                Err(Error::InvalidArgument(format!(
                    "from_offset {offset} is past the end of the output ({} bytes)",
                    log.size()
                )))
            }
            FollowStart::Offset(offset) => Ok(offset),
            FollowStart::TailLines { lines, max_bytes } => Ok(log.tail(lines, max_bytes)?.start),
        }
    }

    /// Sends the job's state changes and its log from `offset` until its terminal
    /// state, woken by changes, never by a timer. Returns early, with no error, when
    /// the receiver is gone.
    async fn stream_job(
        self: &Arc<Self>,
        id: JobId,
        path: &Path,
        mut offset: u64,
        events: &mpsc::Sender<Result<FollowEvent>>,
    ) -> Result<()> {
        let mut log: Option<Arc<File>> = None;
        // One buffer for the whole stream, not one per wake-up.
        let mut buffer = vec![0u8; CHUNK];
        let mut last_sent_state = None;
        loop {
            let mut changed = self.subscribe(id);
            // The state is read before the log: a finished job's log is complete.
            let job = self.get(id).await?;
            if let Some(host) = self.elsewhere(&job) {
                let host = host.to_string();
                let _ = events
                    .send(Ok(FollowEvent::Elsewhere { host, offset }))
                    .await;
                return Ok(());
            }
            let terminal = job.state.is_terminal();
            // The terminal state goes out once, last, after the last byte.
            if !terminal && last_sent_state != Some(job.state) {
                last_sent_state = Some(job.state);
                if events
                    .send(Ok(FollowEvent::Job(Box::new(job.clone()))))
                    .await
                    .is_err()
                {
                    return Ok(());
                }
            }
            if log.is_none() {
                let path = path.to_owned();
                log = self
                    .blocking(move |_| File::open(path).ok().map(Arc::new))
                    .await;
            }
            if let Some(log) = &log {
                // To the log's current end, chunk by chunk.
                loop {
                    let read;
                    (buffer, read) = self.read_chunk(log.clone(), buffer, offset).await?;
                    if read == 0 {
                        break;
                    }
                    let chunk = FollowEvent::Output {
                        offset,
                        data: buffer[..read].to_vec(),
                    };
                    if events.send(Ok(chunk)).await.is_err() {
                        return Ok(());
                    }
                    offset += read as u64;
                }
            }
            if terminal {
                let _ = events.send(Ok(FollowEvent::Job(Box::new(job)))).await;
                return Ok(());
            }
            tokio::select! {
                () = changed.changed() => {}
                // The client left while the job was quiet.
                _ = events.closed() => return Ok(()),
            }
        }
    }

    /// Reads from `offset` into `buffer`, on a blocking thread; gives the buffer back
    /// with the number of bytes read (0 at the end of the log).
    async fn read_chunk(
        self: &Arc<Self>,
        log: Arc<File>,
        mut buffer: Vec<u8>,
        offset: u64,
    ) -> Result<(Vec<u8>, usize)> {
        self.blocking(move |_| {
            let read = log.read_at(&mut buffer, offset)?;
            Ok((buffer, read))
        })
        .await
    }
}
