//! The one retry policy of Tidings: delays that double (or, X's rule for network errors, grow
//! linearly) from a first step up to a cap, each drawn between half and the whole step
//! (jitter, so that many clients do not retry in step), and reset after a success.
//!
//! Used by every retry loop: the live sources' reconnects (`ingest`), the remote model's
//! retries (`agent`), webhook deliveries (`api`) and failed vector batches (`vector_worker`).

use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    step: Duration,
    /// Linear growth instead of doubling (X's rule for network errors).
    linear: bool,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            first,
            max,
            step: first,
            linear: false,
        }
    }

    /// Grows by `first` each time instead of doubling.
    pub fn linear(first: Duration, max: Duration) -> Backoff {
        Backoff {
            linear: true,
            ..Backoff::new(first, max)
        }
    }

    /// The next delay: the current step with jitter (50–100 % of it); the step then grows.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.step;
        self.step = if self.linear {
            (self.step + self.first).min(self.max)
        } else {
            (self.step * 2).min(self.max)
        };
        let mut buf = [0u8; 2];
        let r = match getrandom::fill(&mut buf) {
            Ok(()) => u16::from_le_bytes(buf) as f64 / u16::MAX as f64,
            Err(_) => 1.0,
        };
        step.mul_f64(0.5 + 0.5 * r)
    }

    /// The step the next delay is drawn from (its upper bound), without advancing.
    pub fn peek_step(&self) -> Duration {
        self.step
    }

    /// Back to the first step (after a connection that worked).
    pub fn reset(&mut self) {
        self.step = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_with_jitter_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(8));
        let steps: Vec<Duration> = (0..6).map(|_| b.next_delay()).collect();
        for (d, step) in steps.iter().zip([1u64, 2, 4, 8, 8, 8]) {
            assert!(
                *d >= Duration::from_secs(step) / 2 && *d <= Duration::from_secs(step),
                "{d:?} for step {step}"
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs(1));
        let mut l = Backoff::linear(Duration::from_millis(250), Duration::from_secs(16));
        let last = (0..100).map(|_| l.next_delay()).last().unwrap_or_default();
        assert!(last <= Duration::from_secs(16) && last >= Duration::from_secs(8));
    }
}
