//! The job store in an embedded SQLite database (`jobs.db` in the state dir), the
//! default: a real transactional database that needs nothing installed or started,
//! survives `kill -9` (WAL mode), and answers List over many thousands of jobs from
//! an index.

use std::{path::Path, sync::Mutex, time::Duration};

use rusqlite::{
    Connection, OptionalExtension, Row, Transaction, params, params_from_iter, types::Value,
};

use super::{
    Announcement, Backend, HOST_COLUMNS, HostRow, Inserted, JOB_COLUMNS, JobRow, Result,
    change_text, labels_text, migrations, pools_text,
    query::{self, Arg, Query},
    usage_text,
};
use crate::job::{
    FailureReason, Host, Job, JobId, JobState, Millis, ProcessIdentity, ReasoningEffort,
};

pub struct Sqlite {
    db: Mutex<Connection>,
}

impl Sqlite {
    /// Opens (creating if needed) the database at `path`, at the current schema.
    pub fn open(path: &Path) -> Result<Sqlite> {
        let mut db = Connection::open(path)?;
        // WAL: a commit survives the process being killed; readers never block.
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "NORMAL")?;
        db.busy_timeout(Duration::from_secs(5))?;
        migrate(&mut db, &path.display().to_string())?;
        Ok(Sqlite { db: Mutex::new(db) })
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `update` (which reports the rows it changed) with the next version.
    fn change_state(
        &self,
        update: impl FnOnce(&Transaction, u64) -> rusqlite::Result<usize>,
    ) -> Result<Option<u64>> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let version = next_version(&tx)?;
        let changed = update(&tx, version)? > 0;
        tx.commit()?;
        Ok(changed.then_some(version))
    }

    fn query_jobs<T>(
        &self,
        query: &Query,
        read: fn(&Row) -> rusqlite::Result<T>,
    ) -> Result<Vec<rusqlite::Result<T>>> {
        let db = self.db();
        let mut statement = db.prepare_cached(&query.sql)?;
        let rows = statement
            .query_map(params_from_iter(query.args.iter().map(value)), read)?
            .collect();
        Ok(rows)
    }
}

/// Applies the migrations the database lacks; refuses one that is newer.
fn migrate(db: &mut Connection, name: &str) -> Result<()> {
    let found: i64 = db.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let known = migrations::SQLITE.len();
    if found > known as i64 {
        return Err(migrations::too_new(name, found, known));
    }
    for (index, migration) in migrations::SQLITE.iter().enumerate().skip(found as usize) {
        let tx = db.transaction()?;
        tx.execute_batch(migration)?;
        if index == 0 {
            add_missing_columns(&tx)?;
        }
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// Brings a database from before schema versions up to the first: the columns
/// added since, each with its default.
fn add_missing_columns(db: &Connection) -> rusqlite::Result<()> {
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

impl Backend for Sqlite {
    fn insert(&self, job: &Job, request_ids_since: Millis, max_queued: usize) -> Result<Inserted> {
        let mut db = self.db();
        // Immediate: the count of waiting jobs holds until the new one is in.
        let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if let Some(request_id) = &job.request_id {
            let existing = tx
                .query_row(
                    &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE request_id = ?1"),
                    [request_id],
                    job_row,
                )
                .optional()?
                .map(JobRow::into_job)
                .transpose()?;
            match existing {
                Some(existing) if existing.created_at >= request_ids_since => {
                    return Ok(Inserted::Existing(Box::new(existing)));
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
        let waiting: i64 = tx.query_row(query::COUNT_QUEUED, [], |row| row.get(0))?;
        if waiting as usize >= max_queued {
            return Ok(Inserted::QueueFull(waiting as u64));
        }
        let spec = &job.spec;
        let version = next_version(&tx)?;
        tx.execute(
            "INSERT INTO jobs (id, state, request_id, created_at, prompt, cwd, model, sandbox, \
             timeout_ms, resume_thread_id, labels, created_by, version, reasoning_effort, pool, \
             target_host, worktree_base, group_id) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
             ?18)",
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
                labels_text(job),
                job.created_by,
                version as i64,
                spec.reasoning_effort.map_or("", ReasoningEffort::name),
                spec.pool,
                spec.host,
                job.spec.isolation.base(),
                job.group,
            ],
        )?;
        for (key, value) in &spec.labels {
            tx.execute(
                "INSERT INTO job_labels (key, value, job_id) VALUES (?1, ?2, ?3)",
                params![key, value, job.id.to_string()],
            )?;
        }
        tx.commit()?;
        Ok(Inserted::New(version))
    }

    fn claim(
        &self,
        host: &str,
        pools: &[String],
        started_at: Millis,
    ) -> Result<Option<(Job, u64)>> {
        let pools = serde_json::to_string(pools).expect("pools serialize");
        let mut db = self.db();
        let tx = db.transaction()?;
        let version = next_version(&tx)?;
        let row = tx
            .query_row(
                &format!(
                    "UPDATE jobs SET state = 'running', started_at = ?3, host = ?1, version = ?4 \
                     WHERE id = (SELECT id FROM jobs WHERE state = 'queued' \
                         AND pool IN (SELECT value FROM json_each(?2)) \
                         AND target_host IN ('', ?1) \
                         AND instr(refused_by, ' ' || ?1 || ' ') = 0 ORDER BY id LIMIT 1) \
                     RETURNING {JOB_COLUMNS}"
                ),
                params![host, pools, started_at, version as i64],
                job_row,
            )
            .optional()?;
        let Some(row) = row else {
            // Nothing to take: the version goes unused.
            return Ok(None);
        };
        // Read before the commit: a row this server cannot read stays queued.
        let job = row.into_job()?;
        tx.commit()?;
        Ok(Some((job, version)))
    }

    fn hand_back(&self, job: &Job, host: &str) -> Result<Option<(u64, Vec<String>)>> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let version = next_version(&tx)?;
        let refused: Option<String> = tx
            .query_row(
                "UPDATE jobs SET state = 'queued', host = '', started_at = NULL, version = ?3, \
                 error = ?4, refused_by = CASE refused_by WHEN '' THEN ' ' ELSE refused_by END \
                     || ?2 || ' ' \
                 WHERE id = ?1 AND state = 'running' AND host = ?2 RETURNING refused_by",
                params![job.id.to_string(), host, version as i64, job.outcome.error],
                |row| row.get(0),
            )
            .optional()?;
        let Some(refused) = refused else {
            return Ok(None);
        };
        tx.commit()?;
        Ok(Some((version, super::hosts_in(&refused))))
    }

    fn finish(&self, job: &Job, was: JobState) -> Result<Option<u64>> {
        let outcome = &job.outcome;
        self.change_state(|tx, version| {
            tx.execute(
                "UPDATE jobs SET state = ?2, started_at = ?3, finished_at = ?4, \
                 failure_reason = ?5, error = ?6, exit_code = ?7, signal = ?8, thread_id = ?9, \
                 final_message = ?10, usage = ?11, output_size = ?12, output_note = ?13, \
                 version = ?14, disk_bytes = ?15, change = ?18 \
                 WHERE id = ?1 AND state = ?17 AND host = ?16",
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
                    usage_text(job),
                    job.output_size as i64,
                    outcome.output_note,
                    version as i64,
                    job.disk_bytes as i64,
                    job.host,
                    was.name(),
                    change_text(job),
                ],
            )
        })
    }

    fn find_request(&self, request_id: &str, since: Millis) -> Result<Option<Job>> {
        let db = self.db();
        let mut query = db.prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE request_id = ?1 AND created_at >= ?2"
        ))?;
        let row = query
            .query_row(params![request_id, since], job_row)
            .optional()?;
        row.map(JobRow::into_job).transpose()
    }

    fn set_runner(&self, id: JobId, runner: ProcessIdentity) -> Result<()> {
        self.db().execute(
            "UPDATE jobs SET runner_pid = ?2, runner_start_time = ?3 WHERE id = ?1",
            params![id.to_string(), runner.pid, runner.start_time as i64],
        )?;
        Ok(())
    }

    fn runner(&self, id: JobId) -> Result<Option<ProcessIdentity>> {
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

    fn get(&self, id: JobId) -> Result<Option<Job>> {
        let db = self.db();
        // Poll reads finished jobs here: keep the statement prepared.
        let mut query =
            db.prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"))?;
        let row = query.query_row([id.to_string()], job_row).optional()?;
        row.map(JobRow::into_job).transpose()
    }

    fn get_versioned(&self, id: JobId) -> Result<Option<(Job, u64)>> {
        let db = self.db();
        let mut query = db.prepare_cached(&format!(
            "SELECT {JOB_COLUMNS}, version FROM jobs WHERE id = ?1"
        ))?;
        let row = query
            .query_row([id.to_string()], versioned_job_row)
            .optional()?;
        row.map(|(row, version)| Ok((row.into_job()?, version)))
            .transpose()
    }

    fn running(&self, host: Option<&str>) -> Result<Vec<Job>> {
        let db = self.db();
        let mut query = db.prepare(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE state = 'running' \
             AND (?1 IS NULL OR host = ?1) ORDER BY id"
        ))?;
        let rows = query
            .query_map([host], job_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(JobRow::into_job).collect()
    }

    fn changed_since(&self, query: &Query) -> Result<(Vec<(Job, u64)>, u64)> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let rows = {
            let mut statement = tx.prepare_cached(&query.sql)?;
            statement
                .query_map(
                    params_from_iter(query.args.iter().map(value)),
                    versioned_job_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?
        };
        let latest: i64 = tx.query_row(query::LATEST_VERSION, [], |row| row.get(0))?;
        tx.commit()?;
        let jobs = rows
            .into_iter()
            .map(|(row, version)| Ok((row.into_job()?, version)))
            .collect::<Result<_>>()?;
        Ok((jobs, latest as u64))
    }

    fn delete(&self, id: JobId) -> Result<bool> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let deleted = tx.execute(
            "DELETE FROM jobs WHERE id = ?1 AND state IN ('succeeded', 'failed', 'cancelled')",
            [id.to_string()],
        )? > 0;
        if deleted {
            tx.execute("DELETE FROM job_labels WHERE job_id = ?1", [id.to_string()])?;
        }
        tx.commit()?;
        Ok(deleted)
    }

    fn count_by_state(&self) -> Result<Vec<(String, i64)>> {
        let db = self.db();
        let mut query = db.prepare_cached(query::COUNT_BY_STATE)?;
        let counts = query
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(counts)
    }

    fn list(&self, query: &Query) -> Result<Vec<Job>> {
        self.query_jobs(query, job_row)?
            .into_iter()
            .map(|row| row?.into_job())
            .collect()
    }

    fn put_host(&self, host: &Host) -> Result<()> {
        self.db().execute(
            &format!(
                "INSERT INTO hosts ({HOST_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                 ON CONFLICT (id) DO UPDATE SET address = ?2, pools = ?3, max_running = ?4, \
                 running = ?5, started_at = ?6, heartbeat_at = ?7"
            ),
            params![
                host.id,
                host.address,
                pools_text(host),
                host.max_running,
                host.running,
                host.started_at,
                host.heartbeat_at,
            ],
        )?;
        Ok(())
    }

    fn hosts(&self) -> Result<Vec<Host>> {
        let db = self.db();
        let mut query =
            db.prepare_cached(&format!("SELECT {HOST_COLUMNS} FROM hosts ORDER BY id"))?;
        let rows = query
            .query_map([], |row| {
                Ok(HostRow {
                    id: row.get(0)?,
                    address: row.get(1)?,
                    pools: row.get(2)?,
                    max_running: row.get(3)?,
                    running: row.get(4)?,
                    started_at: row.get(5)?,
                    heartbeat_at: row.get(6)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(HostRow::into_host).collect()
    }

    /// The file is this server's alone.
    fn is_shared(&self) -> bool {
        false
    }

    /// The store announces its own changes: nothing else writes to the file.
    fn listen(&self, _changes: tokio::sync::broadcast::Sender<Announcement>) -> Result<()> {
        Ok(())
    }
}

fn value(arg: &Arg) -> Value {
    match arg {
        Arg::Text(text) => Value::from(text.clone()),
        Arg::Int(int) => Value::from(*int),
    }
}

/// The version the next change of a job's state gets.
fn next_version(tx: &Transaction) -> rusqlite::Result<u64> {
    tx.query_row(query::NEXT_VERSION, [], |row| row.get::<_, i64>(0))
        .map(|version| version as u64)
}

fn versioned_job_row(row: &Row) -> rusqlite::Result<(JobRow, u64)> {
    let version: i64 = row.get("version")?;
    Ok((job_row(row)?, version as u64))
}

fn job_row(row: &Row) -> rusqlite::Result<JobRow> {
    Ok(JobRow {
        id: row.get("id")?,
        state: row.get("state")?,
        request_id: row.get("request_id")?,
        created_at: row.get("created_at")?,
        started_at: row.get("started_at")?,
        finished_at: row.get("finished_at")?,
        prompt: row.get("prompt")?,
        cwd: row.get("cwd")?,
        model: row.get("model")?,
        sandbox: row.get("sandbox")?,
        timeout_ms: row.get("timeout_ms")?,
        resume_thread_id: row.get("resume_thread_id")?,
        labels: row.get("labels")?,
        failure_reason: row.get("failure_reason")?,
        error: row.get("error")?,
        exit_code: row.get("exit_code")?,
        signal: row.get("signal")?,
        thread_id: row.get("thread_id")?,
        final_message: row.get("final_message")?,
        usage: row.get("usage")?,
        output_size: row.get("output_size")?,
        created_by: row.get("created_by")?,
        output_note: row.get("output_note")?,
        reasoning_effort: row.get("reasoning_effort")?,
        disk_bytes: row.get("disk_bytes")?,
        pool: row.get("pool")?,
        target_host: row.get("target_host")?,
        host: row.get("host")?,
        worktree_base: row.get("worktree_base")?,
        group_id: row.get("group_id")?,
        change: row.get("change")?,
    })
}
