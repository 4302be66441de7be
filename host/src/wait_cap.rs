//! Blocking waits end at the call's deadline.
//!
//! Epoch interruption stops wasm code that runs past its deadline, but not
//! a module blocked inside a host call. Of the WASI calls a module can
//! make, only the monotonic clock's subscriptions can block for long
//! (`sleep`, `poll` with a timeout): sockets are denied, stdin is at its
//! end and stdout is a sink. So the host replaces `subscribe-duration` and
//! `subscribe-instant` with versions that refuse a wait ending past the
//! current call's deadline: the call is stopped at once with the deadline
//! error it would have met after the wait. Without this, a reducer
//! sleeping for a day would hold its database's thread for a day, and a
//! `describe` that sleeps would hold a publish. A procedure's wait also
//! ends when the server stops procedures
//! ([`Engine::stop_procedures`](crate::Engine::stop_procedures)): it is
//! then stopped at its next epoch check, or at once if it waits again,
//! and its result is the stop whatever it returns
//! ([`StopSignal`]).

use std::time::{Duration, Instant};

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::HostMonotonicClock;
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};

use crate::state::HostState;
use crate::stop_signal::StopSignal;

/// The `wasi:clocks/monotonic-clock` instance the host links (the version
/// wasmtime-wasi 48 implements; components importing other 0.2.x versions
/// are matched to it).
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// The module's monotonic clock: nanoseconds since its instance's state
/// was created. The host keeps the same origin, to turn the instants a
/// module waits for into durations.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CallClock {
    origin: Instant,
}

impl CallClock {
    /// A clock starting at 0 now.
    pub(crate) fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }

    fn nanos(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

impl HostMonotonicClock for CallClock {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        self.nanos()
    }
}

/// Replaces the monotonic clock's subscriptions in `linker` (which must
/// already hold WASI) with ones that wake by the call's deadline.
pub(crate) fn cap_clock_waits(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut clock = linker.instance(MONOTONIC_CLOCK)?;
    clock.func_wrap(
        "subscribe-duration",
        |mut store: StoreContextMut<'_, HostState>, (nanos,): (u64,)| {
            let wait = Duration::from_nanos(nanos);
            Ok((capped_wait(store.data_mut(), wait)?,))
        },
    )?;
    clock.func_wrap(
        "subscribe-instant",
        |mut store: StoreContextMut<'_, HostState>, (when,): (u64,)| {
            let state = store.data_mut();
            let wait = Duration::from_nanos(when.saturating_sub(state.clock.now()));
            Ok((capped_wait(state, wait)?,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// A pollable ready after `wait` (or, in a procedure, once the server
/// stops procedures); a trap carrying the deadline error if the wait would
/// end past the call's deadline, or the shutdown if procedures are stopping.
fn capped_wait(state: &mut HostState, wait: Duration) -> wasmtime::Result<Resource<DynPollable>> {
    let stop = state.procedure.as_ref().map(|side| side.http.stop.clone());
    if stop.as_ref().is_some_and(StopSignal::is_set) {
        return Err(crate::procedure::Stopped::Shutdown.into());
    }
    let now = Instant::now();
    let until = now.checked_add(wait);
    if let Some(limit) = state.wait_limit()
        && until.is_none_or(|until| until > limit)
    {
        return Err(match &state.procedure {
            Some(side) => side.deadline_error().into(),
            None => wasmtime::Trap::Interrupt.into(),
        });
    }
    let wake = match until {
        Some(until) if until > now => WakeAt::Instant(tokio::time::Instant::from_std(until)),
        Some(_) => WakeAt::Now { yielded: false },
        None => WakeAt::Never,
    };
    let wake = state.resources.push(Wake { at: wake, stop })?;
    subscribe(&mut state.resources, wake)
}

/// A capped clock subscription: ready at its time, or when procedures
/// stop if it is a procedure's.
struct Wake {
    at: WakeAt,
    stop: Option<StopSignal>,
}

#[wasmtime_wasi::async_trait]
impl Pollable for Wake {
    async fn ready(&mut self) {
        let Some(stop) = &mut self.stop else {
            return self.at.ready().await;
        };
        tokio::select! {
            () = self.at.ready() => {}
            () = stop.interrupt() => {}
        }
    }
}

/// When a capped clock subscription is ready.
enum WakeAt {
    /// At once (after yielding once to the runtime, so that a module
    /// polling in a busy loop does not starve it).
    Now { yielded: bool },
    /// At this instant.
    Instant(tokio::time::Instant),
    /// Never (no deadline applies and the wait does not fit an instant).
    Never,
}

impl WakeAt {
    async fn ready(&mut self) {
        match self {
            WakeAt::Now { yielded: true } => {}
            WakeAt::Now { yielded } => {
                *yielded = true;
                tokio::task::yield_now().await;
            }
            WakeAt::Instant(instant) => tokio::time::sleep_until(*instant).await,
            WakeAt::Never => std::future::pending().await,
        }
    }
}
