//! Server-side connection reuse (F5 OneConnect): a connection whose exchange ended
//! cleanly (both messages complete, both sides keep-alive) is kept idle per virtual
//! server, route and member on the worker, up to `max_idle_per_member`, for
//! `idle_timeout`; a later request from any client of that virtual server on this
//! worker routed to the same member takes it instead of opening one. An idle
//! connection the member closes, resets or sends anything on is dropped at once; one
//! found dead when taken is dropped and the next tried.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::lb::MemberId;
use crate::tcp::{ConnHandle, Event, Owner, State};
use crate::time::Instant;
use crate::tls::TlsSession;

use super::{app, FlowState, FlowView, Proxy, ProxyCtx, StandardVs};

/// The owner tag of idle server-side connections.
pub(super) const IDLE_TAG: u32 = u32::MAX - 2;

/// An idle server-side connection.
pub(super) struct IdleConn {
    vs: Arc<StandardVs>,
    route: Option<usize>,
    member: MemberId,
    conn: ConnHandle,
    tls: Option<Box<TlsSession>>,
    addr: Option<SocketAddr>,
    snat: Option<SocketAddr>,
    since: Instant,
    /// TLS bytes already counted.
    tls_seen: (u64, u64),
}

impl Proxy {
    /// Keeps the server-side connection `s` of flow `i` idle for reuse; false when the
    /// profile says no or its member already has `max_idle_per_member` idle.
    pub(super) fn park(&mut self, cx: &mut ProxyCtx<'_>, i: usize, s: ConnHandle) -> bool {
        let f = self.slots[i].flow.as_mut().expect("live flow");
        let Some(http) = f.vs.http.as_ref() else {
            return false;
        };
        let Some(member) = f.member else {
            return false;
        };
        if !http.profile.oneconnect {
            return false;
        }
        let held = self
            .idle
            .iter()
            .filter(|c| Arc::ptr_eq(&c.vs, &f.vs) && c.route == f.route && c.member == member)
            .count();
        if held >= http.profile.max_idle_per_member {
            return false;
        }
        let _ = cx.tcp.set_owner(s, Owner::new(app::PROXY, IDLE_TAG));
        self.idle.push(IdleConn {
            vs: f.vs.clone(),
            route: f.route,
            member,
            conn: s,
            tls: f.server_tls.take(),
            addr: f.server_addr,
            snat: f.snat,
            since: cx.now,
            tls_seen: f.tls_seen[1],
        });
        if self.sweep.is_none() {
            self.schedule_sweep(cx);
        }
        true
    }

    /// Gives flow `i` (routed to `member`) an idle connection to it, if one is alive;
    /// true when it got one.
    pub(super) fn take_idle(&mut self, cx: &mut ProxyCtx<'_>, i: usize, member: MemberId) -> bool {
        loop {
            let f = self.slots[i].flow.as_ref().expect("live flow");
            let at = self.idle.iter().rposition(|c| {
                Arc::ptr_eq(&c.vs, &f.vs) && c.route == f.route && c.member == member
            });
            let Some(at) = at else {
                return false;
            };
            let c = self.idle.swap_remove(at);
            let alive = cx.tcp.state(c.conn) == Some(State::Established)
                && cx.tcp.readable_bytes(c.conn) == 0
                && !cx.tcp.read_closed(c.conn)
                && c.tls
                    .as_ref()
                    .is_none_or(|t| t.error().is_none() && !t.peer_closed());
            if !alive {
                self.drop_idle(cx, c);
                continue;
            }
            let _ = cx.tcp.set_owner(c.conn, Owner::new(app::PROXY, i as u32));
            let f = self.slots[i].flow.as_mut().expect("live flow");
            f.server = Some(c.conn);
            f.server_tls = c.tls;
            f.server_addr = c.addr;
            f.snat = c.snat;
            f.tls_seen[1] = c.tls_seen;
            f.seen[1] = cx
                .tcp
                .connection(c.conn)
                .map_or((0, 0), |x| (x.segs_in, x.segs_out));
            f.connected = true;
            f.server_open = true;
            f.server_closed = false;
            return true;
        }
    }

    /// Closes an idle connection (counted as a server-side connection ended).
    fn drop_idle(&mut self, cx: &mut ProxyCtx<'_>, c: IdleConn) {
        let shard = c.vs.counters.shard(self.worker);
        if let Some(mut t) = c.tls {
            let (enc, dec) = t.bytes();
            shard
                .server_tls
                .bytes_encrypted
                .add(enc.saturating_sub(c.tls_seen.0));
            shard
                .server_tls
                .bytes_decrypted
                .add(dec.saturating_sub(c.tls_seen.1));
            shard.server_tls.ended.inc();
            if t.error().is_none() {
                let _ = t.close();
                super::relay::flush(cx.tcp, c.conn, &mut t);
            }
        }
        let unread = cx.tcp.readable_bytes(c.conn);
        let _ = cx.tcp.consume(c.conn, unread);
        let _ = cx.tcp.close(cx.now, c.conn);
        shard.server.conns_closed.inc();
    }

    /// An event of an idle connection: anything but room to write means the member
    /// is done with it.
    pub(super) fn on_idle_event(&mut self, cx: &mut ProxyCtx<'_>, ev: Event) {
        let h = match ev {
            Event::Writable(_) | Event::Accepted(_) | Event::Connected(_) => return,
            Event::Readable(h) | Event::PeerClosed(h) | Event::Closed(h) => h,
            Event::Reset(h, _) => {
                if let Some(at) = self.idle.iter().position(|c| c.conn == h) {
                    let c = self.idle.swap_remove(at);
                    let shard = c.vs.counters.shard(self.worker);
                    shard.server.conns_closed.inc();
                    if c.tls.is_some() {
                        shard.server_tls.ended.inc();
                    }
                }
                return;
            }
        };
        match self.idle.iter().position(|c| c.conn == h) {
            Some(at) => {
                let c = self.idle.swap_remove(at);
                self.drop_idle(cx, c);
            }
            None => {
                let _ = cx.tcp.close(cx.now, h);
            }
        }
    }

    /// Closes idle connections kept longer than their profile's `idle_timeout`, or
    /// whose virtual server was removed.
    pub(super) fn expire_idle(&mut self, cx: &mut ProxyCtx<'_>) {
        let mut k = 0;
        while k < self.idle.len() {
            let c = &self.idle[k];
            let current = self.vss.iter().any(|v| Arc::ptr_eq(&v.vs, &c.vs));
            let timeout = c.vs.http.as_ref().map(|h| h.profile.idle_timeout);
            let expired = timeout.is_none_or(|t| cx.now >= c.since + t);
            if expired || !current {
                let c = self.idle.swap_remove(k);
                self.drop_idle(cx, c);
            } else {
                k += 1;
            }
        }
    }

    /// The idle server-side connections, for `show connections` (age: time idle).
    pub(super) fn idle_views(&self, now: Instant) -> impl Iterator<Item = FlowView> + '_ {
        self.idle.iter().map(move |c| FlowView {
            virtual_name: c.vs.name.clone(),
            client: None,
            server: c.addr,
            snat: c.snat,
            state: FlowState::Idle,
            age_ms: (now - c.since).as_millis() as u64,
            bytes_in: 0,
            bytes_out: 0,
        })
    }

    /// Idle server-side connections held on this worker.
    pub fn idle_connections(&self) -> usize {
        self.idle.len()
    }
}
