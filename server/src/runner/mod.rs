//! Everything about a job's runner process: the on-disk record it shares with the
//! server (`record`), the process itself (`run`), and the one handle through which
//! the server starts, adopts, waits for and cancels runners (`Runner`). Nothing
//! outside this module touches a process.

mod handle;
mod logs;
pub mod process;
pub mod record;
pub mod run;
pub mod transcript;

use std::{path::PathBuf, time::Duration};

pub use handle::{RunEnd, Runner, collect};

use crate::job::{JobSpec, Sandbox};
use record::JobDir;

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
    /// The most output (all three logs) kept of one job.
    pub max_output_bytes: u64,
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
    if let Some(effort) = spec.reasoning_effort {
        args.extend([
            "-c".into(),
            format!("model_reasoning_effort={}", effort.name()),
        ]);
    }
    // Exec flags go before `resume`, which takes none of its own.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::ReasoningEffort;

    fn spec(prompt: &str) -> JobSpec {
        JobSpec {
            prompt: prompt.into(),
            cwd: "/work".into(),
            model: String::new(),
            sandbox: Sandbox::ReadOnly,
            timeout: None,
            labels: Default::default(),
            resume_thread_id: String::new(),
            reasoning_effort: None,
            pool: crate::job::DEFAULT_POOL.into(),
            host: String::new(),
            isolation: crate::job::Isolation::None,
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
        resumed.reasoning_effort = Some(ReasoningEffort::High);
        let (args, stdin) = codex_args(&resumed, &dir);
        assert!(args.join(" ").ends_with(
            "-m o3 --dangerously-bypass-approvals-and-sandbox -c model_reasoning_effort=high \
             resume 0199a213-81c0-7800-8aa1-bbab2a035a53 -"
        ));
        assert!(stdin, "a prompt that looks like a flag goes to stdin");
    }
}
