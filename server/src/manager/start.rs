//! Start: check a job against the host's policy, and queue it in the store, where
//! this host or another that shares the store takes it.

use std::{sync::Arc, time::Duration};

use super::JobManager;
use crate::{
    error::{Error, Result},
    job::{Job, JobSpec, now_millis},
    store::Inserted,
};

/// How long a request id keeps returning the job it created.
pub const REQUEST_ID_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

impl JobManager {
    /// Stores and queues a job, and starts it if a run slot of this host is free. Returns the job
    /// and whether it was created: a `request_id` seen within the retention window
    /// returns the job it created instead. `created_by` names the caller.
    pub async fn start(
        self: &Arc<Self>,
        spec: JobSpec,
        request_id: Option<String>,
        created_by: String,
    ) -> Result<(Job, bool)> {
        self.blocking(move |manager| manager.start_blocking(spec, request_id, created_by))
            .await
    }

    fn start_blocking(
        self: &Arc<Self>,
        spec: JobSpec,
        request_id: Option<String>,
        created_by: String,
    ) -> Result<(Job, bool)> {
        let retention_start = now_millis() - REQUEST_ID_RETENTION.as_millis() as i64;
        // A retry gets its job back whatever has changed since (a full queue, say).
        if let Some(request_id) = &request_id
            && let Some(existing) = self.store.find_request(request_id, retention_start)?
        {
            return Ok((self.job(existing.id)?, false));
        }
        // Checked here when only this host may take the job; else by the host that
        // takes it (a cwd exists on some hosts only, each has a policy of its own).
        let spec = if self.only_here(&spec)? {
            self.check_policy(spec)?
        } else {
            spec
        };
        let job = Job::queued(spec, request_id, created_by);
        let id = job.id;
        match self
            .store
            .insert(&job, retention_start, self.config.max_queued)?
        {
            Inserted::New(_) => {}
            // A concurrent Start with the same request id came first.
            Inserted::Existing(existing) => return Ok((self.job(existing.id)?, false)),
            Inserted::QueueFull(waiting) => {
                return Err(Error::ResourceExhausted(format!(
                    "the queue is full ({waiting} jobs waiting); try again when jobs have finished"
                )));
            }
        }
        tracing::info!(job = %id, "job queued");
        self.dispatch();
        Ok((self.job(id)?, true))
    }

    /// The host's rules: where jobs may run and how much they may do. Returns the
    /// spec to run: with allowed roots, its cwd resolved, so that what was checked
    /// is what runs even if a symlink on the way changes later.
    pub(super) fn check_policy(&self, mut spec: JobSpec) -> Result<JobSpec> {
        if !spec.cwd.is_dir() {
            return Err(Error::InvalidArgument(format!(
                "cwd {} is not an existing directory",
                spec.cwd.display()
            )));
        }
        let roots = &self.config.allowed_cwd_roots;
        if !roots.is_empty() {
            let real = spec.cwd.canonicalize()?;
            if !roots.iter().any(|root| real.starts_with(root)) {
                return Err(Error::PermissionDenied(format!(
                    "cwd {} is outside the directories this host allows: {}",
                    spec.cwd.display(),
                    roots
                        .iter()
                        .map(|root| root.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            spec.cwd = real;
        }
        let max = self.config.max_sandbox;
        if spec.sandbox > max {
            return Err(Error::PermissionDenied(format!(
                "sandbox {} is above the highest level this host allows ({})",
                spec.sandbox.name(),
                max.name()
            )));
        }
        Ok(spec)
    }
}
