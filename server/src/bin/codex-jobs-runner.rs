//! `codex-jobs-runner <job dir>`: the per-job runner the server starts. Not for
//! people to run; see `codex_jobs_server::runner::run`.

use std::process::ExitCode;

use codex_jobs_server::runner::{record::JobDir, run};

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: codex-jobs-runner <job dir>");
        return ExitCode::from(2);
    };
    match run::run(&JobDir::new(dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("codex-jobs-runner: {err}");
            ExitCode::FAILURE
        }
    }
}
