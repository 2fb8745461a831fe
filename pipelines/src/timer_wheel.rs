//! A hashed timer wheel (Varghese and Lauck, scheme 6): O(1) schedule and cancel,
//! expiry proportional to the timers that fire plus the occupied slots passed.
//!
//! Time is cut into ticks of a fixed length; a timer due at tick `t` lives in slot
//! `t mod slots`, on an intrusive doubly linked list threaded through one entry array,
//! so scheduling and cancelling never search and never allocate once the array has
//! grown to the peak number of timers. Timers further away than one revolution share
//! slots with nearer ones and are skipped until their own revolution comes round. A
//! bitmap of occupied slots lets expiry and [`TimerWheel::next_deadline`] jump over
//! empty stretches, which matters when a virtual clock leaps ahead.
//!
//! A timer never fires early: a deadline is rounded up to the next tick, and a tick
//! fires only once `now` has reached it.

use crate::time::Instant;

const NIL: u32 = u32::MAX;

/// A handle on a scheduled timer, for [`TimerWheel::cancel`]. Stale handles (of timers
/// that fired or were cancelled) are recognised and ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId {
    idx: u32,
    gen: u32,
}

struct Entry<T> {
    tick: u64,
    gen: u32,
    prev: u32,
    next: u32,
    value: Option<T>,
}

/// A hashed timer wheel holding values of type `T`.
pub struct TimerWheel<T> {
    tick_ns: u64,
    mask: u64,
    heads: Vec<u32>,
    bitmap: Vec<u64>,
    entries: Vec<Entry<T>>,
    free: u32,
    /// The next tick to be processed; every earlier tick has fired.
    cur_tick: u64,
    len: usize,
    next_cache: Option<Option<u64>>,
}

impl<T> TimerWheel<T> {
    /// A wheel of `slots` slots (rounded up to a power of two, at least 64) of `tick`
    /// each, with room for `capacity` timers before its entry array grows.
    pub fn new(tick: std::time::Duration, slots: usize, capacity: usize) -> Self {
        let slots = slots.next_power_of_two().max(64);
        TimerWheel {
            tick_ns: (tick.as_nanos() as u64).max(1),
            mask: slots as u64 - 1,
            heads: vec![NIL; slots],
            bitmap: vec![0; slots / 64],
            entries: Vec::with_capacity(capacity),
            free: NIL,
            cur_tick: 0,
            len: 0,
            next_cache: Some(None),
        }
    }

    /// Number of scheduled timers.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no timer is scheduled.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Schedules `value` to fire at `deadline` (or at the next expiry if that is past).
    pub fn schedule(&mut self, deadline: Instant, value: T) -> TimerId {
        let tick = deadline
            .as_nanos()
            .div_ceil(self.tick_ns)
            .max(self.cur_tick);
        let idx = if self.free != NIL {
            let i = self.free;
            self.free = self.entries[i as usize].next;
            let e = &mut self.entries[i as usize];
            e.tick = tick;
            e.value = Some(value);
            i
        } else {
            self.entries.push(Entry {
                tick,
                gen: 0,
                prev: NIL,
                next: NIL,
                value: Some(value),
            });
            (self.entries.len() - 1) as u32
        };
        self.link(idx);
        self.len += 1;
        if let Some(c) = self.next_cache {
            self.next_cache = Some(Some(c.map_or(tick, |c| c.min(tick))));
        }
        TimerId {
            idx,
            gen: self.entries[idx as usize].gen,
        }
    }

    /// Cancels a timer; returns its value, or `None` if it already fired or was cancelled.
    pub fn cancel(&mut self, id: TimerId) -> Option<T> {
        let e = self.entries.get(id.idx as usize)?;
        if e.gen != id.gen || e.value.is_none() {
            return None;
        }
        if self.next_cache == Some(Some(e.tick)) {
            self.next_cache = None;
        }
        Some(self.remove(id.idx))
    }

    /// The earliest deadline of any scheduled timer (rounded up to its tick), or, when
    /// every timer is more than one revolution away, the end of this revolution (no
    /// later than any of them).
    pub fn next_deadline(&mut self) -> Option<Instant> {
        let t = match self.next_cache {
            Some(c) => c,
            None => {
                let c = self.find_next_tick();
                self.next_cache = Some(c);
                c
            }
        };
        t.map(|t| Instant::from_nanos(t.saturating_mul(self.tick_ns)))
    }

    /// Removes every timer due at or before `now` and appends its value to `out`.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<T>) {
        let now_tick = now.as_nanos() / self.tick_ns;
        if now_tick < self.cur_tick {
            return;
        }
        if self.len == 0 {
            self.cur_tick = now_tick + 1;
            return;
        }
        let slots = self.mask + 1;
        let span = (now_tick - self.cur_tick + 1).min(slots);
        let mut off = 0;
        while off < span {
            let slot = (self.cur_tick + off) & self.mask;
            match self.next_occupied(slot, span - off) {
                None => break,
                Some(d) => {
                    let s = (slot + d) & self.mask;
                    self.fire_slot(s as usize, now_tick, out);
                    off += d + 1;
                }
            }
        }
        self.cur_tick = now_tick + 1;
        self.next_cache = None;
    }

    fn fire_slot(&mut self, slot: usize, now_tick: u64, out: &mut Vec<T>) {
        let mut i = self.heads[slot];
        while i != NIL {
            let next = self.entries[i as usize].next;
            if self.entries[i as usize].tick <= now_tick {
                out.push(self.remove(i));
            }
            i = next;
        }
    }

    /// Distance from `slot` to the first occupied slot, looking at most `limit` slots.
    fn next_occupied(&self, slot: u64, limit: u64) -> Option<u64> {
        let slots = self.mask + 1;
        let mut d = 0;
        while d < limit {
            let s = (slot + d) & self.mask;
            let word = self.bitmap[(s / 64) as usize] >> (s % 64);
            if word != 0 {
                let z = word.trailing_zeros() as u64;
                return (d + z < limit).then_some(d + z);
            }
            d += 64 - (s % 64);
            if d >= slots {
                break;
            }
        }
        None
    }

    fn find_next_tick(&self) -> Option<u64> {
        if self.len == 0 {
            return None;
        }
        let slots = self.mask + 1;
        let mut off = 0;
        // First pass: a timer due within this revolution sits in its own slot's position.
        while off < slots {
            let slot = (self.cur_tick + off) & self.mask;
            let Some(d) = self.next_occupied(slot, slots - off) else {
                break;
            };
            let tick = self.cur_tick + off + d;
            let mut i = self.heads[((slot + d) & self.mask) as usize];
            while i != NIL {
                if self.entries[i as usize].tick <= tick {
                    return Some(self.entries[i as usize].tick);
                }
                i = self.entries[i as usize].next;
            }
            off += d + 1;
        }
        // Only far timers: their exact minimum would take a walk over every entry (at
        // every turn of a worker whose earliest timer was just cancelled); the end of
        // this revolution is a deadline no later than any of them. Waking there finds
        // nothing due and looks again one revolution on.
        Some(self.cur_tick + slots)
    }

    fn link(&mut self, idx: u32) {
        let slot = (self.entries[idx as usize].tick & self.mask) as usize;
        let head = self.heads[slot];
        {
            let e = &mut self.entries[idx as usize];
            e.prev = NIL;
            e.next = head;
        }
        if head != NIL {
            self.entries[head as usize].prev = idx;
        }
        self.heads[slot] = idx;
        self.bitmap[slot / 64] |= 1 << (slot % 64);
    }

    fn remove(&mut self, idx: u32) -> T {
        let (prev, next, tick) = {
            let e = &self.entries[idx as usize];
            (e.prev, e.next, e.tick)
        };
        let slot = (tick & self.mask) as usize;
        if prev != NIL {
            self.entries[prev as usize].next = next;
        } else {
            self.heads[slot] = next;
            if next == NIL {
                self.bitmap[slot / 64] &= !(1 << (slot % 64));
            }
        }
        if next != NIL {
            self.entries[next as usize].prev = prev;
        }
        let e = &mut self.entries[idx as usize];
        e.gen = e.gen.wrapping_add(1);
        e.next = self.free;
        e.prev = NIL;
        self.free = idx;
        self.len -= 1;
        // Only linked entries are removed, and every linked entry holds a value: an
        // entry goes on the free list only after its value was taken here.
        e.value.take().expect("a linked timer entry holds a value")
    }
}

impl<T> std::fmt::Debug for TimerWheel<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimerWheel")
            .field("len", &self.len)
            .field("cur_tick", &self.cur_tick)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    #[test]
    fn fires_in_time_never_early_and_cancel_works() {
        let mut w = TimerWheel::new(Duration::from_millis(1), 64, 8);
        let a = w.schedule(ms(10), 'a');
        w.schedule(ms(5), 'b');
        w.schedule(ms(300), 'c'); // several revolutions away
        assert_eq!(w.next_deadline(), Some(ms(5)));
        let mut out = Vec::new();
        w.expire(Instant::from_nanos(4_999_999), &mut out);
        assert!(out.is_empty());
        w.expire(ms(5), &mut out);
        assert_eq!(out, ['b']);
        assert_eq!(w.cancel(a), Some('a'));
        assert_eq!(w.cancel(a), None, "stale handle");
        // 'c' is more than a revolution (64 ticks) from the last expiry (tick 6): the
        // end of this revolution stands for it.
        assert_eq!(w.next_deadline(), Some(ms(70)));
        w.expire(ms(250), &mut out);
        assert_eq!(
            w.next_deadline(),
            Some(ms(300)),
            "within a revolution: exact"
        );
        w.expire(ms(299), &mut out);
        assert_eq!(out, ['b']);
        w.expire(ms(10_000), &mut out);
        assert_eq!(out, ['b', 'c']);
        assert!(w.is_empty());
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn matches_a_sorted_model_under_random_operations() {
        let mut w = TimerWheel::new(Duration::from_millis(1), 128, 0);
        let mut model: Vec<(u64, u32, TimerId)> = Vec::new();
        let mut x: u64 = 12345;
        let mut rnd = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut now = 0u64;
        let mut out = Vec::new();
        w.expire(ms(0), &mut out);
        for v in 0..5000u32 {
            match rnd(4) {
                0 | 1 => {
                    let d = now + rnd(1000);
                    let id = w.schedule(ms(d), v);
                    // A deadline at or before the last expiry fires at the next tick.
                    model.push((d.max(now + 1), v, id));
                }
                2 if !model.is_empty() => {
                    let i = rnd(model.len() as u64) as usize;
                    let (_, val, id) = model.swap_remove(i);
                    assert_eq!(w.cancel(id), Some(val));
                }
                _ => {
                    now += rnd(50);
                    out.clear();
                    w.expire(ms(now), &mut out);
                    let mut due: Vec<u32> =
                        model.iter().filter(|m| m.0 <= now).map(|m| m.1).collect();
                    model.retain(|m| m.0 > now);
                    out.sort();
                    due.sort();
                    assert_eq!(out, due);
                }
            }
            // Exact within one revolution (128 ticks from the next tick to process);
            // beyond, no earlier than the end of the revolution and never later than
            // the earliest timer.
            let min = model.iter().map(|m| m.0).min();
            let horizon = now + 1 + 128;
            let got = w.next_deadline();
            match min {
                None => assert_eq!(got, None),
                Some(m) if m < horizon => assert_eq!(got, Some(ms(m))),
                Some(m) => {
                    let g = got.expect("a deadline");
                    assert!(
                        g >= ms(horizon) && g <= ms(m),
                        "{g:?} not in {horizon}..={m}"
                    );
                }
            }
            assert_eq!(w.len(), model.len());
        }
    }
}
