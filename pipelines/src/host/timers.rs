//! Application timers of one worker: handshake, header, connect and idle deadlines of
//! the applications over the TCP stack, on one timer wheel. A timer carries its
//! owner's [`Owner`] and a word of the owner's choosing; when it fires, the host hands
//! both to that application. Their earliest deadline joins the pipeline's
//! `poll_timeout()`, so an idle worker sleeps exactly until the next one.

use std::time::Duration;

use crate::tcp::Owner;
use crate::time::Instant;
use crate::timer_wheel::{TimerId, TimerWheel};

/// Resolution of application timers.
pub const APP_TIMER_TICK: Duration = Duration::from_millis(10);

/// A fired timer: whose it is and the word given when it was set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fired {
    /// The application and its reference.
    pub owner: Owner,
    /// The owner's word (which timer of that reference: connect, idle, ...).
    pub what: u32,
}

/// The application timers of one worker.
pub struct AppTimers {
    wheel: TimerWheel<Fired>,
    fired: Vec<Fired>,
}

impl std::fmt::Debug for AppTimers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppTimers")
            .field("scheduled", &self.wheel.len())
            .finish()
    }
}

impl Default for AppTimers {
    fn default() -> Self {
        AppTimers::new(1024)
    }
}

impl AppTimers {
    /// A wheel with room for `capacity` timers before it grows.
    pub fn new(capacity: usize) -> AppTimers {
        AppTimers {
            wheel: TimerWheel::new(APP_TIMER_TICK, 4096, capacity),
            fired: Vec::with_capacity(256),
        }
    }

    /// Sets a timer for `owner` at `deadline` (never fires early; rounded up to the
    /// tick). Keep the id to cancel it.
    pub fn set(&mut self, deadline: Instant, owner: Owner, what: u32) -> TimerId {
        self.wheel.schedule(deadline, Fired { owner, what })
    }

    /// Cancels a timer; a stale id (fired or cancelled already) is ignored.
    pub fn cancel(&mut self, id: TimerId) {
        self.wheel.cancel(id);
    }

    /// Timers scheduled.
    pub fn len(&self) -> usize {
        self.wheel.len()
    }

    /// True when no timer is scheduled.
    pub fn is_empty(&self) -> bool {
        self.wheel.is_empty()
    }

    /// The earliest deadline.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        self.wheel.next_deadline()
    }

    /// Moves every timer due at `now` into the fired list, read with
    /// [`AppTimers::take_fired`].
    pub fn expire(&mut self, now: Instant) {
        self.wheel.expire(now, &mut self.fired);
    }

    /// Takes the fired timers (the list is handed back with [`AppTimers::give_back`] so
    /// its memory is reused).
    pub fn take_fired(&mut self) -> Vec<Fired> {
        std::mem::take(&mut self.fired)
    }

    /// Returns the list taken by [`AppTimers::take_fired`], emptied.
    pub fn give_back(&mut self, mut list: Vec<Fired>) {
        list.clear();
        if self.fired.is_empty() {
            self.fired = list;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_at_deadline_not_before_and_cancel_holds() {
        let mut t = AppTimers::new(4);
        let a = Owner::new(3, 7);
        let b = Owner::new(3, 8);
        t.set(Instant::from_millis(100), a, 1);
        let id = t.set(Instant::from_millis(50), b, 2);
        assert_eq!(t.next_deadline(), Some(Instant::from_millis(50)));
        t.cancel(id);
        t.expire(Instant::from_millis(99));
        assert!(t.take_fired().is_empty());
        t.expire(Instant::from_millis(100));
        let f = t.take_fired();
        assert_eq!(f, vec![Fired { owner: a, what: 1 }]);
        t.give_back(f);
        assert!(t.is_empty());
        assert_eq!(t.next_deadline(), None);
    }
}
