//! Watching configuration files that are replaced while the server runs (rotated
//! certificates, a tokens file): inotify on their directories, since tools
//! often replace a file by a rename, or swap a symlinked directory.

use std::{collections::HashSet, path::Path, sync::Arc};

use anyhow::Context;
use inotify::{Inotify, WatchMask};
use tokio_stream::StreamExt;

/// Calls `reload` on a blocking thread whenever something changes in the
/// directories of `files`, for as long as `owner` lives.
pub fn on_change<T: Send + Sync + 'static>(
    files: &[&Path],
    owner: &Arc<T>,
    reload: fn(&T),
) -> anyhow::Result<()> {
    let inotify = Inotify::init().context("cannot watch files for changes")?;
    let mut dirs = HashSet::new();
    for file in files {
        let dir = file
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if dirs.insert(dir.to_path_buf()) {
            let changes = WatchMask::CLOSE_WRITE
                | WatchMask::MOVED_TO
                | WatchMask::CREATE
                | WatchMask::DELETE;
            inotify
                .watches()
                .add(dir, changes)
                .with_context(|| format!("cannot watch {}", dir.display()))?;
        }
    }
    let mut events = inotify.into_event_stream(vec![0u8; 4096])?;
    let owner = Arc::downgrade(owner);
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            if event.is_err() {
                return;
            }
            let Some(owner) = owner.upgrade() else { return };
            let _ = tokio::task::spawn_blocking(move || reload(&owner)).await;
        }
    });
    Ok(())
}
