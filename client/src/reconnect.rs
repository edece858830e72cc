//! Resuming streams (Follow, Watch) after the connection or the server went away.

use crate::ClientError;

/// Resuming a stream that broke: a pause between tries, and a limit on how long to
/// try without getting anywhere.
#[derive(Default)]
pub struct Reconnect {
    broken_since: Option<tokio::time::Instant>,
}

impl Reconnect {
    /// How long to keep trying to reconnect after the stream broke.
    pub const FOR: std::time::Duration = std::time::Duration::from_secs(30);

    /// The stream brought something: it works again.
    pub fn progress(&mut self) {
        self.broken_since = None;
    }

    /// The stream broke with `status`: `Ok` if a reconnect may cure it (the server
    /// or the connection went away), else the error.
    pub fn broke(&mut self, status: tonic::Status) -> Result<(), ClientError> {
        if !matches!(
            status.code(),
            tonic::Code::Unavailable | tonic::Code::Unknown
        ) {
            return Err(status.into());
        }
        self.broken_since
            .get_or_insert_with(tokio::time::Instant::now);
        Ok(())
    }

    /// Waits before the next try, or gives up once the stream has been broken for
    /// too long.
    pub async fn pause(&self) -> Result<(), ClientError> {
        if let Some(since) = self.broken_since {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            if since.elapsed() > Self::FOR {
                return Err(ClientError::StreamLost(format!(
                    "lost the stream and could not resume it for {} s",
                    Self::FOR.as_secs()
                )));
            }
        }
        Ok(())
    }
}
