#[tokio::main]
async fn main() -> std::process::ExitCode {
    codex_jobs_client::cli::main().await
}
