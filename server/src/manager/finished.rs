//! Finished jobs never change, so those read lately are kept in memory: a client
//! that polls a finished job again is answered without the store or a blocking
//! thread. Bounded by bytes, the oldest entry leaving first.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
};

use crate::job::{Job, JobId};

/// What one job costs besides its prompt and final message.
const JOB_OVERHEAD: usize = 512;

pub(super) struct FinishedJobs {
    budget: usize,
    kept: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    jobs: HashMap<JobId, Job>,
    /// Oldest first.
    order: VecDeque<JobId>,
    bytes: usize,
    /// Deleted jobs, never to be kept again (a reader may have read one from the
    /// store just before it went).
    deleted: std::collections::HashSet<JobId>,
}

fn cost(job: &Job) -> usize {
    job.spec.prompt.len() + job.final_message.len() + job.outcome.error.len() + JOB_OVERHEAD
}

impl FinishedJobs {
    /// Keeps at most `budget` bytes of jobs.
    pub(super) fn new(budget: usize) -> FinishedJobs {
        FinishedJobs {
            budget,
            kept: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.kept
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn get(&self, id: JobId) -> Option<Job> {
        self.lock().jobs.get(&id).cloned()
    }

    /// Forgets a job that is being deleted, for good.
    pub(super) fn forget(&self, id: JobId) {
        let mut kept = self.lock();
        kept.deleted.insert(id);
        if let Some(gone) = kept.jobs.remove(&id) {
            kept.bytes -= cost(&gone);
            kept.order.retain(|kept| *kept != id);
        }
    }

    /// Keeps a job that is finished, as it was stored.
    pub(super) fn keep(&self, job: &Job) {
        debug_assert!(job.state.is_terminal());
        let cost = cost(job);
        if cost > self.budget / 8 {
            return; // One huge prompt would push out many jobs.
        }
        let mut kept = self.lock();
        if kept.jobs.contains_key(&job.id) || kept.deleted.contains(&job.id) {
            return;
        }
        while kept.bytes + cost > self.budget {
            let Some(oldest) = kept.order.pop_front() else {
                break;
            };
            if let Some(gone) = kept.jobs.remove(&oldest) {
                kept.bytes -= self::cost(&gone);
            }
        }
        kept.bytes += cost;
        kept.order.push_back(job.id);
        kept.jobs.insert(job.id, job.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{JobSpec, JobState, Sandbox};

    fn finished(prompt_bytes: usize) -> Job {
        let mut job = Job::queued(
            JobSpec {
                prompt: "p".repeat(prompt_bytes),
                cwd: "/".into(),
                model: String::new(),
                sandbox: Sandbox::ReadOnly,
                timeout: None,
                labels: Default::default(),
                resume_thread_id: String::new(),
                reasoning_effort: None,
                pool: crate::job::DEFAULT_POOL.into(),
                host: String::new(),
                isolation: crate::job::Isolation::None,
            },
            None,
            String::new(),
        );
        job.state = JobState::Succeeded;
        job
    }

    #[test]
    fn the_oldest_jobs_leave_when_the_budget_is_spent() {
        let jobs = FinishedJobs::new(10 * (100 + JOB_OVERHEAD));
        let all: Vec<Job> = (0..12).map(|_| finished(100)).collect();
        all.iter().for_each(|job| jobs.keep(job));
        assert!(jobs.get(all[0].id).is_none());
        assert!(jobs.get(all[1].id).is_none());
        assert_eq!(jobs.get(all[2].id).as_ref(), Some(&all[2]));
        assert_eq!(jobs.get(all[11].id).as_ref(), Some(&all[11]));
        // Too big to be worth keeping.
        let huge = finished(10 * 100);
        jobs.keep(&huge);
        assert!(jobs.get(huge.id).is_none());
    }
}
