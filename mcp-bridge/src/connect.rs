//! Reaching the server: the endpoint the bridge was given, or the default local one,
//! where the bridge starts a server itself if none is listening.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use codex_jobs_client::{Client, ClientError, ConnectArgs, Credentials};

/// Where the bridge's server is and how to reach it.
#[derive(Clone, Debug)]
pub struct Target {
    pub endpoint: String,
    pub credentials: Credentials,
    /// True for the default local endpoint: the bridge may start the server there.
    pub may_autostart: bool,
}

impl Target {
    pub fn new(args: &ConnectArgs) -> Target {
        Target {
            may_autostart: args.endpoint.is_none(),
            endpoint: args
                .endpoint
                .clone()
                .unwrap_or_else(codex_jobs_client::default_endpoint),
            credentials: args.credentials(),
        }
    }

    /// Connects, first starting a server at the default local endpoint if none is
    /// listening there (and only there).
    pub async fn connect(&self) -> Result<Client, ClientError> {
        match Client::connect_with(&self.endpoint, &self.credentials).await {
            Err(ClientError::Unreachable { .. }) if self.may_autostart => {
                let unreachable = |reason: String| ClientError::Unreachable {
                    endpoint: self.endpoint.clone(),
                    reason,
                };
                let mut server = start_server().map_err(|reason| {
                    unreachable(format!(
                        "no server was listening and starting one failed: {reason}"
                    ))
                })?;
                let connected = self.connect_while_running(&mut server).await;
                // Reap it if it ever exits while the bridge runs.
                std::thread::spawn(move || server.wait());
                connected.map_err(unreachable)
            }
            result => result,
        }
    }

    /// Retries for a while after starting a server, giving up at once if it exits.
    async fn connect_while_running(&self, server: &mut Child) -> Result<Client, String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match Client::connect_with(&self.endpoint, &self.credentials).await {
                Ok(client) => return Ok(client),
                Err(err) => {
                    if let Ok(Some(status)) = server.try_wait() {
                        let log = codex_jobs_client::default_state_dir().join("server.log");
                        return Err(format!(
                            "the codex-jobs-server the bridge started exited ({status}); see {}",
                            log.display()
                        ));
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Err(format!(
                            "the codex-jobs-server the bridge started does not answer: {err}"
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// `codex-jobs-server`: next to this executable, else on the PATH.
fn server_bin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name("codex-jobs-server"))
        .filter(|bin| bin.is_file())
        .unwrap_or_else(|| PathBuf::from("codex-jobs-server"))
}

/// Starts the default server as a detached background process: in a session of its
/// own, so it outlives the bridge and the agent that started the bridge. Its log
/// goes to `server.log` in the default state dir; stdout is the MCP protocol and
/// must stay clean.
fn start_server() -> Result<Child, String> {
    use std::os::unix::process::CommandExt;
    let state_dir = codex_jobs_client::default_state_dir();
    std::fs::create_dir_all(&state_dir).map_err(|err| format!("{}: {err}", state_dir.display()))?;
    let log = open_log(&state_dir.join("server.log"))?;
    let bin = server_bin();
    let mut server = Command::new(&bin);
    server
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|err| err.to_string())?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        server.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    };
    let child = server
        .spawn()
        .map_err(|err| format!("{}: {err}", bin.display()))?;
    tracing::info!(pid = child.id(), "started {}", bin.display());
    Ok(child)
}

fn open_log(path: &Path) -> Result<std::fs::File, String> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|err| format!("{}: {err}", path.display()))
}
