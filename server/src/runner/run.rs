//! The runner process (`codex-jobs-runner <job dir>`): one per job, outliving the
//! server, in the manner of containerd-shim and conmon.
//!
//! It starts Codex in a session and process group of its own, copies Codex's stdout
//! and stderr into the job's logs as they come, derives the transcript and the
//! reported fields, enforces the timeout, ends Codex on request (SIGTERM to the
//! runner), and at the end records the exit status in `status.json`, after every
//! byte of output is on disk and every process of the job is gone.
//!
//! It is synchronous and single-threaded: one `poll(2)` over Codex's pipes, a pidfd
//! for Codex's exit and a signalfd for cancel requests, with the nearest deadline as
//! its timeout. An idle job costs no wake-ups.

use std::{
    fs::{self, File},
    io::{self, Read},
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
        unix::process::{CommandExt, ExitStatusExt},
    },
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use super::{
    logs::{Logs, Stopped, is_disk_full},
    process::{ProcessIdentity, pidfd_open},
    record::{Ending, ExitRecord, JobDir, RunnerCommand, RunnerStatus},
    transcript::Transcriber,
};
use crate::job::{OutputStream, now_millis};

/// How long the runner reads Codex's pipes after Codex and everything it started
/// are gone.
const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// The longest event line the runner transcribes; longer ones are kept only raw.
const MAX_EVENT_LINE: usize = 16 * 1024 * 1024;

/// The signals that ask a runner to cancel its job.
const CANCEL_SIGNALS: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

/// Runs the job in `dir` to its end. An error means the runner could not do its job;
/// the exit record is then missing and the server reports the job as lost.
pub fn run(dir: &JobDir) -> io::Result<()> {
    let command: RunnerCommand = serde_json::from_slice(&fs::read(dir.command())?)
        .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))?;
    let cancel_requests = SignalFd::block(&CANCEL_SIGNALS)?;
    // Orphaned descendants of Codex are re-parented to the runner, so that none of
    // them escapes the cleanup at the end.
    // SAFETY: prctl with these arguments only sets a flag on this process.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };

    let mut status = RunnerStatus {
        runner: ProcessIdentity::current()?,
        started_at: now_millis(),
        ..RunnerStatus::default()
    };
    dir.write_status(&status, false)?;
    // Room for the exit record, however full the disk gets meanwhile.
    ExitReserve::take(dir)?;

    let mut child = match spawn_codex(&command, status.runner.pid) {
        Ok(child) => child,
        Err(err) => {
            status.exit = Some(ExitRecord {
                ending: Ending::StartFailed,
                exit_code: None,
                signal: None,
                error: Some(format!("{}: {err}", command.program.display())),
                final_message: String::new(),
                finished_at: now_millis(),
                output_note: None,
            });
            return dir.write_status(&status, true);
        }
    };
    status.codex = ProcessIdentity::of(child.id()).ok();
    let result = dir
        .write_status(&status, false)
        .and_then(|()| Supervisor::new(dir, &command, &mut child, cancel_requests, status.clone()))
        .and_then(|supervisor| supervisor.run());
    if let Err(err) = &result {
        // End the job rather than leave it running unrecorded, and say why if the
        // disk still lets us.
        kill_leftovers(child.id() as libc::pid_t);
        status.exit = Some(ExitRecord {
            ending: Ending::RunnerFailed,
            exit_code: None,
            signal: None,
            error: Some(err.to_string()),
            final_message: String::new(),
            finished_at: now_millis(),
            output_note: None,
        });
        let _ = ExitReserve::release(dir);
        let _ = dir.write_status(&status, true);
    }
    result
}

/// Starts Codex in a session and process group of its own. `runner_pid` is this
/// process: Codex is killed if it goes away.
fn spawn_codex(command: &RunnerCommand, runner_pid: u32) -> io::Result<Child> {
    let stdin = match &command.stdin {
        Some(path) => Stdio::from(File::open(path)?),
        None => Stdio::null(),
    };
    let mut codex = Command::new(&command.program);
    codex
        .args(&command.args)
        .current_dir(&command.cwd)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: between fork and exec this only calls async-signal-safe functions.
    unsafe {
        codex.pre_exec(move || {
            // Its own session and process group, so the whole job can be signalled
            // at once, and with the signals the runner blocks unblocked again.
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            // Should the runner die, Codex must not run on unwatched.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            if libc::getppid() as u32 != runner_pid {
                libc::_exit(1);
            }
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            Ok(())
        })
    };
    codex.spawn()
}

/// Watches one running Codex until it and everything it started are gone.
struct Supervisor<'a> {
    dir: &'a JobDir,
    child: &'a mut Child,
    status: RunnerStatus,
    cancel_requests: SignalFd,
    exited: Option<OwnedFd>,
    stdout: Option<std::process::ChildStdout>,
    stderr: Option<std::process::ChildStderr>,
    logs: Logs,
    transcriber: Transcriber,
    partial_line: Vec<u8>,
    /// Dropping the rest of an event line longer than `MAX_EVENT_LINE`.
    skipping_line: bool,
    exit_status: Option<ExitStatus>,
    /// Why the runner is ending Codex, once it is.
    ending: Option<Ending>,
    timeout_at: Instant,
    timeout: Duration,
    exit_grace: Duration,
    kill_grace: Duration,
    /// Codex reported `turn.completed`: end it if it is still there then.
    linger_until: Option<Instant>,
    /// SIGTERM was sent: SIGKILL follows then.
    kill_at: Option<Instant>,
    /// Codex has exited: read what is left in its pipes until then.
    drain_until: Option<Instant>,
}

impl<'a> Supervisor<'a> {
    fn new(
        dir: &'a JobDir,
        command: &RunnerCommand,
        child: &'a mut Child,
        cancel_requests: SignalFd,
        status: RunnerStatus,
    ) -> io::Result<Self> {
        let timeout = Duration::from_millis(command.timeout_ms);
        Ok(Supervisor {
            exited: Some(pidfd_open(child.id(), 0)?),
            stdout: child.stdout.take(),
            stderr: child.stderr.take(),
            dir,
            child,
            status,
            cancel_requests,
            logs: Logs::open(dir, command.max_output_bytes)?,
            transcriber: Transcriber::default(),
            partial_line: Vec::new(),
            skipping_line: false,
            exit_status: None,
            ending: None,
            timeout_at: Instant::now() + timeout,
            timeout,
            exit_grace: Duration::from_millis(command.exit_grace_ms),
            kill_grace: Duration::from_millis(command.kill_grace_ms),
            linger_until: None,
            kill_at: None,
            drain_until: None,
        })
    }

    fn run(mut self) -> io::Result<()> {
        let mut buffer = vec![0u8; 64 * 1024];
        while self.exited.is_some() || self.stdout.is_some() || self.stderr.is_some() {
            let wait = self.enforce_deadlines();
            let mut fds = Vec::with_capacity(4);
            let watched: [(Option<RawFd>, Source); 4] = [
                (self.stdout.as_ref().map(AsRawFd::as_raw_fd), Source::Stdout),
                (self.stderr.as_ref().map(AsRawFd::as_raw_fd), Source::Stderr),
                (self.exited.as_ref().map(AsRawFd::as_raw_fd), Source::Exit),
                (Some(self.cancel_requests.fd.as_raw_fd()), Source::Cancel),
            ];
            let mut sources = Vec::with_capacity(4);
            for (fd, source) in watched {
                if let Some(fd) = fd {
                    fds.push(libc::pollfd {
                        fd,
                        events: libc::POLLIN,
                        revents: 0,
                    });
                    sources.push(source);
                }
            }
            let timeout_ms = wait.map_or(-1, |wait| wait.as_millis().min(i32::MAX as u128) as i32);
            // SAFETY: fds is a valid array of fds.len() pollfd structs.
            let ready =
                unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
            if ready < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            for (fd, source) in fds.iter().zip(sources) {
                if fd.revents != 0 {
                    self.handle(source, &mut buffer)?;
                }
            }
        }
        self.finish()
    }

    /// Acts on every deadline that has passed and returns how long until the next.
    fn enforce_deadlines(&mut self) -> Option<Duration> {
        let now = Instant::now();
        if let Some(drain_until) = self.drain_until {
            // Codex is gone. Something outside its process tree (it was handed a pipe
            // end over a socket, say) may hold the pipes open: stop waiting for them.
            if now >= drain_until {
                self.stdout = None;
                self.stderr = None;
            }
            return Some(drain_until.saturating_duration_since(now) + Duration::from_millis(1));
        }
        if self.kill_at.is_some_and(|at| now >= at) {
            self.signal_codex(libc::SIGKILL);
            self.kill_at = None;
        }
        if self.ending.is_none() {
            if now >= self.timeout_at {
                self.end_codex(Ending::TimedOut);
            } else if self.linger_until.is_some_and(|at| now >= at) {
                self.end_codex(Ending::CompletedWithoutExit);
            }
        }
        [
            Some(self.timeout_at).filter(|_| self.ending.is_none()),
            self.linger_until.filter(|_| self.ending.is_none()),
            self.kill_at,
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|at| at.saturating_duration_since(now) + Duration::from_millis(1))
    }

    fn handle(&mut self, source: Source, buffer: &mut [u8]) -> io::Result<()> {
        match source {
            Source::Stdout => {
                let read = read_some(self.stdout.as_mut(), buffer)?;
                if read == 0 {
                    self.stdout = None;
                    if !self.partial_line.is_empty() && !self.skipping_line {
                        let line = std::mem::take(&mut self.partial_line);
                        self.transcribe(&[line.as_slice()])?;
                    }
                } else {
                    self.take_events(&buffer[..read])?;
                }
            }
            Source::Stderr => {
                let read = read_some(self.stderr.as_mut(), buffer)?;
                if read == 0 {
                    self.stderr = None;
                } else {
                    self.logs.write(OutputStream::Stderr, &buffer[..read])?;
                    self.check_disk();
                }
            }
            Source::Exit => {
                self.exit_status = Some(self.child.wait()?);
                self.exited = None;
                // Whatever Codex left behind ends with it; once all of it is gone,
                // the pipes reach end of file.
                kill_leftovers(self.child.id() as libc::pid_t);
                self.drain_until = Some(Instant::now() + DRAIN_GRACE);
            }
            Source::Cancel => {
                self.cancel_requests.read()?;
                if self.ending.is_none() && self.exit_status.is_none() {
                    self.end_codex(Ending::Cancelled);
                }
            }
        }
        Ok(())
    }

    /// Keeps Codex's stdout as it came and transcribes each complete event line.
    fn take_events(&mut self, fresh: &[u8]) -> io::Result<()> {
        self.logs.write(OutputStream::Events, fresh)?;
        self.check_disk();
        // Only the new bytes can end a line: never rescan what was kept.
        let line_end = fresh
            .iter()
            .rposition(|&b| b == b'\n')
            .map(|end| self.partial_line.len() + end);
        self.partial_line.extend_from_slice(fresh);
        let Some(end) = line_end else {
            if self.partial_line.len() > MAX_EVENT_LINE && !self.skipping_line {
                // Too big to hold: it stays in events.jsonl, not in the transcript.
                self.logs.write(
                    OutputStream::Transcript,
                    b"! an event too large to transcribe\n",
                )?;
                self.skipping_line = true;
            }
            if self.skipping_line {
                self.partial_line.clear();
            }
            return Ok(());
        };
        let rest = self.partial_line.split_off(end + 1);
        let complete = std::mem::replace(&mut self.partial_line, rest);
        let mut lines = complete.split(|&b| b == b'\n');
        if std::mem::take(&mut self.skipping_line) {
            lines.next(); // the end of the oversized line
        }
        let lines: Vec<&[u8]> = lines.filter(|line| !line.is_empty()).collect();
        self.transcribe(&lines)
    }

    /// Adds complete event lines to the transcript, and reports what they changed.
    fn transcribe(&mut self, lines: &[&[u8]]) -> io::Result<()> {
        let before = (self.transcriber.thread_id.clone(), self.transcriber.usage);
        let text: String = lines
            .iter()
            .map(|line| self.transcriber.line(line))
            .collect();
        self.logs.write(OutputStream::Transcript, text.as_bytes())?;
        self.check_disk();
        if self.transcriber.turn_completed && self.linger_until.is_none() {
            self.linger_until = Some(Instant::now() + self.exit_grace);
        }
        if before != (self.transcriber.thread_id.clone(), self.transcriber.usage) {
            self.status.thread_id = self.transcriber.thread_id.clone();
            self.status.usage = self.transcriber.usage;
            self.status.turn_completed = self.transcriber.turn_completed;
            // The exit record will carry these too: a full disk may refuse them now.
            match self.dir.write_status(&self.status, false) {
                Err(err) if is_disk_full(&err) => self.check_disk_full(),
                other => other?,
            }
        }
        Ok(())
    }

    /// Ends the job once the disk is full: its output is lost from here on, and
    /// Codex's own writes are failing too.
    fn check_disk(&mut self) {
        if self.logs.stopped() == Some(Stopped::DiskFull) {
            self.check_disk_full();
        }
    }

    fn check_disk_full(&mut self) {
        if self.ending.is_none() && self.exit_status.is_none() {
            self.end_codex(Ending::DiskFull);
        }
    }

    fn end_codex(&mut self, ending: Ending) {
        self.ending = Some(ending);
        self.signal_codex(libc::SIGTERM);
        self.kill_at = Some(Instant::now() + self.kill_grace);
    }

    fn signal_codex(&self, signal: libc::c_int) {
        // Codex leads its own process group, so this reaches everything it started.
        // SAFETY: killpg has no memory-safety preconditions.
        unsafe { libc::killpg(self.child.id() as libc::pid_t, signal) };
    }

    /// Flushes the logs to disk and writes the exit record.
    fn finish(mut self) -> io::Result<()> {
        self.logs.sync()?;
        let exit_status = self.exit_status.expect("the loop ends after Codex exits");
        let final_message = fs::read_to_string(self.dir.last_message())
            .ok()
            .filter(|message| !message.trim().is_empty())
            .or_else(|| self.transcriber.last_agent_message.clone())
            .unwrap_or_default();
        let ending = self.ending.unwrap_or(Ending::Exited);
        let error = match ending {
            Ending::TimedOut => Some(format!("timed out after {} s", self.timeout.as_secs_f64())),
            _ => self.transcriber.last_error.clone(),
        };
        self.status.thread_id = self.transcriber.thread_id.clone();
        self.status.usage = self.transcriber.usage;
        self.status.turn_completed = self.transcriber.turn_completed;
        let mut exit = ExitRecord {
            ending,
            exit_code: exit_status.code(),
            signal: exit_status.signal(),
            error,
            final_message: final_message.trim_end().to_owned(),
            finished_at: now_millis(),
            output_note: self.logs.note(),
        };
        // The reserve makes room for the record; should even that not do (a final
        // message larger than the reserve), its end gives way.
        ExitReserve::release(self.dir)?;
        self.status.exit = Some(exit.clone());
        match self.dir.write_status(&self.status, true) {
            Err(err) if is_disk_full(&err) => {
                let kept: String = exit.final_message.chars().take(4096).collect();
                exit.final_message = format!("{kept}\n[cut short: the disk is full]");
                self.status.exit = Some(exit);
                self.dir.write_status(&self.status, true)
            }
            other => other,
        }
    }
}

/// Disk space held for the exit record from the start of the run, and given back
/// just before it is written.
struct ExitReserve;

impl ExitReserve {
    const FILE: &str = ".exit-reserve";
    const BYTES: libc::off_t = 256 * 1024;

    fn take(dir: &JobDir) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let file = File::create(dir.path().join(Self::FILE))?;
        // SAFETY: fallocate takes a descriptor we own and plain integers.
        if unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, Self::BYTES) } == 0 {
            return Ok(());
        }
        // Filesystems without fallocate: real zeros take real blocks.
        use std::io::Write;
        (&file).write_all(&vec![0u8; Self::BYTES as usize])?;
        file.sync_all()
    }

    fn release(dir: &JobDir) -> io::Result<()> {
        match fs::remove_file(dir.path().join(Self::FILE)) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}

#[derive(Clone, Copy)]
enum Source {
    Stdout,
    Stderr,
    Exit,
    Cancel,
}

fn read_some(pipe: Option<&mut impl Read>, buffer: &mut [u8]) -> io::Result<usize> {
    let Some(pipe) = pipe else { return Ok(0) };
    loop {
        match pipe.read(buffer) {
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            result => return result,
        }
    }
}

/// Kills Codex's process group and then every other descendant the runner has
/// inherited as their subreaper, and reaps them all.
fn kill_leftovers(group: libc::pid_t) {
    // SAFETY: killpg/kill/waitpid have no memory-safety preconditions.
    unsafe { libc::killpg(group, libc::SIGKILL) };
    let children_file = format!("/proc/self/task/{0}/children", std::process::id());
    loop {
        let children: Vec<libc::pid_t> = fs::read_to_string(&children_file)
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|pid| pid.parse().ok())
            .collect();
        if children.is_empty() {
            break;
        }
        for &pid in &children {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        for pid in children {
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
        }
    }
}

/// Signals delivered as readable events on a file descriptor instead of to handlers.
struct SignalFd {
    fd: OwnedFd,
}

impl SignalFd {
    /// Blocks `signals` for this process and returns a descriptor that reports them.
    fn block(signals: &[libc::c_int]) -> io::Result<Self> {
        // SAFETY: the sigset is initialised by sigemptyset before any other use.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for &signal in signals {
                libc::sigaddset(&mut set, signal);
            }
            if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(SignalFd {
                fd: OwnedFd::from_raw_fd(fd),
            })
        }
    }

    /// Consumes one pending signal.
    fn read(&self) -> io::Result<()> {
        let mut info = [0u8; std::mem::size_of::<libc::signalfd_siginfo>()];
        // SAFETY: info is a writable buffer of the given length.
        let read = unsafe { libc::read(self.fd.as_raw_fd(), info.as_mut_ptr().cast(), info.len()) };
        if read < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}
