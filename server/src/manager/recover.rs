//! Taking over after a restart: every job the store says runs on this host is found
//! as it really is, from what its runner recorded and whether that runner still
//! lives.

use std::sync::Arc;

use super::{JobManager, LiveJob};
use crate::{error::Result, runner::Runner};

impl JobManager {
    /// Adopts the running jobs of this host whose runner is alive, and finishes the
    /// others from their exit record (or as lost). Queued jobs wait in the store.
    pub(super) fn recover(self: &Arc<Self>) -> Result<()> {
        // A store of its own holds this host's jobs only, whatever its id was; a
        // shared one, those of this id and those from before hosts had ids.
        let jobs = if self.store.is_shared() {
            let mut jobs = self.store.running(Some(&self.config.host.id))?;
            // Those from before, of the one server that then had this database:
            // the one with their directories.
            let legacy = self.store.running(Some(""))?;
            jobs.extend(
                legacy
                    .into_iter()
                    .filter(|job| self.job_dir(job.id).path().exists()),
            );
            jobs
        } else {
            self.store.running(None)?
        };
        let mut running = Vec::new();
        {
            // All of them are live before any finishes, so the run slots add up.
            let mut live = self.live();
            for job in jobs {
                running.push(job.id);
                live.running += 1;
                live.jobs.insert(job.id, LiveJob::new(job));
            }
        }
        for id in running {
            let status = self.job_dir(id).read_status().unwrap_or(None);
            if status.as_ref().is_some_and(|status| status.exit.is_some()) {
                // Ended while the server was down: its record tells how.
                self.runner_gone(id);
                continue;
            }
            // The runner names itself in its record; before it wrote one, the store
            // knows it from the launch.
            let identity = match &status {
                Some(status) => Some(status.runner),
                None => self.store.runner(id)?,
            };
            let runner = match identity.map(Runner::adopt).transpose() {
                Ok(runner) => runner.flatten(),
                Err(err) => {
                    tracing::warn!(job = %id, "cannot watch the runner: {err}");
                    None
                }
            };
            let Some(runner) = runner.map(Arc::new) else {
                self.runner_gone(id);
                continue;
            };
            if let Some(status) = status {
                self.update_live(id, status.thread_id, status.usage);
            }
            if let Some(entry) = self.live().jobs.get_mut(&id) {
                entry.runner = Some(runner.clone());
            }
            self.watcher.add(id, self.job_dir(id).path())?;
            tracing::info!(job = %id, runner = runner.identity().pid, "adopted running job");
            self.clone().finish_on_exit(id, runner);
        }
        Ok(())
    }
}
