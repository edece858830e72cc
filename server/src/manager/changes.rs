//! How the manager learns that something changed without polling: inotify on the
//! directories of running jobs (new output, a new `status.json`), and the runner's
//! exit (a child to wait for, or, for runners adopted after a restart, a pidfd).

use std::{
    collections::HashMap,
    io,
    path::Path,
    sync::{Arc, Mutex},
};

use inotify::{EventMask, EventStream, Inotify, WatchDescriptor, WatchMask, Watches};
use tokio::io::{Interest, unix::AsyncFd};
use tokio_stream::StreamExt;

use super::JobManager;
use crate::{
    job::JobId,
    runner::{
        process::{ProcessIdentity, pidfd_open},
        record::STATUS_FILE,
    },
};

type Events = EventStream<Vec<u8>>;

/// The inotify watches on running jobs' directories.
pub(super) struct DirWatcher {
    watched: Mutex<Watched>,
}

struct Watched {
    watches: Watches,
    jobs: HashMap<WatchDescriptor, JobId>,
    descriptors: HashMap<JobId, WatchDescriptor>,
}

impl DirWatcher {
    pub(super) fn new() -> io::Result<(DirWatcher, Events)> {
        let inotify = Inotify::init()?;
        let watches = inotify.watches();
        let events = inotify.into_event_stream(vec![0u8; 64 * 1024])?;
        let watched = Watched {
            watches,
            jobs: HashMap::new(),
            descriptors: HashMap::new(),
        };
        Ok((
            DirWatcher {
                watched: Mutex::new(watched),
            },
            events,
        ))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Watched> {
        self.watched
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reports changes to the files in `dir` as changes to job `id`.
    pub(super) fn add(&self, id: JobId, dir: &Path) -> io::Result<()> {
        let mut watched = self.lock();
        let descriptor = watched
            .watches
            .add(dir, WatchMask::MODIFY | WatchMask::MOVED_TO)?;
        watched.jobs.insert(descriptor.clone(), id);
        watched.descriptors.insert(id, descriptor);
        Ok(())
    }

    pub(super) fn remove(&self, id: JobId) {
        let mut watched = self.lock();
        if let Some(descriptor) = watched.descriptors.remove(&id) {
            watched.jobs.remove(&descriptor);
            // Fails only if the directory is gone, which ends the watch anyway.
            let _ = watched.watches.remove(descriptor);
        }
    }

    fn job(&self, descriptor: &WatchDescriptor) -> Option<JobId> {
        self.lock().jobs.get(descriptor).copied()
    }
}

impl JobManager {
    /// Wakes whoever waits on a job.
    fn bump(&self, id: JobId) {
        if let Some(entry) = self.live().jobs.get(&id) {
            entry.changed.send_modify(|version| *version += 1);
        }
    }

    /// Turns inotify events into job changes, for as long as the server runs.
    pub(super) fn watch_dirs(self: Arc<Self>, mut events: Events) {
        tokio::spawn(async move {
            while let Some(event) = events.next().await {
                let event = match event {
                    Ok(event) => event,
                    Err(err) => {
                        tracing::error!("inotify failed; output changes go unnoticed: {err}");
                        return;
                    }
                };
                if event.mask.contains(EventMask::Q_OVERFLOW) {
                    let ids: Vec<JobId> = self.live().jobs.keys().copied().collect();
                    ids.into_iter().for_each(|id| self.refresh(id));
                } else if let Some(id) = self.watcher.job(&event.wd) {
                    if event.name.as_deref() == Some(STATUS_FILE.as_ref()) {
                        self.refresh(id);
                    } else {
                        self.bump(id);
                    }
                }
            }
        });
    }

    /// Re-reads what a running job's runner reported, and wakes its waiters.
    fn refresh(&self, id: JobId) {
        if let Ok(Some(status)) = self.job_dir(id).read_status() {
            self.update_live(id, status.thread_id, status.usage);
        }
        self.bump(id);
    }

    /// Finishes job `id` once the runner the server started for it exits (and reaps
    /// it).
    pub(super) fn on_runner_exit(self: Arc<Self>, id: JobId, mut child: tokio::process::Child) {
        tokio::spawn(async move {
            if let Err(err) = child.wait().await {
                tracing::warn!(job = %id, "waiting for the runner failed: {err}");
            }
            self.runner_gone(id);
        });
    }

    /// Finishes job `id` once `runner`, started by an earlier server, exits.
    pub(super) fn adopt(self: &Arc<Self>, id: JobId, runner: ProcessIdentity) -> io::Result<()> {
        let pidfd = pidfd_open(runner.pid, libc::O_NONBLOCK)?;
        // The pidfd names whatever process had the pid when it was opened: make sure
        // that is still our runner.
        if !runner.is_alive() {
            self.runner_gone(id);
            return Ok(());
        }
        // SAFETY: the AsyncFd owns the pidfd, so the fd stays open while registered.
        let exited = unsafe { AsyncFd::register_with_interest(pidfd, Interest::READABLE) }
            .map_err(|err| io::Error::other(err.to_string()))?;
        let manager = self.clone();
        tokio::spawn(async move {
            // A pidfd becomes readable when its process exits.
            let _ = exited.readable().await;
            manager.runner_gone(id);
        });
        Ok(())
    }
}
