//! The digest scheduler inside `tidings serve`.
//!
//! Schedules are cron expressions evaluated in an IANA time zone (croner: a daily 08:00 job in
//! a spring-forward gap runs at the first real instant after it, and once, not twice, in a
//! fall-back overlap) or fixed intervals aligned to the Unix epoch (`every: 6h` fires at 00, 06,
//! 12 and 18 UTC). Each fire time is a *slot*: the run for a slot is claimed with a unique row
//! in the app database (`digest_runs (digest_id, scheduled_for)`), so replicas sharing
//! PostgreSQL run each slot once, and a restart never repeats a slot.
//!
//! Missed slots (the server was down): `missed = "run_once"` (default) runs the latest missed
//! slot once at start, `"skip"` waits for the next one. A late scheduler never bursts through
//! a backlog: after a run it continues from the next slot after *now*.

use chrono::{DateTime, TimeZone, Utc};
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// When a digest runs.
#[derive(Clone, Debug)]
pub enum Schedule {
    /// Every `period`, aligned to the Unix epoch.
    Every(chrono::Duration),
    /// A cron expression (5 fields, or 6 with seconds) in a time zone.
    Cron {
        cron: Box<croner::Cron>,
        tz: chrono_tz::Tz,
    },
}

impl Schedule {
    /// From a digest's `schedule` settings: `every`, or `cron` with an optional `timezone`
    /// (default UTC).
    pub fn parse(
        cron: Option<&str>,
        timezone: Option<&str>,
        every: Option<std::time::Duration>,
    ) -> Result<Schedule, String> {
        match (cron, every) {
            (Some(_), Some(_)) => Err("schedule takes either `cron` or `every`, not both".into()),
            (None, None) => Err("schedule needs `cron` (with `timezone`) or `every`".into()),
            (None, Some(period)) => {
                if timezone.is_some() {
                    return Err(
                        "`timezone` goes with `cron`; `every` counts from the Unix epoch".into(),
                    );
                }
                if period.as_secs() < 60 {
                    return Err("`every` must be at least 1m".into());
                }
                chrono::Duration::from_std(period)
                    .map(Schedule::Every)
                    .map_err(|_| "`every` is too long".into())
            }
            (Some(expr), None) => {
                let cron = croner::Cron::from_str(expr.trim())
                    .map_err(|e| format!("cron expression {expr:?}: {e}"))?;
                let tz = match timezone {
                    None => chrono_tz::UTC,
                    Some(name) => name.parse::<chrono_tz::Tz>().map_err(|_| {
                        format!(
                            "unknown time zone {name:?}; use an IANA name such as Europe/Berlin"
                        )
                    })?,
                };
                Ok(Schedule::Cron {
                    cron: Box::new(cron),
                    tz,
                })
            }
        }
    }

    /// The first slot strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Every(period) => {
                let p = period.num_milliseconds().max(1);
                let ms = t.timestamp_millis();
                Utc.timestamp_millis_opt((ms.div_euclid(p) + 1) * p)
                    .single()
            }
            Schedule::Cron { cron, tz } => cron
                .find_next_occurrence(&t.with_timezone(tz), false)
                .ok()
                .map(|d| d.with_timezone(&Utc)),
        }
    }

    /// The latest slot at or before `t`.
    pub fn last_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Every(period) => {
                let p = period.num_milliseconds().max(1);
                let ms = t.timestamp_millis();
                Utc.timestamp_millis_opt(ms.div_euclid(p) * p).single()
            }
            Schedule::Cron { cron, tz } => cron
                .find_previous_occurrence(&t.with_timezone(tz), true)
                .ok()
                .map(|d| d.with_timezone(&Utc)),
        }
    }
}

/// What to do about slots missed while the server was down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missed {
    RunOnce,
    Skip,
}

/// A scheduled digest as the scheduler sees it.
#[derive(Clone, Debug)]
pub struct Job {
    pub digest_id: String,
    pub schedule: Schedule,
    pub missed: Missed,
    /// The latest slot that has a run (any replica's), if any.
    pub last_slot: Option<DateTime<Utc>>,
}

/// Where jobs come from and how a slot runs (the app database and the digest runner in
/// production, a recorder in tests).
pub trait Runner: Send + Sync + 'static {
    fn jobs(&self) -> BoxFuture<'_, Vec<Job>>;
    /// Runs `digest_id` for `slot` unless another replica claimed it.
    fn run<'a>(
        &'a self,
        digest_id: &'a str,
        slot: DateTime<Utc>,
        reason: &'static str,
    ) -> BoxFuture<'a, ()>;
}

/// Runs one slot; a panic in it is logged and the loop goes on with every other digest.
async fn run_contained(
    runner: &Arc<dyn Runner>,
    digest_id: &str,
    slot: DateTime<Utc>,
    reason: &'static str,
) {
    use futures::FutureExt;
    if let Err(panic) = std::panic::AssertUnwindSafe(runner.run(digest_id, slot, reason))
        .catch_unwind()
        .await
    {
        let message = tidings_agent::panic_message(panic.as_ref());
        tracing::error!(digest = digest_id, %slot, panic = %message, "a scheduled digest run panicked; the scheduler goes on");
    }
}

/// "Now" for the scheduler: the wall clock, or (tests) a start time advanced by tokio's clock,
/// which `tokio::time::pause` controls.
#[derive(Clone, Copy, Debug)]
pub enum Clock {
    System,
    Tokio {
        start: DateTime<Utc>,
        at: tokio::time::Instant,
    },
}

impl Clock {
    pub fn starting_at(start: DateTime<Utc>) -> Clock {
        Clock::Tokio {
            start,
            at: tokio::time::Instant::now(),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Tokio { start, at } => {
                *start
                    + chrono::Duration::from_std(at.elapsed()).unwrap_or(chrono::Duration::zero())
            }
        }
    }
}

/// Runs schedules until `shutdown`. `changed` wakes it when digests were added, edited or
/// removed.
pub async fn run(
    runner: Arc<dyn Runner>,
    clock: Clock,
    changed: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let mut next: HashMap<String, DateTime<Utc>> = HashMap::new();
    let mut first = true;
    loop {
        let now = clock.now();
        let jobs = runner.jobs().await;
        next.retain(|id, _| jobs.iter().any(|j| &j.digest_id == id));
        for job in &jobs {
            if next.contains_key(&job.digest_id) {
                continue;
            }
            // A missed slot: one the schedule had before now that has no run.
            if first && job.missed == Missed::RunOnce {
                if let Some(slot) = job.schedule.last_at_or_before(now) {
                    let ran = job.last_slot.is_some_and(|l| l >= slot);
                    if !ran && job.last_slot.is_some() {
                        run_contained(&runner, &job.digest_id, slot, "missed").await;
                    }
                }
            }
            if let Some(n) = job.schedule.next_after(clock.now()) {
                next.insert(job.digest_id.clone(), n);
            }
        }
        first = false;
        // Due slots, earliest first.
        let now = clock.now();
        let mut due: Vec<(String, DateTime<Utc>)> = next
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(id, t)| (id.clone(), *t))
            .collect();
        due.sort_by_key(|(_, t)| *t);
        for (id, slot) in due {
            run_contained(&runner, &id, slot, "schedule").await;
            if let Some(job) = jobs.iter().find(|j| j.digest_id == id) {
                // Continue after now: a late scheduler does not burst through a backlog.
                match job.schedule.next_after(slot.max(clock.now())) {
                    Some(n) => next.insert(id, n),
                    None => next.remove(&id),
                };
            }
        }
        let wait = next
            .values()
            .min()
            .map(|t| (*t - clock.now()).to_std().unwrap_or_default())
            .unwrap_or(std::time::Duration::from_secs(3600));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = changed.notified() => { next.clear(); }
            _ = shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn schedules_parse_and_step() {
        let every = Schedule::parse(None, None, Some(Duration::from_secs(6 * 3600))).unwrap();
        assert_eq!(
            every.next_after(t("2026-03-01T05:59:59Z")),
            Some(t("2026-03-01T06:00:00Z"))
        );
        assert_eq!(
            every.next_after(t("2026-03-01T06:00:00Z")),
            Some(t("2026-03-01T12:00:00Z"))
        );
        assert_eq!(
            every.last_at_or_before(t("2026-03-01T13:00:00Z")),
            Some(t("2026-03-01T12:00:00Z"))
        );
        let berlin = Schedule::parse(Some("0 8 * * *"), Some("Europe/Berlin"), None).unwrap();
        // Winter: 08:00 CET = 07:00 UTC; summer: 08:00 CEST = 06:00 UTC.
        assert_eq!(
            berlin.next_after(t("2026-01-10T12:00:00Z")),
            Some(t("2026-01-11T07:00:00Z"))
        );
        assert_eq!(
            berlin.next_after(t("2026-07-10T12:00:00Z")),
            Some(t("2026-07-11T06:00:00Z"))
        );
        for bad in [
            Schedule::parse(Some("61 * * * *"), None, None),
            Schedule::parse(Some("0 8 * * *"), Some("Mars/Olympus"), None),
            Schedule::parse(None, None, Some(Duration::from_secs(5))),
            Schedule::parse(Some("0 8 * * *"), None, Some(Duration::from_secs(600))),
            Schedule::parse(None, Some("UTC"), Some(Duration::from_secs(600))),
            Schedule::parse(None, None, None),
        ] {
            assert!(bad.is_err());
        }
    }

    #[test]
    fn daylight_saving_edges() {
        // 02:30 every day in Berlin: on 2026-03-29 02:30 does not exist (clocks jump 02:00 →
        // 03:00): it runs at the first real instant after the gap, 03:00 CEST = 01:00 UTC.
        let s = Schedule::parse(Some("30 2 * * *"), Some("Europe/Berlin"), None).unwrap();
        assert_eq!(
            s.next_after(t("2026-03-28T12:00:00Z")),
            Some(t("2026-03-29T01:00:00Z"))
        );
        assert_eq!(
            s.next_after(t("2026-03-29T01:00:00Z")),
            Some(t("2026-03-30T00:30:00Z"))
        );
        // On 2026-10-25 02:30 happens twice (03:00 CEST → 02:00 CET): it runs once.
        let first = s.next_after(t("2026-10-24T12:00:00Z")).unwrap();
        assert_eq!(first, t("2026-10-25T00:30:00Z"));
        let second = s.next_after(first).unwrap();
        assert_eq!(
            second,
            t("2026-10-26T01:30:00Z"),
            "not again at 01:30 UTC on the 25th"
        );
    }

    /// Records runs; jobs are fixed.
    struct Recorder {
        jobs: Mutex<Vec<Job>>,
        runs: Mutex<Vec<(String, DateTime<Utc>, &'static str)>>,
        clock: Clock,
        seen_at: Mutex<Vec<DateTime<Utc>>>,
    }

    impl Runner for Recorder {
        fn jobs(&self) -> BoxFuture<'_, Vec<Job>> {
            Box::pin(async move { self.jobs.lock().unwrap().clone() })
        }
        fn run<'a>(
            &'a self,
            digest_id: &'a str,
            slot: DateTime<Utc>,
            reason: &'static str,
        ) -> BoxFuture<'a, ()> {
            Box::pin(async move {
                self.runs
                    .lock()
                    .unwrap()
                    .push((digest_id.to_string(), slot, reason));
                self.seen_at.lock().unwrap().push(self.clock.now());
                // Record the slot as run, as the database would.
                for j in self.jobs.lock().unwrap().iter_mut() {
                    if j.digest_id == digest_id {
                        j.last_slot = Some(slot);
                    }
                }
            })
        }
    }

    fn job(id: &str, schedule: Schedule, missed: Missed, last: Option<&str>) -> Job {
        Job {
            digest_id: id.into(),
            schedule,
            missed,
            last_slot: last.map(t),
        }
    }

    async fn run_for(recorder: Arc<Recorder>, hours: u64) {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(
            recorder.clone(),
            recorder.clock,
            Arc::new(Notify::new()),
            shutdown.clone(),
        ));
        // Ten minutes past the last full hour, so a slot on the hour is not racing the stop.
        tokio::time::sleep(Duration::from_secs(hours * 3600 + 600)).await;
        shutdown.cancel();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn fires_cron_and_interval_schedules_in_virtual_time() {
        let clock = Clock::starting_at(t("2026-03-28T00:00:00Z"));
        let recorder = Arc::new(Recorder {
            jobs: Mutex::new(vec![
                job(
                    "berlin-0230",
                    Schedule::parse(Some("30 2 * * *"), Some("Europe/Berlin"), None).unwrap(),
                    Missed::Skip,
                    None,
                ),
                job(
                    "every-6h",
                    Schedule::parse(None, None, Some(Duration::from_secs(6 * 3600))).unwrap(),
                    Missed::Skip,
                    None,
                ),
            ]),
            runs: Mutex::new(Vec::new()),
            clock,
            seen_at: Mutex::new(Vec::new()),
        });
        run_for(recorder.clone(), 72).await;
        let runs = recorder.runs.lock().unwrap().clone();
        let berlin: Vec<DateTime<Utc>> = runs
            .iter()
            .filter(|r| r.0 == "berlin-0230")
            .map(|r| r.1)
            .collect();
        // 28 March (CET, 01:30 UTC), 29 March (the gap: 03:00 CEST = 01:00 UTC), 30 March
        // (CEST, 00:30 UTC).
        assert_eq!(
            berlin,
            vec![
                t("2026-03-28T01:30:00Z"),
                t("2026-03-29T01:00:00Z"),
                t("2026-03-30T00:30:00Z")
            ]
        );
        let six: Vec<DateTime<Utc>> = runs
            .iter()
            .filter(|r| r.0 == "every-6h")
            .map(|r| r.1)
            .collect();
        assert_eq!(six.len(), 12);
        assert_eq!(six[0], t("2026-03-28T06:00:00Z"));
        assert!(runs.iter().all(|r| r.2 == "schedule"));
        // Each ran when its slot came, not before.
        for (r, at) in runs.iter().zip(recorder.seen_at.lock().unwrap().iter()) {
            assert!(
                *at >= r.1 && *at - r.1 < chrono::Duration::seconds(1),
                "{r:?} at {at}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn missed_slots_run_once_or_are_skipped() {
        let clock = Clock::starting_at(t("2026-05-10T09:30:00Z"));
        let daily = || Schedule::parse(Some("0 8 * * *"), Some("UTC"), None).unwrap();
        let recorder = Arc::new(Recorder {
            jobs: Mutex::new(vec![
                // Last ran three days ago: the latest missed slot (today 08:00) runs once.
                job(
                    "catch-up",
                    daily(),
                    Missed::RunOnce,
                    Some("2026-05-07T08:00:00Z"),
                ),
                job(
                    "skipper",
                    daily(),
                    Missed::Skip,
                    Some("2026-05-07T08:00:00Z"),
                ),
                // Ran today already: nothing is missed.
                job(
                    "up-to-date",
                    daily(),
                    Missed::RunOnce,
                    Some("2026-05-10T08:00:00Z"),
                ),
            ]),
            runs: Mutex::new(Vec::new()),
            clock,
            seen_at: Mutex::new(Vec::new()),
        });
        run_for(recorder.clone(), 1).await;
        let runs = recorder.runs.lock().unwrap().clone();
        assert_eq!(
            runs,
            vec![("catch-up".to_string(), t("2026-05-10T08:00:00Z"), "missed")]
        );
    }
}
