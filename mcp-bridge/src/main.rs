use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match codex_jobs_mcp::run(codex_jobs_mcp::Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("codex-jobs-mcp: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
