//! `codex-jobs hosts`: the job hosts that share the server's job database.

use std::process::ExitCode;

use serde::Serialize;

use super::Output;
use crate::{Client, ClientError, pb};

/// A host, as `--json` prints it.
#[derive(Serialize)]
struct HostView {
    id: String,
    address: String,
    pools: Vec<String>,
    running: u32,
    max_running: u32,
    alive: bool,
    started_at: Option<String>,
    heartbeat_at: Option<String>,
}

pub async fn run(client: &mut Client, out: Output) -> Result<ExitCode, ClientError> {
    let hosts = client.list_hosts().await?;
    if out.json {
        let views: Vec<HostView> = hosts.iter().map(view).collect();
        out.print_json(&views);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<20}  {:<5}  {:>7}  {:<20}  {:<20}  ADDRESS",
        "HOST", "ALIVE", "RUNNING", "POOLS", "LAST HEARTBEAT"
    );
    for host in &hosts {
        let view = view(host);
        let heartbeat = view
            .heartbeat_at
            .as_deref()
            .and_then(|at| at.get(..19))
            .unwrap_or("");
        println!(
            "{:<20}  {:<5}  {:>7}  {:<20}  {:<20}  {}",
            host.id,
            if host.alive { "yes" } else { "no" },
            format!("{}/{}", host.running, host.max_running),
            host.pools.join(","),
            heartbeat,
            host.address,
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn view(host: &pb::Host) -> HostView {
    HostView {
        id: host.id.clone(),
        address: host.address.clone(),
        pools: host.pools.clone(),
        running: host.running,
        max_running: host.max_running,
        alive: host.alive,
        started_at: crate::json::time(host.started_at.as_ref()),
        heartbeat_at: crate::json::time(host.heartbeat_at.as_ref()),
    }
}
