//! Diff and Apply: what a job in a worktree changed, read by byte offset like its
//! output, and taken into the checkout it came from. And the worktree's end, with
//! its job's.

use std::sync::Arc;

use super::JobManager;
use crate::{
    error::{Error, Result},
    job::{Change, Isolation, Job, JobId},
    output::{Log, Window},
    worktree::{self, ApplyError},
};

/// A window of a job's patch.
#[derive(Debug)]
pub struct DiffResult {
    pub job: Job,
    pub window: Window,
}

/// What Apply did.
#[derive(Debug)]
pub struct Applied {
    pub job: Job,
    /// The top of the checkout the change went into.
    pub checkout: String,
    /// The files it changed there.
    pub files: Vec<String>,
}

impl JobManager {
    /// Up to `max_bytes` of the patch of what job `id` changed, from `offset` on.
    pub async fn diff(
        self: &Arc<Self>,
        id: JobId,
        offset: u64,
        max_bytes: usize,
    ) -> Result<DiffResult> {
        self.blocking(move |manager| {
            let job = manager.job(id)?;
            manager.ended_change(&job)?;
            let log = Log::open(&manager.job_dir(id).patch())?;
            let window = log
                .since(offset, max_bytes)
                .map_err(|err| Error::InvalidArgument(format!("offset: {err}")))??;
            Ok(DiffResult { job, window })
        })
        .await
    }

    /// Takes what job `id` changed into the checkout of its cwd, by a three-way
    /// merge; refuses, changing nothing, when the checkout's own changes conflict.
    pub async fn apply(self: &Arc<Self>, id: JobId) -> Result<Applied> {
        self.blocking(move |manager| {
            let job = manager.job(id)?;
            let change = manager.ended_change(&job)?.clone();
            let repo = worktree::repository(&job.spec.cwd)
                .map_err(|err| Error::FailedPrecondition(err.to_string()))?;
            let checkout = repo.top.display().to_string();
            // An index of its own for each Apply, beside the job's logs.
            let scratch = manager
                .job_dir(id)
                .path()
                .join(format!("apply-{}.index", uuid::Uuid::now_v7()));
            // One at a time: two merges into one checkout would each write over
            // what the other wrote.
            let _one_at_a_time = manager
                .applying
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match worktree::apply(&repo, &change, &scratch) {
                Ok(files) => Ok(Applied {
                    job,
                    checkout,
                    files,
                }),
                Err(ApplyError::Conflicts(files)) => Err(Error::FailedPrecondition(format!(
                    "the checkout at {checkout} has changes that conflict with job {id}'s{}; \
                     nothing was changed. Commit or stash them and apply again, or merge \
                     the job's branch {} yourself",
                    match files.is_empty() {
                        true => String::new(),
                        false => format!(" in {}", files.join(", ")),
                    },
                    change.branch,
                ))),
                Err(ApplyError::Git(err)) => Err(Error::FailedPrecondition(format!(
                    "could not apply job {id}'s change to {checkout}: {err}"
                ))),
            }
        })
        .await
    }

    /// The change of a job that ran in a worktree here and has ended; else an error
    /// that says why there is none.
    fn ended_change<'a>(&self, job: &'a Job) -> Result<&'a Change> {
        let id = job.id;
        if job.spec.isolation == Isolation::None {
            return Err(Error::FailedPrecondition(format!(
                "job {id} ran in its cwd, not in a worktree of its own: what it changed is \
                 there already (start jobs with isolation worktree to review their changes)"
            )));
        }
        if let Some(host) = self.elsewhere(job) {
            // Its worktree and patch are there.
            return Err(Error::RunsElsewhere {
                id,
                host: host.to_string(),
            });
        }
        if !job.state.is_terminal() {
            return Err(Error::FailedPrecondition(format!(
                "job {id} is {}: its change is taken when it ends (wait for it, or cancel it)",
                job.state.name()
            )));
        }
        job.change.as_ref().ok_or_else(|| {
            Error::FailedPrecondition(format!(
                "job {id} ended without a change on record: its worktree was never made, or \
                 could not be read when it ended (see the server's log)"
            ))
        })
    }

    /// Removes a deleted job's worktree and branch from the repository it was made
    /// in; what cannot be removed is logged, not kept.
    pub(super) fn remove_worktree(&self, job: &Job) {
        if job.spec.isolation == Isolation::None {
            return;
        }
        let path = self.job_dir(job.id).worktree();
        let made = self.worktree_made(job.id);
        if let Err(err) = worktree::remove(made.as_ref(), &job.spec.cwd, &path, job.id) {
            tracing::warn!(job = %job.id, "the job's worktree or branch stays: {err}");
        }
    }
}
