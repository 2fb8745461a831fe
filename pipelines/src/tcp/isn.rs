//! Initial sequence numbers (RFC 6528) and SYN cookies (RFC 4987 section 3.6), both built
//! on SipHash-2-4 keyed with a per-stack secret.
//!
//! ISN = M + F(local, remote, secret), where M is a 4 µs clock: unpredictable to an
//! off-path attacker yet monotonic per 4-tuple, so TIME-WAIT reuse stays safe.
//!
//! A SYN cookie is an ISN that encodes, in place of stored state, what the SYN-ACK
//! promised: `t` (5 bits, a 64 s counter), an MSS index (3 bits) and a 24-bit MAC of
//! the 4-tuple, the peer's ISN and `t`. Window scale and SACK-permitted survive in the
//! low bits of our timestamp when the peer offered timestamps (as Linux does).

use std::net::IpAddr;

use crate::time::Instant;

/// SipHash-2-4 with a 128-bit key over a short message (an RFC 6528 PRF).
#[derive(Debug, Clone, Copy)]
pub struct SipKey(pub u64, pub u64);

impl SipKey {
    /// Hashes `data`.
    pub fn hash(&self, data: &[u8]) -> u64 {
        let mut v = [
            self.0 ^ 0x736f_6d65_7073_6575,
            self.1 ^ 0x646f_7261_6e64_6f6d,
            self.0 ^ 0x6c79_6765_6e65_7261,
            self.1 ^ 0x7465_6462_7974_6573,
        ];
        fn round(v: &mut [u64; 4]) {
            v[0] = v[0].wrapping_add(v[1]);
            v[1] = v[1].rotate_left(13) ^ v[0];
            v[0] = v[0].rotate_left(32);
            v[2] = v[2].wrapping_add(v[3]);
            v[3] = v[3].rotate_left(16) ^ v[2];
            v[0] = v[0].wrapping_add(v[3]);
            v[3] = v[3].rotate_left(21) ^ v[0];
            v[2] = v[2].wrapping_add(v[1]);
            v[1] = v[1].rotate_left(17) ^ v[2];
            v[2] = v[2].rotate_left(32);
        }
        let mut chunks = data.chunks_exact(8);
        for c in &mut chunks {
            let m = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            v[3] ^= m;
            round(&mut v);
            round(&mut v);
            v[0] ^= m;
        }
        let rem = chunks.remainder();
        let mut last = [0u8; 8];
        last[..rem.len()].copy_from_slice(rem);
        let m = u64::from_le_bytes(last) | ((data.len() as u64 & 0xff) << 56);
        v[3] ^= m;
        round(&mut v);
        round(&mut v);
        v[0] ^= m;
        v[2] ^= 0xff;
        for _ in 0..4 {
            round(&mut v);
        }
        v[0] ^ v[1] ^ v[2] ^ v[3]
    }
}

/// Serialises a 4-tuple plus extra words into a fixed buffer; returns the used length.
fn tuple_bytes(
    buf: &mut [u8; 64],
    local: (IpAddr, u16),
    remote: (IpAddr, u16),
    extra: &[u32],
) -> usize {
    let mut i = 0;
    let mut put = |b: &[u8]| {
        buf[i..i + b.len()].copy_from_slice(b);
        i += b.len();
    };
    for (a, p) in [local, remote] {
        match a {
            IpAddr::V4(a) => put(&a.octets()),
            IpAddr::V6(a) => put(&a.octets()),
        }
        put(&p.to_be_bytes());
    }
    for e in extra {
        put(&e.to_be_bytes());
    }
    i
}

/// The RFC 6528 ISN for a connection from `local` to `remote` at `now`.
pub fn isn(key: &SipKey, now: Instant, local: (IpAddr, u16), remote: (IpAddr, u16)) -> u32 {
    let mut b = [0u8; 64];
    let n = tuple_bytes(&mut b, local, remote, &[]);
    let m = (now.as_nanos() / 4000) as u32;
    m.wrapping_add(key.hash(&b[..n]) as u32)
}

/// A per-connection offset for our timestamps (RFC 7323 section 5.4 recommends one).
pub fn ts_offset(key: &SipKey, local: (IpAddr, u16), remote: (IpAddr, u16)) -> u32 {
    let mut b = [0u8; 64];
    let n = tuple_bytes(&mut b, local, remote, &[0x7473]);
    (key.hash(&b[..n]) >> 32) as u32
}

/// The MSS values a cookie can promise (index in 3 bits).
pub const COOKIE_MSS: [u16; 8] = [536, 1000, 1220, 1300, 1360, 1400, 1440, 1460];

/// Seconds per cookie counter step.
const COOKIE_PERIOD_S: u64 = 64;

/// What a validated cookie restores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieInfo {
    /// Our ISN (the cookie itself).
    pub iss: u32,
    /// The peer's ISN.
    pub irs: u32,
    /// The MSS promised, from [`COOKIE_MSS`].
    pub mss: u16,
}

fn cookie_mac(key: &SipKey, local: (IpAddr, u16), remote: (IpAddr, u16), irs: u32, t: u32) -> u32 {
    let mut b = [0u8; 64];
    let n = tuple_bytes(&mut b, local, remote, &[irs, t, 0x636f_6f6b]);
    (key.hash(&b[..n]) as u32) & 0x00ff_ffff
}

/// The cookie ISN for a SYN with sequence `irs` asking for `mss`.
pub fn make_cookie(
    key: &SipKey,
    now: Instant,
    local: (IpAddr, u16),
    remote: (IpAddr, u16),
    irs: u32,
    mss: u16,
) -> u32 {
    let t = ((now.as_nanos() / 1_000_000_000 / COOKIE_PERIOD_S) & 0x1f) as u32;
    let idx = COOKIE_MSS.iter().rposition(|&m| m <= mss).unwrap_or(0) as u32;
    (t << 27) | (idx << 24) | cookie_mac(key, local, remote, irs, t)
}

/// Checks the cookie in the ACK that completes a cookie handshake (`ack - 1` is the
/// cookie, `seq - 1` the peer's ISN); accepts cookies up to two periods old.
pub fn check_cookie(
    key: &SipKey,
    now: Instant,
    local: (IpAddr, u16),
    remote: (IpAddr, u16),
    seq: u32,
    ack: u32,
) -> Option<CookieInfo> {
    let cookie = ack.wrapping_sub(1);
    let irs = seq.wrapping_sub(1);
    let t = cookie >> 27;
    let now_t = ((now.as_nanos() / 1_000_000_000 / COOKIE_PERIOD_S) & 0x1f) as u32;
    if now_t.wrapping_sub(t) & 0x1f > 2 {
        return None;
    }
    if cookie & 0x00ff_ffff != cookie_mac(key, local, remote, irs, t) {
        return None;
    }
    Some(CookieInfo {
        iss: cookie,
        irs,
        mss: COOKIE_MSS[((cookie >> 24) & 7) as usize],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siphash_reference_vector() {
        // SipHash-2-4 paper, appendix A: key 00..0f, message 00..0e.
        let key = SipKey(0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908);
        let msg: Vec<u8> = (0..15).collect();
        assert_eq!(key.hash(&msg), 0xa129_ca61_49be_45e5);
    }

    #[test]
    fn isns_differ_per_tuple_and_advance_with_time() {
        let k = SipKey(1, 2);
        let l = ("198.18.1.1".parse().unwrap(), 80);
        let r1 = ("198.18.1.2".parse().unwrap(), 40000);
        let r2 = ("198.18.1.2".parse().unwrap(), 40001);
        let a = isn(&k, Instant::ZERO, l, r1);
        assert_ne!(a, isn(&k, Instant::ZERO, l, r2));
        assert_eq!(
            isn(&k, Instant::from_millis(4), l, r1),
            a.wrapping_add(1000)
        );
        assert_ne!(a, isn(&SipKey(1, 3), Instant::ZERO, l, r1));
    }

    #[test]
    fn cookies_validate_only_for_their_tuple_and_time() {
        let k = SipKey(7, 9);
        let l = ("198.18.1.1".parse().unwrap(), 80);
        let r = ("198.18.1.2".parse().unwrap(), 40000);
        let now = Instant::from_secs(1000);
        let c = make_cookie(&k, now, l, r, 555, 1460);
        let ok = check_cookie(
            &k,
            now + std::time::Duration::from_secs(100),
            l,
            r,
            556,
            c.wrapping_add(1),
        );
        assert_eq!(
            ok,
            Some(CookieInfo {
                iss: c,
                irs: 555,
                mss: 1460
            })
        );
        assert_eq!(
            check_cookie(&k, now, l, r, 557, c.wrapping_add(1)),
            None,
            "other ISN"
        );
        let r2 = ("198.18.1.3".parse().unwrap(), 40000);
        assert_eq!(
            check_cookie(&k, now, l, r2, 556, c.wrapping_add(1)),
            None,
            "other peer"
        );
        assert_eq!(
            check_cookie(
                &k,
                now + std::time::Duration::from_secs(200),
                l,
                r,
                556,
                c.wrapping_add(1)
            ),
            None,
            "expired"
        );
        let c2 = make_cookie(&k, now, l, r, 1, 1300);
        assert_eq!(
            check_cookie(&k, now, l, r, 2, c2.wrapping_add(1)).map(|i| i.mss),
            Some(1300)
        );
        assert_eq!(
            check_cookie(&k, now, l, r, 2, c2.wrapping_add(1)).map(|i| i.mss),
            Some(1300)
        );
    }
}
