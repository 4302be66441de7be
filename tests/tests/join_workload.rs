//! The subscription engine over the real chat module, without a network:
//! a join subscription maintained from transaction deltas always equals
//! the query evaluated afresh, under a random workload of connects,
//! disconnects, messages and renames.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng, rngs::StdRng};
use worldline_host::{CallContext, ConnectionId, Identity};
use worldline_subscriptions::{SubscriptionEngine, compile};
use worldline_tests::{args, create_database, test_engine};

/// Multiset of rows.
type Counted = BTreeMap<Vec<u8>, i64>;

#[test]
fn a_join_maintained_from_deltas_equals_a_fresh_evaluation() {
    let engine = test_engine();
    let mut db = create_database(&engine, "chat");
    let mut subs = SubscriptionEngine::default();
    let q = compile("SELECT message.* FROM message JOIN user ON message.sender = user.identity WHERE user.online = true", db.schema(), false).unwrap();
    let id = subs.subscribe(q);
    let mut cache = Counted::new();
    let mut rng = StdRng::seed_from_u64(1);
    for step in 0..1000 {
        let who = Identity::from_bytes([rng.random_range(1..4u8); 32]);
        let ctx = CallContext::new(who).with_connection(ConnectionId::from_bytes([1; 16]));
        let kind = rng.random_range(0..4);
        let outcome = match kind {
            0 => db.client_connected(ctx).unwrap(),
            1 => db.client_disconnected(ctx).unwrap(),
            2 => Some(
                db.call_reducer("send_message", &args(&(format!("s{step}"),)), ctx)
                    .unwrap(),
            ),
            _ => Some(
                db.call_reducer("set_name", &args(&(format!("n{step}"),)), ctx)
                    .unwrap(),
            ),
        };
        if let Some(outcome) = outcome {
            for (_, update) in subs.evaluate(&outcome.delta, db.datastore()) {
                for r in update.deletes {
                    *cache.entry(r.to_vec()).or_default() -= 1;
                }
                for (o, n) in update.updates {
                    *cache.entry(o.to_vec()).or_default() -= 1;
                    *cache.entry(n.to_vec()).or_default() += 1;
                }
                for r in update.inserts {
                    *cache.entry(r.to_vec()).or_default() += 1;
                }
            }
            cache.retain(|_, c| *c != 0);
        }
        let mut fresh = Counted::new();
        for r in subs.initial_rows(id, db.datastore()) {
            *fresh.entry(r.to_vec()).or_default() += 1;
        }
        assert_eq!(cache, fresh, "step {step} kind {kind} who {who}");
    }
}
