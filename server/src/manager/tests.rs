//! The manager on its own, with processes standing in for runners: what `recover`
//! makes of every state a previous server can leave behind.

use std::{
    os::unix::process::{CommandExt, ExitStatusExt},
    process::{Child, Command},
    sync::Arc,
    time::Duration,
};

use super::{HostConfig, JobManager, ManagerConfig, WatchEvent, WindowRequest};
use crate::{
    job::{
        DEFAULT_POOL, FailureReason, Job, JobId, JobSpec, JobState, OutputStream, ProcessIdentity,
        Sandbox, WatchFilter, now_millis,
    },
    runner::{
        RunnerConfig,
        record::{Ending, ExitRecord, JobDir, RunnerStatus},
    },
    store::Store,
};

/// The host the tests' servers are.
const HOST: &str = "test-host";

/// A state dir as a server that was killed left it.
struct LeftState {
    dir: tempfile::TempDir,
}

impl LeftState {
    fn new() -> LeftState {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("jobs")).unwrap();
        LeftState { dir }
    }

    fn store(&self) -> Store {
        Store::sqlite(&self.dir.path().join("jobs.db")).unwrap()
    }

    /// A job the store holds as queued.
    fn queued_job(&self) -> JobId {
        let job = Job::queued(self.spec(), None, "uid 0".into());
        std::fs::create_dir_all(self.job_dir(job.id).path()).unwrap();
        self.store().insert(&job, 0, usize::MAX).unwrap();
        job.id
    }

    fn spec(&self) -> JobSpec {
        JobSpec {
            prompt: "say hi".into(),
            cwd: self.dir.path().into(),
            model: String::new(),
            sandbox: Sandbox::ReadOnly,
            timeout: None,
            labels: Default::default(),
            resume_thread_id: String::new(),
            reasoning_effort: None,
            pool: DEFAULT_POOL.into(),
            host: String::new(),
            isolation: crate::job::Isolation::None,
        }
    }

    /// A job the store holds as running under `runner`.
    fn running_job(&self, runner: ProcessIdentity) -> JobId {
        let id = self.queued_job();
        let store = self.store();
        let claimed = store.claim(HOST, &[DEFAULT_POOL.into()], now_millis());
        assert_eq!(claimed.unwrap().unwrap().id, id);
        store.set_runner(id, runner).unwrap();
        id
    }

    fn job_dir(&self, id: JobId) -> JobDir {
        JobDir::new(self.dir.path().join("jobs").join(id.to_string()))
    }

    fn write_status(&self, id: JobId, status: &RunnerStatus) {
        self.job_dir(id).write_status(status, false).unwrap();
    }

    /// A server on this state dir that starts nothing of its own.
    async fn open(&self) -> Arc<JobManager> {
        self.open_queueing(100).await
    }

    /// The same, queueing up to `max_queued` jobs.
    async fn open_queueing(&self, max_queued: usize) -> Arc<JobManager> {
        JobManager::open(ManagerConfig {
            state_dir: self.dir.path().into(),
            database: None,
            max_running: 0,
            max_queued,
            default_timeout: Duration::from_secs(60),
            max_sandbox: Sandbox::Bypass,
            allowed_cwd_roots: Vec::new(),
            retain_finished: None,
            runner: RunnerConfig {
                runner_bin: "/nonexistent/codex-jobs-runner".into(),
                codex_bin: "codex".into(),
                kill_grace: Duration::from_secs(1),
                exit_grace: Duration::from_secs(1),
                max_output_bytes: u64::MAX,
            },
            host: HostConfig {
                id: HOST.into(),
                address: String::new(),
                pools: vec![DEFAULT_POOL.into()],
                lost_after: Duration::from_secs(600),
            },
        })
        .await
        .unwrap()
    }
}

/// A process that stands in for a runner or for Codex: `sleep 60`, leading a
/// session of its own as they do.
fn stand_in() -> (Child, ProcessIdentity) {
    let mut sleep = Command::new("sleep");
    sleep.arg("60");
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        sleep.pre_exec(|| {
            libc::setsid();
            Ok(())
        })
    };
    let child = sleep.spawn().unwrap();
    let identity = ProcessIdentity::of(child.id()).unwrap();
    (child, identity)
}

/// The identity of a process that has ended.
fn gone() -> ProcessIdentity {
    let (mut child, identity) = stand_in();
    child.kill().unwrap();
    child.wait().unwrap();
    identity
}

fn exit(ending: Ending, exit_code: Option<i32>) -> ExitRecord {
    ExitRecord {
        ending,
        exit_code,
        signal: None,
        error: None,
        final_message: "All done.".into(),
        finished_at: now_millis(),
        output_note: None,
    }
}

/// Waits (long-polls) until the job is finished.
async fn finished(manager: &Arc<JobManager>, id: JobId) -> Job {
    let wait = Some(Duration::from_secs(20));
    let result = manager
        .poll(
            id,
            WindowRequest::Nothing,
            OutputStream::Transcript,
            0,
            wait,
        )
        .await
        .unwrap();
    assert!(result.job.state.is_terminal(), "{:?}", result.job);
    result.job
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_ended_while_the_server_was_down_gets_its_recorded_outcome() {
    let state = LeftState::new();
    let runner = gone();
    let id = state.running_job(runner);
    state.write_status(
        id,
        &RunnerStatus {
            runner,
            thread_id: Some("0199a213-81c0-7800-8aa1-bbab2a035a53".into()),
            exit: Some(exit(Ending::Exited, Some(3))),
            ..RunnerStatus::default()
        },
    );
    let manager = state.open().await;
    let job = manager.get(id).await.unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.outcome.exit_code, Some(3));
    assert_eq!(job.outcome.failure_reason, Some(FailureReason::NonZeroExit));
    assert_eq!(job.final_message, "All done.");
    assert_eq!(job.thread_id, "0199a213-81c0-7800-8aa1-bbab2a035a53");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_runner_is_adopted_and_its_job_finishes_when_it_exits() {
    let state = LeftState::new();
    let (mut runner, identity) = stand_in();
    let id = state.running_job(identity);
    state.write_status(
        id,
        &RunnerStatus {
            runner: identity,
            ..RunnerStatus::default()
        },
    );
    let manager = state.open().await;
    assert_eq!(manager.get(id).await.unwrap().state, JobState::Running);

    // The runner records the end, then exits.
    state.write_status(
        id,
        &RunnerStatus {
            runner: identity,
            exit: Some(exit(Ending::Exited, Some(0))),
            ..RunnerStatus::default()
        },
    );
    runner.kill().unwrap();
    runner.wait().unwrap();
    let job = finished(&manager, id).await;
    assert_eq!(job.state, JobState::Succeeded);
    assert_eq!(job.final_message, "All done.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_runner_vanished_is_lost_and_its_codex_is_killed() {
    let state = LeftState::new();
    let runner = gone();
    let (mut codex, codex_identity) = stand_in();
    let id = state.running_job(runner);
    state.write_status(
        id,
        &RunnerStatus {
            runner,
            codex: Some(codex_identity),
            ..RunnerStatus::default()
        },
    );
    let manager = state.open().await;
    let job = manager.get(id).await.unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.outcome.failure_reason, Some(FailureReason::Lost));
    // Killed, not left to sleep its minute out.
    assert_eq!(codex.wait().unwrap().signal(), Some(libc::SIGKILL));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_launched_just_before_a_crash_is_found_by_the_runner_the_store_names() {
    let state = LeftState::new();
    // No status.json yet: the store's record of the launch is all there is.
    let (mut runner, identity) = stand_in();
    let alive = state.running_job(identity);
    let dead = state.running_job(gone());
    let manager = state.open().await;
    assert_eq!(manager.get(alive).await.unwrap().state, JobState::Running);
    let lost = manager.get(dead).await.unwrap();
    assert_eq!(lost.outcome.failure_reason, Some(FailureReason::Lost));

    // Gone without a record, it is lost too.
    runner.kill().unwrap();
    runner.wait().unwrap();
    let job = finished(&manager, alive).await;
    assert_eq!(job.outcome.failure_reason, Some(FailureReason::Lost));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_jobs_wait_in_the_store_and_are_taken_in_their_order() {
    let state = LeftState::new();
    let ids: Vec<JobId> = (0..3).map(|_| state.queued_job()).collect();
    let manager = state.open().await;
    for &id in &ids {
        assert_eq!(manager.get(id).await.unwrap().state, JobState::Queued);
    }
    let pools = [DEFAULT_POOL.to_string()];
    let claim = || manager.store.claim(HOST, &pools, now_millis()).unwrap();
    let taken: Vec<JobId> = std::iter::from_fn(|| claim().map(|job| job.id)).collect();
    assert_eq!(taken, ids);
    // Claimed, each runs on this host.
    for id in ids {
        let job = manager.store.get(id).unwrap().unwrap();
        assert_eq!((job.state, job.host.as_str()), (JobState::Running, HOST));
    }
}

#[tokio::test]
async fn a_watch_that_falls_behind_the_changes_reads_them_from_the_store() {
    let left = LeftState::new();
    let manager = left.open_queueing(2000).await;
    let mut changes = manager.watch(WatchFilter::default(), 0).await.unwrap();
    let caught_up = changes.recv().await.unwrap().unwrap();
    assert!(matches!(caught_up, WatchEvent::CaughtUp { .. }));
    // More changes than the store keeps for a watcher that reads none of them.
    let mut started = Vec::new();
    for _ in 0..1500 {
        let (job, _) = manager
            .start(left.spec(), None, "uid 0".into())
            .await
            .unwrap();
        started.push(job.id);
    }
    let mut seen = std::collections::HashSet::new();
    let mut last_position = 0;
    while seen.len() < started.len() {
        let event = tokio::time::timeout(Duration::from_secs(10), changes.recv())
            .await
            .expect("the watch goes on")
            .unwrap()
            .unwrap();
        let WatchEvent::Job { job, position } = event else {
            panic!("one caught-up marker only");
        };
        assert!(position >= last_position);
        last_position = position;
        assert_eq!(job.state, JobState::Queued);
        seen.insert(job.id);
    }
    assert!(started.iter().all(|id| seen.contains(id)));
}
