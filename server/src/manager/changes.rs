//! How the manager learns that something changed without polling: inotify on the
//! directories of running jobs (new output, a new `status.json`), and the runner's
//! exit (`Runner::exited`).

use std::{
    collections::HashMap,
    io,
    path::Path,
    sync::{Arc, Mutex},
};

use inotify::{EventMask, EventStream, Inotify, WatchDescriptor, WatchMask, Watches};
use tokio_stream::StreamExt;

use super::JobManager;
use crate::{
    job::JobId,
    runner::{Runner, record::STATUS_FILE},
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
            entry.bump();
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
                    self.blocking(move |manager| {
                        ids.into_iter().for_each(|id| manager.refresh(id))
                    })
                    .await;
                } else if let Some(id) = self.watcher.job(&event.wd) {
                    if event.name.as_deref() == Some(STATUS_FILE.as_ref()) {
                        self.blocking(move |manager| manager.refresh(id)).await;
                    } else {
                        // New output: nothing to read here, only waiters to wake.
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

    /// Finishes job `id` once its runner exits.
    pub(super) fn finish_on_exit(self: Arc<Self>, id: JobId, runner: Arc<Runner>) {
        tokio::spawn(async move {
            runner.exited().await;
            self.blocking(move |manager| manager.runner_gone(id)).await;
        });
    }
}
