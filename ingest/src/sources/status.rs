//! What each source reports to `/readyz`, `/metrics`, `/v1/sources` and the page.

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tidings_index::ApplyOutcome;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceState {
    Connecting,
    Connected,
    /// Waiting before the next attempt (see `retry_at`).
    Backoff,
    /// Connected, but not reading: the embedder is behind.
    Throttled,
    /// A configuration problem it cannot get past (see `last_error`).
    Failed,
    Stopped,
}

/// Monotonic counters of one source.
#[derive(Debug, Default)]
pub struct SourceCounters {
    /// Messages read off the wire.
    pub received: AtomicU64,
    pub inserted: AtomicU64,
    pub updated: AtomicU64,
    pub duplicates: AtomicU64,
    pub deleted: AtomicU64,
    /// Messages left out by the source's filter.
    pub filtered: AtomicU64,
    /// Malformed, oversized or invalid messages (dead-lettered).
    pub rejected: AtomicU64,
    /// Messages the source does not index (likes, follows, notifications…).
    pub ignored: AtomicU64,
    pub connects: AtomicU64,
    pub disconnects: AtomicU64,
    pub batches: AtomicU64,
}

#[derive(Clone, Debug, Default, Serialize)]
struct Mutable {
    state: Option<SourceState>,
    endpoint: Option<String>,
    since: Option<DateTime<Utc>>,
    last_error: Option<String>,
    last_error_at: Option<DateTime<Utc>>,
    retry_at: Option<DateTime<Utc>>,
    position: Option<String>,
    newest_event: Option<DateTime<Utc>>,
    committed_at: Option<DateTime<Utc>>,
    /// How far behind the source the last commit was (commit time − newest event's time).
    lag_secs: Option<f64>,
    /// Messages waiting at the source (NATS consumer's pending count).
    backlog: Option<u64>,
    throttled: bool,
    /// The position (NATS stream sequence) a commit must reach before the source counts as
    /// caught up: the last message that waited for it when it connected.
    catch_up_to: Option<u64>,
    /// Latched once a commit reached `catch_up_to` (a source without one: once connected).
    caught_up: bool,
}

/// Shared status of one running source.
#[derive(Debug)]
pub struct SourceStatus {
    pub name: String,
    pub kind: String,
    pub counters: SourceCounters,
    inner: Mutex<Mutable>,
}

/// A point-in-time copy, as the API shows it.
#[derive(Clone, Debug, Serialize)]
pub struct SourceSnapshot {
    pub name: String,
    pub kind: String,
    pub state: SourceState,
    pub connected: bool,
    pub endpoint: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    pub retry_at: Option<DateTime<Utc>>,
    pub retry_in_secs: Option<f64>,
    /// The checkpoint stored with the last commit.
    pub position: Option<String>,
    /// How far behind the source the last commit was: its time minus the source time of the
    /// newest event it held (does not grow while a quiet source sends nothing).
    pub lag_secs: Option<f64>,
    /// Source time of the newest committed event.
    pub newest_event: Option<DateTime<Utc>>,
    /// Messages still waiting at the source, where it says (NATS).
    pub backlog: Option<u64>,
    /// Whether the source has delivered, since this process started, everything that waited
    /// for it (a late replica reading the stream is not caught up until then).
    pub caught_up: bool,
    pub committed_at: Option<DateTime<Utc>>,
    pub received: u64,
    pub inserted: u64,
    pub updated: u64,
    pub duplicates: u64,
    pub deleted: u64,
    pub filtered: u64,
    pub rejected: u64,
    pub ignored: u64,
    pub connects: u64,
    pub disconnects: u64,
}

impl SourceStatus {
    pub fn new(name: &str, kind: &str) -> SourceStatus {
        SourceStatus {
            name: name.to_string(),
            kind: kind.to_string(),
            counters: SourceCounters::default(),
            inner: Mutex::new(Mutable {
                state: Some(SourceState::Connecting),
                since: Some(Utc::now()),
                ..Mutable::default()
            }),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Mutable) -> R) -> R {
        let mut guard = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    pub fn count(&self, which: impl FnOnce(&SourceCounters) -> &AtomicU64) {
        which(&self.counters).fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_state(&self, state: SourceState) {
        self.with(|m| {
            if m.state != Some(state) {
                m.since = Some(Utc::now());
            }
            m.state = Some(state);
            if state != SourceState::Backoff {
                m.retry_at = None;
            }
        });
    }

    pub fn connecting(&self, endpoint: &str) {
        self.with(|m| m.endpoint = Some(endpoint.to_string()));
        self.set_state(SourceState::Connecting);
    }

    /// Connected. A source that set a catch-up position before this is caught up once a
    /// commit reaches it; any other is caught up now.
    pub fn connected(&self) {
        self.count(|c| &c.connects);
        self.set_state(SourceState::Connected);
        self.with(|m| {
            if m.catch_up_to.is_none() {
                m.caught_up = true;
            }
        });
    }

    /// What waited for this source when it connected: it is not caught up until a commit's
    /// position (a NATS stream sequence) reaches `position` (`None`: nothing waited).
    pub fn catch_up_to(&self, position: Option<u64>) {
        self.with(|m| {
            if !m.caught_up {
                m.catch_up_to = position;
            }
        });
    }

    pub fn set_error(&self, error: &str) {
        self.with(|m| {
            m.last_error = Some(error.to_string());
            m.last_error_at = Some(Utc::now());
        });
    }

    /// Records a lost connection and the wait before the next attempt.
    pub fn disconnected(&self, error: &str, retry_in: Duration) {
        self.count(|c| &c.disconnects);
        self.set_error(error);
        self.set_retry(SourceState::Backoff, retry_in);
    }

    pub fn set_retry(&self, state: SourceState, retry_in: Duration) {
        self.set_state(state);
        self.with(|m| {
            m.retry_at = chrono::Duration::from_std(retry_in)
                .ok()
                .map(|d| Utc::now() + d)
        });
    }

    pub fn set_throttled(&self, on: bool) {
        self.with(|m| m.throttled = on);
    }

    pub fn set_backlog(&self, backlog: Option<u64>) {
        self.with(|m| m.backlog = backlog);
    }

    /// A batch is durable: counts, position and the newest event time move.
    pub fn committed(
        &self,
        outcome: &ApplyOutcome,
        position: Option<String>,
        newest_event: Option<DateTime<Utc>>,
    ) {
        let c = &self.counters;
        c.inserted.fetch_add(outcome.inserted, Ordering::Relaxed);
        c.updated.fetch_add(outcome.updated, Ordering::Relaxed);
        c.duplicates
            .fetch_add(outcome.duplicates, Ordering::Relaxed);
        c.deleted.fetch_add(outcome.deleted, Ordering::Relaxed);
        c.batches.fetch_add(1, Ordering::Relaxed);
        self.with(|m| {
            if position.is_some() {
                m.position = position;
            }
            let now = Utc::now();
            if let Some(t) = newest_event {
                m.newest_event = Some(t);
                m.lag_secs = Some(((now - t).num_milliseconds().max(0) as f64) / 1000.0);
            }
            m.committed_at = Some(now);
            let reached = match (m.catch_up_to, m.position.as_deref()) {
                (Some(target), Some(p)) => p.parse::<u64>().is_ok_and(|p| p >= target),
                _ => false,
            };
            if reached {
                m.caught_up = true;
                m.catch_up_to = None;
            }
        });
    }

    /// The position of the last durable batch.
    pub fn committed_position(&self) -> Option<String> {
        self.with(|m| m.position.clone())
    }

    pub fn snapshot(&self) -> SourceSnapshot {
        let m = self.with(|m| m.clone());
        let now = Utc::now();
        let state = match m.state.unwrap_or(SourceState::Connecting) {
            SourceState::Connected if m.throttled => SourceState::Throttled,
            s => s,
        };
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SourceSnapshot {
            name: self.name.clone(),
            kind: self.kind.clone(),
            state,
            connected: matches!(state, SourceState::Connected | SourceState::Throttled),
            endpoint: m.endpoint,
            since: m.since,
            last_error: m.last_error,
            last_error_at: m.last_error_at,
            retry_in_secs: m
                .retry_at
                .map(|t| ((t - now).num_milliseconds().max(0) as f64) / 1000.0),
            retry_at: m.retry_at,
            position: m.position,
            lag_secs: m.lag_secs,
            newest_event: m.newest_event,
            backlog: m.backlog,
            caught_up: m.caught_up,
            committed_at: m.committed_at,
            received: get(&c.received),
            inserted: get(&c.inserted),
            updated: get(&c.updated),
            duplicates: get(&c.duplicates),
            deleted: get(&c.deleted),
            filtered: get(&c.filtered),
            rejected: get(&c.rejected),
            ignored: get(&c.ignored),
            connects: get(&c.connects),
            disconnects: get(&c.disconnects),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_is_caught_up_once_a_commit_reaches_what_waited_for_it() {
        let nats = SourceStatus::new("nats-東京", "nats");
        nats.catch_up_to(Some(40));
        nats.connected();
        assert!(!nats.snapshot().caught_up, "messages up to 40 still wait");
        nats.committed(&ApplyOutcome::default(), Some("39".into()), None);
        assert!(!nats.snapshot().caught_up, "39 is not 40");
        nats.committed(&ApplyOutcome::default(), Some("40".into()), None);
        assert!(nats.snapshot().caught_up);
        // A latch: a reconnect with a new backlog does not take the replica out of service.
        nats.catch_up_to(Some(500));
        nats.connected();
        nats.committed(&ApplyOutcome::default(), Some("41".into()), None);
        assert!(nats.snapshot().caught_up);

        let jetstream = SourceStatus::new("bluesky", "jetstream");
        assert!(!jetstream.snapshot().caught_up);
        jetstream.connected();
        assert!(jetstream.snapshot().caught_up, "nothing to catch up with");
    }
}
