//! Backoff with jitter, for the loops that retry until the session is lost rather than as the
//! retry policy says (the queue's driver, a held node's monitor).

use std::time::Duration;

/// Exponential backoff with "equal jitter": each pause is half the current step plus a random
/// share of the other half, and the step doubles up to a cap.
///
/// The random half keeps clients that failed together (a server restart) from retrying in
/// lockstep; the fixed half keeps a loop from ever spinning, whatever the connection state
/// reads.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    first: Duration,
    cap: Duration,
    step: Duration,
}

impl Backoff {
    /// Steps of `first`, doubling up to `cap`.
    pub(crate) fn new(first: Duration, cap: Duration) -> Self {
        Self {
            first,
            cap,
            step: first,
        }
    }

    /// The next pause, in `[step / 2, step]`; the step then doubles, up to the cap.
    pub(crate) fn next_pause(&mut self) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(self.cap);
        let half = step / 2;
        half + half.mul_f64(fastrand::f64())
    }

    /// Starts again from the first step, after a success.
    pub(crate) fn reset(&mut self) {
        self.step = self.first;
    }

    /// Sleeps for [`next_pause`](Self::next_pause).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe; the step has doubled all the same.
    pub(crate) async fn sleep(&mut self) {
        tokio::time::sleep(self.next_pause()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn pauses_are_jittered_within_the_step_and_grow_to_the_cap() {
        let mut backoff = Backoff::new(10 * MS, 80 * MS);
        for step in [10, 20, 40, 80, 80, 80] {
            let pause = backoff.next_pause();
            assert!(
                pause >= step * MS / 2 && pause <= step * MS,
                "{pause:?} not in the step of {step} ms"
            );
        }
        backoff.reset();
        assert!(backoff.next_pause() <= 10 * MS);
    }

    #[test]
    fn pauses_are_never_zero_and_not_all_alike() {
        let mut pauses = std::collections::BTreeSet::new();
        for _ in 0..50 {
            let mut backoff = Backoff::new(10 * MS, 10 * MS);
            let pause = backoff.next_pause();
            assert!(pause >= 5 * MS);
            pauses.insert(pause);
        }
        assert!(pauses.len() > 1, "no jitter: {pauses:?}");
    }
}
