//! The queries whose filters vary (List, and a Watch's replay), built once for both
//! backends: `?` marks each argument, which PostgreSQL's backend numbers `$1`, `$2`...

use std::collections::BTreeMap;

use super::JOB_COLUMNS;
use crate::job::{JobState, ListFilter, WatchFilter};

pub enum Arg {
    Text(String),
    Int(i64),
}

pub struct Query {
    pub sql: String,
    pub args: Vec<Arg>,
}

impl Query {
    fn select(tail: &str) -> Query {
        Query {
            sql: format!("SELECT {JOB_COLUMNS}{tail} FROM jobs WHERE 1 = 1"),
            args: Vec::new(),
        }
    }

    /// The SQL with `$1`, `$2`... for the arguments, as PostgreSQL takes them.
    pub fn numbered(&self) -> String {
        let mut sql = String::with_capacity(self.sql.len() + 16);
        for (n, piece) in self.sql.split('?').enumerate() {
            if n > 0 {
                sql += &format!("${n}");
            }
            sql += piece;
        }
        sql
    }

    /// Narrows the query to jobs in one of `states`, if it names any.
    fn states(&mut self, states: &[JobState]) {
        if !states.is_empty() {
            let marks = vec!["?"; states.len()].join(", ");
            self.sql += &format!(" AND state IN ({marks})");
            self.args
                .extend(states.iter().map(|s| Arg::Text(s.name().to_owned())));
        }
    }

    /// Narrows the query to jobs that carry every one of `labels`.
    fn labels(&mut self, labels: &BTreeMap<String, String>) {
        for (key, value) in labels {
            self.sql += " AND id IN (SELECT job_id FROM job_labels WHERE key = ? AND value = ?)";
            self.args.push(Arg::Text(key.clone()));
            self.args.push(Arg::Text(value.clone()));
        }
    }
}

/// One page of `filter` newest first, and one job more if there are more.
pub fn list(filter: &ListFilter) -> Query {
    let mut query = Query::select("");
    query.states(&filter.states);
    if let Some(before) = filter.before {
        query.sql += " AND id < ?";
        query.args.push(Arg::Text(before.to_string()));
    }
    query.labels(&filter.labels);
    if !filter.group.is_empty() {
        // `<> ''` as well: so that the partial index of groups answers it.
        query.sql += " AND group_id = ? AND group_id <> ''";
        query.args.push(Arg::Text(filter.group.clone()));
    }
    if filter.min_disk_bytes > 0 {
        query.sql += " AND disk_bytes >= ?";
        query
            .args
            .push(Arg::Int(filter.min_disk_bytes.min(i64::MAX as u64) as i64));
    }
    query.sql += " ORDER BY id DESC LIMIT ?";
    query.args.push(Arg::Int(filter.limit as i64 + 1));
    query
}

/// The jobs of `filter` changed after `since`, oldest change first (see
/// `Store::changed_since`), with their versions.
pub fn changed_since(since: u64, filter: &WatchFilter, initial: bool, limit: usize) -> Query {
    let mut query = Query::select(", version");
    query.sql += " AND version > ?";
    query.args.push(Arg::Int(since as i64));
    if initial {
        query.states(&filter.states);
    }
    if !filter.ids.is_empty() {
        let marks = vec!["?"; filter.ids.len()].join(", ");
        query.sql += &format!(" AND id IN ({marks})");
        query
            .args
            .extend(filter.ids.iter().map(|id| Arg::Text(id.to_string())));
    }
    query.labels(&filter.labels);
    query.sql += " ORDER BY version LIMIT ?";
    query.args.push(Arg::Int(limit as i64));
    query
}

/// Jobs in `states` (any that ended, if empty) that ended before `cutoff`, oldest
/// end first.
pub fn ended_before(cutoff: i64, states: &[JobState], host: Option<&str>, limit: usize) -> Query {
    let mut query = Query::select("");
    query.sql += " AND finished_at < ?";
    query.args.push(Arg::Int(cutoff));
    if let Some(host) = host {
        // Its own jobs, whose directories are here, and those that never ran.
        query.sql += " AND host IN (?, '')";
        query.args.push(Arg::Text(host.to_string()));
    }
    let ended = [JobState::Succeeded, JobState::Failed, JobState::Cancelled];
    query.states(if states.is_empty() { &ended } else { states });
    query.sql += " ORDER BY finished_at LIMIT ?";
    query.args.push(Arg::Int(limit as i64));
    query
}

/// How many jobs are in each state.
pub const COUNT_BY_STATE: &str = "SELECT state, COUNT(*) FROM jobs GROUP BY state";

/// The jobs waiting in the queue, of every pool.
pub const COUNT_QUEUED: &str = "SELECT COUNT(*) FROM jobs WHERE state = 'queued'";

/// The latest version of all, read with `changed_since`.
pub const LATEST_VERSION: &str = "SELECT latest FROM versions";

/// Takes the next version: one more than any handed out before.
pub const NEXT_VERSION: &str = "UPDATE versions SET latest = latest + 1 RETURNING latest";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_numbered_for_postgres() {
        let filter = ListFilter {
            states: vec![JobState::Queued, JobState::Running],
            labels: [("team".to_string(), "a".to_string())].into(),
            limit: 5,
            ..ListFilter::default()
        };
        let query = list(&filter);
        assert_eq!(query.args.len(), 5);
        assert!(
            query.numbered().ends_with(
                "WHERE 1 = 1 AND state IN ($1, $2) AND id IN (SELECT job_id FROM job_labels \
                 WHERE key = $3 AND value = $4) ORDER BY id DESC LIMIT $5"
            ),
            "{}",
            query.numbered()
        );
    }
}
