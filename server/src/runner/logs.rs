//! The job's three output logs as the runner writes them: within the host's cap on
//! a job's output, and stopped, never failed, when the disk is full. Whatever
//! happens to the output, the runner goes on to record how the job ended.

use std::{
    fs::{File, OpenOptions},
    io::{self, Write},
};

use super::record::JobDir;
use crate::job::OutputStream;

/// Why the logs stop short.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// The job wrote its share (`--max-output-bytes`); it carries on unrecorded.
    Cap,
    /// The disk (or the quota) is full.
    DiskFull,
}

pub struct Logs {
    events: File,
    transcript: File,
    stderr: File,
    written: u64,
    cap: u64,
    stopped: Option<Stopped>,
}

impl Logs {
    /// Opens (appending) the logs in `dir`, which may hold `cap` bytes in all.
    pub fn open(dir: &JobDir, cap: u64) -> io::Result<Logs> {
        let append = |stream| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.log(stream))
        };
        Ok(Logs {
            events: append(OutputStream::Events)?,
            transcript: append(OutputStream::Transcript)?,
            stderr: append(OutputStream::Stderr)?,
            written: 0,
            cap,
            stopped: None,
        })
    }

    /// Why the logs stopped, once they have.
    pub fn stopped(&self) -> Option<Stopped> {
        self.stopped
    }

    /// What a reader should know about where the logs end, if they end short.
    pub fn note(&self) -> Option<String> {
        self.stopped.map(|stopped| match stopped {
            Stopped::Cap => format!(
                "the output was cut at {} bytes, the most this host keeps of a job (--max-output-bytes)",
                self.cap
            ),
            Stopped::DiskFull => format!(
                "the output stopped after {} bytes: the server's disk is full",
                self.written
            ),
        })
    }

    /// Appends `bytes` to one log, unless the logs have stopped or this would take
    /// them past the cap (which stops them, with a last line in the transcript).
    /// Errors other than a full disk are the runner's to report.
    pub fn write(&mut self, stream: OutputStream, bytes: &[u8]) -> io::Result<()> {
        if self.stopped.is_some() || bytes.is_empty() {
            return Ok(());
        }
        if self.written + bytes.len() as u64 > self.cap {
            self.stopped = Some(Stopped::Cap);
            let notice = format!("! {}\n", self.note().unwrap_or_default());
            // Past the cap by this line only; a full disk may refuse even that.
            return self.stop_on_full_disk(|logs| logs.transcript.write_all(notice.as_bytes()));
        }
        let result = self.file(stream).write_all(bytes);
        if result.is_ok() {
            self.written += bytes.len() as u64;
        }
        self.stop_on_full_disk(|_| result)
    }

    /// Flushes every log to disk.
    pub fn sync(&mut self) -> io::Result<()> {
        for stream in [
            OutputStream::Events,
            OutputStream::Transcript,
            OutputStream::Stderr,
        ] {
            let result = self.file(stream).sync_all();
            self.stop_on_full_disk(|_| result)?;
        }
        Ok(())
    }

    fn file(&self, stream: OutputStream) -> &File {
        match stream {
            OutputStream::Events => &self.events,
            OutputStream::Transcript => &self.transcript,
            OutputStream::Stderr => &self.stderr,
        }
    }

    fn stop_on_full_disk(
        &mut self,
        write: impl FnOnce(&mut Self) -> io::Result<()>,
    ) -> io::Result<()> {
        match write(self) {
            Err(err) if is_disk_full(&err) => {
                self.stopped.get_or_insert(Stopped::DiskFull);
                Ok(())
            }
            other => other,
        }
    }
}

/// ENOSPC, or EDQUOT for a user over their quota.
pub fn is_disk_full(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_logs_stop_at_the_cap_with_a_last_line_that_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let job = JobDir::new(dir.path());
        let mut logs = Logs::open(&job, 10).unwrap();
        logs.write(OutputStream::Transcript, b"12345\n").unwrap();
        logs.write(OutputStream::Events, b"123\n").unwrap();
        assert_eq!(logs.stopped(), None);
        logs.write(OutputStream::Stderr, b"x").unwrap();
        assert_eq!(logs.stopped(), Some(Stopped::Cap));
        logs.write(OutputStream::Transcript, b"never\n").unwrap();
        let transcript = std::fs::read_to_string(job.log(OutputStream::Transcript)).unwrap();
        assert_eq!(
            transcript,
            "12345\n! the output was cut at 10 bytes, the most this host keeps of a job (--max-output-bytes)\n"
        );
        assert_eq!(std::fs::read(job.log(OutputStream::Stderr)).unwrap(), b"");
    }
}
