//! Cancel: take a queued job out of the queue, or have a running job's runner end
//! it, and return once nothing of it is left running.

use std::sync::Arc;

use super::JobManager;
use crate::{
    error::{Error, Result},
    job::{Job, JobId, JobState, Outcome, now_millis},
};

impl JobManager {
    /// Cancels a job and returns it in its final state. A finished job is returned
    /// unchanged, so cancelling twice is harmless. A job that runs on another host
    /// is `Error::RunsElsewhere`: that host cancels it.
    pub async fn cancel(self: &Arc<Self>, id: JobId) -> Result<Job> {
        loop {
            let live = self.live().jobs.get_mut(&id).map(|entry| {
                entry.cancel_requested = true;
                (entry.runner.clone(), entry.changed.subscribe())
            });
            if let Some((runner, changed)) = live {
                match self.cancel_running(id, runner, changed).await? {
                    Some(job) => return Ok(job),
                    // It left this host without ending (handed back): look again.
                    None => continue,
                }
            }
            // Before the read, so that no change after it goes unnoticed.
            let mut waiter = self.subscribe(id);
            let job = self.get(id).await?;
            if let Some(host) = self.elsewhere(&job) {
                return Err(Error::RunsElsewhere {
                    id,
                    host: host.to_string(),
                });
            }
            if job.state.is_terminal() {
                return Ok(job);
            }
            if job.state == JobState::Running {
                // Taken by this host just now (or a run nobody watches yet): it
                // becomes live, or its record changes.
                waiter.changed().await;
                continue;
            }
            let mut cancelled = job;
            cancelled.state = JobState::Cancelled;
            cancelled.finished_at = Some(now_millis());
            cancelled.outcome = Outcome {
                error: "cancelled before it started".into(),
                ..Outcome::default()
            };
            // Only while it is still queued: a host may have taken it meanwhile,
            // and then it is cancelled where it runs.
            let stored = self
                .blocking(move |manager| {
                    let stored = manager.store.finish(&cancelled, JobState::Queued)?;
                    Ok::<_, Error>(stored.then_some(cancelled))
                })
                .await?;
            if let Some(cancelled) = stored {
                tracing::info!(job = %id, "job cancelled before it started");
                // Nobody listening is no error.
                let _ = self.ended.send(cancelled.clone());
                return Ok(cancelled);
            }
        }
    }

    /// Has the runner end Codex's whole process group (SIGTERM, then SIGKILL after
    /// the grace period), which records the job as cancelled; before the runner
    /// exists, `launch` signals it instead. Returns the job once it has ended, or
    /// `None` if it left this host without ending (handed back to the queue).
    async fn cancel_running(
        self: &Arc<Self>,
        id: JobId,
        runner: Option<Arc<crate::runner::Runner>>,
        mut changed: tokio::sync::watch::Receiver<u64>,
    ) -> Result<Option<Job>> {
        if let Some(runner) = runner {
            runner.cancel();
        }
        loop {
            let job = self.get(id).await?;
            if job.state.is_terminal() {
                return Ok(Some(job));
            }
            if changed.changed().await.is_err() {
                // The job left the live set: finished, or handed back.
                let job = self.get(id).await?;
                return Ok(job.state.is_terminal().then_some(job));
            }
        }
    }
}
