//! The `codex.jobs.v1` gRPC contract, generated from `proto/` at build time.
//!
//! Servers implement [`v1::codex_jobs_server::CodexJobs`]; Rust programs talk to one
//! through [`v1::codex_jobs_client::CodexJobsClient`] (or the friendlier
//! `codex-jobs-client` crate).

/// Messages and service stubs of package `codex.jobs.v1`.
#[allow(clippy::large_enum_variant)] // generated code
pub mod v1 {
    tonic::include_proto!("codex.jobs.v1");
}

/// The encoded `FileDescriptorSet` of every proto file, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/codex_jobs_descriptor.bin"));

/// Where a server keeps its state and listens when nobody says otherwise, so that the
/// server, the CLI and the MCP bridge find each other with no configuration.
pub mod defaults {
    use std::path::PathBuf;

    /// `$XDG_DATA_HOME/codex-jobs`, else `$HOME/.local/share/codex-jobs`, else
    /// `./codex-jobs-state`.
    pub fn state_dir() -> PathBuf {
        let data_home = std::env::var_os("XDG_DATA_HOME")
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|home| !home.is_empty())
                    .map(|home| PathBuf::from(home).join(".local/share"))
            });
        match data_home {
            Some(dir) => dir.join("codex-jobs"),
            None => PathBuf::from("codex-jobs-state"),
        }
    }

    /// The Unix socket a server with the default state dir listens on.
    pub fn socket_path() -> PathBuf {
        state_dir().join("codex-jobs.sock")
    }

    /// The default endpoint, as a client spells it: `unix:<socket_path()>`.
    pub fn endpoint() -> String {
        format!("unix:{}", socket_path().display())
    }
}
