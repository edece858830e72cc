//! Poll: a job and a window of its output, optionally held until something happens
//! (long-poll) without busy-polling.

use std::{sync::Arc, time::Duration};

use tokio::time::Instant;

use super::JobManager;
use crate::{
    error::{Error, Result},
    job::{Job, JobId, JobState, OutputStream},
    output::{Log, Window},
};

/// Which part of a log to return.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum WindowRequest {
    /// No output, only the job (and the log's size).
    Nothing,
    /// The last N lines.
    Tail(usize),
    /// Everything from this byte offset on.
    Since(u64),
}

#[derive(Debug)]
pub struct PollResult {
    pub job: Job,
    pub window: Window,
}

impl JobManager {
    /// The job and the requested window of its `stream` log, at most `max_bytes`.
    /// With `wait`, holds on until the job ends, new output arrives (for `Since`: any
    /// byte at or after the offset; for `Tail`: any byte), the job changes state (for
    /// `Nothing`), or the wait elapses.
    pub async fn poll(
        self: &Arc<Self>,
        id: JobId,
        request: WindowRequest,
        stream: OutputStream,
        max_bytes: usize,
        wait: Option<Duration>,
    ) -> Result<PollResult> {
        if let Some(answer) = self.poll_finished(id, request, stream) {
            return Ok(answer);
        }
        let deadline = wait.map(|wait| Instant::now() + wait);
        // The job's state and the log's size at the first look.
        let mut first: Option<(JobState, u64)> = None;
        loop {
            // Only a call that may wait needs to hear of changes.
            let mut changed = wait.map(|_| self.subscribe(id));
            let result = self
                .blocking(move |manager| manager.read_window(id, request, stream, max_bytes))
                .await?;
            let (job, window) = (&result.job, &result.window);
            let snapshot = (job.state, window.size);
            let news = match request {
                WindowRequest::Since(_) => !window.bytes.is_empty(),
                WindowRequest::Tail(_) => first.is_some_and(|first| first != snapshot),
                WindowRequest::Nothing => first.is_some_and(|(state, _)| state != job.state),
            };
            first.get_or_insert(snapshot);
            let out_of_time = deadline.is_none_or(|deadline| Instant::now() >= deadline);
            // No waiter: no wait.
            let Some(waiter) = changed.as_mut() else {
                return Ok(result);
            };
            if news || out_of_time || job.state.is_terminal() {
                return Ok(result);
            }
            let deadline = deadline.expect("checked above");
            tokio::select! {
                () = waiter.changed() => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    /// The answer for a finished job kept in memory, when it needs no file read:
    /// its transcript is complete, so its size is the job's `output_size`, and
    /// nothing is ever new after it.
    fn poll_finished(
        &self,
        id: JobId,
        request: WindowRequest,
        stream: OutputStream,
    ) -> Option<PollResult> {
        if stream != OutputStream::Transcript {
            return None;
        }
        let job = self.finished.get(id)?;
        let size = job.output_size;
        match request {
            WindowRequest::Nothing => {}
            WindowRequest::Since(offset) if offset == size => {}
            _ => return None,
        }
        let window = Window {
            start: size,
            end: size,
            size,
            ..Window::default()
        };
        Some(PollResult { job, window })
    }

    /// The job and one window of its log, as they are now.
    fn read_window(
        &self,
        id: JobId,
        request: WindowRequest,
        stream: OutputStream,
        max_bytes: usize,
    ) -> Result<PollResult> {
        // The state is read before the log: a finished job's log is complete.
        let job = self.job(id)?;
        // Its output is where it runs (the caller asks there). Its record is here
        // too: enough for a call that wants no output once the job has ended, or
        // while its host cannot be reached.
        let record_will_do =
            request == WindowRequest::Nothing && (job.state.is_terminal() || job.host_unreachable);
        if let Some(host) = self.elsewhere(&job)
            && !record_will_do
        {
            return Err(Error::RunsElsewhere {
                id,
                host: host.to_string(),
            });
        }
        let log = Log::open(&self.log_path(id, stream))?;
        let window = match request {
            WindowRequest::Nothing => Window {
                start: log.size(),
                end: log.size(),
                size: log.size(),
                ..Window::default()
            },
            WindowRequest::Tail(lines) => log.tail(lines, max_bytes)?,
            WindowRequest::Since(offset) => log
                .since(offset, max_bytes)
                .map_err(|err| Error::InvalidArgument(format!("since_offset: {err}")))??,
        };
        Ok(PollResult { job, window })
    }
}
