//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).

/// Adds `data` to a running one's-complement sum (not yet folded): native-endian 64-bit
/// words added into a 128-bit accumulator (2^64 = 1 modulo 0xffff, so the carries
/// fold back in at the end), folded to 16 bits and byte-swapped at the end (RFC 1071 section 2 (B): the one's-complement sum
/// is independent of byte order, up to a swap), then the tail. TCP segments are
/// checksummed whole, payload included, so this is the stack's hottest loop.
#[inline]
pub fn sum(acc: u32, data: &[u8]) -> u32 {
    if data.len() < 16 {
        return sum_pairs(acc, data);
    }
    // 64-bit words into a 128-bit accumulator: an add and an add-with-carry each.
    let (words, rest) = data.as_chunks::<8>();
    let mut acc128 = 0u128;
    for w in words {
        acc128 += u64::from_ne_bytes(*w) as u128;
    }
    let mut wide = (acc128 as u64 & 0xffff_ffff) + (acc128 as u64 >> 32) + (acc128 >> 64) as u64;
    let (words, tail) = rest.as_chunks::<4>();
    for w in words {
        wide += u32::from_ne_bytes(*w) as u64;
    }
    // Fold the native-order sum to 16 bits (end-around carries), then into network
    // order, then add the running sum without losing a carry.
    while wide >> 16 != 0 {
        wide = (wide & 0xffff) + (wide >> 16);
    }
    let network = u16::from_be_bytes((wide as u16).to_ne_bytes());
    let mut total = acc as u64 + network as u64;
    while total >> 16 != 0 {
        total = (total & 0xffff) + (total >> 16);
    }
    sum_pairs(total as u32, tail)
}

/// [`sum`] the plain way, 16-bit big-endian words one at a time (short inputs, tails,
/// and the reference the fast one is tested against).
#[inline]
pub fn sum_pairs(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc = acc.wrapping_add(u16::from_be_bytes([c[0], c[1]]) as u32);
        if acc > 0xffff_0000 {
            acc = (acc & 0xffff) + (acc >> 16);
        }
    }
    if let [b] = chunks.remainder() {
        acc = acc.wrapping_add((*b as u32) << 8);
    }
    acc
}

/// Folds a running sum to 16 bits and complements it: the value to put in a header.
#[inline]
pub fn finish(mut acc: u32) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// The checksum of `data` alone.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    finish(sum(0, data))
}

/// The IPv4 pseudo-header sum for TCP/UDP: addresses, protocol and L4 length.
#[inline]
pub fn pseudo_header_v4(src: [u8; 4], dst: [u8; 4], proto: u8, l4_len: u16) -> u32 {
    let mut acc = sum(0, &src);
    acc = sum(acc, &dst);
    acc + proto as u32 + l4_len as u32
}

/// Updates checksum `csum` for a 16-bit field changing from `old` to `new` (RFC 1624, eqn. 3).
#[inline]
pub fn update16(csum: u16, old: u16, new: u16) -> u16 {
    let mut acc = (!csum as u32) + (!old as u32 & 0xffff) + new as u32;
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    !(acc as u16)
}

/// Updates checksum `csum` for a 32-bit field (such as an IPv4 address) changing from `old` to `new`.
#[inline]
pub fn update32(csum: u16, old: u32, new: u32) -> u16 {
    let c = update16(csum, (old >> 16) as u16, (new >> 16) as u16);
    update16(c, old as u16, new as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: 0001 f203 f4f5 f6f7 sums to ddf2 before complement.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), !0xddf2);
        // A message including its own checksum sums to zero.
        let mut with = data.to_vec();
        with.extend_from_slice(&checksum(&data).to_be_bytes());
        assert_eq!(checksum(&with), 0);
    }

    #[test]
    fn odd_lengths_pad_with_zero() {
        assert_eq!(
            checksum(&[0x12, 0x34, 0x56]),
            checksum(&[0x12, 0x34, 0x56, 0x00])
        );
    }

    #[test]
    fn incremental_update_matches_recompute() {
        let mut data = [
            0x45u8, 0, 0, 84, 0x12, 0x34, 0x40, 0, 64, 1, 0, 0, 198, 18, 1, 2, 198, 18, 1, 1,
        ];
        let c = checksum(&data);
        for (old, new) in [(64u16 << 8 | 1, 63u16 << 8 | 1), (0xffff, 0), (0, 0xffff)] {
            data[8..10].copy_from_slice(&old.to_be_bytes());
            let c0 = checksum(&data);
            data[8..10].copy_from_slice(&new.to_be_bytes());
            assert_eq!(update16(c0, old, new), checksum(&data));
        }
        let _ = c;
        let before = checksum(&data);
        let old = u32::from_be_bytes([data[16], data[17], data[18], data[19]]);
        data[16..20].copy_from_slice(&[198, 18, 2, 11]);
        assert_eq!(
            update32(before, old, u32::from_be_bytes([198, 18, 2, 11])),
            checksum(&data)
        );
    }
}
