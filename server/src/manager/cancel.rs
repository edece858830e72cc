//! Cancel: dequeue a queued job, or have a running job's runner end it, and return
//! once nothing of it is left running.

use std::sync::Arc;

use super::JobManager;
use crate::{
    error::Result,
    job::{Job, JobId, JobState, Outcome},
};

impl JobManager {
    /// Cancels a job and returns it in its final state. A finished job is returned
    /// unchanged, so cancelling twice is harmless.
    pub async fn cancel(self: &Arc<Self>, id: JobId) -> Result<Job> {
        let live = self.live().jobs.get_mut(&id).map(|entry| {
            entry.cancel_requested = true;
            (
                entry.job.state == JobState::Queued,
                entry.runner.clone(),
                entry.changed.subscribe(),
            )
        });
        // Not live: finished already (or unknown, which `get` reports).
        let Some((queued, runner, mut changed)) = live else {
            return self.get(id).await;
        };
        if queued {
            let outcome = Outcome {
                error: "cancelled before it started".into(),
                ..Outcome::default()
            };
            // Only while it is still queued: if dispatch took it meanwhile, `launch`
            // sees `cancel_requested` and has the runner cancel it.
            self.blocking(move |manager| {
                let queued = |job: &Job| job.state == JobState::Queued;
                manager.settle_if(id, queued, JobState::Cancelled, outcome, None);
            })
            .await;
        }
        // The runner ends Codex's whole process group (SIGTERM, then SIGKILL after
        // the grace period) and records the job as cancelled. Before the runner
        // exists, `launch` signals it instead.
        if let Some(runner) = runner {
            runner.cancel();
        }
        loop {
            let job = self.get(id).await?;
            if job.state.is_terminal() {
                return Ok(job);
            }
            if changed.changed().await.is_err() {
                // The job left the live set: it is finished.
                return self.get(id).await;
            }
        }
    }
}
