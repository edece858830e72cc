//! This host among those that share the store: its record, kept fresh by a
//! heartbeat, the fleet as the records show it, and where a job may run.

use std::{sync::Arc, time::Duration};

use super::JobManager;
use crate::{
    error::{Error, Result},
    job::{FailureReason, Host, Job, JobSpec, JobState, Millis, Outcome, now_millis},
};

/// How often a host tells the store it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(5);

/// Heartbeats a host may miss before the others count it as gone.
const MISSED_HEARTBEATS: u32 = 3;

/// This host, as the others know it.
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// `--host-id`: unique among the hosts that share the store.
    pub id: String,
    /// `--advertise`: the URL the other hosts reach this one's service at.
    pub address: String,
    /// `--pool`: the pools whose jobs this host takes.
    pub pools: Vec<String>,
    /// `--host-lost-after`: how long another host may go without a heartbeat
    /// before the jobs it ran end as lost.
    pub lost_after: Duration,
}

/// A host's record, and whether it heartbeats.
#[derive(Clone, Debug)]
pub struct HostStatus {
    pub host: Host,
    pub alive: bool,
}

impl HostStatus {
    /// Whether this host is alive and may run `spec`.
    pub(super) fn may_take(&self, spec: &JobSpec) -> bool {
        self.alive && serves(&self.host.id, &self.host.pools, spec)
    }
}

/// Whether the host `id`, serving `pools`, may run `spec`: its pool, and its host
/// if it names one.
fn serves(id: &str, pools: &[String], spec: &JobSpec) -> bool {
    pools.contains(&spec.pool) && (spec.host.is_empty() || spec.host == id)
}

impl JobManager {
    /// Writes this host's record as it is now.
    pub(super) fn heartbeat(&self) -> Result<()> {
        let host = &self.config.host;
        self.store.put_host(&Host {
            id: host.id.clone(),
            address: host.address.clone(),
            pools: host.pools.clone(),
            max_running: self.config.max_running as u32,
            running: self.running() as u32,
            started_at: self.started_at,
            heartbeat_at: now_millis(),
        })?;
        Ok(())
    }

    /// Heartbeats, and looks at the other hosts' heartbeats, for as long as the
    /// server runs.
    pub(super) fn keep_heartbeating(self: Arc<Self>) {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(HEARTBEAT).await;
                let beat = self
                    .blocking(|manager| {
                        manager.heartbeat()?;
                        manager.look_at_the_fleet()
                    })
                    .await;
                if let Err(err) = beat {
                    tracing::warn!("could not record this host's heartbeat: {err}");
                }
            }
        });
    }

    /// Notes when each host was last heard of, and ends the jobs of hosts gone for
    /// longer than `lost_after` as lost.
    pub(super) fn look_at_the_fleet(&self) -> Result<()> {
        let hosts = self.store.hosts()?;
        *self.known_hosts() = hosts.clone();
        if !self.store.is_shared() {
            // Its jobs are this server's, whatever host id it had before.
            return Ok(());
        }
        let lost_after = self.config.host.lost_after.as_millis() as Millis;
        let now = now_millis();
        for host in &hosts {
            if host.id != self.config.host.id && now - host.heartbeat_at > lost_after {
                self.end_lost_jobs(host)?;
            }
        }
        Ok(())
    }

    /// Ends the jobs a gone host was running as failed, reason lost (each once,
    /// whichever host gets there first).
    fn end_lost_jobs(&self, host: &Host) -> Result<()> {
        for mut job in self.store.running(Some(&host.id))? {
            job.state = JobState::Failed;
            job.finished_at = Some(now_millis());
            job.outcome = Outcome {
                failure_reason: Some(FailureReason::Lost),
                error: format!(
                    "host {} stopped heartbeating and was not back within {}; what became of \
                     the job there is unknown",
                    host.id,
                    humantime::format_duration(self.config.host.lost_after)
                ),
                ..Outcome::default()
            };
            if self.store.finish(&job, JobState::Running)? {
                tracing::warn!(job = %job.id, host = %host.id, "job lost with its host");
                // Nobody listening is no error.
                let _ = self.ended.send(job);
            }
        }
        Ok(())
    }

    /// Whether `host` (another host) has missed its heartbeats, as of the last look.
    pub(super) fn is_unreachable(&self, host: &str) -> bool {
        let now = now_millis();
        let known = self.known_hosts();
        let known = known.iter().find(|known| known.id == host);
        known.is_none_or(|known| !self.is_alive(known, now))
    }

    fn known_hosts(&self) -> std::sync::MutexGuard<'_, Vec<Host>> {
        self.known_hosts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every host that shares the store, by id.
    pub async fn hosts(self: &Arc<Self>) -> Result<Vec<HostStatus>> {
        self.blocking(|manager| manager.host_statuses()).await
    }

    pub(super) fn host_statuses(&self) -> Result<Vec<HostStatus>> {
        let now = now_millis();
        Ok(self
            .store
            .hosts()?
            .into_iter()
            .map(|host| HostStatus {
                alive: self.is_alive(&host, now),
                host,
            })
            .collect())
    }

    fn is_alive(&self, host: &Host, now: Millis) -> bool {
        let gone_after = (HEARTBEAT * MISSED_HEARTBEATS).as_millis() as Millis;
        host.id == self.config.host.id || now - host.heartbeat_at <= gone_after
    }

    /// Checks that a live host may take `spec`, and returns whether this host is the
    /// only one that may (then its policy is checked at once).
    pub(super) fn only_here(&self, spec: &JobSpec) -> Result<bool> {
        if !self.store.is_shared() || spec.host == self.config.host.id {
            let host = &self.config.host;
            return if serves(&host.id, &host.pools, spec) {
                Ok(true)
            } else {
                Err(self.no_host_for(spec, &[]))
            };
        }
        // The hosts as of the last heartbeat when they show several takers; else
        // as they are now (a host may have joined since).
        let now = now_millis();
        let known: Vec<HostStatus> = self
            .known_hosts()
            .iter()
            .map(|host| HostStatus {
                alive: self.is_alive(host, now),
                host: host.clone(),
            })
            .collect();
        let hosts = if known.iter().filter(|status| status.may_take(spec)).count() > 1 {
            known
        } else {
            self.host_statuses()?
        };
        let mut takers = hosts.iter().filter(|status| status.may_take(spec));
        match (takers.next(), takers.next()) {
            (None, _) => Err(self.no_host_for(spec, &hosts)),
            (Some(only), None) => Ok(only.host.id == self.config.host.id),
            (Some(_), Some(_)) => Ok(false),
        }
    }

    /// Why no host can take `spec`, with the hosts there are.
    fn no_host_for(&self, spec: &JobSpec, hosts: &[HostStatus]) -> Error {
        let wanted = match spec.host.as_str() {
            "" => format!("no live host serves pool {}", spec.pool),
            host => format!(
                "host {host} is not live, or does not serve pool {}",
                spec.pool
            ),
        };
        let known = if hosts.is_empty() {
            let host = &self.config.host;
            format!("{} (pools {})", host.id, host.pools.join(", "))
        } else {
            hosts
                .iter()
                .map(|status| {
                    let state = if status.alive { "" } else { ", gone" };
                    let host = &status.host;
                    format!("{} (pools {}{state})", host.id, host.pools.join(", "))
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        Error::FailedPrecondition(format!("{wanted}: the hosts are {known}"))
    }

    /// The host that runs (or ran) `job`, when it is not this one. A store of this
    /// server's own holds only jobs it ran, whatever its host id was then.
    pub(super) fn elsewhere<'a>(&self, job: &'a Job) -> Option<&'a str> {
        Some(job.host.as_str()).filter(|host| {
            self.store.is_shared() && !host.is_empty() && *host != self.config.host.id
        })
    }

    /// This host's id.
    pub fn host_id(&self) -> &str {
        &self.config.host.id
    }

    /// The address another host's service is reached at.
    pub async fn host_address(self: &Arc<Self>, id: &str) -> Result<String> {
        let id = id.to_string();
        self.blocking(move |manager| {
            let host = manager
                .store
                .hosts()?
                .into_iter()
                .find(|host| host.id == id);
            match host {
                Some(host) if !host.address.is_empty() => Ok(host.address),
                Some(_) => Err(Error::Unavailable(format!(
                    "host {id} runs the job but gave no address to reach it at (--advertise)"
                ))),
                None => Err(Error::Unavailable(format!(
                    "host {id} runs the job but is not among the hosts"
                ))),
            }
        })
        .await
    }
}
