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
        let (runner, mut changed) = {
            let mut live = self.live();
            let Some(entry) = live.jobs.get_mut(&id) else {
                drop(live);
                return self.get(id);
            };
            entry.cancel_requested = true;
            let queued = entry.job.state == JobState::Queued;
            let runner = entry.runner;
            let changed = entry.changed.subscribe();
            if queued {
                // Under the same lock as the check, so dispatch cannot take it meanwhile.
                let outcome = Outcome {
                    error: "cancelled before it started".into(),
                    ..Outcome::default()
                };
                self.finish_locked(&mut live, id, JobState::Cancelled, outcome, None);
                drop(live);
                return self.get(id);
            }
            (runner, changed)
        };
        // The runner ends Codex's whole process group (SIGTERM, then SIGKILL after
        // the grace period) and records the job as cancelled. Before it has a known
        // identity, `launch` sends the signal instead.
        if let Some(runner) = runner {
            runner.signal(libc::SIGTERM);
        }
        loop {
            let job = self.get(id)?;
            if job.state.is_terminal() {
                return Ok(job);
            }
            if changed.changed().await.is_err() {
                // The job left the live set: it is finished.
                return self.get(id);
            }
        }
    }
}
