//! How long the disk under a directory takes to make a small write
//! durable: what every transaction waits for, at least once, under
//! `--durability every`. Printed beside the figures it bounds, so that a
//! reader can tell the disk's share of the latency from the server's.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::stats::Latency;

/// The size of each write: a group commit of a few transfers.
const WRITE_BYTES: usize = 2 << 10;

/// At most this many writes are timed...
const SAMPLES: usize = 300;

/// ...and for at most this long, on a slow disk.
const BUDGET: Duration = Duration::from_secs(2);

/// Times `WRITE_BYTES` writes each followed by `fdatasync` (as the commit
/// log syncs) in a scratch file under `dir`, over space written ahead of
/// them (as the commit log writes zeros ahead of its records). The file is
/// removed afterwards.
pub fn sync_latency(dir: &Path) -> anyhow::Result<Latency> {
    let path = dir.join("disk-sync-probe");
    let timed = time_syncs(&path);
    let removed = std::fs::remove_file(&path);
    let latency = timed.with_context(|| format!("timing syncs in {}", dir.display()))?;
    removed.with_context(|| format!("removing {}", path.display()))?;
    Ok(latency)
}

/// The timing itself, in a file at `path` that the caller removes.
fn time_syncs(path: &Path) -> std::io::Result<Latency> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(&vec![0; WRITE_BYTES * SAMPLES])?;
    file.sync_all()?;
    file.seek(SeekFrom::Start(0))?;
    let record = [0x5a; WRITE_BYTES];
    let started = Instant::now();
    let mut durations = Vec::with_capacity(SAMPLES);
    while durations.len() < SAMPLES && started.elapsed() < BUDGET {
        let write = Instant::now();
        file.write_all(&record)?;
        file.sync_data()?;
        durations.push(write.elapsed());
    }
    Ok(Latency::of(&durations))
}

#[cfg(test)]
mod tests {
    use super::super::server::ScratchDir;
    use super::*;

    #[test]
    fn times_syncs_and_leaves_nothing_behind() {
        let dir = ScratchDir::new().expect("a scratch directory");
        let latency = sync_latency(dir.path()).expect("timing syncs");
        assert!(latency.p50_us > 0.0 && latency.p50_us <= latency.max_us);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn a_directory_that_cannot_be_written_is_named() {
        let error = sync_latency(Path::new("/nonexistent/worldline")).unwrap_err();
        assert!(
            format!("{error:#}").contains("/nonexistent/worldline"),
            "{error:#}"
        );
    }
}
