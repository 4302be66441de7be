//! Bounds how often the host writes a line about something that may happen
//! back to back for ever (a scheduled reducer failing on every run, a
//! reducer trapping on every call): a burst of [`BURST`] lines, then one
//! per [`LINE_INTERVAL`], each saying how many went unwritten since the
//! last.

use crate::identity::Timestamp;

/// The time that earns one line, in microseconds.
pub(crate) const LINE_INTERVAL: i64 = 1_000_000;

/// The most lines written back to back after a quiet spell.
pub(crate) const BURST: i64 = 10;

/// A token bucket of lines, and the lines it held back.
#[derive(Debug, Default)]
pub(crate) struct LogThrottle {
    /// When it was last asked (microseconds since the epoch).
    last: Option<i64>,
    /// Time earned and not yet spent on lines, in microseconds (at most
    /// [`BURST`] lines' worth).
    credit: i64,
    /// Lines held back since the last one written.
    held_back: u64,
}

impl LogThrottle {
    /// Whether a line may be written at `now`: `Some(n)`, with `n` the
    /// lines held back since the last one written, or `None` (counted).
    pub(crate) fn admit(&mut self, now: Timestamp) -> Option<u64> {
        let now = now.to_micros_since_epoch();
        let full = BURST * LINE_INTERVAL;
        let earned = self
            .last
            .map_or(full, |last| now.saturating_sub(last).max(0));
        self.last = Some(now);
        self.credit = self.credit.saturating_add(earned).min(full);
        if self.credit < LINE_INTERVAL {
            self.held_back += 1;
            return None;
        }
        self.credit -= LINE_INTERVAL;
        Some(std::mem::take(&mut self.held_back))
    }
}

/// What a line written after `held_back` unwritten ones ends with: nothing
/// for none, else ` (N more WHAT since the last such line, not logged one
/// by one)`.
pub(crate) fn held_back_note(held_back: u64, what: &str) -> String {
    match held_back {
        0 => String::new(),
        n => format!(" ({n} more {what} since the last such line, not logged one by one)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_line_per_interval_with_the_count_of_the_rest() {
        let at = Timestamp::from_micros_since_epoch;
        let mut throttle = LogThrottle::default();
        for i in 0..BURST {
            assert_eq!(throttle.admit(at(10 + i)), Some(0), "line {i} of the burst");
        }
        assert_eq!(throttle.admit(at(20)), None);
        assert_eq!(throttle.admit(at(21)), None);
        assert_eq!(throttle.admit(at(19 + LINE_INTERVAL)), Some(2));
        assert_eq!(throttle.admit(at(20 + LINE_INTERVAL)), None);
        // A clock that went back earns nothing.
        assert_eq!(throttle.admit(at(5)), None);
        // A quiet spell earns a burst again, and no more.
        let later = 100 * LINE_INTERVAL;
        assert_eq!(throttle.admit(at(later)), Some(2));
        for i in 1..BURST {
            assert_eq!(throttle.admit(at(later + i)), Some(0));
        }
        assert_eq!(throttle.admit(at(later + BURST)), None);
        assert_eq!(held_back_note(0, "failures"), "");
        assert_eq!(
            held_back_note(3, "failures"),
            " (3 more failures since the last such line, not logged one by one)"
        );
    }
}
