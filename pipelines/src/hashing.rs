//! The hash maps of the data path (connection, TIME-WAIT, listener and neighbour
//! tables): std's `HashMap` with foldhash's keyed hasher instead of SipHash-1-3. Its
//! seed is random per process, so attacker-chosen tuples cannot be aimed at one bucket
//! as with an unkeyed hash, and on the small keys of these tables it costs a fraction of
//! SipHash (which was several hundred instructions per TCP segment).

use std::collections::HashMap;

/// The hasher of the data path's maps.
pub type FastState = foldhash::quality::RandomState;

/// A `HashMap` with [`FastState`].
pub type FastMap<K, V> = HashMap<K, V, FastState>;

/// An empty map with room for `n` entries.
pub fn with_capacity<K, V>(n: usize) -> FastMap<K, V> {
    HashMap::with_capacity_and_hasher(n, FastState::default())
}
