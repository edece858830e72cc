//! Reaching a server: endpoints, TLS and the credentials a client presents, and the
//! command-line flags for them that the CLI and the MCP bridge share.

use std::{path::PathBuf, time::Duration};

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Uri};

use crate::{ClientError, source_chain};

/// What a client presents to a server, beyond the endpoint.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    /// Sent as `authorization: Bearer <token>`.
    pub token: Option<String>,
    /// PEM file of the CA that signed the server's certificate (`https://` only);
    /// without it, the system's root certificates are trusted.
    pub ca_cert: Option<PathBuf>,
    /// PEM files of a client certificate and its key, for servers that require one
    /// (mutual TLS).
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

/// The flags that say which server to reach and how, as the CLI and the MCP bridge
/// take them.
#[derive(Clone, Debug, clap::Args)]
pub struct ConnectArgs {
    /// The server: http://HOST:PORT, https://HOST:PORT or unix:PATH [default: the
    /// local server's socket]
    #[arg(long, global = true, env = "CODEX_JOBS_ENDPOINT")]
    pub endpoint: Option<String>,

    /// Bearer token for servers that require one.
    #[arg(long, global = true, env = "CODEX_JOBS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// PEM file of the CA to trust for an https:// endpoint [default: the system's
    /// root certificates]
    #[arg(long, global = true, env = "CODEX_JOBS_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,

    /// PEM file of a client certificate, for servers that require one (mutual TLS);
    /// needs --client-key.
    #[arg(
        long,
        global = true,
        env = "CODEX_JOBS_CLIENT_CERT",
        value_name = "FILE"
    )]
    pub client_cert: Option<PathBuf>,

    /// PEM file of the client certificate's private key.
    #[arg(
        long,
        global = true,
        env = "CODEX_JOBS_CLIENT_KEY",
        value_name = "FILE"
    )]
    pub client_key: Option<PathBuf>,
}

impl ConnectArgs {
    pub fn credentials(&self) -> Credentials {
        Credentials {
            token: self.token.clone(),
            ca_cert: self.ca_cert.clone(),
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
        }
    }
}

/// A connected channel to `endpoint`.
pub(crate) async fn channel(
    endpoint: &str,
    credentials: &Credentials,
) -> Result<Channel, ClientError> {
    let unreachable = |err: tonic::transport::Error| ClientError::Unreachable {
        endpoint: endpoint.to_string(),
        reason: source_chain(&err),
    };
    let tls = endpoint.starts_with("https://");
    if !tls
        && (credentials.ca_cert.is_some()
            || credentials.client_cert.is_some()
            || credentials.client_key.is_some())
    {
        return Err(ClientError::BadTls(format!(
            "--ca-cert, --client-cert and --client-key need an https:// endpoint, not {endpoint}"
        )));
    }
    if let Some(path) = endpoint.strip_prefix("unix:") {
        let path = PathBuf::from(path);
        // The URI is required but unused: the connector below picks the socket.
        return Endpoint::from_static("http://localhost")
            .connect_timeout(Duration::from_secs(5))
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(path).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                }
            }))
            .await
            .map_err(unreachable);
    }
    if !tls && !endpoint.starts_with("http://") {
        return Err(ClientError::BadEndpoint(endpoint.to_string()));
    }
    let mut channel = Endpoint::from_shared(endpoint.to_string())
        .map_err(|_| ClientError::BadEndpoint(endpoint.to_string()))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        // A follower behind a dead network path learns of it within a minute.
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20))
        .keep_alive_while_idle(true);
    if tls {
        channel = channel
            .tls_config(tls_config(credentials)?)
            .map_err(|err| ClientError::BadTls(source_chain(&err)))?;
    }
    channel.connect().await.map_err(unreachable)
}

fn tls_config(credentials: &Credentials) -> Result<ClientTlsConfig, ClientError> {
    let read = |flag: &str, path: &PathBuf| {
        std::fs::read(path).map_err(|err| {
            ClientError::BadTls(format!("cannot read {flag} {}: {err}", path.display()))
        })
    };
    let mut config = ClientTlsConfig::new();
    config = match &credentials.ca_cert {
        Some(path) => config.ca_certificate(Certificate::from_pem(read("--ca-cert", path)?)),
        None => config.with_native_roots(),
    };
    match (&credentials.client_cert, &credentials.client_key) {
        (Some(cert), Some(key)) => {
            let identity =
                Identity::from_pem(read("--client-cert", cert)?, read("--client-key", key)?);
            config = config.identity(identity);
        }
        (None, None) => {}
        _ => {
            return Err(ClientError::BadTls(
                "--client-cert and --client-key go together: give both or neither".into(),
            ));
        }
    }
    Ok(config)
}
