//! `Runner`: the server's handle on one job's runner process, whether this server
//! started it or adopted it after a restart. It is the only way the server starts,
//! waits for and signals runners.

use std::{
    io,
    os::{fd::OwnedFd, unix::process::CommandExt},
    process::{Child, Command, Stdio},
    sync::Mutex,
    time::Duration,
};

use tokio::io::{Interest, unix::AsyncFd};

use super::{
    RunnerConfig, codex_args,
    process::{ProcessIdentity, pidfd_open, pidfd_send_signal},
    record::{self, ExitRecord, JobDir, RunnerCommand, RunnerStatus},
};
use crate::job::{JobSpec, TokenUsage};

/// A running job's runner.
pub struct Runner {
    identity: ProcessIdentity,
    /// Names the runner for as long as this handle lives, even after its pid is
    /// reused: it becomes readable when the runner exits, and signals sent through it
    /// reach the runner or nobody.
    pidfd: AsyncFd<OwnedFd>,
    /// The runner, when this server started it: reaped once it exits.
    child: Mutex<Option<Child>>,
}

impl Runner {
    /// Writes the job's `command.json` and starts its runner in a session of its own,
    /// so that it outlives the server. The runner starts with the cancel signals
    /// blocked: one sent before it is ready waits instead of killing it.
    ///
    /// Blocks (it forks); call it where blocking is allowed.
    pub fn spawn(
        config: &RunnerConfig,
        dir: &JobDir,
        spec: &JobSpec,
        timeout: Duration,
    ) -> io::Result<Runner> {
        let (args, prompt_on_stdin) = codex_args(spec, dir);
        if prompt_on_stdin {
            std::fs::write(dir.prompt(), spec.prompt.as_bytes())?;
        }
        let command = RunnerCommand {
            program: config.codex_bin.clone(),
            args,
            cwd: spec.cwd.clone(),
            stdin: prompt_on_stdin.then(|| dir.prompt()),
            timeout_ms: timeout.as_millis() as u64,
            kill_grace_ms: config.kill_grace.as_millis() as u64,
            exit_grace_ms: config.exit_grace.as_millis() as u64,
            max_output_bytes: config.max_output_bytes,
        };
        record::write_atomically(
            dir.path(),
            "command.json",
            &serde_json::to_vec_pretty(&command)?,
            false,
        )?;
        let log = std::fs::File::create(dir.runner_log())?;
        let mut runner = Command::new(&config.runner_bin);
        runner
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // SAFETY: between fork and exec this only calls async-signal-safe functions.
        unsafe {
            runner.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(io::Error::last_os_error());
                }
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
                    libc::sigaddset(&mut set, signal);
                }
                libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                Ok(())
            });
        }
        let child = runner.spawn()?;
        // An unreaped child keeps its pid, so both name this very process.
        let identity = ProcessIdentity::of(child.id());
        let pidfd = pidfd_open(child.id(), libc::O_NONBLOCK);
        let (identity, pidfd) = match (identity, pidfd) {
            (Ok(identity), Ok(pidfd)) => (identity, pidfd),
            (Err(err), _) | (_, Err(err)) => {
                // Without a handle nobody could wait for it: end it now.
                let mut child = child;
                let _ = child.kill();
                let _ = child.wait();
                return Err(err);
            }
        };
        Ok(Runner {
            identity,
            pidfd: watch_exit(pidfd)?,
            child: Mutex::new(Some(child)),
        })
    }

    /// Takes over a runner an earlier server started; `None` if it is gone.
    pub fn adopt(identity: ProcessIdentity) -> io::Result<Option<Runner>> {
        let pidfd = match pidfd_open(identity.pid, libc::O_NONBLOCK) {
            Ok(pidfd) => pidfd,
            Err(err) if err.raw_os_error() == Some(libc::ESRCH) => return Ok(None),
            Err(err) => return Err(err),
        };
        // The pidfd names whatever process had the pid when it was opened: make sure
        // that is still our runner, and still running (a zombie nobody reaps is not).
        if !identity.is_alive() {
            return Ok(None);
        }
        Ok(Some(Runner {
            identity,
            pidfd: watch_exit(pidfd)?,
            child: Mutex::new(None),
        }))
    }

    /// The runner's pid and start time, which a restarted server adopts it by.
    pub fn identity(&self) -> ProcessIdentity {
        self.identity
    }

    /// Returns once the runner has exited (and, if this server started it, has been
    /// reaped).
    pub async fn exited(&self) {
        // A pidfd becomes readable when its process exits, and stays so.
        let _ = self.pidfd.readable().await;
        let child = self
            .child
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(mut child) = child {
            // It has exited: this does not block.
            let _ = child.wait();
        }
    }

    /// Asks the runner to cancel its job: it ends Codex's whole process group
    /// (SIGTERM, then SIGKILL after the grace period) and records the job as
    /// cancelled. Harmless once the runner is gone.
    pub fn cancel(&self) {
        if let Err(err) = pidfd_send_signal(self.pidfd.get_ref(), libc::SIGTERM)
            && err.raw_os_error() != Some(libc::ESRCH)
        {
            tracing::warn!(
                runner = self.identity.pid,
                "cannot signal the runner: {err}"
            );
        }
    }
}

/// Registers a pidfd with tokio, to learn when its process exits.
fn watch_exit(pidfd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: the AsyncFd owns the pidfd, so the fd stays open while registered.
    unsafe { AsyncFd::register_with_interest(pidfd, Interest::READABLE) }
        .map_err(|err| io::Error::other(err.to_string()))
}

/// How a job's run ended, from what its runner left once it is gone.
#[derive(Debug, PartialEq)]
pub enum RunEnd {
    /// The runner recorded the end, after every byte of output.
    Recorded {
        exit: ExitRecord,
        thread_id: Option<String>,
        usage: Option<TokenUsage>,
    },
    /// The runner went away without recording an end. Whatever Codex left running
    /// has been killed.
    Lost,
}

/// Reads how the run in `dir` ended. Call it only once the runner is gone: a record
/// without an end then means the job was lost, and what is left of it is killed.
pub fn collect(dir: &JobDir) -> RunEnd {
    let status = dir.read_status().unwrap_or_else(|err| {
        tracing::warn!(
            "unreadable runner status in {}: {err}",
            dir.path().display()
        );
        None
    });
    match status {
        Some(RunnerStatus {
            exit: Some(exit),
            thread_id,
            usage,
            ..
        }) => RunEnd::Recorded {
            exit,
            thread_id,
            usage,
        },
        status => {
            // Codex dies with its runner (PDEATHSIG), but what it started may not.
            if let Some(codex) = status.and_then(|status| status.codex) {
                codex.kill_session();
            }
            RunEnd::Lost
        }
    }
}
