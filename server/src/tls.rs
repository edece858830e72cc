//! TLS on the server's TCP listeners, with rustls. The certificate, its key and the
//! CA for client certificates are read from PEM files, and read again whenever a
//! file in their directories changes: new connections get the new certificate
//! while open ones (and their streams) carry on.

use std::{
    io,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::Duration,
};

use anyhow::Context;
use rustls::{
    RootCertStore, ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::WebPkiClientVerifier,
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tokio_stream::wrappers::ReceiverStream;

/// How long a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the server's TLS material is.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Require client certificates signed by this CA (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

/// The TLS configuration new connections get; replaced when the files change.
pub struct Tls {
    files: TlsFiles,
    config: RwLock<Arc<ServerConfig>>,
}

impl Tls {
    /// Reads the files and starts watching them for changes.
    pub fn load(files: TlsFiles) -> anyhow::Result<Arc<Tls>> {
        let config = server_config(&files)?;
        let tls = Arc::new(Tls {
            files,
            config: RwLock::new(Arc::new(config)),
        });
        let mut files = vec![tls.files.cert.as_path(), tls.files.key.as_path()];
        files.extend(tls.files.client_ca.as_deref());
        crate::watch::on_change(&files, &tls, Tls::reload)?;
        Ok(tls)
    }

    fn current(&self) -> Arc<ServerConfig> {
        self.config
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Re-reads the files; on failure (a file half-written, say) the previous
    /// configuration stays, and the next change tries again.
    fn reload(&self) {
        match server_config(&self.files) {
            Ok(config) => {
                *self
                    .config
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(config);
                tracing::info!("reloaded the TLS certificate {}", self.files.cert.display());
            }
            Err(err) => tracing::warn!("kept the previous TLS certificate: {err:#}"),
        }
    }

    /// The TLS connections made to `listener`: each accepted connection's handshake
    /// runs on its own, so a slow or broken client holds up nobody else.
    pub fn incoming(
        self: Arc<Self>,
        listener: TcpListener,
    ) -> ReceiverStream<io::Result<TlsStream<TcpStream>>> {
        let (connections, incoming) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(err) => {
                            tracing::debug!("accept failed: {err}");
                            continue;
                        }
                    },
                    // The server has stopped serving this listener.
                    _ = connections.closed() => return,
                };
                let _ = stream.set_nodelay(true);
                let acceptor = TlsAcceptor::from(self.current());
                let connections = connections.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = connections.send(Ok(tls)).await;
                        }
                        Ok(Err(err)) => tracing::info!(%peer, "TLS handshake failed: {err}"),
                        Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        ReceiverStream::new(incoming)
    }
}

fn server_config(files: &TlsFiles) -> anyhow::Result<ServerConfig> {
    let read_certs = |path: &Path| -> anyhow::Result<Vec<CertificateDer<'static>>> {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|err| {
                anyhow::anyhow!("cannot read certificates from {}: {err}", path.display())
            })?;
        anyhow::ensure!(
            !certs.is_empty(),
            "{} holds no PEM certificate",
            path.display()
        );
        Ok(certs)
    };
    let chain = read_certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|err| {
        anyhow::anyhow!(
            "cannot read a private key from {}: {err}",
            files.key.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match &files.client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(ca)? {
                roots
                    .add(cert)
                    .with_context(|| format!("a certificate in {} is not a CA", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .context("cannot verify client certificates")?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).with_context(|| {
        format!(
            "{} does not fit {}",
            files.key.display(),
            files.cert.display()
        )
    })?;
    // gRPC is HTTP/2; clients such as grpcio insist on agreeing to it.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}
