//! Watch: the jobs that match a filter, then every change of their state. Built on
//! the store's versions: the jobs a stream starts with (or, on resume, those that
//! changed after a version) are read from the table, and the changes that follow
//! come from the store's announcements, in version order. Woken by changes, never
//! by a timer.

use std::{collections::HashMap, sync::Arc};

use tokio::sync::{broadcast::error::RecvError, mpsc};

use super::JobManager;
use crate::{
    error::Result,
    job::{Job, JobId, WatchFilter},
    store::Announcement,
};

/// Jobs read from the table at a time.
const PAGE: usize = 500;

/// One message of a Watch stream. `position`: every change up to it has been sent.
#[derive(Debug, PartialEq)]
pub enum WatchEvent {
    Job {
        job: Box<Job>,
        position: u64,
    },
    /// The jobs the stream started with have all been sent.
    CaughtUp {
        position: u64,
    },
}

impl JobManager {
    /// Streams the jobs that match `filter` as they are (or, with `since` above zero,
    /// those that changed after that position), then each change of state of a job
    /// that matches its labels and ids. Stops when the receiver is dropped. Every
    /// job it names must exist.
    pub async fn watch(
        self: &Arc<Self>,
        filter: WatchFilter,
        since: u64,
    ) -> Result<mpsc::Receiver<Result<WatchEvent>>> {
        let ids = filter.ids.clone();
        self.blocking(move |manager| ids.iter().try_for_each(|&id| manager.job(id).map(drop)))
            .await?;
        // Listen before the first read, so no change falls between the two.
        let changes = self.store.changes();
        let (events, receiver) = mpsc::channel(16);
        let manager = self.clone();
        tokio::spawn(async move {
            if let Err(err) = manager
                .stream_changes(filter, since, changes, &events)
                .await
            {
                let _ = events.send(Err(err)).await;
            }
        });
        Ok(receiver)
    }

    async fn stream_changes(
        self: &Arc<Self>,
        filter: WatchFilter,
        since: u64,
        mut changes: tokio::sync::broadcast::Receiver<Announcement>,
        events: &mpsc::Sender<Result<WatchEvent>>,
    ) -> Result<()> {
        let initial = since == 0;
        let Some(mut position) = self.replay(&filter, since, initial, events).await? else {
            return Ok(());
        };
        if events
            .send(Ok(WatchEvent::CaughtUp { position }))
            .await
            .is_err()
        {
            return Ok(());
        }
        // Jobs sent as read after the change that woke the stream, at a later
        // version: their own change, when it comes, is not sent again.
        let mut sent_ahead: HashMap<JobId, u64> = HashMap::new();
        loop {
            let change = tokio::select! {
                change = changes.recv() => change,
                () = events.closed() => return Ok(()),
            };
            let change = match change {
                Ok(Announcement::Changed(change)) => change,
                // Fell behind the announcements, or some went unheard: read what
                // changed from the table.
                Ok(Announcement::Missed) | Err(RecvError::Lagged(_)) => {
                    tracing::info!("a Watch may have missed changes; reading them from the store");
                    sent_ahead.clear();
                    match self.replay(&filter, position, false, events).await? {
                        Some(caught_up) => {
                            position = caught_up;
                            continue;
                        }
                        None => return Ok(()),
                    }
                }
                Err(RecvError::Closed) => return Ok(()),
            };
            if change.version <= position {
                continue;
            }
            position = change.version;
            let sent_already = sent_ahead
                .get(&change.id)
                .is_some_and(|&sent| sent >= change.version);
            sent_ahead.retain(|_, version| *version > position);
            if sent_already {
                continue;
            }
            let Some((job, version)) = self
                .blocking(move |manager| manager.versioned_job(change.id))
                .await?
            else {
                continue;
            };
            if !filter.follows(&job) {
                continue;
            }
            if version > position {
                sent_ahead.insert(job.id, version);
            }
            let event = WatchEvent::Job {
                job: Box::new(job),
                position,
            };
            if events.send(Ok(event)).await.is_err() {
                return Ok(());
            }
        }
    }

    /// Sends the jobs that changed after `since` (`initial`: those the stream starts
    /// with), oldest change first, and returns the position they bring the stream
    /// to; `None` when the receiver is gone.
    async fn replay(
        self: &Arc<Self>,
        filter: &WatchFilter,
        mut since: u64,
        initial: bool,
        events: &mpsc::Sender<Result<WatchEvent>>,
    ) -> Result<Option<u64>> {
        loop {
            let page_filter = filter.clone();
            let (page, latest) = self
                .blocking(move |manager| -> Result<_> {
                    let (page, latest) =
                        manager
                            .store
                            .changed_since(since, &page_filter, initial, PAGE)?;
                    let page: Vec<_> = page
                        .into_iter()
                        .map(|(job, version)| (manager.as_recorded(job), version))
                        .collect();
                    Ok((page, latest))
                })
                .await?;
            let last_page = page.len() < PAGE;
            for (job, version) in page {
                since = version;
                let event = WatchEvent::Job {
                    job: Box::new(job),
                    position: version,
                };
                if events.send(Ok(event)).await.is_err() {
                    return Ok(None);
                }
            }
            if last_page {
                return Ok(Some(latest.max(since)));
            }
        }
    }

    /// A job as the store has it, with the version of its latest change.
    fn versioned_job(&self, id: JobId) -> Result<Option<(Job, u64)>> {
        Ok(self
            .store
            .get_versioned(id)?
            .map(|(job, version)| (self.as_recorded(job), version)))
    }

    /// The live job's fresher details, while it is in the state the store recorded:
    /// each stored change is reported once, in its order, so a job already ahead of
    /// its record is reported as recorded (its next change follows).
    fn as_recorded(&self, job: Job) -> Job {
        if job.state.is_terminal() {
            return job;
        }
        match self.job(job.id) {
            Ok(live) if live.state == job.state => live,
            _ => job,
        }
    }
}
