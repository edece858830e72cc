//! Jobs that run on another host of the fleet: their output, their runner and
//! their worktree are there, so Poll, Follow, Cancel, Delete, Diff and Apply of them
//! go to that host's service, at the address it advertises, with this host's fleet
//! credentials. What that host answers (errors included) goes back to the caller as
//! it came.

use std::{collections::HashMap, sync::Arc};

use codex_jobs_api::v1 as pb;
use codex_jobs_client::{Client, ClientError, Credentials};
use tonic::Status;

use crate::manager::JobManager;

pub struct Fleet {
    manager: Arc<JobManager>,
    credentials: Credentials,
    /// One connection per host address, made on first use.
    clients: tokio::sync::Mutex<HashMap<String, Client>>,
}

impl Fleet {
    pub fn new(manager: Arc<JobManager>, credentials: Credentials) -> Fleet {
        Fleet {
            manager,
            credentials,
            clients: tokio::sync::Mutex::default(),
        }
    }

    /// A client of host `host`'s service.
    async fn client(&self, host: &str) -> Result<Client, Status> {
        let address = self.manager.host_address(host).await?;
        if let Some(client) = self.clients.lock().await.get(&address) {
            return Ok(client.clone());
        }
        // Not under the lock: a host that does not answer holds up no other.
        let client = Client::connect_with(&address, &self.credentials)
            .await
            .map_err(|err| unreachable(host, &err))?;
        self.clients.lock().await.insert(address, client.clone());
        Ok(client)
    }

    pub async fn poll(
        &self,
        host: &str,
        request: pb::PollRequest,
    ) -> Result<pb::PollResponse, Status> {
        let mut client = self.client(host).await?;
        client
            .poll(request)
            .await
            .map_err(|err| unreachable(host, &err))
    }

    pub async fn follow(
        &self,
        host: &str,
        request: pb::FollowRequest,
    ) -> Result<tonic::Streaming<pb::FollowResponse>, Status> {
        let mut client = self.client(host).await?;
        client
            .follow(request)
            .await
            .map_err(|err| unreachable(host, &err))
    }

    pub async fn cancel(&self, host: &str, job_id: &str) -> Result<pb::Job, Status> {
        let mut client = self.client(host).await?;
        client
            .cancel(job_id)
            .await
            .map_err(|err| unreachable(host, &err))
    }

    pub async fn diff(
        &self,
        host: &str,
        request: pb::DiffRequest,
    ) -> Result<pb::DiffResponse, Status> {
        let mut client = self.client(host).await?;
        client
            .diff(request)
            .await
            .map_err(|err| unreachable(host, &err))
    }

    pub async fn apply(&self, host: &str, job_id: &str) -> Result<pb::ApplyResponse, Status> {
        let mut client = self.client(host).await?;
        client
            .apply(job_id)
            .await
            .map_err(|err| unreachable(host, &err))
    }

    pub async fn delete(&self, host: &str, job_id: &str) -> Result<pb::Job, Status> {
        let mut client = self.client(host).await?;
        client
            .delete(job_id)
            .await
            .map_err(|err| unreachable(host, &err))
    }
}

/// The other host's answer as it came, or UNAVAILABLE naming the host it could
/// not reach.
fn unreachable(host: &str, err: &ClientError) -> Status {
    match err {
        ClientError::Status(status) if status.code() != tonic::Code::Unavailable => status.clone(),
        _ => Status::unavailable(format!(
            "host {host}, which runs the job, cannot be reached: {err}"
        )),
    }
}
