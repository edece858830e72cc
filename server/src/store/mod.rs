//! The job store: job metadata in a database, behind one interface, so that the
//! same server keeps its jobs in an embedded SQLite file (the default: nothing to
//! install or start) or in a PostgreSQL database that operators already run and
//! back up. These modules are the only ones that speak SQL.
//!
//! Output stays in the jobs' own files; the store keeps their size.
//!
//! Every change of a job's state gets the next `version` in the same transaction and
//! is announced on `changes()` in that order, after it is stored: a Watch replays
//! what changed after a version from the table, then follows the announcements.
//!
//! The interface blocks: the manager calls it from tokio's blocking threads only,
//! as it does the job files.

mod migrations;
mod postgres;
mod query;
mod sqlite;

use std::{
    path::{Path, PathBuf},
    sync::Mutex,
};

use tokio::sync::broadcast;

use crate::job::{
    Change as WorkChange, FailureReason, Host, Isolation, Job, JobId, JobSpec, JobState,
    ListFilter, Millis, Outcome, Page, ProcessIdentity, ReasoningEffort, TokenUsage, WatchFilter,
};

/// Where a PostgreSQL store is, and how to trust it.
#[derive(Clone)]
pub struct PostgresConfig {
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=...]`.
    pub url: String,
    /// A PEM file of CA certificates to trust besides the system's, for TLS.
    pub ca_cert: Option<PathBuf>,
}

impl std::fmt::Debug for PostgresConfig {
    /// Without the URL, which may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("ca_cert", &self.ca_cert)
            .finish_non_exhaustive()
    }
}

/// A failure of the database, or of reaching it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("job store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("job database {database}: {}", postgres::with_causes(error))]
    Postgres {
        database: String,
        error: tokio_postgres::Error,
    },
    /// The database cannot be reached now; the server keeps trying.
    #[error("the job database {database} is unavailable: {reason}")]
    Unavailable { database: String, reason: String },
    /// A column holds what this server cannot read.
    #[error("job store: the column {column} holds {value:?}, which this server cannot read")]
    BadColumn { column: String, value: String },
    #[error("{0}")]
    Schema(String),
}

impl StoreError {
    /// The database could not grow: the disk (or its quota) is full.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(failure, _)) => {
                failure.code == rusqlite::ErrorCode::DiskFull
            }
            StoreError::Postgres { error, .. } => {
                error.code() == Some(&tokio_postgres::error::SqlState::DISK_FULL)
            }
            _ => false,
        }
    }

    /// The database is out of reach for now (and may come back).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// A job's state changed: stored as `version`, higher than any before it (a change
/// that came to nothing may leave a number unused).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Change {
    pub version: u64,
    pub id: JobId,
    /// The state it changed to.
    pub state: JobState,
}

/// What `changes()` announces.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Announcement {
    Changed(Change),
    /// Changes may have gone unannounced (the database connection that hears them
    /// was lost): read what changed from the table.
    Missed,
}

/// Announcements a Watch may fall behind by before it replays from the table.
const CHANGES_BUFFERED: usize = 1024;

/// What `insert` did.
pub enum Inserted {
    /// Stored as this version.
    New(u64),
    /// The request id belongs to this job already: nothing stored.
    Existing(Box<Job>),
    /// This many jobs wait already, the most the queue takes: nothing stored.
    QueueFull(u64),
}

/// One database, as the store uses it. Each change of state returns the version
/// it was stored as, or `None` if it changed nothing.
trait Backend: Send + Sync {
    fn insert(&self, job: &Job, request_ids_since: Millis, max_queued: usize) -> Result<Inserted>;
    /// Takes the oldest queued job `host` may run, as running there.
    fn claim(&self, host: &str, pools: &[String], started_at: Millis)
    -> Result<Option<(Job, u64)>>;
    /// Puts a job `host` claimed but cannot run back in the queue, for the other
    /// hosts, with `job.outcome.error` saying why; returns the hosts that have
    /// refused it so far. `None` if it is not `host`'s running job.
    fn hand_back(&self, job: &Job, host: &str) -> Result<Option<(u64, Vec<String>)>>;
    /// Stores a job's end, if it is still `was` on `job.host`.
    fn finish(&self, job: &Job, was: JobState) -> Result<Option<u64>>;
    fn find_request(&self, request_id: &str, since: Millis) -> Result<Option<Job>>;
    fn set_runner(&self, id: JobId, runner: ProcessIdentity) -> Result<()>;
    fn runner(&self, id: JobId) -> Result<Option<ProcessIdentity>>;
    fn get(&self, id: JobId) -> Result<Option<Job>>;
    fn get_versioned(&self, id: JobId) -> Result<Option<(Job, u64)>>;
    /// Running jobs, oldest first: those of `host`, or all.
    fn running(&self, host: Option<&str>) -> Result<Vec<Job>>;
    fn changed_since(&self, query: &query::Query) -> Result<(Vec<(Job, u64)>, u64)>;
    fn list(&self, query: &query::Query) -> Result<Vec<Job>>;
    /// Deletes a job that has ended; false if there is none.
    fn delete(&self, id: JobId) -> Result<bool>;
    /// `(state, jobs)` for each state some job is in.
    fn count_by_state(&self) -> Result<Vec<(String, i64)>>;
    /// Records a host as it starts, or as it is at a heartbeat.
    fn put_host(&self, host: &Host) -> Result<()>;
    fn hosts(&self) -> Result<Vec<Host>>;
    /// Whether other servers share this database: then changes are announced as the
    /// database tells them, in commit order, whoever made them (see `listen`).
    fn is_shared(&self) -> bool;
    /// Sends every change the database tells of to `changes`, from now on.
    fn listen(&self, changes: broadcast::Sender<Announcement>) -> Result<()>;
}

pub struct Store {
    backend: Box<dyn Backend>,
    changes: broadcast::Sender<Announcement>,
    /// Held from a change's transaction to its announcement, so announcements go
    /// out in version order.
    writing: Mutex<()>,
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path`.
    pub fn sqlite(path: &Path) -> Result<Store> {
        Store::with(Box::new(sqlite::Sqlite::open(path)?))
    }

    /// Connects to the PostgreSQL database `config` names, bringing its schema up to
    /// date. Must be called within a tokio runtime, off its workers.
    pub fn postgres(config: &PostgresConfig) -> Result<Store> {
        Store::with(Box::new(postgres::Postgres::connect(config)?))
    }

    fn with(backend: Box<dyn Backend>) -> Result<Store> {
        let changes = broadcast::channel(CHANGES_BUFFERED).0;
        backend.listen(changes.clone())?;
        Ok(Store {
            backend,
            changes,
            writing: Mutex::new(()),
        })
    }

    /// The changes of job states from now on, in version order.
    pub fn changes(&self) -> broadcast::Receiver<Announcement> {
        self.changes.subscribe()
    }

    /// Whether other servers share the store.
    pub fn is_shared(&self) -> bool {
        self.backend.is_shared()
    }

    /// Runs one change of state and announces it once it is stored (a shared
    /// database announces it itself).
    fn change<T>(&self, change: impl FnOnce() -> Result<(T, Option<Change>)>) -> Result<T> {
        let _in_order = self
            .writing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (result, change) = change()?;
        if let Some(change) = change
            && !self.backend.is_shared()
        {
            // No receiver is no error: nobody watches.
            let _ = self.changes.send(Announcement::Changed(change));
        }
        Ok(result)
    }

    /// Stores a new job, unless `max_queued` jobs wait already
    /// (`Inserted::QueueFull`). If `job.request_id` was used by a job created at or
    /// after `request_ids_since`, stores nothing and returns that job instead.
    pub fn insert(
        &self,
        job: &Job,
        request_ids_since: Millis,
        max_queued: usize,
    ) -> Result<Inserted> {
        self.change(|| {
            let inserted = self.backend.insert(job, request_ids_since, max_queued)?;
            let change = match &inserted {
                Inserted::New(version) => Some(Change {
                    version: *version,
                    id: job.id,
                    state: job.state,
                }),
                _ => None,
            };
            Ok((inserted, change))
        })
    }

    /// Takes the oldest queued job that `host`, serving `pools`, may run: it is
    /// running there from `started_at` on. Claims of several hosts take their turns
    /// (on the version row) and each gets another job.
    pub fn claim(&self, host: &str, pools: &[String], started_at: Millis) -> Result<Option<Job>> {
        self.change(|| {
            Ok(match self.backend.claim(host, pools, started_at)? {
                Some((job, version)) => {
                    let change = Change {
                        version,
                        id: job.id,
                        state: job.state,
                    };
                    (Some(job), Some(change))
                }
                None => (None, None),
            })
        })
    }

    /// Puts a job this host claimed but cannot run back in the queue, where only
    /// other hosts may take it, with `job.outcome.error` saying why; returns every
    /// host that has refused it so far (`None` if the job is not running on `host`).
    pub fn hand_back(&self, job: &Job, host: &str) -> Result<Option<Vec<String>>> {
        self.change(|| {
            Ok(match self.backend.hand_back(job, host)? {
                Some((version, refused)) => {
                    let change = Change {
                        version,
                        id: job.id,
                        state: JobState::Queued,
                    };
                    (Some(refused), Some(change))
                }
                None => (None, None),
            })
        })
    }

    /// Records a job's terminal state and everything its run produced, if the job
    /// is still `was` on `job.host` (a queued job another host took meanwhile is not
    /// ended here); false if it was not.
    pub fn finish(&self, job: &Job, was: JobState) -> Result<bool> {
        self.change(|| {
            let change = self.backend.finish(job, was)?.map(|version| Change {
                version,
                id: job.id,
                state: job.state,
            });
            Ok((change.is_some(), change))
        })
    }

    /// Records a host as it starts, or at a heartbeat.
    pub fn put_host(&self, host: &Host) -> Result<()> {
        self.backend.put_host(host)
    }

    /// Every host that shares the store, by id.
    pub fn hosts(&self) -> Result<Vec<Host>> {
        self.backend.hosts()
    }

    /// The job created with `request_id` at or after `since`, if any.
    pub fn find_request(&self, request_id: &str, since: Millis) -> Result<Option<Job>> {
        self.backend.find_request(request_id, since)
    }

    /// Records which process runs a job, so that a restarted server can find it even
    /// before the runner has written anything.
    pub fn set_runner(&self, id: JobId, runner: ProcessIdentity) -> Result<()> {
        self.backend.set_runner(id, runner)
    }

    /// The runner recorded by `set_runner`.
    pub fn runner(&self, id: JobId) -> Result<Option<ProcessIdentity>> {
        self.backend.runner(id)
    }

    pub fn get(&self, id: JobId) -> Result<Option<Job>> {
        self.backend.get(id)
    }

    /// Running jobs, oldest first: those of `host` (empty: from before hosts had
    /// ids), or all. What a restarted server takes over.
    pub fn running(&self, host: Option<&str>) -> Result<Vec<Job>> {
        self.backend.running(host)
    }

    /// A job with the version of its latest change.
    pub fn get_versioned(&self, id: JobId) -> Result<Option<(Job, u64)>> {
        self.backend.get_versioned(id)
    }

    /// The jobs that match `filter` whose latest change is after version `since`,
    /// oldest change first, at most `limit` of them; and the latest version of all,
    /// read in the same transaction. `initial`: these are the jobs a Watch starts
    /// with, so `filter.states` applies; else a change counts whatever state it led to.
    pub fn changed_since(
        &self,
        since: u64,
        filter: &WatchFilter,
        initial: bool,
        limit: usize,
    ) -> Result<(Vec<(Job, u64)>, u64)> {
        let query = query::changed_since(since, filter, initial, limit);
        self.backend.changed_since(&query)
    }

    /// Deletes the record of a job that has ended (not its files); false if no job
    /// with that id has ended.
    pub fn delete(&self, id: JobId) -> Result<bool> {
        self.backend.delete(id)
    }

    /// How many jobs are in each state.
    pub fn count_by_state(&self) -> Result<Vec<(JobState, u64)>> {
        self.backend
            .count_by_state()?
            .into_iter()
            .map(|(state, count)| Ok((named("state", &state, JobState::from_name)?, count as u64)))
            .collect()
    }

    /// Up to `limit` jobs in one of `states` (all that end, if empty) that ended
    /// before `cutoff`, oldest first: those `host` ran (or that never ran), or all.
    pub fn ended_before(
        &self,
        cutoff: Millis,
        states: &[JobState],
        host: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Job>> {
        self.backend
            .list(&query::ended_before(cutoff, states, host, limit))
    }

    /// One page of jobs, newest first.
    pub fn list(&self, filter: &ListFilter) -> Result<Page> {
        let mut jobs = self.backend.list(&query::list(filter))?;
        let next = if jobs.len() > filter.limit {
            jobs.truncate(filter.limit);
            jobs.last().map(|job| job.id)
        } else {
            None
        };
        Ok(Page { jobs, next })
    }
}

/// A job as its row holds it, read by either backend and made a `Job` in one place.
struct JobRow {
    id: String,
    state: String,
    request_id: Option<String>,
    created_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    prompt: String,
    cwd: String,
    model: String,
    sandbox: String,
    timeout_ms: Option<i64>,
    resume_thread_id: String,
    labels: String,
    failure_reason: Option<String>,
    error: String,
    exit_code: Option<i32>,
    signal: Option<i32>,
    thread_id: String,
    final_message: String,
    usage: Option<String>,
    output_size: i64,
    created_by: String,
    output_note: String,
    reasoning_effort: String,
    disk_bytes: i64,
    pool: String,
    target_host: String,
    host: String,
    worktree_base: Option<String>,
    group_id: String,
    change: Option<String>,
}

/// The columns a `JobRow` is read from, in its order.
const JOB_COLUMNS: &str = "id, state, request_id, created_at, started_at, finished_at, prompt, \
    cwd, model, sandbox, timeout_ms, resume_thread_id, labels, failure_reason, error, exit_code, \
    signal, thread_id, final_message, usage, output_size, created_by, output_note, \
    reasoning_effort, disk_bytes, pool, target_host, host, worktree_base, group_id, change";

/// A value read from `column` that this server cannot make sense of.
fn bad_column(column: &str, value: &str) -> StoreError {
    StoreError::BadColumn {
        column: column.into(),
        value: value.into(),
    }
}

/// Parses a column that holds one of `parse`'s names.
fn named<T>(column: &str, text: &str, parse: fn(&str) -> Option<T>) -> Result<T> {
    parse(text).ok_or_else(|| bad_column(column, text))
}

impl JobRow {
    fn into_job(self) -> Result<Job> {
        let failure_reason = self
            .failure_reason
            .as_deref()
            .map(|text| named("failure_reason", text, FailureReason::from_name))
            .transpose()?;
        let reasoning_effort = match self.reasoning_effort.as_str() {
            "" => None,
            text => Some(named("reasoning_effort", text, ReasoningEffort::from_name)?),
        };
        let usage = self
            .usage
            .map(|text| {
                serde_json::from_str::<TokenUsage>(&text).map_err(|_| bad_column("usage", &text))
            })
            .transpose()?;
        let change = self
            .change
            .map(|text| {
                serde_json::from_str::<WorkChange>(&text).map_err(|_| bad_column("change", &text))
            })
            .transpose()?;
        Ok(Job {
            id: self.id.parse().map_err(|_| bad_column("id", &self.id))?,
            spec: JobSpec {
                prompt: self.prompt,
                cwd: self.cwd.into(),
                model: self.model,
                sandbox: self
                    .sandbox
                    .parse()
                    .map_err(|_| bad_column("sandbox", &self.sandbox))?,
                timeout: self
                    .timeout_ms
                    .map(|ms| std::time::Duration::from_millis(ms as u64)),
                labels: serde_json::from_str(&self.labels)
                    .map_err(|_| bad_column("labels", &self.labels))?,
                resume_thread_id: self.resume_thread_id,
                reasoning_effort,
                pool: self.pool,
                host: self.target_host,
                isolation: match self.worktree_base {
                    None => Isolation::None,
                    Some(base) => Isolation::Worktree { base },
                },
            },
            request_id: self.request_id,
            state: named("state", &self.state, JobState::from_name)?,
            outcome: Outcome {
                failure_reason,
                error: self.error,
                exit_code: self.exit_code,
                signal: self.signal,
                output_note: self.output_note,
            },
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            thread_id: self.thread_id,
            final_message: self.final_message,
            usage,
            output_size: self.output_size as u64,
            disk_bytes: self.disk_bytes as u64,
            created_by: self.created_by,
            host: self.host,
            host_unreachable: false,
            group: self.group_id,
            change,
        })
    }
}

/// How a job's spec and outcome are written: the same text in both backends.
fn labels_text(job: &Job) -> String {
    serde_json::to_string(&job.spec.labels).expect("labels serialize")
}

fn change_text(job: &Job) -> Option<String> {
    job.change
        .as_ref()
        .map(|change| serde_json::to_string(change).expect("changes serialize"))
}

fn usage_text(job: &Job) -> Option<String> {
    job.usage
        .map(|usage| serde_json::to_string(&usage).expect("usage serializes"))
}

/// The host ids of a `refused_by` column (` a b `).
fn hosts_in(refused_by: &str) -> Vec<String> {
    refused_by.split_whitespace().map(String::from).collect()
}

fn pools_text(host: &Host) -> String {
    serde_json::to_string(&host.pools).expect("pools serialize")
}

/// A host as its row holds it.
struct HostRow {
    id: String,
    address: String,
    pools: String,
    max_running: i64,
    running: i64,
    started_at: i64,
    heartbeat_at: i64,
}

const HOST_COLUMNS: &str = "id, address, pools, max_running, running, started_at, heartbeat_at";

impl HostRow {
    fn into_host(self) -> Result<Host> {
        Ok(Host {
            pools: serde_json::from_str(&self.pools)
                .map_err(|_| bad_column("pools", &self.pools))?,
            id: self.id,
            address: self.address,
            max_running: self.max_running as u32,
            running: self.running as u32,
            started_at: self.started_at,
            heartbeat_at: self.heartbeat_at,
        })
    }
}

#[cfg(test)]
mod tests;
