//! Who is calling, and what they may do: bearer tokens with a name and a scope,
//! client certificates, and for everything else the transport itself.
//!
//! A tokens file (`--tokens-file`) holds one token per line, stored hashed:
//!
//! ```text
//! # name   scope  sha256 of the secret
//! ci       read   sha256:5e8848...
//! alice    write  sha256:2bb80d...
//! ```
//!
//! Secrets are 256 random bits (`codex-jobs-server token new NAME`), so one SHA-256
//! is as good as a slow password hash here. The file is read again when it
//! changes; a line that cannot be read is reported and skipped.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use ring::digest::{SHA256, digest};
use tonic::{
    Request, Status,
    service::Interceptor,
    transport::server::{TcpConnectInfo, TlsConnectInfo, UdsConnectInfo},
};

/// What a caller may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Poll, List, Follow.
    Read,
    /// Everything: Start and Cancel too.
    Write,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
        }
    }

    pub fn from_name(name: &str) -> Option<Scope> {
        [Scope::Read, Scope::Write]
            .into_iter()
            .find(|scope| scope.name() == name)
    }
}

/// The caller of one request, as the interceptor found it.
#[derive(Clone, Debug, PartialEq)]
pub struct Caller {
    /// Who: `token NAME`, `certificate CN`, `uid N` on the Unix socket, or
    /// `anonymous`.
    pub name: String,
    pub scope: Scope,
    /// Where the call came from, for the audit log.
    pub peer: String,
}

/// Checks that a caller may make a call that needs `scope`.
pub fn require(request: &Request<impl Sized>, scope: Scope) -> Result<Caller, Status> {
    let caller = request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::internal("the request was not authenticated"))?;
    if caller.scope < scope {
        return Err(Status::permission_denied(format!(
            "this call needs a token with scope {}; {} has scope {}",
            scope.name(),
            caller.name,
            caller.scope.name()
        )));
    }
    Ok(caller)
}

/// One token of a tokens file.
#[derive(Clone, Debug, PartialEq)]
struct Token {
    name: String,
    scope: Scope,
    hash: [u8; 32],
}

/// The tokens the server accepts: `--token`, and those of `--tokens-file`, read
/// again when it changes.
pub struct Tokens {
    single: Option<Token>,
    file: Option<PathBuf>,
    listed: RwLock<Vec<Token>>,
}

impl Tokens {
    /// `single` is `--token` (a write token named `token`).
    pub fn load(single: Option<&str>, file: Option<&Path>) -> anyhow::Result<Arc<Tokens>> {
        let listed = match file {
            Some(file) => read_tokens_file(file)?,
            None => Vec::new(),
        };
        let tokens = Arc::new(Tokens {
            single: single.map(|secret| Token {
                name: "token".into(),
                scope: Scope::Write,
                hash: sha256(secret.as_bytes()),
            }),
            file: file.map(Path::to_path_buf),
            listed: RwLock::new(listed),
        });
        if let Some(file) = &tokens.file {
            crate::watch::on_change(&[file], &tokens, Tokens::reload)?;
        }
        Ok(tokens)
    }

    /// True when calls need a token (or a client certificate).
    pub fn required(&self) -> bool {
        self.single.is_some() || self.file.is_some()
    }

    fn reload(&self) {
        let Some(file) = &self.file else { return };
        match read_tokens_file(file) {
            Ok(listed) => {
                tracing::info!("read {} tokens from {}", listed.len(), file.display());
                *self
                    .listed
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = listed;
            }
            Err(err) => tracing::warn!("kept the previous tokens: {err:#}"),
        }
    }

    /// The token whose secret is `secret`. Every token is compared, in constant
    /// time, so the time taken tells nothing of which one came close.
    fn find(&self, secret: &str) -> Option<Token> {
        let hash = sha256(secret.as_bytes());
        let listed = self
            .listed
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut found = None;
        for token in self.single.iter().chain(listed.iter()) {
            if constant_time_eq(&token.hash, &hash) && found.is_none() {
                found = Some(token.clone());
            }
        }
        found
    }
}

/// Reads a tokens file; errors name the line.
fn read_tokens_file(path: &Path) -> anyhow::Result<Vec<Token>> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| anyhow::anyhow!("cannot read the tokens file {}: {err}", path.display()))?;
    let mut tokens = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match parse_token_line(line) {
            Ok(token) => tokens.push(token),
            Err(why) => anyhow::bail!("{}:{}: {why}", path.display(), number + 1),
        }
    }
    Ok(tokens)
}

fn parse_token_line(line: &str) -> Result<Token, String> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [name, scope, hash] = fields[..] else {
        return Err("expected `NAME SCOPE sha256:HEX`".into());
    };
    let scope = Scope::from_name(scope)
        .ok_or_else(|| format!("scope must be read or write, got {scope:?}"))?;
    let hash = hash
        .strip_prefix("sha256:")
        .and_then(from_hex)
        .ok_or("the hash must be sha256: and 64 hex digits")?;
    Ok(Token {
        name: name.into(),
        scope,
        hash,
    })
}

/// A new token: its secret, and the line of the tokens file that accepts it.
pub fn new_token(name: &str, scope: Scope) -> anyhow::Result<(String, String)> {
    anyhow::ensure!(
        !name.is_empty() && !name.contains(char::is_whitespace),
        "a token's name is one word, got {name:?}"
    );
    let mut random = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random)
        .map_err(|_| anyhow::anyhow!("the system's random number generator failed"))?;
    let secret = format!("cjt_{}", to_hex(&random));
    let line = format!(
        "{name} {} sha256:{}",
        scope.name(),
        to_hex(&sha256(secret.as_bytes()))
    );
    Ok((secret, line))
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    digest(&SHA256, bytes)
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn from_hex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(bytes)
}

/// Compares in time that depends only on the lengths, never on where the bytes differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// Finds the caller of every request and refuses those without the token or
/// certificate the server requires. Health checks do not pass through it.
#[derive(Clone)]
pub struct Authenticate {
    tokens: Arc<Tokens>,
}

impl Authenticate {
    pub fn new(tokens: Arc<Tokens>) -> Self {
        Authenticate { tokens }
    }
}

impl Interceptor for Authenticate {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let peer = peer(&request);
        let presented = request
            .metadata()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        let certificate = client_certificate(&request);
        let caller = match (presented, certificate) {
            (Some(secret), _) => match self.tokens.find(secret) {
                Some(token) => Caller {
                    name: format!("token {}", token.name),
                    scope: token.scope,
                    peer,
                },
                None => return Err(unauthenticated()),
            },
            // The TLS layer verified it against --tls-client-ca.
            (None, Some(subject)) => Caller {
                name: format!("certificate {subject}"),
                scope: Scope::Write,
                peer,
            },
            (None, None) if self.tokens.required() => return Err(unauthenticated()),
            (None, None) => Caller {
                name: local_name(&request),
                scope: Scope::Write,
                peer,
            },
        };
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}

fn unauthenticated() -> Status {
    Status::unauthenticated(
        "missing or wrong token: send `authorization: Bearer <token>` (codex-jobs --token or CODEX_JOBS_TOKEN)",
    )
}

/// Where a request came from: an address, or the Unix socket.
fn peer(request: &Request<()>) -> String {
    let extensions = request.extensions();
    let tcp = extensions
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| {
            extensions
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|info| info.get_ref().remote_addr())
        });
    match tcp {
        Some(SocketAddr::V4(addr)) => addr.to_string(),
        Some(SocketAddr::V6(addr)) => addr.to_string(),
        None if extensions.get::<UdsConnectInfo>().is_some() => "unix socket".into(),
        None => "unknown".into(),
    }
}

/// Who calls without a token on a server that needs none: on the Unix socket the
/// kernel says which user.
fn local_name(request: &Request<()>) -> String {
    request
        .extensions()
        .get::<UdsConnectInfo>()
        .and_then(|info| info.peer_cred)
        .map_or_else(|| "anonymous".into(), |cred| format!("uid {}", cred.uid()))
}

/// The subject of the client's certificate, when it presented one.
fn client_certificate(request: &Request<()>) -> Option<String> {
    let certs = request.peer_certs()?;
    let leaf = certs.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let subject = cert.subject();
    let common_name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok());
    Some(match common_name {
        Some(cn) => cn.to_string(),
        None => subject.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_token(secret: &str) -> Request<()> {
        let mut request = Request::new(());
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {secret}").parse().unwrap());
        request
    }

    #[test]
    fn tokens_are_found_by_their_secret_with_their_name_and_scope() {
        let (reader_secret, reader_line) = new_token("ci", Scope::Read).unwrap();
        let (writer_secret, writer_line) = new_token("alice", Scope::Write).unwrap();
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            file.path(),
            format!("# tokens\n{reader_line}\n\n{writer_line}\n"),
        )
        .unwrap();
        let listed = read_tokens_file(file.path()).unwrap();
        let tokens = Tokens {
            single: None,
            file: Some(file.path().into()),
            listed: RwLock::new(listed),
        };
        let mut check = Authenticate::new(Arc::new(tokens));
        let caller = |request: Request<()>| request.extensions().get::<Caller>().cloned().unwrap();
        let reader = caller(check.call(with_token(&reader_secret)).unwrap());
        assert_eq!(
            (reader.name.as_str(), reader.scope),
            ("token ci", Scope::Read)
        );
        let writer = caller(check.call(with_token(&writer_secret)).unwrap());
        assert_eq!(
            (writer.name.as_str(), writer.scope),
            ("token alice", Scope::Write)
        );
        assert!(check.call(with_token("cjt_nope")).is_err());
        assert!(check.call(Request::new(())).is_err(), "a token is required");
        // The secret is not in the file, only its hash.
        let text = std::fs::read_to_string(file.path()).unwrap();
        assert!(!text.contains(&writer_secret));
    }

    #[test]
    fn a_read_token_cannot_write() {
        let mut request = Request::new(());
        request.extensions_mut().insert(Caller {
            name: "token ci".into(),
            scope: Scope::Read,
            peer: "127.0.0.1:1".into(),
        });
        assert!(require(&request, Scope::Read).is_ok());
        let denied = require(&request, Scope::Write).unwrap_err();
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
        assert_eq!(
            denied.message(),
            "this call needs a token with scope write; token ci has scope read"
        );
    }

    #[test]
    fn bad_lines_are_refused_with_their_number() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "ok read sha256:00\n").unwrap();
        let err = read_tokens_file(file.path()).unwrap_err().to_string();
        assert!(
            err.ends_with(":1: the hash must be sha256: and 64 hex digits"),
            "{err}"
        );
        std::fs::write(file.path(), format!("x admin sha256:{}\n", "0".repeat(64))).unwrap();
        let err = read_tokens_file(file.path()).unwrap_err().to_string();
        assert!(err.contains("scope must be read or write"), "{err}");
    }

    #[test]
    fn without_tokens_everyone_local_may_write() {
        let tokens = Tokens::load(None, None).unwrap();
        let mut check = Authenticate::new(tokens);
        let request = check.call(Request::new(())).unwrap();
        let caller = request.extensions().get::<Caller>().unwrap();
        assert_eq!(
            (caller.name.as_str(), caller.scope),
            ("anonymous", Scope::Write)
        );
    }
}
