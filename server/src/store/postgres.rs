//! The job store in a PostgreSQL database (`--database-url postgres://...`), for
//! operators who run, back up and watch one already.
//!
//! A pool of connections: one the database dropped (a restart, a network cut) is
//! replaced on next use, and until the database answers again every call fails as
//! `Unavailable`, naming it. Changes of state take their version from one row that
//! they hold until they commit, so versions follow commit order, whatever the
//! connections.

use std::{sync::Arc, time::Duration};

use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime, Transaction,
};
use tokio_postgres::{Config, Row, error::SqlState, types::ToSql};

use super::{
    Announcement, Backend, Change, HOST_COLUMNS, HostRow, Inserted, JOB_COLUMNS, JobRow,
    PostgresConfig, Result, StoreError, change_text, labels_text, migrations, pools_text,
    query::{self, Arg, Query},
    usage_text,
};
use crate::job::{
    FailureReason, Host, Job, JobId, JobState, Millis, ProcessIdentity, ReasoningEffort,
};

/// Connections kept at most: calls beyond wait for one.
const POOL_SIZE: usize = 16;

/// How long a call waits to connect or for a free connection before it reports the
/// database unavailable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The advisory lock migrations take (a key of our own, in `pg_advisory_xact_lock`).
const MIGRATION_LOCK: i64 = 0x636f_6465_785f_6a02;

/// The channel every change of a job's state is told on, as `VERSION ID STATE`.
const CHANNEL: &str = "codex_jobs";

type Tls = tokio_postgres_rustls::MakeRustlsConnect;

pub struct Postgres {
    pool: Pool,
    runtime: tokio::runtime::Handle,
    /// The database as messages name it: user, host, port and name, no password.
    name: String,
    /// For the connection that listens for changes, which is no pool's.
    config: Config,
    tls: Tls,
}

impl Postgres {
    /// Connects to the database and brings its schema up to date.
    pub fn connect(database: &PostgresConfig) -> Result<Postgres> {
        let mut config: Config = database.url.parse().map_err(|err| {
            StoreError::Schema(format!(
                "--database-url is not a PostgreSQL URL (postgres://USER@HOST:PORT/DATABASE): {err}"
            ))
        })?;
        config.connect_timeout(CONNECT_TIMEOUT);
        config.application_name("codex-jobs-server");
        // A database behind a dead network path (no reset ever comes) is noticed
        // within half a minute, not the two hours of the system's default.
        config.keepalives_idle(Duration::from_secs(10));
        config.keepalives_interval(Duration::from_secs(5));
        config.keepalives_retries(3);
        // TLS when the URL asks for it, and then verified: libpq's default `prefer`
        // would take any certificate (a distribution's self-signed one included),
        // which a verifying client cannot, so without an sslmode the connection is
        // plain, as libpq's would be to a server without TLS.
        if config.get_ssl_mode() == tokio_postgres::config::SslMode::Prefer {
            config.ssl_mode(tokio_postgres::config::SslMode::Disable);
        }
        let name = describe(&config);
        let tls = Tls::new(tls_config(database.ca_cert.as_deref())?);
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .expect("a pool with a runtime and timeouts builds");
        let store = Postgres {
            pool,
            runtime: tokio::runtime::Handle::current(),
            name,
            config,
            tls,
        };
        store.run(async |client| migrate(client, &store.name).await)?;
        Ok(store)
    }

    /// Runs `work` on a connection of the pool, blocking this (blocking) thread until
    /// it is done; errors name the database.
    fn run<T>(&self, work: impl AsyncFnOnce(&mut Object) -> Result<T>) -> Result<T> {
        self.runtime.block_on(async {
            let mut client = self
                .pool
                .get()
                .await
                .map_err(|err| StoreError::Unavailable {
                    database: self.name.clone(),
                    reason: with_causes(&err),
                })?;
            work(&mut client).await.map_err(|err| self.named(err))
        })
    }

    /// An error with the database's name; a lost connection as `Unavailable`.
    fn named(&self, err: StoreError) -> StoreError {
        match err {
            StoreError::Postgres { error, .. } if is_unavailable(&error) => {
                StoreError::Unavailable {
                    database: self.name.clone(),
                    reason: with_causes(&error),
                }
            }
            StoreError::Postgres { error, .. } => StoreError::Postgres {
                database: self.name.clone(),
                error,
            },
            other => other,
        }
    }

    /// Runs one change of state in a transaction that holds the change lock, with
    /// the version it gets: `update` reports the rows it changed.
    fn change_state(
        &self,
        update: impl AsyncFnOnce(&Transaction<'_>, i64) -> Result<u64>,
    ) -> Result<Option<u64>> {
        self.run(async |client| {
            let tx = client.transaction().await?;
            let version = next_version(&tx).await?;
            let changed = update(&tx, version).await? > 0;
            tx.commit().await?;
            Ok(changed.then_some(version as u64))
        })
    }

    fn select(&self, sql: &str, args: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        self.run(async |client| {
            let statement = client.prepare_cached(sql).await?;
            Ok(client.query(&statement, args).await?)
        })
    }

    fn jobs(&self, sql: &str, args: &[&(dyn ToSql + Sync)]) -> Result<Vec<Job>> {
        self.select(sql, args)?
            .iter()
            .map(|row| job_row(row).map_err(|err| self.named(err))?.into_job())
            .collect()
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(error: tokio_postgres::Error) -> StoreError {
        StoreError::Postgres {
            database: String::new(),
            error,
        }
    }
}

/// An error and what caused it, as one line ("error connecting to server:
/// Connection refused").
pub(super) fn with_causes(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        let text = error.to_string();
        if !line.ends_with(&text) {
            line = format!("{line}: {text}");
        }
        cause = error.source();
    }
    line
}

/// Whether the error is the database going away rather than a statement failing.
fn is_unavailable(error: &tokio_postgres::Error) -> bool {
    match error.code() {
        Some(code) => [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
        ]
        .contains(code),
        // No SQL state: the connection failed (closed, or an I/O error), or a value
        // did not convert, which is no outage.
        None => {
            error.is_closed()
                || std::error::Error::source(error)
                    .is_some_and(|cause| cause.is::<std::io::Error>())
        }
    }
}

/// `user@host:port/dbname`, for messages.
fn describe(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("");
    let database = config.get_dbname().unwrap_or(user);
    format!("postgres://{user}@{host}:{port}/{database}")
}

/// TLS for `sslmode=require` (see `connect`), trusting the system's root
/// certificates and those of `ca_cert`.
fn tls_config(ca_cert: Option<&std::path::Path>) -> Result<rustls::ClientConfig> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A certificate rustls cannot use is one less root, not a failure.
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_cert {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
            .map_err(|err| {
                StoreError::Schema(format!(
                    "--database-ca-cert {}: not a PEM file of certificates: {err}",
                    path.display()
                ))
            })?;
        for cert in certs {
            roots.add(cert).map_err(|err| {
                StoreError::Schema(format!("--database-ca-cert {}: {err}", path.display()))
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| StoreError::Schema(format!("TLS to the job database: {err}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// Applies the migrations the database lacks, one server at a time; refuses a
/// database that is newer than this server.
async fn migrate(client: &mut Object, name: &str) -> Result<()> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    // No notice that the table exists already: it does on every start but the first.
    tx.batch_execute(
        "SET LOCAL client_min_messages = warning;
         CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             applied_at BIGINT NOT NULL
         )",
    )
    .await?;
    let found: i32 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::INTEGER FROM schema_migrations",
            &[],
        )
        .await?
        .get(0);
    let known = migrations::POSTGRES.len();
    if found as usize > known {
        return Err(migrations::too_new(name, found.into(), known));
    }
    for (index, migration) in migrations::POSTGRES.iter().enumerate().skip(found as usize) {
        tx.batch_execute(migration).await?;
        let version = index as i32 + 1;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
            &[&version, &crate::job::now_millis()],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The version the change gets. Its row stays locked until the transaction ends,
/// so a second change waits for this one to commit and then takes the next.
async fn next_version(tx: &Transaction<'_>) -> Result<i64> {
    let statement = tx.prepare_cached(query::NEXT_VERSION).await?;
    Ok(tx.query_one(&statement, &[]).await?.get(0))
}

/// Tells every listening server of a change, when the transaction commits.
async fn notify(tx: &Transaction<'_>, version: i64, id: JobId, state: JobState) -> Result<()> {
    let payload = format!("{version} {id} {}", state.name());
    execute(tx, "SELECT pg_notify($1, $2)", &[&CHANNEL, &payload]).await?;
    Ok(())
}

/// A change as `notify` told it.
fn parse_change(payload: &str) -> Option<Change> {
    let mut words = payload.split(' ');
    let change = Change {
        version: words.next()?.parse().ok()?,
        id: words.next()?.parse().ok()?,
        state: JobState::from_name(words.next()?)?,
    };
    words.next().is_none().then_some(change)
}

/// Connects the listening connection and starts listening; the returned receiver
/// gets each notification, and closes when the connection is lost.
async fn listen_on(
    config: &Config,
    tls: Tls,
) -> std::result::Result<
    tokio::sync::mpsc::UnboundedReceiver<tokio_postgres::Notification>,
    tokio_postgres::Error,
> {
    let (client, mut connection) = config.connect(tls).await?;
    let (notifications, received) = tokio::sync::mpsc::unbounded_channel();
    // The connection does its work, LISTEN's reply included, as it is polled.
    let polling = tokio::spawn(async move {
        while let Some(Ok(message)) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            if let tokio_postgres::AsyncMessage::Notification(notification) = message
                && notifications.send(notification).is_err()
            {
                return;
            }
        }
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    // The connection closes with its client: keep the client while it listens.
    tokio::spawn(async move {
        let _client = client;
        let _ = polling.await;
    });
    Ok(received)
}

/// Runs a statement in a transaction, prepared once per connection.
async fn execute(tx: &Transaction<'_>, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
    let statement = tx.prepare_cached(sql).await?;
    Ok(tx.execute(&statement, params).await?)
}

impl Backend for Postgres {
    fn insert(&self, job: &Job, request_ids_since: Millis, max_queued: usize) -> Result<Inserted> {
        self.run(async |client| {
            let tx = client.transaction().await?;
            // Held to the commit: no other Start counts the queue meanwhile.
            let version = next_version(&tx).await?;
            if let Some(request_id) = &job.request_id {
                let existing = tx
                    .query_opt(
                        &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE request_id = $1"),
                        &[request_id],
                    )
                    .await?
                    .map(|row| job_row(&row)?.into_job())
                    .transpose()?;
                match existing {
                    Some(existing) if existing.created_at >= request_ids_since => {
                        return Ok(Inserted::Existing(Box::new(existing)));
                    }
                    // Past the retention window: the id is free again.
                    Some(_) => {
                        execute(
                            &tx,
                            "UPDATE jobs SET request_id = NULL WHERE request_id = $1",
                            &[request_id],
                        )
                        .await?;
                    }
                    None => {}
                }
            }
            let waiting: i64 = tx.query_one(query::COUNT_QUEUED, &[]).await?.get(0);
            if waiting as usize >= max_queued {
                return Ok(Inserted::QueueFull(waiting as u64));
            }
            let spec = &job.spec;
            execute(
                &tx,
                "INSERT INTO jobs (id, state, request_id, created_at, prompt, cwd, model, \
                 sandbox, timeout_ms, resume_thread_id, labels, created_by, version, \
                 reasoning_effort, pool, target_host, worktree_base, group_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                 $17, $18)",
                &[
                    &job.id.to_string(),
                    &job.state.name(),
                    &job.request_id,
                    &job.created_at,
                    &spec.prompt,
                    &spec.cwd.to_string_lossy().as_ref(),
                    &spec.model,
                    &spec.sandbox.name(),
                    &spec.timeout.map(|t| t.as_millis() as i64),
                    &spec.resume_thread_id,
                    &labels_text(job),
                    &job.created_by,
                    &version,
                    &spec.reasoning_effort.map_or("", ReasoningEffort::name),
                    &spec.pool,
                    &spec.host,
                    &job.spec.isolation.base(),
                    &job.group,
                ],
            )
            .await?;
            for (key, value) in &spec.labels {
                execute(
                    &tx,
                    "INSERT INTO job_labels (key, value, job_id) VALUES ($1, $2, $3)",
                    &[key, value, &job.id.to_string()],
                )
                .await?;
            }
            notify(&tx, version, job.id, job.state).await?;
            tx.commit().await?;
            Ok(Inserted::New(version as u64))
        })
    }

    fn claim(
        &self,
        host: &str,
        pools: &[String],
        started_at: Millis,
    ) -> Result<Option<(Job, u64)>> {
        let pools = pools.to_vec();
        self.run(async |client| {
            // A look first, which takes no lock: most wake-ups find nothing to take.
            let statement = client.prepare_cached(CLAIMABLE).await?;
            let claimable: bool = client.query_one(&statement, &[&pools, &host]).await?.get(0);
            if !claimable {
                return Ok(None);
            }
            let tx = client.transaction().await?;
            let version = next_version(&tx).await?;
            let statement = tx.prepare_cached(&CLAIM).await?;
            let Some(row) = tx
                .query_opt(&statement, &[&pools, &host, &started_at, &version])
                .await?
            else {
                return Ok(None);
            };
            let job = job_row(&row)?.into_job()?;
            notify(&tx, version, job.id, job.state).await?;
            tx.commit().await?;
            Ok(Some((job, version as u64)))
        })
    }

    fn hand_back(&self, job: &Job, host: &str) -> Result<Option<(u64, Vec<String>)>> {
        self.run(async |client| {
            let tx = client.transaction().await?;
            let version = next_version(&tx).await?;
            let statement = tx
                .prepare_cached(
                    "UPDATE jobs SET state = 'queued', host = '', started_at = NULL, \
                     version = $3, error = $4, \
                     refused_by = CASE refused_by WHEN '' THEN ' ' ELSE refused_by END || $2 || ' ' \
                     WHERE id = $1 AND state = 'running' AND host = $2 RETURNING refused_by",
                )
                .await?;
            let args: [&(dyn ToSql + Sync); 4] =
                [&job.id.to_string(), &host, &version, &job.outcome.error];
            let Some(row) = tx.query_opt(&statement, &args).await? else {
                return Ok(None);
            };
            let refused: String = row.get(0);
            notify(&tx, version, job.id, JobState::Queued).await?;
            tx.commit().await?;
            Ok(Some((version as u64, super::hosts_in(&refused))))
        })
    }

    fn finish(&self, job: &Job, was: JobState) -> Result<Option<u64>> {
        let outcome = &job.outcome;
        self.change_state(async |tx, version| {
            let changed = execute(
                tx,
                "UPDATE jobs SET state = $2, started_at = $3, finished_at = $4, \
                     failure_reason = $5, error = $6, exit_code = $7, signal = $8, \
                     thread_id = $9, final_message = $10, usage = $11, output_size = $12, \
                     output_note = $13, version = $14, disk_bytes = $15, change = $18 \
                     WHERE id = $1 AND state = $17 AND host = $16",
                &[
                    &job.id.to_string(),
                    &job.state.name(),
                    &job.started_at,
                    &job.finished_at,
                    &outcome.failure_reason.map(FailureReason::name),
                    &outcome.error,
                    &outcome.exit_code,
                    &outcome.signal,
                    &job.thread_id,
                    &job.final_message,
                    &usage_text(job),
                    &(job.output_size as i64),
                    &outcome.output_note,
                    &version,
                    &(job.disk_bytes as i64),
                    &job.host,
                    &was.name(),
                    &change_text(job),
                ],
            )
            .await?;
            if changed > 0 {
                notify(tx, version, job.id, job.state).await?;
            }
            Ok(changed)
        })
    }

    fn find_request(&self, request_id: &str, since: Millis) -> Result<Option<Job>> {
        let sql =
            format!("SELECT {JOB_COLUMNS} FROM jobs WHERE request_id = $1 AND created_at >= $2");
        Ok(self.jobs(&sql, &[&request_id, &since])?.pop())
    }

    fn set_runner(&self, id: JobId, runner: ProcessIdentity) -> Result<()> {
        self.run(async |client| {
            let statement = client
                .prepare_cached(
                    "UPDATE jobs SET runner_pid = $2, runner_start_time = $3 WHERE id = $1",
                )
                .await?;
            let identity: [&(dyn ToSql + Sync); 3] = [
                &id.to_string(),
                &i64::from(runner.pid),
                &(runner.start_time as i64),
            ];
            client.execute(&statement, &identity).await?;
            Ok(())
        })
    }

    fn runner(&self, id: JobId) -> Result<Option<ProcessIdentity>> {
        let rows = self.select(
            "SELECT runner_pid, runner_start_time FROM jobs WHERE id = $1",
            &[&id.to_string()],
        )?;
        let identity = rows
            .first()
            .map(|row| (row.get::<_, Option<i64>>(0), row.get::<_, Option<i64>>(1)));
        Ok(match identity {
            Some((Some(pid), Some(start_time))) => Some(ProcessIdentity {
                pid: pid as u32,
                start_time: start_time as u64,
            }),
            _ => None,
        })
    }

    fn get(&self, id: JobId) -> Result<Option<Job>> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
        Ok(self.jobs(&sql, &[&id.to_string()])?.pop())
    }

    fn get_versioned(&self, id: JobId) -> Result<Option<(Job, u64)>> {
        let sql = format!("SELECT {JOB_COLUMNS}, version FROM jobs WHERE id = $1");
        self.select(&sql, &[&id.to_string()])?
            .first()
            .map(|row| versioned_job(row).map_err(|err| self.named(err)))
            .transpose()
    }

    fn running(&self, host: Option<&str>) -> Result<Vec<Job>> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE state = 'running' \
             AND ($1::TEXT IS NULL OR host = $1) ORDER BY id"
        );
        self.jobs(&sql, &[&host])
    }

    fn changed_since(&self, query: &Query) -> Result<(Vec<(Job, u64)>, u64)> {
        let sql = query.numbered();
        let args = arguments(query);
        let (rows, latest) = self.run(async |client| {
            // One snapshot for both reads.
            let tx = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let statement = tx.prepare_cached(&sql).await?;
            let rows = tx.query(&statement, &references(&args)).await?;
            let latest: i64 = tx.query_one(query::LATEST_VERSION, &[]).await?.get(0);
            tx.commit().await?;
            Ok((rows, latest))
        })?;
        let jobs = rows
            .iter()
            .map(|row| versioned_job(row).map_err(|err| self.named(err)))
            .collect::<Result<_>>()?;
        Ok((jobs, latest as u64))
    }

    fn delete(&self, id: JobId) -> Result<bool> {
        self.run(async |client| {
            let tx = client.transaction().await?;
            let id = id.to_string();
            let deleted = execute(
                &tx,
                "DELETE FROM jobs WHERE id = $1 AND state IN ('succeeded', 'failed', 'cancelled')",
                &[&id],
            )
            .await?
                > 0;
            if deleted {
                execute(&tx, "DELETE FROM job_labels WHERE job_id = $1", &[&id]).await?;
            }
            tx.commit().await?;
            Ok(deleted)
        })
    }

    fn count_by_state(&self) -> Result<Vec<(String, i64)>> {
        let rows = self.select(query::COUNT_BY_STATE, &[])?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    fn list(&self, query: &Query) -> Result<Vec<Job>> {
        let args = arguments(query);
        self.jobs(&query.numbered(), &references(&args))
    }

    fn put_host(&self, host: &Host) -> Result<()> {
        self.run(async |client| {
            let statement = client
                .prepare_cached(&format!(
                    "INSERT INTO hosts ({HOST_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (id) DO UPDATE SET address = $2, pools = $3, max_running = $4, \
                     running = $5, started_at = $6, heartbeat_at = $7"
                ))
                .await?;
            client
                .execute(
                    &statement,
                    &[
                        &host.id,
                        &host.address,
                        &pools_text(host),
                        &(host.max_running as i32),
                        &(host.running as i32),
                        &host.started_at,
                        &host.heartbeat_at,
                    ],
                )
                .await?;
            Ok(())
        })
    }

    fn hosts(&self) -> Result<Vec<Host>> {
        self.select(
            &format!("SELECT {HOST_COLUMNS} FROM hosts ORDER BY id"),
            &[],
        )?
        .iter()
        .map(|row| {
            HostRow {
                id: row.get(0),
                address: row.get(1),
                pools: row.get(2),
                max_running: row.get::<_, i32>(3).into(),
                running: row.get::<_, i32>(4).into(),
                started_at: row.get(5),
                heartbeat_at: row.get(6),
            }
            .into_host()
        })
        .collect()
    }

    fn is_shared(&self) -> bool {
        true
    }

    /// Listens on a connection of its own, in commit order, and when that
    /// connection is lost, connects again (every second) and announces that changes
    /// may have been missed meanwhile.
    fn listen(&self, changes: tokio::sync::broadcast::Sender<Announcement>) -> Result<()> {
        let (config, tls, name) = (self.config.clone(), self.tls.clone(), self.name.clone());
        let mut received = self
            .runtime
            .block_on(listen_on(&config, tls.clone()))
            .map_err(|error| self.named(error.into()))?;
        self.runtime.spawn(async move {
            loop {
                while let Some(notification) = received.recv().await {
                    match parse_change(notification.payload()) {
                        Some(change) => {
                            let _ = changes.send(Announcement::Changed(change));
                        }
                        None => tracing::warn!(
                            "ignored a notice of a change that this server cannot read: {:?}",
                            notification.payload()
                        ),
                    }
                }
                tracing::warn!(
                    "lost the connection that hears of job changes in {name}; reconnecting"
                );
                received = loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if let Ok(received) = listen_on(&config, tls.clone()).await {
                        break received;
                    }
                };
                let _ = changes.send(Announcement::Missed);
            }
        });
        Ok(())
    }
}

/// Whether a host serving pools `$1`, with id `$2`, has a queued job to take.
const CLAIMABLE: &str = "SELECT EXISTS (SELECT 1 FROM jobs WHERE state = 'queued' \
    AND pool = ANY($1) AND target_host IN ('', $2) \
    AND position(' ' || $2 || ' ' in refused_by) = 0)";

/// Takes the oldest such job. Claims wait for one another on the version row, which
/// each takes first; SKIP LOCKED keeps one from waiting on a job another change
/// holds (a cancel of it, say), and takes the next instead.
static CLAIM: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "UPDATE jobs SET state = 'running', host = $2, started_at = $3, version = $4 \
         WHERE id = (SELECT id FROM jobs WHERE state = 'queued' AND pool = ANY($1) \
             AND target_host IN ('', $2) AND position(' ' || $2 || ' ' in refused_by) = 0 \
             ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) \
         RETURNING {JOB_COLUMNS}"
    )
});

fn arguments(query: &Query) -> Vec<Box<dyn ToSql + Sync + Send>> {
    query
        .args
        .iter()
        .map(|arg| -> Box<dyn ToSql + Sync + Send> {
            match arg {
                Arg::Text(text) => Box::new(text.clone()),
                Arg::Int(int) => Box::new(*int),
            }
        })
        .collect()
}

fn references(args: &[Box<dyn ToSql + Sync + Send>]) -> Vec<&(dyn ToSql + Sync)> {
    args.iter()
        .map(|arg| arg.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

fn versioned_job(row: &Row) -> Result<(Job, u64)> {
    let version: i64 = row.try_get("version")?;
    Ok((job_row(row)?.into_job()?, version as u64))
}

fn job_row(row: &Row) -> Result<JobRow> {
    Ok(JobRow {
        id: row.try_get("id")?,
        state: row.try_get("state")?,
        request_id: row.try_get("request_id")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        prompt: row.try_get("prompt")?,
        cwd: row.try_get("cwd")?,
        model: row.try_get("model")?,
        sandbox: row.try_get("sandbox")?,
        timeout_ms: row.try_get("timeout_ms")?,
        resume_thread_id: row.try_get("resume_thread_id")?,
        labels: row.try_get("labels")?,
        failure_reason: row.try_get("failure_reason")?,
        error: row.try_get("error")?,
        exit_code: row.try_get("exit_code")?,
        signal: row.try_get("signal")?,
        thread_id: row.try_get("thread_id")?,
        final_message: row.try_get("final_message")?,
        usage: row.try_get("usage")?,
        output_size: row.try_get("output_size")?,
        created_by: row.try_get("created_by")?,
        output_note: row.try_get("output_note")?,
        reasoning_effort: row.try_get("reasoning_effort")?,
        disk_bytes: row.try_get("disk_bytes")?,
        pool: row.try_get("pool")?,
        target_host: row.try_get("target_host")?,
        host: row.try_get("host")?,
        worktree_base: row.try_get("worktree_base")?,
        group_id: row.try_get("group_id")?,
        change: row.try_get("change")?,
    })
}
