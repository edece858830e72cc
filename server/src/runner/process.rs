//! Telling a process apart from a later one that reuses its pid.
//!
//! A pid alone is not an identity: after a process ends its pid can be given to
//! another. A pid together with the process's start time (in clock ticks since boot,
//! from `/proc/<pid>/stat`) is. Liveness is judged from the process state too, since
//! a zombie nobody reaps still answers `kill(pid, 0)`.

use std::{
    fs, io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
};

pub use crate::job::ProcessIdentity;

/// What `/proc/<pid>/stat` says of a process.
struct Stat {
    state: char,
    session: u32,
    start_time: u64,
}

fn stat(pid: u32) -> io::Result<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may contain anything, so
    // fields are counted from the last ')'.
    let after_name = text
        .rfind(')')
        .map(|end| &text[end + 1..])
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed stat"))?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed stat");
    // Field 3 is the state, field 6 the session, field 22 the start time.
    let state = fields
        .first()
        .and_then(|s| s.chars().next())
        .ok_or_else(bad)?;
    let number = |index: usize| {
        fields
            .get(index)
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(bad)
    };
    Ok(Stat {
        state,
        session: number(3)? as u32,
        start_time: number(19)?,
    })
}

impl ProcessIdentity {
    /// The identity of the live process `pid`.
    pub fn of(pid: u32) -> io::Result<Self> {
        Ok(ProcessIdentity {
            pid,
            start_time: stat(pid)?.start_time,
        })
    }

    /// The calling process.
    pub fn current() -> io::Result<Self> {
        Self::of(std::process::id())
    }

    /// True while this very process exists and has not exited (zombies count as
    /// exited).
    pub fn is_alive(&self) -> bool {
        match stat(self.pid) {
            Ok(stat) => stat.start_time == self.start_time && !matches!(stat.state, 'Z' | 'X'),
            Err(_) => false,
        }
    }

    /// SIGKILLs every process of the session this process led (it called setsid),
    /// whether or not the leader still lives. Only processes started after the
    /// leader count, so a later session that reuses the id is left alone.
    pub fn kill_session(&self) {
        let Ok(entries) = fs::read_dir("/proc") else {
            return;
        };
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<u32>().ok())
            else {
                continue;
            };
            if let Ok(stat) = stat(pid)
                && stat.session == self.pid
                && stat.start_time >= self.start_time
            {
                // SAFETY: kill has no memory-safety preconditions.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            }
        }
    }
}

/// A pidfd for process `pid`: it becomes readable when the process exits, whether
/// or not it is our child, and keeps naming that process even if the pid is reused.
pub fn pidfd_open(pid: u32, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes plain integers and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just gave us this fd and nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Sends `signal` to the process a pidfd names. Unlike `kill`, this can never reach
/// a later process that was given the same pid.
pub fn pidfd_send_signal(pidfd: &impl AsRawFd, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: the syscall takes a live fd, a signal number, a null siginfo and flags.
    let result = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if result < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_current_process_is_alive_and_a_wrong_start_time_is_not() {
        let me = ProcessIdentity::current().unwrap();
        assert!(me.is_alive());
        let impostor = ProcessIdentity {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!impostor.is_alive());
    }

    #[test]
    fn a_reaped_child_is_not_alive() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let identity = ProcessIdentity::of(child.id()).unwrap();
        child.wait().unwrap();
        assert!(!identity.is_alive());
    }
}
