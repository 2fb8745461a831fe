//! Sequence-number arithmetic modulo 2^32 (RFC 9293 section 3.4, RFC 1982).

/// `a < b` in sequence space.
#[inline]
pub fn lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// `a <= b` in sequence space.
#[inline]
pub fn le(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) <= 0
}

/// `a > b` in sequence space.
#[inline]
pub fn gt(a: u32, b: u32) -> bool {
    lt(b, a)
}

/// `a >= b` in sequence space.
#[inline]
pub fn ge(a: u32, b: u32) -> bool {
    le(b, a)
}

/// The later of two sequence numbers.
#[inline]
pub fn max(a: u32, b: u32) -> u32 {
    if lt(a, b) {
        b
    } else {
        a
    }
}

/// The earlier of two sequence numbers.
#[inline]
pub fn min(a: u32, b: u32) -> u32 {
    if lt(a, b) {
        a
    } else {
        b
    }
}

/// Bytes from `from` up to `to`, zero when `to` is not after `from`.
#[inline]
pub fn dist(from: u32, to: u32) -> usize {
    let d = to.wrapping_sub(from) as i32;
    d.max(0) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons_wrap() {
        assert!(lt(u32::MAX - 5, 3));
        assert!(gt(3, u32::MAX - 5));
        assert!(le(7, 7) && ge(7, 7) && !lt(7, 7));
        assert_eq!(dist(u32::MAX - 1, 2), 4);
        assert_eq!(dist(2, u32::MAX - 1), 0);
        assert_eq!(max(u32::MAX, 1), 1);
        assert_eq!(min(u32::MAX, 1), u32::MAX);
    }
}
