//! The commands a database's thread has taken in but not run yet, run in
//! turns: each connection that has commands waiting gets a turn, round and
//! round, and runs its commands in the order it sent them during its turn.
//!
//! A first-come queue let one connection's burst (a client subscribing
//! 10,000 queries in 157 messages, say) hold up every other client's call
//! until all of it had run. In turns, a call waits for at most one turn of
//! each other connection. How long a turn lasts is the caller's to decide
//! (the database's thread ends one after [`TURN_TIME`](super::TURN_TIME)):
//! long enough for a burst of cheap calls to run together, as they arrived,
//! short enough that an expensive command ends it. Requests that come from
//! no connection (the HTTP API's, a procedure's transactions) each have a
//! turn of their own, so among themselves they run in arrival order.

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

    /// Takes the next command of the lane whose turn it is, with that
    /// lane; a lane whose commands have all run leaves the round (and the
    /// next lane's turn begins).
    pub(super) fn pop(&mut self) -> Option<(Lane, T)> {
        let lane = *self.order.front()?;
        let queue = self.lanes.get_mut(&lane)?;
        let command = queue.pop_front()?;
        if queue.is_empty() {
            self.lanes.remove(&lane);
            self.order.pop_front();
        }
        self.len -= 1;
        Some((lane, command))
    }

    /// Ends `lane`'s turn: it goes to the back of the round, if it still
    /// has commands (one that ran dry has left the round already).
    pub(super) fn end_turn(&mut self, lane: Lane) {
        if self.order.front() == Some(&lane) {
            self.order.rotate_left(1);
        }
    }

    /// The lane whose command [`pop`](Self::pop) would take next.
    pub(super) fn next_lane(&self) -> Option<Lane> {
        self.order.front().copied()
    }

    /// Whether no command waits.
    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs every command, one per turn.
    fn one_per_turn(turns: &mut Turns<&'static str>) -> Vec<&'static str> {
        let mut ran = Vec::new();
        while let Some((lane, command)) = turns.pop() {
            ran.push(command);
            turns.end_turn(lane);
        }
        ran
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
        assert_eq!(
            one_per_turn(&mut turns),
            ["a1", "b1", "http1", "http2", "a2", "b2", "a3", "a4", "a5"]
        );
        assert!(turns.is_empty());
        assert_eq!(turns.pop(), None);
    }

    #[test]
    fn a_turn_lasts_until_it_is_ended_or_its_lane_runs_dry() {
        let mut turns = Turns::default();
        for command in ["a1", "a2", "a3"] {
            turns.push(Some(1), command);
        }
        turns.push(Some(2), "b1");
        turns.push(Some(2), "b2");
        assert_eq!(turns.pop(), Some((Lane::Connection(1), "a1")));
        assert_eq!(turns.pop(), Some((Lane::Connection(1), "a2")));
        turns.end_turn(Lane::Connection(1));
        assert_eq!(turns.pop(), Some((Lane::Connection(2), "b1")));
        assert_eq!(turns.pop(), Some((Lane::Connection(2), "b2")));
        // Lane 2 ran dry: lane 1's turn again, without ending one.
        assert_eq!(turns.pop(), Some((Lane::Connection(1), "a3")));
        assert_eq!(turns.pop(), None);
    }

    #[test]
    fn a_lane_that_empties_joins_the_back_when_it_gets_more() {
        let mut turns = Turns::default();
        turns.push(Some(1), "a1");
        turns.push(Some(2), "b1");
        turns.push(Some(2), "b2");
        assert_eq!(turns.pop(), Some((Lane::Connection(1), "a1")));
        turns.push(Some(1), "a2");
        assert_eq!(one_per_turn(&mut turns), ["b1", "a2", "b2"]);
    }
}
