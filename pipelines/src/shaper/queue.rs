//! A class's bounded queue: a fixed slab of slots shared by [`FLOWS`] flow sub-queues
//! (linked lists), served by byte-based deficit round robin.

use std::collections::VecDeque;

use super::FLOWS;
use crate::time::Instant;

/// End of a list.
const NIL: u32 = u32::MAX;

/// Bytes a flow may send per round.
const FLOW_QUANTUM: u64 = 1514;

#[derive(Debug)]
struct Slot<T> {
    item: Option<T>,
    len: u32,
    enqueued: Instant,
    next: u32,
}

#[derive(Debug, Clone, Copy)]
struct Flow {
    head: u32,
    tail: u32,
    bytes: u64,
    deficit: u64,
}

impl Flow {
    const EMPTY: Flow = Flow {
        head: NIL,
        tail: NIL,
        bytes: 0,
        deficit: 0,
    };
}

/// Invariant: when `active` is not empty, its front flow's deficit covers its head item,
/// so [`FlowQueue::peek_len`] names exactly what [`FlowQueue::pop`] returns.
#[derive(Debug)]
pub(crate) struct FlowQueue<T> {
    slots: Vec<Slot<T>>,
    free: u32,
    flows: [Flow; FLOWS],
    active: VecDeque<u8>,
    len: usize,
    bytes: u64,
}

/// The flow sub-queue of a flow hash.
pub(crate) fn flow_of(hash: u64) -> usize {
    let h = hash ^ (hash >> 29) ^ (hash >> 47);
    (h as usize) % FLOWS
}

impl<T> FlowQueue<T> {
    /// A queue of `capacity` items, all allocated now.
    pub(crate) fn new(capacity: usize) -> FlowQueue<T> {
        let capacity = capacity.min(NIL as usize - 1);
        let mut slots = Vec::with_capacity(capacity);
        for i in 0..capacity {
            let next = if i + 1 < capacity { i as u32 + 1 } else { NIL };
            slots.push(Slot {
                item: None,
                len: 0,
                enqueued: Instant::ZERO,
                next,
            });
        }
        FlowQueue {
            slots,
            free: if capacity > 0 { 0 } else { NIL },
            flows: [Flow::EMPTY; FLOWS],
            active: VecDeque::with_capacity(FLOWS),
            len: 0,
            bytes: 0,
        }
    }

    /// Items queued.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Bytes queued.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Slots free.
    pub(crate) fn free_slots(&self) -> usize {
        self.slots.len() - self.len
    }

    /// True when no slot is free.
    pub(crate) fn is_full(&self) -> bool {
        self.free == NIL
    }

    /// Length of the item [`FlowQueue::pop`] would return.
    pub(crate) fn peek_len(&self) -> Option<usize> {
        let f = *self.active.front()? as usize;
        Some(self.slots[self.flows[f].head as usize].len as usize)
    }

    /// The flow holding the most bytes, if any.
    pub(crate) fn longest_flow(&self) -> Option<usize> {
        self.active
            .iter()
            .map(|&f| f as usize)
            .max_by_key(|&f| self.flows[f].bytes)
    }

    /// Bytes queued in flow `f`.
    pub(crate) fn flow_bytes(&self, f: usize) -> u64 {
        self.flows[f].bytes
    }

    /// Append `item` of `len` bytes to flow `f`; gives the item back when no slot is free.
    pub(crate) fn push(&mut self, f: usize, item: T, len: usize, now: Instant) -> Result<(), T> {
        if self.free == NIL {
            return Err(item);
        }
        let i = self.free;
        let slot = &mut self.slots[i as usize];
        self.free = slot.next;
        *slot = Slot {
            item: Some(item),
            len: len as u32,
            enqueued: now,
            next: NIL,
        };
        let flow = &mut self.flows[f];
        if flow.head == NIL {
            flow.head = i;
            flow.deficit = FLOW_QUANTUM;
            self.active.push_back(f as u8);
        } else {
            self.slots[flow.tail as usize].next = i;
        }
        let flow = &mut self.flows[f];
        flow.tail = i;
        flow.bytes += len as u64;
        self.len += 1;
        self.bytes += len as u64;
        self.normalize();
        Ok(())
    }

    /// Remove the next item by flow round robin, with its length and enqueue time.
    pub(crate) fn pop(&mut self) -> Option<(T, usize, Instant)> {
        let f = *self.active.front()? as usize;
        let (item, len, at) = self.unlink_head(f)?;
        let flow = &mut self.flows[f];
        flow.deficit = flow.deficit.saturating_sub(len as u64);
        self.normalize();
        Some((item, len, at))
    }

    /// Remove the head item of flow `f` (a drop), with its length.
    pub(crate) fn drop_head(&mut self, f: usize) -> Option<(T, usize)> {
        let (item, len, _) = self.unlink_head(f)?;
        self.normalize();
        Some((item, len))
    }

    /// Take the head of flow `f` off its list and free its slot; a flow left empty
    /// leaves the active ring.
    fn unlink_head(&mut self, f: usize) -> Option<(T, usize, Instant)> {
        let i = self.flows[f].head;
        if i == NIL {
            return None;
        }
        let slot = &mut self.slots[i as usize];
        let item = slot.item.take()?;
        let len = slot.len as usize;
        let at = slot.enqueued;
        let next = slot.next;
        slot.next = self.free;
        self.free = i;
        let flow = &mut self.flows[f];
        flow.head = next;
        flow.bytes -= len as u64;
        self.len -= 1;
        self.bytes -= len as u64;
        if next == NIL {
            *flow = Flow::EMPTY;
            if let Some(pos) = self.active.iter().position(|&a| a as usize == f) {
                self.active.remove(pos);
            }
        }
        Some((item, len, at))
    }

    /// Restore the invariant: rotate flows whose deficit does not cover their head,
    /// giving each a quantum as it goes to the back.
    fn normalize(&mut self) {
        while let Some(&f) = self.active.front() {
            let flow = &mut self.flows[f as usize];
            let head_len = self.slots[flow.head as usize].len as u64;
            if flow.deficit >= head_len {
                return;
            }
            flow.deficit += FLOW_QUANTUM;
            self.active.rotate_left(1);
        }
    }
}
