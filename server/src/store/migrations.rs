//! The schema, as numbered migrations for each backend: a database records the
//! version it is at, a server applies what it lacks when it opens it, and refuses
//! one newer than it knows (a newer server wrote to it, and this one could lose what
//! that one keeps).

use super::StoreError;

/// SQLite: the version is the database's `user_version`. The first migration also
/// brings up a database from before versions (columns added since, each with its
/// default; see `sqlite::add_missing_columns`).
pub const SQLITE: &[&str] = &[
    "
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
",
    // 2: what each job takes on disk, stored when it ends.
    "ALTER TABLE jobs ADD COLUMN disk_bytes INTEGER NOT NULL DEFAULT 0;
     CREATE INDEX jobs_by_finish ON jobs (finished_at) WHERE finished_at IS NOT NULL;",
    // 3: the latest version, kept apart from the jobs, so that deleting the job that
    // holds it cannot hand the same version out again.
    "CREATE TABLE versions (latest INTEGER NOT NULL);
     INSERT INTO versions SELECT COALESCE(MAX(version), 0) FROM jobs;",
    // 4: hosts sharing the queue: where a job may run and where it runs.
    "ALTER TABLE jobs ADD COLUMN pool TEXT NOT NULL DEFAULT 'default';
     ALTER TABLE jobs ADD COLUMN target_host TEXT NOT NULL DEFAULT '';
     ALTER TABLE jobs ADD COLUMN host TEXT NOT NULL DEFAULT '';
     ALTER TABLE jobs ADD COLUMN refused_by TEXT NOT NULL DEFAULT ''; -- ' a b ': hosts that cannot run it
     CREATE INDEX jobs_queue ON jobs (pool, id) WHERE state = 'queued';
     CREATE TABLE hosts (
         id           TEXT PRIMARY KEY,
         address      TEXT NOT NULL,
         pools        TEXT NOT NULL,      -- JSON array
         max_running  INTEGER NOT NULL,
         running      INTEGER NOT NULL,
         started_at   INTEGER NOT NULL,
         heartbeat_at INTEGER NOT NULL
     ) WITHOUT ROWID;",
    // 5: jobs in worktrees of their own, attempts started together, what they changed.
    "ALTER TABLE jobs ADD COLUMN worktree_base TEXT; -- NULL: no worktree
     ALTER TABLE jobs ADD COLUMN group_id TEXT NOT NULL DEFAULT '';
     ALTER TABLE jobs ADD COLUMN change TEXT;        -- JSON Change
     CREATE INDEX jobs_by_group ON jobs (group_id, id) WHERE group_id <> '';",
];

/// PostgreSQL: the versions applied are rows of `schema_migrations`. Ids are text
/// in the "C" collation, so that they sort by their bytes (by creation time) as in
/// SQLite, whatever the database's own collation.
pub const POSTGRES: &[&str] = &[
    "
CREATE TABLE jobs (
    id               TEXT COLLATE \"C\" PRIMARY KEY,
    state            TEXT NOT NULL,
    request_id       TEXT UNIQUE,
    created_at       BIGINT NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT,
    prompt           TEXT NOT NULL,
    cwd              TEXT NOT NULL,
    model            TEXT NOT NULL,
    sandbox          TEXT NOT NULL,
    timeout_ms       BIGINT,
    resume_thread_id TEXT NOT NULL,
    labels           TEXT NOT NULL,
    failure_reason   TEXT,
    error            TEXT NOT NULL DEFAULT '',
    exit_code        INTEGER,
    signal           INTEGER,
    thread_id        TEXT NOT NULL DEFAULT '',
    final_message    TEXT NOT NULL DEFAULT '',
    usage            TEXT,
    output_size      BIGINT NOT NULL DEFAULT 0,
    runner_pid       BIGINT,
    runner_start_time BIGINT,
    created_by       TEXT NOT NULL DEFAULT '',
    output_note      TEXT NOT NULL DEFAULT '',
    version          BIGINT NOT NULL DEFAULT 0,
    reasoning_effort TEXT NOT NULL DEFAULT ''
);
CREATE INDEX jobs_by_state ON jobs (state, id);
CREATE INDEX jobs_by_version ON jobs (version);
CREATE TABLE job_labels (
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,
    job_id TEXT COLLATE \"C\" NOT NULL,
    PRIMARY KEY (key, value, job_id)
);
",
    // 2: what each job takes on disk, stored when it ends.
    "ALTER TABLE jobs ADD COLUMN disk_bytes BIGINT NOT NULL DEFAULT 0;
     CREATE INDEX jobs_by_finish ON jobs (finished_at) WHERE finished_at IS NOT NULL;",
    // 3: as for SQLite. Its one row also orders the changes: a transaction holds it
    // from taking a version to its commit, so versions follow commit order.
    "CREATE TABLE versions (latest BIGINT NOT NULL);
     INSERT INTO versions SELECT COALESCE(MAX(version), 0) FROM jobs;",
    // 4: as for SQLite.
    "ALTER TABLE jobs ADD COLUMN pool TEXT NOT NULL DEFAULT 'default';
     ALTER TABLE jobs ADD COLUMN target_host TEXT NOT NULL DEFAULT '';
     ALTER TABLE jobs ADD COLUMN host TEXT NOT NULL DEFAULT '';
     ALTER TABLE jobs ADD COLUMN refused_by TEXT NOT NULL DEFAULT ''; -- ' a b ': hosts that cannot run it
     CREATE INDEX jobs_queue ON jobs (pool, id) WHERE state = 'queued';
     CREATE TABLE hosts (
         id           TEXT COLLATE \"C\" PRIMARY KEY,
         address      TEXT NOT NULL,
         pools        TEXT NOT NULL,
         max_running  INTEGER NOT NULL,
         running      INTEGER NOT NULL,
         started_at   BIGINT NOT NULL,
         heartbeat_at BIGINT NOT NULL
     );",
    // 5: as for SQLite.
    "ALTER TABLE jobs ADD COLUMN worktree_base TEXT;
     ALTER TABLE jobs ADD COLUMN group_id TEXT NOT NULL DEFAULT '';
     ALTER TABLE jobs ADD COLUMN change TEXT;
     CREATE INDEX jobs_by_group ON jobs (group_id, id) WHERE group_id <> '';",
];

/// The refusal of a database a newer server has migrated.
pub fn too_new(database: &str, found: i64, known: usize) -> StoreError {
    StoreError::Schema(format!(
        "the job store {database} has schema version {found}, but this codex-jobs-server \
         knows versions up to {known} only: a newer server has used it. Run that version \
         (or a later one) against it; this one could lose what the newer one keeps"
    ))
}
