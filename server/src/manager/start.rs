//! Start: check a job against the host's policy, and queue it in the store, where
//! this host or another that shares the store takes it.

use std::{sync::Arc, time::Duration};

use super::JobManager;
use crate::{
    error::{Error, Result},
    job::{Isolation, Job, JobId, JobSpec, ListFilter, now_millis},
    store::Inserted,
    worktree,
};

/// The most attempts one Start may ask for.
pub const MAX_ATTEMPTS: usize = 16;

/// How long a request id keeps returning the job it created.
pub const REQUEST_ID_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

impl JobManager {
    /// Stores and queues a job, and starts it if a run slot of this host is free.
    /// Returns the job and whether it was created: a `request_id` seen within the
    /// retention window returns the job it created instead. `created_by` names the
    /// caller.
    pub async fn start(
        self: &Arc<Self>,
        spec: JobSpec,
        request_id: Option<String>,
        created_by: String,
    ) -> Result<(Job, bool)> {
        let (jobs, created) = self.start_attempts(spec, request_id, created_by, 1).await?;
        let job = jobs.into_iter().next();
        Ok((
            job.ok_or_else(|| Error::Unavailable("the job was deleted at once".into()))?,
            created,
        ))
    }

    /// `start` for `attempts` jobs of one spec, each in a worktree of its own, tied
    /// by a group id (none for one attempt). Returns them oldest first; a retry
    /// with the same `request_id` returns the same jobs.
    pub async fn start_attempts(
        self: &Arc<Self>,
        spec: JobSpec,
        request_id: Option<String>,
        created_by: String,
        attempts: usize,
    ) -> Result<(Vec<Job>, bool)> {
        if attempts > 1 && spec.isolation == Isolation::None {
            return Err(Error::InvalidArgument(format!(
                "{attempts} attempts need isolation worktree: in one checkout they would \
                 edit each other's files"
            )));
        }
        if attempts > 1 && !spec.resume_thread_id.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "{attempts} attempts cannot all continue thread {}: attempts start threads \
                 of their own",
                spec.resume_thread_id
            )));
        }
        self.blocking(move |manager| {
            manager.start_blocking(spec, request_id, created_by, attempts.max(1))
        })
        .await
    }

    fn start_blocking(
        self: &Arc<Self>,
        spec: JobSpec,
        request_id: Option<String>,
        created_by: String,
        attempts: usize,
    ) -> Result<(Vec<Job>, bool)> {
        let retention_start = now_millis() - REQUEST_ID_RETENTION.as_millis() as i64;
        // A retry gets its jobs back whatever has changed since (a full queue, say).
        if let Some(request_id) = &request_id
            && let Some(existing) = self.store.find_request(request_id, retention_start)?
        {
            return Ok((self.attempts_of(existing)?, false));
        }
        // Checked here when only this host may take the job; else by the host that
        // takes it (a cwd exists on some hosts only, each has a policy of its own).
        let spec = if self.only_here(&spec)? {
            self.check_policy(spec)?
        } else {
            spec
        };
        let group = match attempts {
            1 => String::new(),
            _ => JobId::new().to_string(),
        };
        let mut ids = Vec::with_capacity(attempts);
        for attempt in 0..attempts {
            // The first attempt carries the request id: a retry finds the group by it.
            let request_id = request_id.clone().filter(|_| attempt == 0);
            let mut job = Job::queued(spec.clone(), request_id, created_by.clone());
            job.group = group.clone();
            // The first insert makes sure there is room for every attempt.
            let max_queued = self
                .config
                .max_queued
                .saturating_sub(attempts - 1 - attempt);
            match self.store.insert(&job, retention_start, max_queued)? {
                Inserted::New(_) => ids.push(job.id),
                // A concurrent Start with the same request id came first.
                Inserted::Existing(existing) => {
                    return Ok((self.attempts_of(*existing)?, false));
                }
                Inserted::QueueFull(waiting) => {
                    let queued = match attempt {
                        0 => String::new(),
                        n => format!(" ({n} of the {attempts} attempts are queued)"),
                    };
                    return Err(Error::ResourceExhausted(format!(
                        "the queue is full ({waiting} jobs waiting, {attempts} more asked for); \
                         try again when jobs have finished{queued}"
                    )));
                }
            }
            tracing::info!(job = %job.id, "job queued");
        }
        self.dispatch();
        let jobs = ids
            .into_iter()
            .map(|id| self.job(id))
            .collect::<Result<_>>()?;
        Ok((jobs, true))
    }

    /// A job and the other attempts of its group, oldest first.
    fn attempts_of(&self, job: Job) -> Result<Vec<Job>> {
        if job.group.is_empty() {
            return Ok(vec![self.job(job.id)?]);
        }
        let filter = ListFilter {
            group: job.group.clone(),
            limit: MAX_ATTEMPTS,
            ..ListFilter::default()
        };
        // Every one, however large their prompts (not a List page's byte budget).
        let page = self.store.list(&filter)?;
        Ok(page
            .jobs
            .into_iter()
            .rev()
            .map(|job| self.fresher(job))
            .collect())
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
        if let Isolation::Worktree { base } = &mut spec.isolation {
            // Resolved once, here: every attempt of a group starts from the same commit.
            let repo = worktree::repository(&spec.cwd)
                .map_err(|err| Error::InvalidArgument(err.to_string()))?;
            *base = worktree::resolve(&repo, base)
                .map_err(|err| Error::InvalidArgument(err.to_string()))?;
        }
        Ok(spec)
    }
}
