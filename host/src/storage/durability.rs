//! The durability thread: appends commit-log records in batches and syncs
//! them as the policy says, then tells waiting callers how far the log is durable.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::StorageError;
use super::commitlog::LogWriter;

/// Most records written between two checks for the sync deadline.
const MAX_BATCH: usize = 4096;

/// How often records are collected under [`DurabilityPolicy::None`] while
/// transactions keep coming.
const NONE_POLL: Duration = Duration::from_millis(1);

/// When a committed transaction counts as durable, and so when its caller is told it committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurabilityPolicy {
    /// Acknowledged after its record is fsynced; survives power loss.
    /// Concurrent commits share one fsync (group commit).
    Every,
    /// Acknowledged once its record is written to the operating system,
    /// which survives a crash of the server process; fsynced within this
    /// interval, so power loss can lose at most that much.
    Interval(Duration),
    /// Acknowledged at once and written in the background, never fsynced:
    /// a crash can lose recent transactions. For tests and benchmarks.
    None,
}

impl fmt::Display for DurabilityPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurabilityPolicy::Every => f.write_str("every"),
            DurabilityPolicy::Interval(d) => write!(f, "{}ms", d.as_millis()),
            DurabilityPolicy::None => f.write_str("none"),
        }
    }
}

impl FromStr for DurabilityPolicy {
    type Err = String;

    /// Parses `every`, `none` or an interval such as `10ms`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "every" => Ok(Self::Every),
            "none" => Ok(Self::None),
            _ => s
                .strip_suffix("ms")
                .and_then(|n| n.parse().ok())
                .map(|ms| Self::Interval(Duration::from_millis(ms)))
                .ok_or_else(|| {
                    format!("`{s}` is not a durability policy: use `every`, `none` or e.g. `10ms`")
                }),
        }
    }
}

enum Job {
    /// Append this record.
    Record { offset: u64, payload: Vec<u8> },
    /// Write and fsync everything appended so far, whatever the policy.
    Sync,
}

/// Called on the durability thread whenever the log's durable offset
/// advances or the log fails, so that a waiting thread can look again
/// (see [`Durability::is_durable`]) instead of blocking in [`Durability::wait`].
pub(crate) type Waker = Arc<dyn Fn() + Send + Sync>;

/// How far the log is durable, shared with the thread.
#[derive(Default)]
struct Progress {
    /// Every offset below this is written and fsynced.
    synced_below: u64,
    /// Set when writing failed; nothing after that is durable.
    failed: Option<String>,
}

struct Shared {
    progress: Mutex<Progress>,
    /// Every offset below this is durable as the policy promises. Stored
    /// with `progress` locked, so that waiters on `changed` see it; read
    /// without the lock by [`Durability::is_durable`], which the database's
    /// thread calls often.
    durable_below: AtomicU64,
    changed: Condvar,
    waker: OnceLock<Waker>,
    before_sync: Option<SyncHook>,
}

impl Shared {
    /// Whether the record at `offset` is durable (`Some(Ok)`), will never be
    /// known to be (`Some(Err)`: the log failed first) or not yet (`None`);
    /// `progress` is the locked progress.
    /// #9 item 5: confirmation first, so that a failure does not put in
    /// doubt what was durable before it.
    fn check(&self, progress: &Progress, offset: u64) -> Option<Result<(), StorageError>> {
        if self.durable_below.load(Ordering::Acquire) > offset {
            Some(Ok(()))
        } else {
            progress
                .failed
                .as_ref()
                .map(|reason| Err(StorageError::LogFailed(reason.clone())))
        }
    }

    /// Wakes [`Durability::wait`] and the [`Waker`], if any.
    fn notify(&self) {
        self.changed.notify_all();
        if let Some(wake) = self.waker.get() {
            wake();
        }
    }
}

/// A handle to a database's durability thread.
pub(crate) struct Durability {
    jobs: Option<mpsc::Sender<Job>>,
    shared: Arc<Shared>,
    worker: Option<JoinHandle<()>>,
    policy: DurabilityPolicy,
}

impl Durability {
    /// Starts the thread; `next_offset` is the offset of the first record
    /// it will get; `before_sync` runs before each fsync.
    pub(crate) fn start(
        writer: LogWriter,
        policy: DurabilityPolicy,
        next_offset: u64,
        before_sync: Option<SyncHook>,
    ) -> Result<Self, StorageError> {
        let progress = Progress {
            synced_below: next_offset,
            failed: None,
        };
        let shared = Arc::new(Shared {
            progress: Mutex::new(progress),
            durable_below: AtomicU64::new(next_offset),
            changed: Condvar::new(),
            waker: OnceLock::new(),
            before_sync,
        });
        let (jobs, receiver) = mpsc::channel();
        let thread_shared = Arc::clone(&shared);
        // What the thread logs names the database it writes for, as the
        // caller's lines do.
        let span = tracing::Span::current();
        let worker = std::thread::Builder::new()
            .name("worldline-durability".into())
            .spawn(move || {
                let _database = span.entered();
                run(writer, policy, next_offset, &receiver, &thread_shared);
            })
            .map_err(|e| StorageError::io("starting the durability thread", e))?;
        Ok(Self {
            jobs: Some(jobs),
            shared,
            worker: Some(worker),
            policy,
        })
    }

    /// Has `waker` called whenever records become durable or the log
    /// fails, from now on (never under [`DurabilityPolicy::None`], where
    /// every record counts as durable at once). Only the first call counts.
    pub(crate) fn set_waker(&self, waker: Waker) {
        if self.policy != DurabilityPolicy::None {
            let _ = self.shared.waker.set(waker);
        }
    }

    /// Hands a record to the thread.
    pub(crate) fn append(&self, offset: u64, payload: Vec<u8>) -> Result<(), StorageError> {
        if let Some(reason) = &self.shared.progress.lock().expect("progress lock").failed {
            return Err(StorageError::LogFailed(reason.clone()));
        }
        self.jobs
            .as_ref()
            .and_then(|jobs| jobs.send(Job::Record { offset, payload }).ok())
            .ok_or_else(|| StorageError::LogFailed("the durability thread has stopped".into()))
    }

    /// Blocks until the record at `offset` is as durable as the policy
    /// promises. A record confirmed durable before the log failed stays
    /// confirmed; one after it fails with the reason.
    pub(crate) fn wait(&self, offset: u64) -> Result<(), StorageError> {
        if self.policy == DurabilityPolicy::None {
            return Ok(());
        }
        let mut progress = self.shared.progress.lock().expect("progress lock");
        loop {
            if let Some(result) = self.shared.check(&progress, offset) {
                return result;
            }
            progress = self.shared.changed.wait(progress).expect("progress lock");
        }
    }

    /// Whether the record at `offset` is as durable as the policy promises,
    /// without waiting: `Ok(false)` while it is not yet, an error if the
    /// log failed before confirming it (as [`wait`](Self::wait) would return).
    pub(crate) fn is_durable(&self, offset: u64) -> Result<bool, StorageError> {
        if self.policy == DurabilityPolicy::None
            || self.shared.durable_below.load(Ordering::Acquire) > offset
        {
            return Ok(true);
        }
        let progress = self.shared.progress.lock().expect("progress lock");
        self.shared
            .check(&progress, offset)
            .transpose()
            .map(|done| done.is_some())
    }
}

impl Durability {
    /// Blocks until every record before `below` has been written and
    /// fsynced, whatever the policy. Snapshots and module swaps call this
    /// first, so that the log always reaches the newest snapshot's offset.
    pub(crate) fn drain(&self, below: u64) -> Result<(), StorageError> {
        self.drainer().drain(below)
    }

    /// A handle that can [`drain`](Self::drain) the log from another thread.
    pub(crate) fn drainer(&self) -> Drainer {
        Drainer {
            jobs: self.jobs.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

/// Drains the log from another thread (a snapshot being written in the
/// background); see [`Durability::drain`]. While it lives, the durability
/// thread goes on (dropping the [`Durability`] waits for it).
pub(crate) struct Drainer {
    jobs: Option<mpsc::Sender<Job>>,
    shared: Arc<Shared>,
}

impl Drainer {
    /// See [`Durability::drain`].
    pub(crate) fn drain(&self, below: u64) -> Result<(), StorageError> {
        let sent = self
            .jobs
            .as_ref()
            .and_then(|jobs| jobs.send(Job::Sync).ok());
        let mut progress = self.shared.progress.lock().expect("progress lock");
        loop {
            if let Some(reason) = &progress.failed {
                return Err(StorageError::LogFailed(reason.clone()));
            }
            if progress.synced_below >= below {
                return Ok(());
            }
            if sent.is_none() {
                return Err(StorageError::LogFailed(
                    "the durability thread has stopped".into(),
                ));
            }
            progress = self.shared.changed.wait(progress).expect("progress lock");
        }
    }
}

impl Drop for Durability {
    /// Lets the thread write and sync what it has, then joins it.
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

fn run(
    mut writer: LogWriter,
    policy: DurabilityPolicy,
    next_offset: u64,
    jobs: &mpsc::Receiver<Job>,
    shared: &Shared,
) {
    // Every record before this has been written to the operating system.
    let mut written_below = next_offset;
    let mut last_sync = Instant::now();
    let mut unsynced = false;
    // Under `None` nobody waits for a record: while records keep coming,
    // they are collected every `NONE_POLL` instead of the database's thread
    // waking this one for each transaction.
    let mut busy = false;
    loop {
        let first = match policy {
            DurabilityPolicy::None if busy => {
                std::thread::sleep(NONE_POLL);
                match jobs.try_recv() {
                    Ok(job) => Some(job),
                    Err(TryRecvError::Empty) => {
                        busy = false;
                        continue;
                    }
                    Err(TryRecvError::Disconnected) => break,
                }
            }
            DurabilityPolicy::Interval(interval) if unsynced => {
                match jobs.recv_timeout(interval.saturating_sub(last_sync.elapsed())) {
                    Ok(job) => Some(job),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            _ => match jobs.recv() {
                Ok(job) => Some(job),
                Err(_) => break,
            },
        };
        let mut batch: Vec<Job> = first.into_iter().collect();
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut forced = false;
        let before = written_below;
        for job in batch {
            match job {
                Job::Record { offset, payload } => {
                    if let Err(e) = writer.append(offset, &payload) {
                        return fail(shared, e);
                    }
                    written_below = offset + 1;
                }
                Job::Sync => forced = true,
            }
        }
        if let Err(e) = writer.flush() {
            return fail(shared, e);
        }
        unsynced |= written_below != before;
        busy = written_below != before;
        let sync_now = forced
            || match policy {
                DurabilityPolicy::Every => unsynced,
                DurabilityPolicy::Interval(interval) => unsynced && last_sync.elapsed() >= interval,
                DurabilityPolicy::None => false,
            };
        if sync_now {
            if let Some(hook) = &shared.before_sync {
                (hook.0)();
            }
            if let Err(e) = writer.sync() {
                return fail(shared, e);
            }
            last_sync = Instant::now();
            unsynced = false;
        }
        if written_below != before || forced {
            let mut progress = shared.progress.lock().expect("progress lock");
            shared.durable_below.store(written_below, Ordering::Release);
            if sync_now {
                progress.synced_below = written_below;
            }
            drop(progress);
            shared.notify();
        }
    }
    if let Err(e) = writer.close(unsynced && policy != DurabilityPolicy::None) {
        tracing::warn!("closing the commit log: {e}");
    }
}

fn fail(shared: &Shared, error: StorageError) {
    tracing::error!("the commit log failed: {error}");
    let mut progress = shared.progress.lock().expect("progress lock");
    progress.failed = Some(error.to_string());
    drop(progress);
    shared.notify();
}

/// A function the durability thread calls before each fsync of the commit
/// log; it may block, which holds that fsync back. For tests that need a
/// slow disk without timing (see [`StorageConfig::before_sync`](super::StorageConfig)).
#[derive(Clone)]
pub struct SyncHook(pub Arc<dyn Fn() + Send + Sync>);

impl fmt::Debug for SyncHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SyncHook")
    }
}
