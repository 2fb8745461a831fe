//! Per-worker selection state.

use super::pool::Pool;

/// A worker's own mutable selection state for one pool: the round-robin position and
/// the smooth weighted round-robin current weights. The shared [`Pool`] stays
/// immutable; every worker keeps one cursor per pool and passes it to
/// [`Pool::select`].
///
/// The cursor is sized for its pool at creation, so selection does not allocate. A
/// cursor used with a pool of another size (a new configuration snapshot) is reset
/// and resized on first use, which allocates once; create a fresh cursor with
/// [`PoolCursor::new`] when a worker picks up a new pool snapshot.
#[derive(Debug, Clone)]
pub struct PoolCursor {
    /// Index of the member the next round-robin walk starts at.
    pub(crate) next: usize,
    /// Smooth weighted round-robin current weight of each member.
    pub(crate) current: Vec<i64>,
}

impl PoolCursor {
    /// A cursor for `pool`. `seed` (e.g. the worker index) sets where round robin
    /// starts, so that workers do not all begin with the first member.
    pub fn new(pool: &Pool, seed: usize) -> Self {
        let n = pool.members().len();
        Self {
            next: if n == 0 { 0 } else { seed % n },
            current: vec![0; n],
        }
    }

    /// Resets the cursor for a pool of `n` members if it was made for another size.
    pub(crate) fn fit(&mut self, n: usize) {
        if self.current.len() != n {
            self.current.clear();
            self.current.resize(n, 0);
            self.next = 0;
        }
        if self.next >= n {
            self.next = 0;
        }
    }
}
