//! Everything about a job's runner process: the on-disk record it shares with the
//! server, the process itself (`run`), and how the server starts and signals one.

pub mod process;
pub mod record;
pub mod run;
pub mod transcript;

use std::{io, path::PathBuf, process::Stdio, time::Duration};

use crate::job::{JobSpec, Sandbox};
use record::{JobDir, RunnerCommand};

/// Prompts longer than this reach Codex on stdin: one argv string may not exceed
/// 128 KiB on Linux.
const MAX_ARGV_PROMPT: usize = 64 * 1024;

/// How the server starts runners.
#[derive(Clone, Debug)]
pub struct RunnerConfig {
    /// The `codex-jobs-runner` executable.
    pub runner_bin: PathBuf,
    /// The `codex` executable.
    pub codex_bin: PathBuf,
    /// Between SIGTERM and SIGKILL on cancel and timeout.
    pub kill_grace: Duration,
    /// How long Codex may linger after `turn.completed`.
    pub exit_grace: Duration,
}

/// The `codex` arguments that run `spec` (Codex CLI 0.169), and whether the prompt
/// goes to stdin.
pub fn codex_args(spec: &JobSpec, dir: &JobDir) -> (Vec<String>, bool) {
    let mut args: Vec<String> = ["exec", "--json", "--skip-git-repo-check", "-o"]
        .map(String::from)
        .into();
    args.push(dir.last_message().display().to_string());
    args.push("-C".into());
    args.push(spec.cwd.display().to_string());
    if !spec.model.is_empty() {
        args.extend(["-m".into(), spec.model.clone()]);
    }
    match spec.sandbox {
        Sandbox::Bypass => args.push("--dangerously-bypass-approvals-and-sandbox".into()),
        level => args.extend(["-s".into(), level.name().into()]),
    }
    if !spec.resume_thread_id.is_empty() {
        args.extend(["resume".into(), spec.resume_thread_id.clone()]);
    }
    // A prompt that looks like a flag would be taken for one.
    let on_stdin = spec.prompt.len() > MAX_ARGV_PROMPT || spec.prompt.starts_with('-');
    args.push(if on_stdin {
        "-".into()
    } else {
        spec.prompt.clone()
    });
    (args, on_stdin)
}

/// Writes the job's `command.json` and starts its runner in a session of its own,
/// so that it outlives the server. The runner starts with the cancel signals
/// blocked: one sent before it is ready waits instead of killing it.
pub fn start(
    config: &RunnerConfig,
    dir: &JobDir,
    spec: &JobSpec,
    timeout: Duration,
) -> io::Result<tokio::process::Child> {
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
    };
    record::write_atomically(
        dir.path(),
        "command.json",
        &serde_json::to_vec_pretty(&command)?,
        false,
    )?;
    let log = std::fs::File::create(dir.runner_log())?;
    let mut runner = tokio::process::Command::new(&config.runner_bin);
    runner
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(false);
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
    runner.spawn()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(prompt: &str) -> JobSpec {
        JobSpec {
            prompt: prompt.into(),
            cwd: "/work".into(),
            model: String::new(),
            sandbox: Sandbox::ReadOnly,
            timeout: None,
            labels: Default::default(),
            resume_thread_id: String::new(),
        }
    }

    #[test]
    fn arguments_follow_the_codex_cli() {
        let dir = JobDir::new("/state/jobs/x");
        let (args, stdin) = codex_args(&spec("fix it"), &dir);
        assert_eq!(
            args.join(" "),
            "exec --json --skip-git-repo-check -o /state/jobs/x/last_message -C /work -s read-only fix it"
        );
        assert!(!stdin);

        let mut resumed = spec("-rf");
        resumed.sandbox = Sandbox::Bypass;
        resumed.model = "o3".into();
        resumed.resume_thread_id = "0199a213-81c0-7800-8aa1-bbab2a035a53".into();
        let (args, stdin) = codex_args(&resumed, &dir);
        assert!(args.join(" ").ends_with(
            "-m o3 --dangerously-bypass-approvals-and-sandbox resume 0199a213-81c0-7800-8aa1-bbab2a035a53 -"
        ));
        assert!(stdin, "a prompt that looks like a flag goes to stdin");
    }
}
