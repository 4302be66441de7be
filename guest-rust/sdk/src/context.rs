//! What a reducer receives about its call.

use crate::bindings::worldline::module::types as wit;
use crate::registry::Local;
use crate::types::{ConnectionId, Identity, Timestamp};

/// The context of a reducer call.
#[derive(Debug)]
#[non_exhaustive]
pub struct ReducerContext {
    /// Who called: a client's identity, or the database owner for `init`
    /// and scheduled runs.
    pub sender: Identity,
    /// The caller's connection, if the call came over one.
    pub connection_id: Option<ConnectionId>,
    /// When the transaction started.
    pub timestamp: Timestamp,
    /// The database's tables.
    pub db: Local,
    seed: u64,
}

impl ReducerContext {
    pub(crate) fn from_wit(ctx: wit::ReducerContext) -> Self {
        Self {
            sender: Identity::from_wit(ctx.sender),
            connection_id: ctx.connection_id.map(ConnectionId::from_wit),
            timestamp: Timestamp::from_micros(ctx.timestamp),
            db: Local::new(),
            seed: ctx.seed,
        }
    }

    /// A random number generator seeded from this transaction's seed: the
    /// same call replayed with the same seed draws the same numbers.
    pub fn rng(&self) -> Rng {
        Rng::from_seed(self.seed)
    }
}

/// A small deterministic random number generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub(crate) fn from_seed(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `low..high` (`low` if the range is empty).
    pub fn gen_range(&mut self, low: u64, high: u64) -> u64 {
        match high.checked_sub(low) {
            Some(span) if span > 0 => low + self.next_u64() % span,
            _ => low,
        }
    }
}
