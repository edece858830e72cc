//! codex-jobs-mcp: an MCP server on stdio whose tools drive a codex-jobs-server over
//! gRPC. It holds no job state of its own: an agent may restart it at any time and
//! every job carries on.

mod connect;
mod stdin;
mod tools;

use clap::Parser;
use rmcp::ServiceExt;

pub use connect::Target;
pub use tools::Bridge;

/// MCP bridge to codex-jobs-server: lets agents (Claude Code, Codex, any MCP client)
/// start, watch and cancel Codex jobs with tool calls, over stdio.
#[derive(Debug, Parser)]
#[command(name = "codex-jobs-mcp", version)]
pub struct Args {
    /// Which server, and how to reach it. With no endpoint, the bridge uses the local
    /// server's socket and starts codex-jobs-server itself if none is listening.
    #[command(flatten)]
    pub connect: codex_jobs_client::ConnectArgs,
}

/// Serves MCP on stdin/stdout until the client goes away. Logs go to stderr only:
/// stdout is the protocol.
pub async fn run(args: Args) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let target = Target::new(&args.connect);
    let bridge = Bridge::new(target);
    // Reach (or start) the server now, so the first tool call does not wait for it;
    // a failure here is reported by the tool calls that need the server.
    if let Err(err) = bridge.warm_up().await {
        tracing::warn!("{err}");
    }
    // MCP clients start the bridge with pipes: drive them without a thread hop per
    // message (it falls back to plain stdio otherwise).
    let (input, output) = rmcp::transport::stdio_pipes();
    let input = stdin::BoundedLines::new(input, stdin::MAX_REQUEST_BYTES);
    let service = bridge.serve((input, output)).await?;
    service.waiting().await?;
    Ok(())
}
