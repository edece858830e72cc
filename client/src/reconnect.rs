//! Resuming streams (Follow, Watch) after the connection or the server went away.

use crate::{Client, ClientError, pb};

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

/// A Watch that resumes at its last position after a dropped connection or a
/// server restart (see `Client::watching`).
pub struct Watching {
    client: Client,
    request: pb::WatchRequest,
    changes: Option<tonic::Streaming<pb::WatchResponse>>,
    reconnect: Reconnect,
}

impl Watching {
    pub(crate) fn new(client: Client, request: pb::WatchRequest) -> Watching {
        Watching {
            client,
            request,
            changes: None,
            reconnect: Reconnect::default(),
        }
    }

    /// The next message, reconnecting as often as it takes; an error once the
    /// stream cannot be resumed (see `Reconnect`) or the server refuses it.
    pub async fn next(&mut self) -> Result<pb::WatchResponse, ClientError> {
        loop {
            let changes = match &mut self.changes {
                Some(changes) => changes,
                None => {
                    self.reconnect.pause().await?;
                    match self.client.watch(self.request.clone()).await {
                        Ok(changes) => self.changes.insert(changes),
                        Err(ClientError::Status(status)) => {
                            self.reconnect.broke(status)?;
                            continue;
                        }
                        Err(err) => return Err(err),
                    }
                }
            };
            let broke = match changes.message().await {
                Ok(Some(change)) => {
                    self.request.since_position = change.position;
                    self.reconnect.progress();
                    return Ok(change);
                }
                // The server is going away: reconnect as after a break.
                Ok(None) => tonic::Status::unavailable("the watch ended"),
                Err(status) => status,
            };
            self.changes = None;
            self.reconnect.broke(broke)?;
        }
    }
}
