//! The store on SQLite. (PostgreSQL runs the whole end-to-end suite instead: see the
//! test support's `CODEX_JOBS_TEST_POSTGRES`.)

use std::time::Duration;

use super::*;
use crate::job::{Change, FileChange, Sandbox};

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
        pool: "gpu".into(),
        host: "box-2".into(),
        isolation: crate::job::Isolation::Worktree {
            base: "0123abc".into(),
        },
    }
}

/// Stores a new job, which must be new.
fn insert(store: &Store, job: &Job) {
    assert!(matches!(
        store.insert(job, 0, usize::MAX).unwrap(),
        Inserted::New(_)
    ));
}

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::sqlite(&dir.path().join("jobs.db")).unwrap();
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
    job.group = JobId::new().to_string();
    insert(&store, &job);
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
    job.change = Some(Change {
        base_commit: "0123abc".into(),
        head_commit: "4567def".into(),
        branch: format!("codex-jobs/{}", job.id),
        files: vec![
            FileChange {
                path: "src/lib.rs".into(),
                lines: Some((3, 1)),
            },
            FileChange {
                path: "logo.png".into(),
                lines: None,
            },
        ],
        patch_size: 512,
    });
    assert!(store.finish(&job, JobState::Queued).unwrap());
    assert_eq!(store.get(job.id).unwrap().unwrap(), job);
}

#[test]
fn a_request_id_returns_its_job_within_the_window_only() {
    let (_dir, store) = store();
    let first = Job::queued(spec(&[]), Some("same".into()), String::new());
    insert(&store, &first);
    let retry = Job::queued(spec(&[]), Some("same".into()), String::new());
    let Inserted::Existing(existing) = store.insert(&retry, 0, usize::MAX).unwrap() else {
        panic!("the request id's job comes back");
    };
    assert_eq!(existing.id, first.id);
    // Once the first job is older than the window, the id starts a new job.
    let inserted = store.insert(&retry, first.created_at + 1, usize::MAX);
    assert!(matches!(inserted.unwrap(), Inserted::New(_)));
}

#[test]
fn list_pages_newest_first_with_filters() {
    let (_dir, store) = store();
    let ids: Vec<JobId> = (0..5)
        .map(|i| {
            let team = if i % 2 == 0 { "even" } else { "odd" };
            let job = Job::queued(spec(&[("team", team)]), None, String::new());
            insert(&store, &job);
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

    let group = JobId::new().to_string();
    let attempts: Vec<JobId> = (0..2)
        .map(|_| {
            let mut job = Job::queued(spec(&[]), None, String::new());
            job.group = group.clone();
            insert(&store, &job);
            job.id
        })
        .collect();
    let grouped = store
        .list(&ListFilter {
            limit: 10,
            group,
            ..ListFilter::default()
        })
        .unwrap();
    let listed: Vec<JobId> = grouped.jobs.iter().map(|j| j.id).collect();
    assert_eq!(listed, vec![attempts[1], attempts[0]]);
}

#[test]
fn a_database_of_a_newer_server_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.db");
    drop(Store::sqlite(&path).unwrap());
    let known = migrations::SQLITE.len() as i64;
    let db = rusqlite::Connection::open(&path).unwrap();
    db.pragma_update(None, "user_version", known + 1).unwrap();
    drop(db);
    let err = Store::sqlite(&path).err().expect("refused");
    let message = err.to_string();
    assert!(
        message.contains(&format!("schema version {}", known + 1))
            && message.contains(&format!("versions up to {known}")),
        "{message}"
    );
    let db = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = db
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, known + 1);
}

#[test]
fn a_database_from_before_schema_versions_is_brought_up_to_date() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.db");
    // As the first releases made it: no version columns, no user_version.
    let db = rusqlite::Connection::open(&path).unwrap();
    db.execute_batch(
        "CREATE TABLE jobs (id TEXT PRIMARY KEY, state TEXT NOT NULL, request_id TEXT UNIQUE, \
         created_at INTEGER NOT NULL, started_at INTEGER, finished_at INTEGER, \
         prompt TEXT NOT NULL, cwd TEXT NOT NULL, model TEXT NOT NULL, sandbox TEXT NOT NULL, \
         timeout_ms INTEGER, resume_thread_id TEXT NOT NULL, labels TEXT NOT NULL, \
         failure_reason TEXT, error TEXT NOT NULL DEFAULT '', exit_code INTEGER, signal INTEGER, \
         thread_id TEXT NOT NULL DEFAULT '', final_message TEXT NOT NULL DEFAULT '', usage TEXT, \
         output_size INTEGER NOT NULL DEFAULT 0, runner_pid INTEGER, runner_start_time INTEGER) \
         WITHOUT ROWID;
         INSERT INTO jobs (id, state, created_at, prompt, cwd, model, sandbox, resume_thread_id, \
         labels) VALUES ('0192f0c4-6a35-7b21-9c1e-3f0a5d2e8b47', 'succeeded', 1, 'old', '/tmp', \
         '', 'read-only', '', '{}');",
    )
    .unwrap();
    drop(db);
    let store = Store::sqlite(&path).unwrap();
    let (job, version) = store
        .get_versioned("0192f0c4-6a35-7b21-9c1e-3f0a5d2e8b47".parse().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!((job.spec.prompt.as_str(), version), ("old", 1));
    assert!(job.created_by.is_empty() && job.spec.reasoning_effort.is_none());
}

#[test]
fn a_deleted_job_does_not_give_its_version_away() {
    let (_dir, store) = store();
    let mut job = Job::queued(spec(&[]), None, String::new());
    insert(&store, &job);
    job.state = JobState::Succeeded;
    job.finished_at = Some(1);
    assert!(store.finish(&job, JobState::Queued).unwrap());
    let (_, newest) = store.get_versioned(job.id).unwrap().unwrap();
    // The job that holds the latest version goes; the next change still comes after it.
    assert!(store.delete(job.id).unwrap());
    let next = Job::queued(spec(&[]), None, String::new());
    insert(&store, &next);
    let (_, version) = store.get_versioned(next.id).unwrap().unwrap();
    assert!(version > newest, "{version} after {newest}");
    let watch = WatchFilter::default();
    let (_, latest) = store.changed_since(0, &watch, true, 10).unwrap();
    assert_eq!(latest, version);
}

#[test]
fn hosts_claim_queued_jobs_oldest_first_by_pool_and_host_and_the_queue_has_a_limit() {
    let (_dir, store) = store();
    let for_host = |pool: &str, host: &str| {
        let mut spec = spec(&[]);
        spec.pool = pool.into();
        spec.host = host.into();
        let job = Job::queued(spec, None, String::new());
        insert(&store, &job);
        job.id
    };
    let gpu_any = for_host("gpu", "");
    let default_b = for_host("default", "b");
    let gpu_a = for_host("gpu", "a");
    let pools = |names: &[&str]| {
        names
            .iter()
            .map(|name| name.to_string())
            .collect::<Vec<_>>()
    };
    let claim = |host: &str, serves: &[&str]| {
        store
            .claim(host, &pools(serves), 7)
            .unwrap()
            .map(|job| (job.id, job.host, job.state, job.started_at))
    };
    // Host a serves only default: the default job is b's.
    assert_eq!(claim("a", &["default"]), None);
    assert_eq!(
        claim("a", &["gpu"]),
        Some((gpu_any, "a".into(), JobState::Running, Some(7)))
    );
    assert_eq!(claim("b", &["gpu", "default"]).unwrap().0, default_b);
    // Named for a, the last gpu job is not b's to take.
    assert_eq!(claim("b", &["gpu"]), None);
    assert_eq!(claim("a", &["gpu"]).unwrap().0, gpu_a);
    assert_eq!(store.running(Some("a")).unwrap().len(), 2);

    // Two jobs may wait, no more.
    for_host("none", "");
    for_host("none", "");
    let third = Job::queued(spec(&[]), None, String::new());
    assert!(matches!(
        store.insert(&third, 0, 2).unwrap(),
        Inserted::QueueFull(2)
    ));
}

#[test]
fn a_job_ends_only_from_the_state_it_was_read_in() {
    let (_dir, store) = store();
    let mut job = Job::queued(spec(&[]), None, String::new());
    insert(&store, &job);
    store.claim("box-2", &["gpu".into()], 1).unwrap().unwrap();
    // A cancel of the queued job it was comes too late: it runs on box-2.
    job.state = JobState::Cancelled;
    assert!(!store.finish(&job, JobState::Queued).unwrap());
    assert_eq!(store.get(job.id).unwrap().unwrap().state, JobState::Running);
}
