//! Bearer-token authentication, checked on every RPC.

use tonic::{Request, Status, service::Interceptor};

/// Accepts requests whose `authorization` header is `Bearer <token>`; with no token
/// configured, accepts all.
#[derive(Clone)]
pub struct TokenCheck {
    token: Option<String>,
}

impl TokenCheck {
    pub fn new(token: Option<String>) -> Self {
        TokenCheck { token }
    }
}

impl Interceptor for TokenCheck {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(token) = &self.token else {
            return Ok(request);
        };
        let presented = request
            .metadata()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or("");
        if constant_time_eq(presented.as_bytes(), token.as_bytes()) {
            Ok(request)
        } else {
            Err(Status::unauthenticated(
                "missing or wrong token: send `authorization: Bearer <token>` (codex-jobs --token or CODEX_JOBS_TOKEN)",
            ))
        }
    }
}

/// Compares in time that depends only on the lengths, never on where the bytes differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_right_token_passes() {
        let mut check = TokenCheck::new(Some("s3cret".into()));
        let with = |header: &str| {
            let mut request = Request::new(());
            request
                .metadata_mut()
                .insert("authorization", header.parse().unwrap());
            request
        };
        assert!(check.call(with("Bearer s3cret")).is_ok());
        assert!(check.call(with("Bearer s3cre")).is_err());
        assert!(check.call(with("s3cret")).is_err());
        assert!(check.call(Request::new(())).is_err());
        assert!(TokenCheck::new(None).call(Request::new(())).is_ok());
    }
}
