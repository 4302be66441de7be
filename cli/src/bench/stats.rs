//! What a measured window adds up to: throughput per second and latency
//! percentiles.

use std::time::{Duration, Instant};

use serde::Serialize;

/// The measured window: it opens after the warm-up and lasts `duration`.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// When measuring starts.
    pub opens: Instant,
    /// How long it lasts.
    pub duration: Duration,
}

impl Window {
    /// A window opening `warmup` from now.
    pub fn after(warmup: Duration, duration: Duration) -> Self {
        Self {
            opens: Instant::now() + warmup,
            duration,
        }
    }

    /// When measuring ends.
    pub fn closes(&self) -> Instant {
        self.opens + self.duration
    }

    /// The number of whole or partial seconds in the window.
    fn seconds(&self) -> usize {
        (self.duration.as_secs_f64().ceil() as usize).max(1)
    }
}

/// Completions and latencies recorded in a window, by one worker or merged.
#[derive(Debug, Default)]
pub struct Recorder {
    /// Completions in each second of the window.
    per_second: Vec<u64>,
    /// Latencies of the completions in the window, in nanoseconds.
    latencies: Vec<u64>,
}

impl Recorder {
    /// Records an operation that started at `started` and ended at `ended`,
    /// if it ended inside `window`; returns whether it did.
    pub fn record(&mut self, window: &Window, started: Instant, ended: Instant) -> bool {
        if ended < window.opens || ended >= window.closes() {
            return false;
        }
        if self.per_second.is_empty() {
            self.per_second = vec![0; window.seconds()];
        }
        let last = self.per_second.len() - 1;
        let second = (ended - window.opens).as_secs() as usize;
        self.per_second[second.min(last)] += 1;
        self.latencies.push((ended - started).as_nanos() as u64);
        true
    }

    /// Adds another recorder's counts.
    pub fn merge(&mut self, other: Recorder) {
        if self.per_second.len() < other.per_second.len() {
            self.per_second.resize(other.per_second.len(), 0);
        }
        for (mine, theirs) in self.per_second.iter_mut().zip(other.per_second) {
            *mine += theirs;
        }
        self.latencies.extend(other.latencies);
    }

    /// How many completions were recorded, and their latency percentiles
    /// (for windows merged from several, where a per-second spread means nothing).
    pub fn completions_and_latency(mut self) -> (u64, Latency) {
        self.latencies.sort_unstable();
        (
            self.latencies.len() as u64,
            Latency::of_sorted(&self.latencies),
        )
    }

    /// The summary over `window`.
    pub fn summary(mut self, window: &Window) -> Summary {
        let total = self.latencies.len() as u64;
        let seconds = window.duration.as_secs_f64();
        // Only whole seconds count for the spread; a short last one would skew it.
        let whole = (seconds.floor() as usize).max(1);
        self.per_second.resize(window.seconds(), 0);
        let mut per_second: Vec<u64> = self.per_second.into_iter().take(whole).collect();
        per_second.sort_unstable();
        self.latencies.sort_unstable();
        let scale = if seconds < 1.0 { 1.0 / seconds } else { 1.0 };
        Summary {
            operations: total,
            per_second: total as f64 / seconds,
            spread: Spread {
                min: per_second[0] as f64 * scale,
                median: per_second[per_second.len() / 2] as f64 * scale,
                max: per_second[per_second.len() - 1] as f64 * scale,
            },
            latency: Latency::of_sorted(&self.latencies),
        }
    }
}

/// Throughput and latency over a window.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Operations completed in the window.
    pub operations: u64,
    /// Operations per second over the whole window.
    pub per_second: f64,
    /// Operations in each second of the window: lowest, median, highest.
    pub spread: Spread,
    /// Latency percentiles.
    pub latency: Latency,
}

/// Lowest, median and highest of a set of per-second figures.
#[derive(Debug, Clone, Serialize)]
pub struct Spread {
    /// The lowest.
    pub min: f64,
    /// The median.
    pub median: f64,
    /// The highest.
    pub max: f64,
}

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// Median.
    pub p50_us: f64,
    /// 95th percentile.
    pub p95_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// The slowest.
    pub max_us: f64,
}

impl Latency {
    /// Percentiles of latencies in nanoseconds, sorted ascending.
    pub fn of_sorted(nanos: &[u64]) -> Self {
        let at = |q: f64| -> f64 {
            if nanos.is_empty() {
                return 0.0;
            }
            let i = ((nanos.len() as f64 * q) as usize).min(nanos.len() - 1);
            nanos[i] as f64 / 1e3
        };
        Self {
            p50_us: at(0.50),
            p95_us: at(0.95),
            p99_us: at(0.99),
            max_us: at(1.0),
        }
    }

    /// Percentiles of durations in any order.
    pub fn of(durations: &[Duration]) -> Self {
        let mut nanos: Vec<u64> = durations.iter().map(|d| d.as_nanos() as u64).collect();
        nanos.sort_unstable();
        Self::of_sorted(&nanos)
    }
}

/// `1234567.8` as `1,234,568`.
pub fn thousands(value: f64) -> String {
    grouped(&format!("{:.0}", value.max(0.0)))
}

/// `-1234567` as `-1,234,567`.
pub fn thousands_exact(value: i128) -> String {
    let digits = value.unsigned_abs().to_string();
    let sign = if value < 0 { "-" } else { "" };
    format!("{sign}{}", grouped(&digits))
}

/// Digits with a comma between each group of three.
fn grouped(digits: &str) -> String {
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The line that reports the balance invariant: the sum of all balances
/// before and after, and whether it held.
pub fn print_balance(before: i128, after: i128) {
    let verdict = if before == after {
        "unchanged"
    } else {
        "CHANGED"
    };
    println!(
        "  balance sum {} before, {} after: {verdict}",
        thousands_exact(before),
        thousands_exact(after)
    );
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{Recorder, Window, thousands, thousands_exact};

    #[test]
    fn a_window_counts_only_what_ends_inside_it() {
        let opens = Instant::now();
        let window = Window {
            opens,
            duration: Duration::from_secs(2),
        };
        let mut recorder = Recorder::default();
        let before = opens - Duration::from_millis(1);
        assert!(!recorder.record(&window, before, before));
        for ms in [10, 20, 1_500] {
            let ended = opens + Duration::from_millis(ms);
            assert!(recorder.record(&window, ended - Duration::from_micros(100), ended));
        }
        assert!(!recorder.record(&window, opens, opens + Duration::from_secs(2)));
        let summary = recorder.summary(&window);
        assert_eq!(summary.operations, 3);
        assert_eq!(summary.spread.min, 1.0);
        assert_eq!(summary.spread.max, 2.0);
        assert_eq!(summary.latency.p50_us, 100.0);
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(thousands(12.0), "12");
        assert_eq!(
            thousands_exact(-100_000_000_000_000),
            "-100,000,000,000,000"
        );
    }
}
