//! Stable hashes for consistent hashing.
//!
//! The Maglev table and the client lookup must give the same answer on every worker,
//! after every restart and on both units of a high-availability pair, so they use this
//! fixed function (the splitmix64 finaliser applied word by word) rather than the
//! standard library's hasher, whose algorithm may change between Rust releases.

use std::net::{IpAddr, SocketAddr};

/// Seed of the client-address hash.
pub(crate) const SEED_CLIENT: u64 = 0x5265_7567_6543_4c49;
/// Seed of a member's Maglev offset.
pub(crate) const SEED_OFFSET: u64 = 0x4d61_676c_6576_4f46;
/// Seed of a member's Maglev skip.
pub(crate) const SEED_SKIP: u64 = 0x4d61_676c_6576_534b;

/// The splitmix64 finaliser: a bijection of `u64` with full avalanche.
pub(crate) fn mix64(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Hashes `bytes` with `seed`.
pub(crate) fn hash_bytes(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = mix64(seed ^ (bytes.len() as u64));
    for chunk in bytes.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        h = mix64(h ^ u64::from_le_bytes(word)).wrapping_add(0x9e37_79b9_7f4a_7c15);
    }
    mix64(h)
}

/// Hashes an IP address; an IPv4-mapped IPv6 address hashes as its IPv4 address.
pub(crate) fn hash_ip(seed: u64, ip: IpAddr) -> u64 {
    match ip.to_canonical() {
        IpAddr::V4(v4) => hash_bytes(seed, &v4.octets()),
        IpAddr::V6(v6) => hash_bytes(seed, &v6.octets()),
    }
}

/// Hashes a member address (IP and port).
pub(crate) fn hash_socket(seed: u64, addr: SocketAddr) -> u64 {
    hash_ip(
        seed ^ u64::from(addr.port()).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        addr.ip(),
    )
}

/// The `k`-th probe hash of a client (k = 0 is the client hash itself).
pub(crate) fn probe(client_hash: u64, k: u32) -> u64 {
    if k == 0 {
        client_hash
    } else {
        mix64(client_hash ^ u64::from(k).wrapping_mul(0xd6e8_feb8_6659_fd93))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_values_and_canonical_v4() {
        // Pinned: a change here changes every client's member on upgrade.
        let a: IpAddr = "198.18.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:198.18.0.1".parse().unwrap();
        assert_eq!(hash_ip(SEED_CLIENT, a), hash_ip(SEED_CLIENT, mapped));
        assert_ne!(hash_ip(SEED_CLIENT, a), hash_ip(SEED_OFFSET, a));
        let b: IpAddr = "198.18.0.2".parse().unwrap();
        assert_ne!(hash_ip(SEED_CLIENT, a), hash_ip(SEED_CLIENT, b));
        let s1: SocketAddr = "198.18.2.11:80".parse().unwrap();
        let s2: SocketAddr = "198.18.2.11:81".parse().unwrap();
        assert_ne!(hash_socket(SEED_SKIP, s1), hash_socket(SEED_SKIP, s2));
        assert_eq!(mix64(0), 0);
        // splitmix64 seeded with 0: first output.
        assert_eq!(mix64(0x9e37_79b9_7f4a_7c15), 0xe220_a839_7b1d_cdaf);
        assert_eq!(hash_ip(SEED_CLIENT, a), 0x41b9_9adb_853a_5bdb);
    }
}
