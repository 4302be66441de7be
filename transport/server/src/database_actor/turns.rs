//! The commands a database's thread has taken in but not run yet, run in
//! turns: one command from each connection that has some, round and round,
//! each connection's in the order it sent them.
//!
//! A first-come queue let one connection's burst (a client subscribing
//! 10,000 queries in 157 messages, say) hold up every other client's call
//! until all of it had run. In turns, a call waits for at most one command
//! of each other connection. Requests that come from no connection (the
//! HTTP API's, a procedure's transactions) each take a turn of their own,
//! so among themselves they run in arrival order.

use std::collections::{HashMap, VecDeque};

/// Whose turn a command takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Lane {
    /// A connection's: its commands run in the order it sent them.
    Connection(u64),
    /// A request's own (numbered in arrival order).
    Request(u64),
}

/// Commands waiting for their turn.
pub(super) struct Turns<T> {
    /// Each lane's waiting commands, oldest first; lanes with none are removed.
    lanes: HashMap<Lane, VecDeque<T>>,
    /// The lanes with waiting commands, the next to run first.
    order: VecDeque<Lane>,
    /// How many commands wait in all.
    len: usize,
    /// The number the next request's lane gets.
    next_request: u64,
}

impl<T> Default for Turns<T> {
    fn default() -> Self {
        Self {
            lanes: HashMap::new(),
            order: VecDeque::new(),
            len: 0,
            next_request: 0,
        }
    }
}

impl<T> Turns<T> {
    /// Adds `command` behind those of connection `key`, or (none) in a
    /// lane of its own.
    pub(super) fn push(&mut self, key: Option<u64>, command: T) {
        let lane = match key {
            Some(key) => Lane::Connection(key),
            None => {
                self.next_request += 1;
                Lane::Request(self.next_request)
            }
        };
        let queue = self.lanes.entry(lane).or_default();
        if queue.is_empty() {
            self.order.push_back(lane);
        }
        queue.push_back(command);
        self.len += 1;
    }

    /// Takes the command whose turn it is; its lane, if it has more, goes
    /// to the back of the round.
    pub(super) fn pop(&mut self) -> Option<T> {
        let lane = self.order.pop_front()?;
        let queue = self.lanes.get_mut(&lane)?;
        let command = queue.pop_front();
        if queue.is_empty() {
            self.lanes.remove(&lane);
        } else {
            self.order.push_back(lane);
        }
        self.len -= usize::from(command.is_some());
        command
    }

    /// How many commands wait.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Whether no command waits.
    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(turns: &mut Turns<&'static str>) -> Vec<&'static str> {
        std::iter::from_fn(|| turns.pop()).collect()
    }

    #[test]
    fn connections_take_turns_and_keep_their_own_order() {
        let mut turns = Turns::default();
        for command in ["a1", "a2", "a3", "a4"] {
            turns.push(Some(1), command);
        }
        turns.push(Some(2), "b1");
        turns.push(Some(2), "b2");
        turns.push(None, "http1");
        turns.push(Some(1), "a5");
        turns.push(None, "http2");
        assert_eq!(turns.len(), 9);
        assert_eq!(
            drain(&mut turns),
            ["a1", "b1", "http1", "http2", "a2", "b2", "a3", "a4", "a5"]
        );
        assert!(turns.is_empty());
        assert_eq!(turns.pop(), None);
    }

    #[test]
    fn a_lane_that_empties_joins_the_back_when_it_gets_more() {
        let mut turns = Turns::default();
        turns.push(Some(1), "a1");
        turns.push(Some(2), "b1");
        turns.push(Some(2), "b2");
        assert_eq!(turns.pop(), Some("a1"));
        turns.push(Some(1), "a2");
        assert_eq!(drain(&mut turns), ["b1", "a2", "b2"]);
    }
}
