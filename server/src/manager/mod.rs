//! The job manager: the heart of the server, in plain Rust. It owns the queue, the
//! running jobs and the store, and offers start, get, poll, follow, cancel and list.
//! It knows nothing of gRPC.
//!
//! Each verb lives in a module of its own; this one holds the shared state and the
//! life cycle every job goes through: queued, launched (a runner started), finished
//! (the runner's exit record stored).
//!
//! The store, the job files and forking all block, so they run on tokio's blocking
//! threads (`blocking`), never on the async workers; and the live lock is never held
//! across any of them.

mod cancel;
mod changes;
mod finished;
mod follow;
mod hosts;
mod poll;
mod recover;
mod retention;
mod start;
#[cfg(test)]
mod tests;
mod watch;
mod worktrees;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

pub use follow::{FollowEvent, FollowStart};
pub use hosts::{HostConfig, HostStatus};
pub use poll::{PollResult, WindowRequest};
pub use retention::Pruned;
pub use start::MAX_ATTEMPTS;
pub use watch::WatchEvent;
pub use worktrees::{Applied, DiffResult};

use crate::{
    error::{Error, Result},
    job::{
        Change, FailureReason, Host, Isolation, Job, JobId, JobSpec, JobState, ListFilter, Millis,
        Outcome, OutputStream, Page, Sandbox, TokenUsage, now_millis,
    },
    runner::{
        RunEnd, Runner, RunnerConfig,
        record::{ExitRecord, JobDir, WORKTREE_RECORD, write_atomically},
    },
    store::{Announcement, PostgresConfig, Store},
    worktree,
};

/// How much prompt and message text one List page may carry, so that a page stays
/// under the 4 MiB message limit gRPC clients apply by default.
const MAX_PAGE_BYTES: usize = 3 * 1024 * 1024;

/// Ended jobs a slow `ended_jobs` receiver may fall behind by.
const ENDED_JOBS_BUFFERED: usize = 4096;

/// How much memory finished jobs kept for quick answers may take.
const FINISHED_JOBS_BUDGET: usize = 8 * 1024 * 1024;

/// The host's policy and limits.
#[derive(Clone, Debug)]
pub struct ManagerConfig {
    /// Where the job directories live, and the SQLite database if no other is given.
    pub state_dir: PathBuf,
    /// A PostgreSQL database to keep the jobs in instead.
    pub database: Option<PostgresConfig>,
    /// Jobs running at once; more wait in a FIFO queue.
    pub max_running: usize,
    /// Jobs waiting at once; Start beyond it is refused.
    pub max_queued: usize,
    /// Timeout of jobs that set none.
    pub default_timeout: Duration,
    /// The highest sandbox level a job may ask for.
    pub max_sandbox: Sandbox,
    /// Directories a job's cwd must lie under; empty allows any.
    pub allowed_cwd_roots: Vec<PathBuf>,
    /// Jobs that ended longer ago than this are deleted by the server; `None` keeps
    /// them until someone deletes them.
    pub retain_finished: Option<Duration>,
    pub runner: RunnerConfig,
    /// This host, as the others sharing the store know it.
    pub host: HostConfig,
}

/// The job manager. Cheap to share: every method takes `&self` or `&Arc<Self>`.
pub struct JobManager {
    config: ManagerConfig,
    store: Store,
    jobs_dir: PathBuf,
    live: Mutex<Live>,
    /// Finished jobs read lately.
    finished: finished::FinishedJobs,
    /// Each job as it ends, for whoever keeps statistics (see `ended_jobs`).
    ended: tokio::sync::broadcast::Sender<Job>,
    watcher: changes::DirWatcher,
    /// When this server started, for its record among the hosts.
    started_at: Millis,
    /// Each job this host has claimed, once it is live: a reader that waited on the
    /// store for it then waits on the live job.
    launched: tokio::sync::broadcast::Sender<JobId>,
    /// The hosts' records as of the last look at the fleet (every heartbeat).
    known_hosts: Mutex<Vec<Host>>,
    /// Held by each Apply while it merges into a checkout.
    applying: Mutex<()>,
}

/// The jobs this host runs. Queued jobs are the store's alone: any host that
/// shares it may take one.
#[derive(Default)]
struct Live {
    jobs: HashMap<JobId, LiveJob>,
    /// Run slots taken: by the jobs, and by claims under way.
    running: usize,
}

/// A job running on this host.
struct LiveJob {
    job: Job,
    /// Bumped whenever the job or its output changes; dropped when it finishes.
    changed: tokio::sync::watch::Sender<u64>,
    runner: Option<Arc<Runner>>,
    cancel_requested: bool,
    /// Its end is being stored: nothing else may finish or start it.
    finishing: bool,
}

impl LiveJob {
    fn new(job: Job) -> LiveJob {
        LiveJob {
            job,
            changed: tokio::sync::watch::channel(0).0,
            runner: None,
            cancel_requested: false,
            finishing: false,
        }
    }

    /// Wakes whoever waits on this job.
    fn bump(&self) {
        self.changed.send_modify(|version| *version += 1);
    }
}

impl JobManager {
    /// Opens the state dir, takes over the jobs a previous server left (see
    /// `recover`), and starts what the queue allows.
    pub async fn open(config: ManagerConfig) -> anyhow::Result<Arc<JobManager>> {
        let (watcher, events) = changes::DirWatcher::new()?;
        let manager =
            tokio::task::spawn_blocking(move || Self::open_blocking(config, watcher)).await??;
        manager.clone().watch_dirs(events);
        manager.clone().keep_heartbeating();
        if manager.store.is_shared() {
            // Listening before the first look at the queue: no new job goes unheard.
            manager.clone().take_new_jobs();
        }
        manager.blocking(|manager| manager.dispatch()).await;
        if let Some(retain) = manager.config.retain_finished {
            manager.clone().keep_pruning(retain);
        }
        Ok(manager)
    }

    fn open_blocking(
        config: ManagerConfig,
        watcher: changes::DirWatcher,
    ) -> anyhow::Result<Arc<JobManager>> {
        let jobs_dir = config.state_dir.join("jobs");
        std::fs::create_dir_all(&jobs_dir)?;
        let store = match &config.database {
            Some(database) => Store::postgres(database)?,
            None => Store::sqlite(&config.state_dir.join("jobs.db"))?,
        };
        let manager = Arc::new(JobManager {
            config,
            store,
            jobs_dir,
            live: Mutex::new(Live::default()),
            finished: finished::FinishedJobs::new(FINISHED_JOBS_BUDGET),
            ended: tokio::sync::broadcast::channel(ENDED_JOBS_BUFFERED).0,
            watcher,
            started_at: now_millis(),
            launched: tokio::sync::broadcast::channel(ENDED_JOBS_BUFFERED).0,
            known_hosts: Mutex::default(),
            applying: Mutex::default(),
        });
        manager.recover()?;
        manager.heartbeat()?;
        manager.look_at_the_fleet()?;
        Ok(manager)
    }

    /// Claims queued jobs whenever another host stores one, as the store tells (or
    /// when it may have missed telling), for as long as the server runs.
    fn take_new_jobs(self: Arc<Self>) {
        let mut changes = self.store.changes();
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match changes.recv().await {
                    Ok(Announcement::Changed(change)) if change.state != JobState::Queued => {
                        continue;
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return,
                }
                self.blocking(|manager| manager.dispatch()).await;
            }
        });
    }

    /// Runs `work` on a blocking thread: for everything that touches the store, a
    /// job's files or processes.
    async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&Arc<Self>) -> T + Send + 'static,
    ) -> T {
        let manager = self.clone();
        match tokio::task::spawn_blocking(move || work(&manager)).await {
            Ok(result) => result,
            Err(err) => std::panic::resume_unwind(err.into_panic()),
        }
    }

    fn live(&self) -> MutexGuard<'_, Live> {
        self.live
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn job_dir(&self, id: JobId) -> JobDir {
        JobDir::new(self.jobs_dir.join(id.to_string()))
    }

    /// The path of one of a job's logs.
    pub fn log_path(&self, id: JobId, stream: OutputStream) -> PathBuf {
        self.job_dir(id).log(stream)
    }

    /// The job as it is now.
    pub async fn get(self: &Arc<Self>, id: JobId) -> Result<Job> {
        self.blocking(move |manager| manager.job(id)).await
    }

    /// `get`, where blocking is allowed.
    fn job(&self, id: JobId) -> Result<Job> {
        let live = self
            .live()
            .jobs
            .get(&id)
            .map(|live| (live.job.clone(), live.finishing));
        match live {
            Some((mut job, finishing)) => {
                // A job being finished may be stored as finished already (and its
                // watchers told so): then the store's record is the answer. If the
                // store cannot say (its database is away), the live job is.
                if finishing
                    && let Ok(Some(stored)) = self.store.get(id)
                    && stored.state.is_terminal()
                {
                    return Ok(stored);
                }
                if job.state == JobState::Running {
                    job.output_size = file_size(&self.log_path(id, OutputStream::Transcript));
                    job.disk_bytes = dir_size(self.job_dir(id).path());
                }
                Ok(job)
            }
            None => {
                if let Some(job) = self.finished.get(id) {
                    return Ok(job);
                }
                let mut job = self.store.get(id)?.ok_or(Error::NotFound(id))?;
                if job.state.is_terminal() {
                    self.finished.keep(&job);
                } else if let Some(host) = self.elsewhere(&job) {
                    job.host_unreachable = self.is_unreachable(host);
                }
                Ok(job)
            }
        }
    }

    /// What wakes a reader of a job when it or its output changes from now on.
    /// Subscribe before reading the job, so that no change goes unnoticed.
    fn subscribe(&self, id: JobId) -> Waiter {
        match self.live().jobs.get(&id) {
            Some(live) => Waiter::Live(live.changed.subscribe()),
            None => Waiter::Store {
                changes: self.store.changes(),
                launched: self.launched.subscribe(),
                id,
            },
        }
    }

    /// One page of jobs, newest first. A page ends early rather than grow past
    /// `MAX_PAGE_BYTES` of prompts and messages; `next` then continues after it.
    pub async fn list(self: &Arc<Self>, filter: ListFilter) -> Result<Page> {
        self.blocking(move |manager| manager.list_page(&filter))
            .await
    }

    fn list_page(&self, filter: &ListFilter) -> Result<Page> {
        let mut page = self.store.list(filter)?;
        let mut budget = MAX_PAGE_BYTES;
        let fits = page.jobs.iter().position(|job| {
            let cost = job.spec.prompt.len() + job.final_message.len() + 1024;
            let over = cost > budget;
            budget = budget.saturating_sub(cost);
            over
        });
        if let Some(fits) = fits.map(|fits| fits.max(1))
            && fits < page.jobs.len()
        {
            page.jobs.truncate(fits);
            page.next = page.jobs.last().map(|job| job.id);
        }
        page.jobs = page.jobs.into_iter().map(|job| self.fresher(job)).collect();
        Ok(page)
    }

    /// A job read from the store, which has the state of record, with the fresher
    /// details of the live job while it is not finished.
    fn fresher(&self, job: Job) -> Job {
        if job.state.is_terminal() {
            return job;
        }
        self.job(job.id).unwrap_or(job)
    }

    /// Claims queued jobs from the store and starts them while there are free run
    /// slots. Safe to call from anywhere at any time: each claim holds its slot.
    fn dispatch(self: &Arc<Self>) {
        loop {
            {
                let mut live = self.live();
                if live.running >= self.config.max_running {
                    return;
                }
                live.running += 1;
            }
            let host = &self.config.host;
            let job = match self.store.claim(&host.id, &host.pools, now_millis()) {
                Ok(Some(job)) => job,
                Ok(None) => {
                    self.live().running -= 1;
                    return;
                }
                Err(err) => {
                    self.live().running -= 1;
                    // Nothing was taken: try again once the store answers.
                    tracing::warn!("cannot take queued jobs yet: {err}");
                    self.clone().dispatch_later();
                    return;
                }
            };
            let id = job.id;
            self.live().jobs.insert(id, LiveJob::new(job.clone()));
            // Nobody waiting is no error.
            let _ = self.launched.send(id);
            tracing::info!(job = %id, "job claimed");
            let error = match self.launch(&job) {
                Ok(()) => continue,
                // Another host of its pool may run it: theirs, then.
                Err(Launch::Refused(reason)) if job.spec.host.is_empty() => {
                    match self.hand_back(job, &reason) {
                        Ok(()) => continue,
                        Err(err) => {
                            format!("{reason} (and it could not go back to the queue: {err})")
                        }
                    }
                }
                Err(Launch::Refused(error) | Launch::Failed(error)) => error,
            };
            tracing::warn!(job = %id, "could not start the job: {error}");
            // Not `finish`: that would dispatch again, from inside this loop.
            self.settle(
                id,
                JobState::Failed,
                Outcome {
                    failure_reason: Some(FailureReason::StartFailed),
                    error,
                    ..Outcome::default()
                },
                None,
            );
        }
    }

    /// Tries the queue again in a second.
    fn dispatch_later(self: Arc<Self>) {
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            self.blocking(|manager| manager.dispatch()).await;
        });
    }

    /// Puts a job this host claimed but cannot run back in the queue for the other
    /// hosts of its pool; when every live one has refused it, it fails, with each
    /// host's reason.
    fn hand_back(self: &Arc<Self>, mut job: Job, reason: &str) -> Result<()> {
        let id = job.id;
        let earlier = std::mem::take(&mut job.outcome.error);
        job.outcome.error = match earlier.as_str() {
            "" => reason.to_string(),
            earlier => format!("{earlier}; {reason}"),
        };
        let refused = self
            .store
            .hand_back(&job, &self.config.host.id)?
            .ok_or_else(|| Error::Unavailable(format!("job {id} no longer runs here")))?;
        {
            let mut live = self.live();
            if live.jobs.remove(&id).is_some() {
                live.running -= 1;
            }
        }
        self.watcher.remove(id);
        tracing::info!(job = %id, "handed the job back to the queue: {reason}");
        let takers = self
            .host_statuses()?
            .into_iter()
            .filter(|status| status.may_take(&job.spec) && !refused.contains(&status.host.id));
        if takers.count() == 0 {
            job.state = JobState::Failed;
            job.host = String::new();
            job.started_at = None;
            job.finished_at = Some(now_millis());
            job.outcome = Outcome {
                failure_reason: Some(FailureReason::StartFailed),
                error: format!(
                    "no live host of pool {} can run this job: {}",
                    job.spec.pool, job.outcome.error
                ),
                ..Outcome::default()
            };
            if self.store.finish(&job, JobState::Queued)? {
                tracing::warn!(job = %id, "{}", job.outcome.error);
                // Nobody listening is no error.
                let _ = self.ended.send(job);
            }
        }
        Ok(())
    }

    /// Starts the runner of a job this host has just claimed, once the host's
    /// policy allows it here; else says why not.
    fn launch(self: &Arc<Self>, job: &Job) -> std::result::Result<(), Launch> {
        let id = job.id;
        let spec = self.check_policy(job.spec.clone()).map_err(|err| {
            Launch::Refused(format!("host {} cannot run it: {err}", self.config.host.id))
        })?;
        let dir = self.job_dir(id);
        std::fs::create_dir_all(dir.path())
            .map_err(|err| Launch::Failed(format!("could not make the job's directory: {err}")))?;
        if spec.isolation == Isolation::None {
            return self.run(id, spec).map_err(Launch::Failed);
        }
        // Checking out a large repository takes a while: not on the time of the
        // Start whose dispatch claimed the job. The job runs (its slot is taken)
        // from now on; cancelled meanwhile, it ends once the worktree is made,
        // without starting Codex.
        let manager = self.clone();
        tokio::runtime::Handle::current().spawn_blocking(move || {
            let spec = manager.in_worktree(id, spec);
            let cancelled = manager
                .live()
                .jobs
                .get(&id)
                .is_some_and(|entry| entry.cancel_requested);
            if cancelled {
                let outcome = Outcome {
                    error: "cancelled before it started".into(),
                    ..Outcome::default()
                };
                manager.finish(id, JobState::Cancelled, outcome, None);
                return;
            }
            if let Err(error) = spec.and_then(|spec| manager.run(id, spec)) {
                tracing::warn!(job = %id, "could not start the job: {error}");
                let outcome = Outcome {
                    failure_reason: Some(FailureReason::StartFailed),
                    error,
                    ..Outcome::default()
                };
                manager.finish(id, JobState::Failed, outcome, None);
            }
        });
        Ok(())
    }

    /// Starts the runner of a job this host has claimed, with `spec` as it runs.
    fn run(self: &Arc<Self>, id: JobId, spec: JobSpec) -> std::result::Result<(), String> {
        let dir = self.job_dir(id);
        // Watch before the runner writes anything, so no change goes unnoticed.
        let spawned = self.watcher.add(id, dir.path()).and_then(|()| {
            let timeout = spec.timeout.unwrap_or(self.config.default_timeout);
            Runner::spawn(&self.config.runner, &dir, &spec, timeout)
        });
        let runner =
            Arc::new(spawned.map_err(|err| format!("could not start the job's runner: {err}"))?);
        // Lets a restarted server adopt the runner even before its first record.
        if let Err(err) = self.store.set_runner(id, runner.identity()) {
            tracing::warn!(job = %id, "could not store the runner's identity: {err}");
        }
        let cancel_now = {
            let mut live = self.live();
            match live.jobs.get_mut(&id) {
                Some(entry) => {
                    entry.runner = Some(runner.clone());
                    entry.cancel_requested
                }
                None => true,
            }
        };
        if cancel_now {
            runner.cancel();
        }
        tracing::info!(job = %id, runner = runner.identity().pid, "job started");
        self.clone().finish_on_exit(id, runner);
        Ok(())
    }

    /// The spec to run: for a job with isolation `worktree`, in the worktree made
    /// for it (at the same place within the repository as its cwd).
    fn in_worktree(&self, id: JobId, mut spec: JobSpec) -> std::result::Result<JobSpec, String> {
        let Isolation::Worktree { base } = &spec.isolation else {
            return Ok(spec);
        };
        let dir = self.job_dir(id);
        let path = dir.worktree();
        let repo = worktree::repository(&spec.cwd).map_err(|err| err.to_string())?;
        let started = std::time::Instant::now();
        let made = worktree::create(&repo, id, base, &path).map_err(|err| err.to_string())?;
        // Recorded once whole: a worktree half made (by a server killed meanwhile)
        // has no change to sum up, and would read as every file deleted.
        let record = serde_json::to_vec(&made).expect("a worktree record serializes");
        write_atomically(dir.path(), WORKTREE_RECORD, &record, true)
            .map_err(|err| format!("could not record the job's worktree: {err}"))?;
        tracing::info!(job = %id, took = ?started.elapsed(), "made the job's worktree");
        let cwd = path.join(&repo.subdir);
        if !cwd.is_dir() {
            return Err(format!(
                "the cwd is {} in the repository, which its commit {base} does not have \
                 (untracked, ignored or empty there): start the job from a directory \
                 the commit has, or without a worktree",
                repo.subdir.display()
            ));
        }
        spec.cwd = cwd;
        Ok(spec)
    }

    /// The record of a job's worktree, if one was made whole.
    fn worktree_made(&self, id: JobId) -> Option<worktree::Made> {
        let bytes = std::fs::read(self.job_dir(id).worktree_record()).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// What a job in a worktree changed, committed on its branch, with the patch
    /// written beside its logs; `None` for other jobs, and for those whose worktree
    /// never came to be.
    fn summarize_change(&self, job: &Job) -> Option<Change> {
        if job.spec.isolation == Isolation::None {
            return None;
        }
        let made = self.worktree_made(job.id)?;
        let dir = self.job_dir(job.id);
        match worktree::summarize(&dir.worktree(), &made, job.id, &dir.patch()) {
            Ok(change) => Some(change),
            Err(err) => {
                tracing::warn!(job = %job.id, "could not sum up what the job changed: {err}");
                None
            }
        }
    }

    /// Finishes a job from what its runner left, once the runner is gone.
    fn runner_gone(self: &Arc<Self>, id: JobId) {
        let dir = self.job_dir(id);
        match crate::runner::collect(&dir) {
            RunEnd::Recorded {
                exit,
                thread_id,
                usage,
            } => {
                self.update_live(id, thread_id, usage);
                let (state, outcome) = exit.outcome();
                self.finish(id, state, outcome, Some(exit));
            }
            RunEnd::Lost => self.finish(
                id,
                JobState::Failed,
                Outcome {
                    failure_reason: Some(FailureReason::Lost),
                    error: format!(
                        "the job's runner ended without recording an exit status (see {})",
                        dir.runner_log().display()
                    ),
                    ..Outcome::default()
                },
                None,
            ),
        }
    }

    /// Copies what the runner reported so far into the live job.
    fn update_live(&self, id: JobId, thread_id: Option<String>, usage: Option<TokenUsage>) {
        if let Some(entry) = self.live().jobs.get_mut(&id) {
            if let Some(thread_id) = thread_id {
                entry.job.thread_id = thread_id;
            }
            if usage.is_some() {
                entry.job.usage = usage;
            }
        }
    }

    /// Moves a live job to its terminal state, then starts what the freed run slot
    /// allows.
    fn finish(
        self: &Arc<Self>,
        id: JobId,
        state: JobState,
        outcome: Outcome,
        exit: Option<ExitRecord>,
    ) {
        if self.settle(id, state, outcome, exit) {
            self.dispatch();
        }
    }

    /// `finish` without dispatching; false if the job was not live (or is being
    /// finished already). Stored first, then dropped from the live set, so a reader
    /// always finds the job in one place or the other; the live lock is not held
    /// while the store writes.
    fn settle(
        self: &Arc<Self>,
        id: JobId,
        state: JobState,
        outcome: Outcome,
        exit: Option<ExitRecord>,
    ) -> bool {
        self.settle_if(id, |_| true, state, outcome, exit)
    }

    /// `settle`, if the live job is as `applies` wants it.
    fn settle_if(
        self: &Arc<Self>,
        id: JobId,
        applies: impl FnOnce(&Job) -> bool,
        state: JobState,
        outcome: Outcome,
        exit: Option<ExitRecord>,
    ) -> bool {
        let mut job = {
            let mut live = self.live();
            let Some(entry) = live.jobs.get_mut(&id) else {
                return false;
            };
            if entry.finishing || !applies(&entry.job) {
                return false;
            }
            entry.finishing = true;
            entry.job.clone()
        };
        job.state = state;
        job.outcome = outcome;
        job.finished_at = Some(exit.as_ref().map_or_else(now_millis, |e| e.finished_at));
        if let Some(exit) = exit {
            job.final_message = exit.final_message;
        }
        job.change = self.summarize_change(&job);
        job.output_size = file_size(&self.log_path(id, OutputStream::Transcript));
        job.disk_bytes = dir_size(self.job_dir(id).path());
        if let Err(err) = self.store_end(&job) {
            // The job stays live until its end is stored: a full disk gets room
            // again, a restarted server finishes it from the runner's record.
            tracing::error!(job = %id, "could not store the finished job, will retry: {err}");
            self.clone().retry_settle(job);
            return false;
        }
        self.settled(job);
        true
    }

    /// Stores the end of a job this host ran.
    fn store_end(&self, job: &Job) -> crate::store::Result<()> {
        if !self.store.finish(job, JobState::Running)? {
            tracing::warn!(job = %job.id, "the store had the job as ended already");
        }
        Ok(())
    }

    /// Stores a finished job again and again (backing off to once a minute) until
    /// the store takes it, then finishes it and starts what its run slot allows.
    fn retry_settle(self: Arc<Self>, job: Job) {
        tokio::spawn(async move {
            let mut pause = Duration::from_secs(1);
            let mut job = job;
            loop {
                tokio::time::sleep(pause).await;
                let stored;
                (stored, job) = self
                    .blocking(move |manager| (manager.store_end(&job), job))
                    .await;
                match stored {
                    Ok(()) => {
                        self.blocking(move |manager| {
                            manager.settled(job);
                            manager.dispatch();
                        })
                        .await;
                        return;
                    }
                    Err(err) => {
                        tracing::warn!(job = %job.id, "still cannot store the finished job: {err}")
                    }
                }
                pause = (pause * 2).min(Duration::from_secs(60));
            }
        });
    }

    /// Drops a job whose end is stored from the live set, and wakes its waiters.
    fn settled(&self, job: Job) {
        let id = job.id;
        {
            let mut live = self.live();
            if let Some(entry) = live.jobs.remove(&id) {
                entry.bump();
                live.running -= 1;
            }
        }
        self.watcher.remove(id);
        tracing::info!(job = %id, state = ?job.state, error = %job.outcome.error, "job finished");
        // Nobody listening is no error.
        let _ = self.ended.send(job);
    }

    /// Every job from now on, once its end is stored.
    pub fn ended_jobs(&self) -> tokio::sync::broadcast::Receiver<Job> {
        self.ended.subscribe()
    }

    /// The jobs running on this host now.
    pub fn running(&self) -> usize {
        self.live().jobs.len()
    }

    /// How many stored jobs are in each state.
    pub async fn count_by_state(self: &Arc<Self>) -> Result<Vec<(JobState, u64)>> {
        self.blocking(|manager| Ok(manager.store.count_by_state()?))
            .await
    }
}

/// Why a claimed job did not start.
enum Launch {
    /// This host's policy forbids it here (its cwd, its sandbox).
    Refused(String),
    /// It could not be started.
    Failed(String),
}

/// Wakes a reader of a job when the job or its output may have changed.
enum Waiter {
    /// It runs here: its own channel, which also tells of its output.
    Live(tokio::sync::watch::Receiver<u64>),
    /// It is queued, or runs elsewhere: the store's announcements of changes, and
    /// this host's claims.
    Store {
        changes: tokio::sync::broadcast::Receiver<Announcement>,
        launched: tokio::sync::broadcast::Receiver<JobId>,
        id: JobId,
    },
}

impl Waiter {
    /// Returns once the job may have changed since the waiter was made.
    async fn changed(&mut self) {
        match self {
            // An error: the job left the live set, which is a change too.
            Waiter::Live(receiver) => {
                let _ = receiver.changed().await;
            }
            Waiter::Store {
                changes,
                launched,
                id,
            } => loop {
                use tokio::sync::broadcast::error::RecvError;
                tokio::select! {
                    change = changes.recv() => match change {
                        Ok(Announcement::Changed(change)) if change.id != *id => {}
                        Ok(_) | Err(RecvError::Lagged(_)) => return,
                        // The store is gone: so is the server, and nothing will change.
                        Err(RecvError::Closed) => std::future::pending().await,
                    },
                    launched_id = launched.recv() => match launched_id {
                        Ok(launched_id) if launched_id != *id => {}
                        Ok(_) | Err(RecvError::Lagged(_)) => return,
                        Err(RecvError::Closed) => std::future::pending().await,
                    },
                }
            },
        }
    }
}

/// A file's size, zero if it does not exist.
fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |meta| meta.len())
}

/// The bytes a job's directory takes on disk: its files' allocated blocks (a job
/// dir holds files only).
fn dir_size(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(path).map_or(0, |entries| {
        entries
            .filter_map(|entry| entry.ok()?.metadata().ok())
            .map(|meta| meta.blocks() * 512)
            .sum()
    })
}
