//! Option negotiation on the handshake: MSS (RFC 9293 section 3.7.1, RFC 6691), window
//! scale and timestamps (RFC 7323), SACK-permitted (RFC 2018).

use super::config::TcpProfile;
use super::state::Connection;
use super::timers::ms;
use crate::time::Instant;
use crate::wire::tcp::TcpRepr;

/// MSS assumed when the peer sends none (RFC 9293 section 3.7.1).
pub const DEFAULT_MSS: u16 = 536;
/// Bytes the timestamps option takes in every segment.
pub const TS_OPTION_LEN: u16 = 12;

impl Connection {
    /// Records what the peer's SYN (or SYN-ACK) offered against what we offer. On an
    /// active open we offered everything the profile enables, so the peer's answer decides.
    pub fn negotiate(&mut self, syn: &TcpRepr, p: &TcpProfile) {
        let peer_mss = syn.mss.unwrap_or(DEFAULT_MSS).max(64);
        match (p.window_scaling, syn.wscale) {
            (true, Some(w)) => {
                self.wscale_on = true;
                self.snd_wscale = w.min(14);
                self.rcv_wscale = p.rcv_wscale();
            }
            _ => {
                self.wscale_on = false;
                self.snd_wscale = 0;
                self.rcv_wscale = 0;
            }
        }
        self.sack_ok = p.sack && syn.sack_permitted;
        self.ts_ok = p.timestamps && syn.timestamps.is_some();
        if let (true, Some((tsval, _))) = (self.ts_ok, syn.timestamps) {
            self.ts_recent = tsval;
        }
        let opt = if self.ts_ok { TS_OPTION_LEN } else { 0 };
        let ours = family_mss(p.mss, self.key.local.is_ipv6());
        self.mss = (peer_mss.min(ours)).saturating_sub(opt).max(64);
        self.cc.set_mss(self.mss as usize);
    }

    /// Our timestamp value now.
    #[inline]
    pub fn tsval(&self, now: Instant) -> u32 {
        ms(now).wrapping_add(self.ts_offset)
    }

    /// Fills the options of our SYN (`synack` false: offer all the profile enables) or
    /// SYN-ACK (only what the peer offered, as negotiated).
    pub fn syn_options(&self, r: &mut TcpRepr, p: &TcpProfile, now: Instant, synack: bool) {
        r.mss = Some(family_mss(p.mss, self.key.local.is_ipv6()));
        if synack {
            r.wscale = self.wscale_on.then_some(self.rcv_wscale);
            r.sack_permitted = self.sack_ok;
            r.timestamps = self.ts_ok.then(|| (self.tsval(now), self.ts_recent));
        } else {
            r.wscale = p.window_scaling.then(|| p.rcv_wscale());
            r.sack_permitted = p.sack;
            r.timestamps = p.timestamps.then(|| (self.tsval(now), 0));
        }
    }

    /// Whether window scaling was agreed (both sides sent the option).
    #[inline]
    pub fn wscale_agreed(&self) -> bool {
        self.wscale_on
    }
}

/// The MSS of a profile (written for IPv4: 1460 fills a 1500-byte MTU) for a connection
/// over IPv6, whose header is 20 bytes longer.
#[inline]
pub fn family_mss(profile_mss: u16, ipv6: bool) -> u16 {
    if ipv6 {
        profile_mss.saturating_sub(20)
    } else {
        profile_mss
    }
}
