//! The errors of the job manager, in the product's terms. The gRPC layer maps each
//! to a status code in one place (`service::status`).

use crate::{job::JobId, store::StoreError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no job with id {0}")]
    NotFound(JobId),
    /// The request is malformed; the message says what is allowed.
    #[error("{0}")]
    InvalidArgument(String),
    /// The host's policy forbids the request.
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    ResourceExhausted(String),
    /// The job is not in a state that allows the request.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The job runs (or ran) on another host, which has its output and its runner:
    /// the caller asks that host instead.
    #[error("job {id} runs on host {host}")]
    RunsElsewhere { id: JobId, host: String },
    /// Something this host needs cannot be reached now (another host of the fleet).
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
