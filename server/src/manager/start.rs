//! Start: check a job against the host's policy, store it, queue it.

use std::{sync::Arc, time::Duration};

use tokio::sync::watch as signal;

use super::{JobManager, LiveJob};
use crate::{
    error::{Error, Result},
    job::{Job, JobSpec, now_millis},
};

/// How long a request id keeps returning the job it created.
pub const REQUEST_ID_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

impl JobManager {
    /// Stores and queues a job, and starts it if a run slot is free. Returns the job
    /// and whether it was created: a `request_id` seen within the retention window
    /// returns the job it created instead.
    pub fn start(
        self: &Arc<Self>,
        spec: JobSpec,
        request_id: Option<String>,
    ) -> Result<(Job, bool)> {
        self.check_policy(&spec)?;
        {
            let live = self.live();
            if live.queue.len() >= self.config.max_queued {
                return Err(Error::ResourceExhausted(format!(
                    "the queue is full ({} jobs waiting); try again when jobs have finished",
                    live.queue.len()
                )));
            }
        }
        let job = Job::queued(spec, request_id);
        let retention_start = now_millis() - REQUEST_ID_RETENTION.as_millis() as i64;
        if let Some(existing) = self.store.insert(&job, retention_start)? {
            return Ok((self.get(existing.id)?, false));
        }
        std::fs::create_dir_all(self.job_dir(job.id).path())?;
        let id = job.id;
        {
            let mut live = self.live();
            let (changed, _) = signal::channel(0);
            live.jobs.insert(
                id,
                LiveJob {
                    job,
                    changed,
                    runner: None,
                    cancel_requested: false,
                },
            );
            live.queue.push_back(id);
        }
        tracing::info!(job = %id, "job queued");
        self.dispatch();
        Ok((self.get(id)?, true))
    }

    /// The host's rules: where jobs may run and how much they may do.
    fn check_policy(&self, spec: &JobSpec) -> Result<()> {
        let cwd = &spec.cwd;
        if !cwd.is_absolute() {
            return Err(Error::InvalidArgument(format!(
                "cwd must be an absolute path, got {:?}",
                cwd.display().to_string()
            )));
        }
        if !cwd.is_dir() {
            return Err(Error::InvalidArgument(format!(
                "cwd {} is not an existing directory",
                cwd.display()
            )));
        }
        let roots = &self.config.allowed_cwd_roots;
        if !roots.is_empty() {
            let real = cwd.canonicalize()?;
            if !roots.iter().any(|root| real.starts_with(root)) {
                return Err(Error::PermissionDenied(format!(
                    "cwd {} is outside the directories this host allows: {}",
                    cwd.display(),
                    roots
                        .iter()
                        .map(|root| root.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        let max = self.config.max_sandbox;
        if spec.sandbox > max {
            return Err(Error::PermissionDenied(format!(
                "sandbox {} is above the highest level this host allows ({})",
                spec.sandbox.name(),
                max.name()
            )));
        }
        Ok(())
    }
}
