//! The job directory: the on-disk contract between the server and a job's runner.
//!
//! ```text
//! <state dir>/jobs/<job id>/
//!   command.json    written by the server before it starts the runner: what to run
//!   prompt.txt      the prompt, when it reaches Codex on stdin instead of argv
//!   events.jsonl    Codex's stdout (its `--json` events), byte for byte, appended
//!   transcript.log  one readable line per message, command, file change and error
//!   stderr.log      Codex's stderr, appended
//!   last_message    Codex's `-o` file: its final agent message
//!   status.json     written by the runner, always atomically (temp file, rename):
//!                   who runs the job and what Codex reported so far. Its `exit`
//!                   field appears once, last, after every output byte is flushed
//!                   and fsynced and after every process of the job is gone.
//!   runner.log      the runner's own diagnostics
//! ```
//!
//! A job whose `status.json` has no `exit` and whose runner process is gone was lost.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::job::{
    FailureReason, JobState, Millis, Outcome, OutputStream, ProcessIdentity, TokenUsage,
};

/// The files of one job, named in one place.
#[derive(Clone, Debug)]
pub struct JobDir(PathBuf);

impl JobDir {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        JobDir(path.into())
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn command(&self) -> PathBuf {
        self.0.join("command.json")
    }

    pub fn prompt(&self) -> PathBuf {
        self.0.join("prompt.txt")
    }

    pub fn log(&self, stream: OutputStream) -> PathBuf {
        self.0.join(match stream {
            OutputStream::Transcript => "transcript.log",
            OutputStream::Events => "events.jsonl",
            OutputStream::Stderr => "stderr.log",
        })
    }

    pub fn last_message(&self) -> PathBuf {
        self.0.join("last_message")
    }

    /// The git worktree of a job with isolation `worktree`.
    pub fn worktree(&self) -> PathBuf {
        self.0.join("worktree")
    }

    /// What a job's worktree was made from, once it is made whole (JSON).
    pub fn worktree_record(&self) -> PathBuf {
        self.0.join(WORKTREE_RECORD)
    }

    /// The patch of what a job in a worktree changed, written when it ends.
    pub fn patch(&self) -> PathBuf {
        self.0.join("change.patch")
    }

    pub fn status(&self) -> PathBuf {
        self.0.join(STATUS_FILE)
    }

    pub fn runner_log(&self) -> PathBuf {
        self.0.join("runner.log")
    }

    /// Reads `status.json`; `Ok(None)` when the runner has not written it yet.
    pub fn read_status(&self) -> io::Result<Option<RunnerStatus>> {
        match fs::read(self.status()) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Replaces `status.json` atomically; with `durable`, fsyncs the file and the
    /// directory so the record survives a power loss.
    pub fn write_status(&self, status: &RunnerStatus, durable: bool) -> io::Result<()> {
        write_atomically(&self.0, STATUS_FILE, &serde_json::to_vec(status)?, durable)
    }
}

/// The name of the runner's record, which the server watches for.
pub const STATUS_FILE: &str = "status.json";

/// The name of the record of a job's worktree (see `JobDir::worktree_record`).
pub const WORKTREE_RECORD: &str = "worktree.json";

/// Writes `dir/name` through a temporary file and a rename, so readers see the old
/// content or the new, never a mix.
pub fn write_atomically(dir: &Path, name: &str, bytes: &[u8], durable: bool) -> io::Result<()> {
    use std::io::Write;
    let temp = dir.join(format!(".{name}.tmp"));
    let mut file = fs::File::create(&temp)?;
    file.write_all(bytes)?;
    if durable {
        file.sync_all()?;
    }
    fs::rename(&temp, dir.join(name))?;
    if durable {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// What the server asks a runner to run (`command.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunnerCommand {
    /// The Codex executable.
    pub program: PathBuf,
    pub args: Vec<String>,
    pub cwd: PathBuf,
    /// Feed this file to Codex's stdin; `None`: /dev/null.
    pub stdin: Option<PathBuf>,
    /// Kill the job this long after it started.
    pub timeout_ms: u64,
    /// Between SIGTERM and SIGKILL when the job is cancelled or times out.
    pub kill_grace_ms: u64,
    /// How long Codex may linger after reporting `turn.completed`.
    pub exit_grace_ms: u64,
    /// The most output (all three logs) to keep.
    #[serde(default = "unlimited")]
    pub max_output_bytes: u64,
}

/// A command written before there was a cap on output.
fn unlimited() -> u64 {
    u64::MAX
}

/// What the runner reports (`status.json`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunnerStatus {
    /// The runner process, identified so that a reused pid is never mistaken for it.
    pub runner: ProcessIdentity,
    pub started_at: Millis,
    /// Codex, which leads its own process group.
    pub codex: Option<ProcessIdentity>,
    pub thread_id: Option<String>,
    pub usage: Option<TokenUsage>,
    /// Codex printed `turn.completed`.
    pub turn_completed: bool,
    /// Present once the job is over, with all its output on disk.
    pub exit: Option<ExitRecord>,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExitRecord {
    pub ending: Ending,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// Why Codex could not start, or the last error Codex reported.
    pub error: Option<String>,
    pub final_message: String,
    pub finished_at: Millis,
    /// Why the output logs stop short (the cap, a full disk), if they do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_note: Option<String>,
}

/// Who ended a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// Codex exited on its own.
    Exited,
    /// The runner was asked to cancel (SIGTERM).
    Cancelled,
    /// The job ran past its timeout.
    TimedOut,
    /// Codex reported `turn.completed` but did not exit, and was ended.
    CompletedWithoutExit,
    /// Codex could not be started.
    StartFailed,
    /// The runner could not do its job (it could not write the output, say); it
    /// ended Codex and everything it started.
    RunnerFailed,
    /// The disk filled up: the runner stopped the output and ended Codex.
    DiskFull,
}

impl ExitRecord {
    /// The job state and outcome this record stands for.
    pub fn outcome(&self) -> (JobState, Outcome) {
        let mut outcome = Outcome {
            failure_reason: None,
            error: String::new(),
            exit_code: self.exit_code,
            signal: self.signal,
            output_note: self.output_note.clone().unwrap_or_default(),
        };
        let reported = self.error.as_deref().unwrap_or("");
        let detail = |what: String| match reported {
            "" => what,
            _ => format!("{what}: {reported}"),
        };
        let state = match (self.ending, self.exit_code, self.signal) {
            (Ending::Exited, Some(0), _) | (Ending::CompletedWithoutExit, _, _) => {
                JobState::Succeeded
            }
            (Ending::Cancelled, _, _) => {
                outcome.error = "cancelled".into();
                JobState::Cancelled
            }
            (Ending::Exited, Some(code), _) => {
                outcome.failure_reason = Some(FailureReason::NonZeroExit);
                outcome.error = detail(format!("codex exited with status {code}"));
                JobState::Failed
            }
            (Ending::Exited, None, signal) => {
                outcome.failure_reason = Some(FailureReason::Signaled);
                outcome.error = detail(format!(
                    "codex was killed by signal {}",
                    signal.unwrap_or_default()
                ));
                JobState::Failed
            }
            (Ending::TimedOut, _, _) => {
                outcome.failure_reason = Some(FailureReason::TimedOut);
                // The runner says after how long; an older record may not.
                outcome.error = match reported {
                    "" => "timed out".into(),
                    reported => reported.into(),
                };
                JobState::Failed
            }
            (Ending::StartFailed, _, _) => {
                outcome.failure_reason = Some(FailureReason::StartFailed);
                outcome.error = detail("codex could not be started".into());
                JobState::Failed
            }
            (Ending::DiskFull, _, _) => {
                outcome.failure_reason = Some(FailureReason::DiskFull);
                outcome.error =
                    "the server's disk filled up: the job's output stopped and the job was ended"
                        .into();
                JobState::Failed
            }
            (Ending::RunnerFailed, _, _) => {
                outcome.failure_reason = Some(FailureReason::Lost);
                outcome.error = detail("the job's runner failed and ended it".into());
                JobState::Failed
            }
        };
        (state, outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(ending: Ending, exit_code: Option<i32>, signal: Option<i32>) -> ExitRecord {
        ExitRecord {
            ending,
            exit_code,
            signal,
            error: None,
            final_message: String::new(),
            finished_at: 0,
            output_note: None,
        }
    }

    #[test]
    fn each_ending_maps_to_its_state_and_reason() {
        use FailureReason::*;
        let cases = [
            (
                record(Ending::Exited, Some(0), None),
                JobState::Succeeded,
                None,
            ),
            (
                record(Ending::Exited, Some(2), None),
                JobState::Failed,
                Some(NonZeroExit),
            ),
            (
                record(Ending::Exited, None, Some(9)),
                JobState::Failed,
                Some(Signaled),
            ),
            // Ended by the runner after its own report of a finished turn.
            (
                record(Ending::CompletedWithoutExit, None, Some(15)),
                JobState::Succeeded,
                None,
            ),
            (
                record(Ending::Cancelled, None, Some(15)),
                JobState::Cancelled,
                None,
            ),
            (
                record(Ending::TimedOut, None, Some(15)),
                JobState::Failed,
                Some(TimedOut),
            ),
            (
                record(Ending::StartFailed, None, None),
                JobState::Failed,
                Some(StartFailed),
            ),
            (
                record(Ending::RunnerFailed, None, None),
                JobState::Failed,
                Some(Lost),
            ),
        ];
        for (exit, state, reason) in cases {
            let (got_state, outcome) = exit.outcome();
            assert_eq!(
                (got_state, outcome.failure_reason),
                (state, reason),
                "{exit:?}"
            );
            assert_eq!(outcome.exit_code, exit.exit_code);
            assert_eq!(outcome.signal, exit.signal);
            assert_eq!(
                outcome.error.is_empty(),
                state == JobState::Succeeded,
                "{exit:?}"
            );
        }
    }

    #[test]
    fn the_error_says_what_codex_reported() {
        let mut exit = record(Ending::Exited, Some(1), None);
        exit.error = Some("stream disconnected".into());
        assert_eq!(
            exit.outcome().1.error,
            "codex exited with status 1: stream disconnected"
        );
        let mut signaled = record(Ending::Exited, None, Some(9));
        signaled.error = None;
        assert_eq!(signaled.outcome().1.error, "codex was killed by signal 9");
        let mut timed_out = record(Ending::TimedOut, None, Some(15));
        timed_out.error = Some("timed out after 5 s".into());
        assert_eq!(timed_out.outcome().1.error, "timed out after 5 s");
    }

    #[test]
    fn a_status_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let dir = JobDir::new(dir.path());
        assert_eq!(dir.read_status().unwrap(), None);
        let status = RunnerStatus {
            runner: ProcessIdentity {
                pid: 7,
                start_time: 8,
            },
            codex: Some(ProcessIdentity {
                pid: 9,
                start_time: 10,
            }),
            exit: Some(record(Ending::Cancelled, None, Some(15))),
            ..RunnerStatus::default()
        };
        dir.write_status(&status, true).unwrap();
        assert_eq!(dir.read_status().unwrap(), Some(status));
    }
}
