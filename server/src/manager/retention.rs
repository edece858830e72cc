//! Delete and Prune: jobs that have ended leave the store and the disk, one at a
//! time by request, or by age (also on the server's own clock, for its retention
//! time).

use std::{sync::Arc, time::Duration};

use super::{JobManager, dir_size};
use crate::{
    error::{Error, Result},
    job::{Job, JobId, JobState, now_millis},
};

/// Jobs deleted per store query while pruning.
const PRUNE_BATCH: usize = 200;

/// What a prune deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Pruned {
    pub deleted: u64,
    pub freed_bytes: u64,
}

impl JobManager {
    /// Deletes a job that has ended, its record first and then its directory (a
    /// directory left by a crash in between holds nothing anyone can reach).
    pub async fn delete(self: &Arc<Self>, id: JobId) -> Result<Job> {
        self.blocking(move |manager| manager.delete_now(id)).await
    }

    fn delete_now(&self, id: JobId) -> Result<Job> {
        let job = self.job(id)?;
        if let Some(host) = self.elsewhere(&job) {
            // Its directory is there.
            return Err(Error::RunsElsewhere {
                id,
                host: host.to_string(),
            });
        }
        if !job.state.is_terminal() {
            return Err(Error::FailedPrecondition(format!(
                "job {id} is {}: cancel it first (codex-jobs cancel {id}), then delete it",
                job.state.name()
            )));
        }
        // Out of the cache first, so that a reader cannot put it back.
        self.finished.forget(id);
        if !self.store.delete(id)? {
            return Err(Error::NotFound(id));
        }
        self.remove_worktree(&job);
        let dir = self.job_dir(id);
        if let Err(err) = std::fs::remove_dir_all(dir.path())
            && err.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(job = %id, "deleted, but its directory stays: {err}");
        }
        Ok(job)
    }

    /// Deletes the jobs in `states` (any that ended, if empty) that ended longer than
    /// `older_than` ago.
    pub async fn prune(
        self: &Arc<Self>,
        older_than: Duration,
        states: Vec<JobState>,
    ) -> Result<Pruned> {
        self.blocking(move |manager| manager.prune_now(older_than, &states))
            .await
    }

    fn prune_now(&self, older_than: Duration, states: &[JobState]) -> Result<Pruned> {
        // An age past any clock keeps everything: the cutoff is before any job.
        let age = i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now_millis().saturating_sub(age);
        let mut pruned = Pruned::default();
        loop {
            // The jobs whose directories are on this host, when others share the store.
            let host = Some(self.host_id()).filter(|_| self.store.is_shared());
            let batch = self.store.ended_before(cutoff, states, host, PRUNE_BATCH)?;
            let last = batch.len() < PRUNE_BATCH;
            for job in batch {
                let bytes = dir_size(self.job_dir(job.id).path());
                match self.delete_now(job.id) {
                    Ok(_) => {
                        pruned.deleted += 1;
                        pruned.freed_bytes += bytes;
                    }
                    // Deleted meanwhile by another Delete or Prune: gone is gone.
                    Err(Error::NotFound(_)) => {}
                    Err(err) => return Err(err),
                }
            }
            if last {
                return Ok(pruned);
            }
        }
    }

    /// Prunes what is older than `retain` now and every so often (a quarter of
    /// `retain`, between a second and an hour), for as long as the server runs.
    pub(super) fn keep_pruning(self: Arc<Self>, retain: Duration) {
        let every = (retain / 4).clamp(Duration::from_secs(1), Duration::from_secs(3600));
        tokio::spawn(async move {
            loop {
                match self.prune(retain, Vec::new()).await {
                    Ok(pruned) if pruned.deleted > 0 => tracing::info!(
                        deleted = pruned.deleted,
                        freed_bytes = pruned.freed_bytes,
                        "deleted jobs past the retention time"
                    ),
                    Ok(_) => {}
                    Err(err) => tracing::warn!("could not delete old jobs: {err}"),
                }
                tokio::time::sleep(every).await;
            }
        });
    }
}
