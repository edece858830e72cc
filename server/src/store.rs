//! The job store: job metadata in an embedded SQLite database (`jobs.db` in the
//! state dir). This is the only module that speaks SQL.
//!
//! SQLite because it is a real transactional database that needs nothing installed
//! or started, survives `kill -9` (WAL mode), and answers List over many thousands
//! of jobs from an index. Output stays in the job's own files; the store keeps
//! their size.
//!
//! Every change of a job's state gets the next `version` in the same transaction and
//! is announced on `changes()` in that order, after it is stored: a Watch replays
//! what changed after a version from the table, then follows the announcements.

use std::{collections::BTreeMap, path::Path, sync::Mutex, time::Duration};

use rusqlite::{
    Connection, OptionalExtension, Row, Transaction, params, params_from_iter, types::Value,
};
use tokio::sync::broadcast;

use crate::job::{
    FailureReason, Job, JobId, JobSpec, JobState, ListFilter, Millis, Outcome, Page,
    ProcessIdentity, ReasoningEffort, Sandbox, TokenUsage, WatchFilter,
};

/// A failure of the database itself.
#[derive(Debug, thiserror::Error)]
#[error("job store: {0}")]
pub struct StoreError(#[from] rusqlite::Error);

impl StoreError {
    /// The database could not grow: the disk (or its quota) is full.
    pub fn is_disk_full(&self) -> bool {
        matches!(&self.0, rusqlite::Error::SqliteFailure(failure, _)
            if failure.code == rusqlite::ErrorCode::DiskFull)
    }
}

type Result<T> = std::result::Result<T, StoreError>;

pub struct Store {
    db: Mutex<Connection>,
    changes: broadcast::Sender<Change>,
}

/// A job's state changed: stored as `version`, one more than any before it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Change {
    pub version: u64,
    pub id: JobId,
}

/// Announcements a Watch may fall behind by before it replays from the table.
const CHANGES_BUFFERED: usize = 1024;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id               TEXT PRIMARY KEY,   -- UUID v7: sorts by creation time
    state            TEXT NOT NULL,
    request_id       TEXT UNIQUE,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    prompt           TEXT NOT NULL,
    cwd              TEXT NOT NULL,
    model            TEXT NOT NULL,
    sandbox          TEXT NOT NULL,
    timeout_ms       INTEGER,
    resume_thread_id TEXT NOT NULL,
    labels           TEXT NOT NULL,      -- JSON object, as given
    failure_reason   TEXT,
    error            TEXT NOT NULL DEFAULT '',
    exit_code        INTEGER,
    signal           INTEGER,
    thread_id        TEXT NOT NULL DEFAULT '',
    final_message    TEXT NOT NULL DEFAULT '',
    usage            TEXT,               -- JSON TokenUsage
    output_size      INTEGER NOT NULL DEFAULT 0,
    runner_pid       INTEGER,            -- with runner_start_time: the runner's identity
    runner_start_time INTEGER,
    created_by       TEXT NOT NULL DEFAULT '',
    output_note      TEXT NOT NULL DEFAULT '',
    version          INTEGER NOT NULL DEFAULT 0, -- of the latest change of state (`Change`)
    reasoning_effort TEXT NOT NULL DEFAULT ''    -- '': Codex's default
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, id);
CREATE TABLE IF NOT EXISTS job_labels (
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,
    job_id TEXT NOT NULL,
    PRIMARY KEY (key, value, job_id)
) WITHOUT ROWID;
";

/// The columns a `Job` is read from, in `job_from_row`'s terms.
macro_rules! job_columns {
    () => {
        "id, state, request_id, created_at, started_at, finished_at, prompt, cwd, model, \
         sandbox, timeout_ms, resume_thread_id, labels, failure_reason, error, exit_code, signal, \
         thread_id, final_message, usage, output_size, created_by, output_note, reasoning_effort"
    };
}

const COLUMNS: &str = job_columns!();

const GET_JOB: &str = concat!("SELECT ", job_columns!(), " FROM jobs WHERE id = ?1");

impl Store {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Store> {
        let db = Connection::open(path)?;
        // WAL: a commit survives the process being killed; readers never block.
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "NORMAL")?;
        db.busy_timeout(Duration::from_secs(5))?;
        db.execute_batch(SCHEMA)?;
        migrate(&db)?;
        Ok(Store {
            db: Mutex::new(db),
            changes: broadcast::channel(CHANGES_BUFFERED).0,
        })
    }

    /// The changes of job states from now on, in version order.
    pub fn changes(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// Announces a change once it is committed; the caller still holds the
    /// database, so announcements go out in version order.
    fn announce(&self, version: u64, id: JobId) {
        // No receiver is no error: nobody watches.
        let _ = self.changes.send(Change { version, id });
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stores a new job. If `job.request_id` was used by a job created at or after
    /// `request_ids_since`, stores nothing and returns that job instead.
    pub fn insert(&self, job: &Job, request_ids_since: Millis) -> Result<Option<Job>> {
        let mut db = self.db();
        let tx = db.transaction()?;
        if let Some(request_id) = &job.request_id {
            let existing = tx
                .query_row(
                    &format!("SELECT {COLUMNS} FROM jobs WHERE request_id = ?1"),
                    [request_id],
                    job_from_row,
                )
                .optional()?;
            match existing {
                Some(existing) if existing.created_at >= request_ids_since => {
                    return Ok(Some(existing));
                }
                // Past the retention window: the id is free again.
                Some(_) => {
                    tx.execute(
                        "UPDATE jobs SET request_id = NULL WHERE request_id = ?1",
                        [request_id],
                    )?;
                }
                None => {}
            }
        }
        let spec = &job.spec;
        let version = next_version(&tx)?;
        tx.execute(
            "INSERT INTO jobs (id, state, request_id, created_at, prompt, cwd, model, sandbox, \
             timeout_ms, resume_thread_id, labels, created_by, version, reasoning_effort) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            params![
                job.id.to_string(),
                job.state.name(),
                job.request_id,
                job.created_at,
                spec.prompt,
                spec.cwd.to_string_lossy(),
                spec.model,
                spec.sandbox.name(),
                spec.timeout.map(|t| t.as_millis() as i64),
                spec.resume_thread_id,
                serde_json::to_string(&spec.labels).expect("labels serialize"),
                job.created_by,
                version as i64,
                spec.reasoning_effort.map_or("", ReasoningEffort::name),
            ],
        )?;
        for (key, value) in &spec.labels {
            tx.execute(
                "INSERT INTO job_labels (key, value, job_id) VALUES (?1, ?2, ?3)",
                params![key, value, job.id.to_string()],
            )?;
        }
        tx.commit()?;
        self.announce(version, job.id);
        Ok(None)
    }

    /// Records that a job's runner has started.
    pub fn set_running(&self, id: JobId, started_at: Millis) -> Result<()> {
        self.change_state(id, |tx, version| {
            tx.execute(
                "UPDATE jobs SET state = 'running', started_at = ?2, version = ?3 \
                 WHERE id = ?1 AND state = 'queued'",
                params![id.to_string(), started_at, version as i64],
            )
        })
    }

    /// Runs `update` (which reports the rows it changed) with the next version, and
    /// announces the change if it changed the job.
    fn change_state(
        &self,
        id: JobId,
        update: impl FnOnce(&Transaction, u64) -> rusqlite::Result<usize>,
    ) -> Result<()> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let version = next_version(&tx)?;
        let changed = update(&tx, version)? > 0;
        tx.commit()?;
        if changed {
            self.announce(version, id);
        }
        Ok(())
    }

    /// The job created with `request_id` at or after `since`, if any.
    pub fn find_request(&self, request_id: &str, since: Millis) -> Result<Option<Job>> {
        let db = self.db();
        let mut query = db.prepare_cached(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE request_id = ?1 AND created_at >= ?2"
        ))?;
        Ok(query
            .query_row(params![request_id, since], job_from_row)
            .optional()?)
    }

    /// Records a job's terminal state and everything its run produced.
    pub fn finish(&self, job: &Job) -> Result<()> {
        let outcome = &job.outcome;
        self.change_state(job.id, |tx, version| {
            tx.execute(
            "UPDATE jobs SET state = ?2, started_at = ?3, finished_at = ?4, failure_reason = ?5, \
             error = ?6, exit_code = ?7, signal = ?8, thread_id = ?9, final_message = ?10, \
             usage = ?11, output_size = ?12, output_note = ?13, version = ?14 \
             WHERE id = ?1 AND state IN ('queued', 'running')",
            params![
                job.id.to_string(),
                job.state.name(),
                job.started_at,
                job.finished_at,
                outcome.failure_reason.map(FailureReason::name),
                outcome.error,
                outcome.exit_code,
                outcome.signal,
                job.thread_id,
                job.final_message,
                job.usage
                    .map(|u| serde_json::to_string(&u).expect("usage serializes")),
                job.output_size as i64,
                outcome.output_note,
                version as i64,
            ],
        )
        })
    }

    /// Records which process runs a job, so that a restarted server can find it even
    /// before the runner has written anything.
    pub fn set_runner(&self, id: JobId, runner: ProcessIdentity) -> Result<()> {
        self.db().execute(
            "UPDATE jobs SET runner_pid = ?2, runner_start_time = ?3 WHERE id = ?1",
            params![id.to_string(), runner.pid, runner.start_time as i64],
        )?;
        Ok(())
    }

    /// The runner recorded by `set_runner`.
    pub fn runner(&self, id: JobId) -> Result<Option<ProcessIdentity>> {
        let identity: Option<(Option<u32>, Option<i64>)> = self
            .db()
            .query_row(
                "SELECT runner_pid, runner_start_time FROM jobs WHERE id = ?1",
                [id.to_string()],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        Ok(match identity {
            Some((Some(pid), Some(start_time))) => Some(ProcessIdentity {
                pid,
                start_time: start_time as u64,
            }),
            _ => None,
        })
    }

    pub fn get(&self, id: JobId) -> Result<Option<Job>> {
        let db = self.db();
        // Poll reads finished jobs here: keep the statement prepared.
        let mut query = db.prepare_cached(GET_JOB)?;
        Ok(query.query_row([id.to_string()], job_from_row).optional()?)
    }

    /// Jobs that were queued or running, oldest first: what a restarted server
    /// takes over.
    pub fn unfinished(&self) -> Result<Vec<Job>> {
        let db = self.db();
        let mut query = db.prepare(&format!(
            "SELECT {COLUMNS} FROM jobs WHERE state IN ('queued', 'running') ORDER BY id"
        ))?;
        let jobs = query
            .query_map([], job_from_row)?
            .collect::<rusqlite::Result<_>>()?;
        Ok(jobs)
    }

    /// A job with the version of its latest change.
    pub fn get_versioned(&self, id: JobId) -> Result<Option<(Job, u64)>> {
        let db = self.db();
        let mut query = db.prepare_cached(concat!(
            "SELECT ",
            job_columns!(),
            ", version FROM jobs WHERE id = ?1"
        ))?;
        Ok(query
            .query_row([id.to_string()], versioned_job_from_row)
            .optional()?)
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
        let mut sql = format!("SELECT {COLUMNS}, version FROM jobs WHERE version > ?");
        let mut args = vec![Value::from(since as i64)];
        if initial {
            where_states(&mut sql, &mut args, &filter.states);
        }
        if !filter.ids.is_empty() {
            let marks = vec!["?"; filter.ids.len()].join(", ");
            sql += &format!(" AND id IN ({marks})");
            args.extend(filter.ids.iter().map(|id| Value::from(id.to_string())));
        }
        where_labels(&mut sql, &mut args, &filter.labels);
        sql += " ORDER BY version LIMIT ?";
        args.push(Value::from(limit as i64));
        let mut db = self.db();
        let tx = db.transaction()?;
        let jobs = {
            let mut query = tx.prepare_cached(&sql)?;
            query
                .query_map(params_from_iter(args), versioned_job_from_row)?
                .collect::<rusqlite::Result<_>>()?
        };
        let latest: i64 =
            tx.query_row("SELECT COALESCE(MAX(version), 0) FROM jobs", [], |row| {
                row.get(0)
            })?;
        tx.commit()?;
        Ok((jobs, latest as u64))
    }

    /// One page of jobs, newest first.
    pub fn list(&self, filter: &ListFilter) -> Result<Page> {
        let mut sql = format!("SELECT {COLUMNS} FROM jobs WHERE 1");
        let mut args: Vec<Value> = Vec::new();
        where_states(&mut sql, &mut args, &filter.states);
        if let Some(before) = filter.before {
            sql += " AND id < ?";
            args.push(Value::from(before.to_string()));
        }
        where_labels(&mut sql, &mut args, &filter.labels);
        sql += " ORDER BY id DESC LIMIT ?";
        args.push(Value::from(filter.limit as i64 + 1));
        let db = self.db();
        let mut query = db.prepare_cached(&sql)?;
        let mut jobs: Vec<Job> = query
            .query_map(params_from_iter(args), job_from_row)?
            .collect::<rusqlite::Result<_>>()?;
        let next = if jobs.len() > filter.limit {
            jobs.truncate(filter.limit);
            jobs.last().map(|job| job.id)
        } else {
            None
        };
        Ok(Page { jobs, next })
    }
}

/// Brings a database an earlier version made up to the current schema: the
/// columns added since, each with its default.
fn migrate(db: &Connection) -> rusqlite::Result<()> {
    for (column, definition) in [
        ("created_by", "TEXT NOT NULL DEFAULT ''"),
        ("output_note", "TEXT NOT NULL DEFAULT ''"),
        ("version", "INTEGER NOT NULL DEFAULT 0"),
        ("reasoning_effort", "TEXT NOT NULL DEFAULT ''"),
    ] {
        let present: bool = db.query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info('jobs') WHERE name = ?1",
            [column],
            |row| row.get(0),
        )?;
        if !present {
            db.execute_batch(&format!(
                "ALTER TABLE jobs ADD COLUMN {column} {definition}"
            ))?;
            if column == "version" {
                // Jobs stored before versions get one each, in the order they came.
                db.execute_batch(
                    "UPDATE jobs SET version = numbered.n FROM \
                     (SELECT id, ROW_NUMBER() OVER (ORDER BY id) AS n FROM jobs) AS numbered \
                     WHERE jobs.id = numbered.id",
                )?;
            }
        }
    }
    db.execute_batch("CREATE INDEX IF NOT EXISTS jobs_by_version ON jobs (version)")
}

/// Narrows a query to jobs in one of `states`, if it names any.
fn where_states(sql: &mut String, args: &mut Vec<Value>, states: &[JobState]) {
    if !states.is_empty() {
        let marks = vec!["?"; states.len()].join(", ");
        *sql += &format!(" AND state IN ({marks})");
        args.extend(states.iter().map(|s| Value::from(s.name().to_owned())));
    }
}

/// Narrows a query to jobs that carry every one of `labels`.
fn where_labels(sql: &mut String, args: &mut Vec<Value>, labels: &BTreeMap<String, String>) {
    for (key, value) in labels {
        *sql += " AND id IN (SELECT job_id FROM job_labels WHERE key = ? AND value = ?)";
        args.push(Value::from(key.clone()));
        args.push(Value::from(value.clone()));
    }
}

/// The version the next change of a job's state gets.
fn next_version(tx: &Transaction) -> rusqlite::Result<u64> {
    tx.query_row(
        "SELECT COALESCE(MAX(version), 0) + 1 FROM jobs",
        [],
        |row| row.get::<_, i64>(0),
    )
    .map(|version| version as u64)
}

fn versioned_job_from_row(row: &Row) -> rusqlite::Result<(Job, u64)> {
    let version: i64 = row.get("version")?;
    Ok((job_from_row(row)?, version as u64))
}

/// Reads a text column that must hold one of `parse`'s names.
fn parse_name<T>(row: &Row, column: &str, parse: fn(&str) -> Option<T>) -> rusqlite::Result<T> {
    let text: String = row.get(column)?;
    parse(&text).ok_or_else(|| bad_column(column, &text))
}

fn bad_column(column: &str, text: &str) -> rusqlite::Error {
    rusqlite::Error::InvalidColumnType(0, format!("{column}={text}"), rusqlite::types::Type::Text)
}

fn job_from_row(row: &Row) -> rusqlite::Result<Job> {
    let id: String = row.get("id")?;
    let labels: String = row.get("labels")?;
    let usage: Option<String> = row.get("usage")?;
    let failure_reason = match row.get::<_, Option<String>>("failure_reason")? {
        Some(_) => Some(parse_name(row, "failure_reason", FailureReason::from_name)?),
        None => None,
    };
    let sandbox: String = row.get("sandbox")?;
    Ok(Job {
        id: id.parse().map_err(|_| bad_column("id", &id))?,
        spec: JobSpec {
            prompt: row.get("prompt")?,
            cwd: row.get::<_, String>("cwd")?.into(),
            model: row.get("model")?,
            sandbox: sandbox
                .parse::<Sandbox>()
                .map_err(|_| bad_column("sandbox", &sandbox))?,
            timeout: row
                .get::<_, Option<i64>>("timeout_ms")?
                .map(|ms| Duration::from_millis(ms as u64)),
            labels: serde_json::from_str(&labels).map_err(|_| bad_column("labels", &labels))?,
            resume_thread_id: row.get("resume_thread_id")?,
            reasoning_effort: match row.get::<_, String>("reasoning_effort")?.as_str() {
                "" => None,
                _ => Some(parse_name(
                    row,
                    "reasoning_effort",
                    ReasoningEffort::from_name,
                )?),
            },
        },
        request_id: row.get("request_id")?,
        state: parse_name(row, "state", JobState::from_name)?,
        outcome: Outcome {
            failure_reason,
            error: row.get("error")?,
            exit_code: row.get("exit_code")?,
            signal: row.get("signal")?,
            output_note: row.get("output_note")?,
        },
        created_at: row.get("created_at")?,
        started_at: row.get("started_at")?,
        finished_at: row.get("finished_at")?,
        thread_id: row.get("thread_id")?,
        final_message: row.get("final_message")?,
        usage: usage
            .map(|text| {
                serde_json::from_str::<TokenUsage>(&text).map_err(|_| bad_column("usage", &text))
            })
            .transpose()?,
        output_size: row.get::<_, i64>("output_size")? as u64,
        created_by: row.get("created_by")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(labels: &[(&str, &str)]) -> JobSpec {
        JobSpec {
            prompt: "hello".into(),
            cwd: "/tmp".into(),
            model: String::new(),
            sandbox: Sandbox::WorkspaceWrite,
            timeout: Some(Duration::from_secs(5)),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            resume_thread_id: String::new(),
            reasoning_effort: Some(ReasoningEffort::Medium),
        }
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("jobs.db")).unwrap();
        (dir, store)
    }

    #[test]
    fn jobs_round_trip_through_the_database() {
        let (_dir, store) = store();
        let mut job = Job::queued(
            spec(&[("team", "a")]),
            Some("req-1".into()),
            "token ci".into(),
        );
        assert!(store.insert(&job, 0).unwrap().is_none());
        assert_eq!(store.get(job.id).unwrap().unwrap(), job);

        job.state = JobState::Failed;
        job.started_at = Some(1);
        job.finished_at = Some(2);
        job.outcome = Outcome {
            failure_reason: Some(FailureReason::NonZeroExit),
            error: "codex exited with status 3".into(),
            exit_code: Some(3),
            signal: None,
            output_note: "the output was cut".into(),
        };
        job.usage = Some(TokenUsage {
            input_tokens: 1,
            cached_input_tokens: 2,
            output_tokens: 3,
        });
        job.output_size = 42;
        store.finish(&job).unwrap();
        assert_eq!(store.get(job.id).unwrap().unwrap(), job);
    }

    #[test]
    fn a_request_id_returns_its_job_within_the_window_only() {
        let (_dir, store) = store();
        let first = Job::queued(spec(&[]), Some("same".into()), String::new());
        store.insert(&first, 0).unwrap();
        let retry = Job::queued(spec(&[]), Some("same".into()), String::new());
        assert_eq!(store.insert(&retry, 0).unwrap().unwrap().id, first.id);
        // Once the first job is older than the window, the id starts a new job.
        assert!(
            store
                .insert(&retry, first.created_at + 1)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn list_pages_newest_first_with_filters() {
        let (_dir, store) = store();
        let ids: Vec<JobId> = (0..5)
            .map(|i| {
                let team = if i % 2 == 0 { "even" } else { "odd" };
                let job = Job::queued(spec(&[("team", team)]), None, String::new());
                store.insert(&job, 0).unwrap();
                job.id
            })
            .collect();
        let first = store
            .list(&ListFilter {
                limit: 2,
                ..ListFilter::default()
            })
            .unwrap();
        let listed: Vec<JobId> = first.jobs.iter().map(|j| j.id).collect();
        assert_eq!(listed, vec![ids[4], ids[3]]);
        let rest = store
            .list(&ListFilter {
                limit: 10,
                before: first.next,
                ..ListFilter::default()
            })
            .unwrap();
        assert_eq!(rest.jobs.len(), 3);
        assert!(rest.next.is_none());

        let even = store
            .list(&ListFilter {
                limit: 10,
                labels: [("team".to_string(), "even".to_string())].into(),
                states: vec![JobState::Queued],
                ..ListFilter::default()
            })
            .unwrap();
        let listed: Vec<JobId> = even.jobs.iter().map(|j| j.id).collect();
        assert_eq!(listed, vec![ids[4], ids[2], ids[0]]);
    }
}
