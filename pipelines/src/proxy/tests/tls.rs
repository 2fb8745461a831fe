//! The proxy with TLS on either side, in memory: Rouge's TLS engine (rustls) as the
//! clients and the members, the test certificates of `appliance/configs/tls/`.

use super::*;
use crate::tls::test_certs::{ca, clock, ident};
use crate::tls::{
    ClientProfile, ServerProfile, TicketKeys, TlsClientConfig, TlsFailure, TlsIdentity,
    TlsServerConfig,
};

pub(super) fn server_cfg(ids: Vec<TlsIdentity>, timeout: Duration) -> TlsServerConfig {
    let c = clock();
    let p = ServerProfile {
        identities: ids,
        alpn: vec!["http/1.1".into()],
        handshake_timeout: timeout,
        ..ServerProfile::default()
    };
    TlsServerConfig::new(&p, TicketKeys::new(c.clone(), 3600).unwrap(), c).unwrap()
}

/// The virtual server's client TLS: both s3.rouge.test certificates.
pub(super) fn vip_tls(timeout: Duration) -> Arc<TlsServerConfig> {
    Arc::new(server_cfg(
        vec![ident("s3.rouge.test"), ident("s3.rouge.test-rsa")],
        timeout,
    ))
}

/// Clients and the proxy's server side verify against `ca`, sending `name` as SNI.
pub(super) fn client_cfg(ca_name: &str, name: Option<&str>) -> TlsClientConfig {
    let p = ClientProfile {
        ca: Some(ca(ca_name)),
        server_name: name.map(str::to_string),
        alpn: vec!["http/1.1".into()],
        ..ClientProfile::default()
    };
    TlsClientConfig::new(&p, clock()).unwrap()
}

fn member(up: u64) -> Endpoint {
    Endpoint {
        to_send: up,
        send_seed: 2,
        recv_seed: 1,
        ..Endpoint::default()
    }
}

/// A bed whose virtual server terminates TLS (and re-encrypts when `reencrypt`), with
/// members speaking TLS with the certificates named in `member_certs` (plain when
/// empty), answering `SERVER_BYTES` each.
fn bed(n: u8, member_certs: &[&str], reencrypt: bool, timeout: Duration) -> Bed {
    fn server() -> Endpoint {
        member(SERVER_BYTES.with(|b| *b.borrow()))
    }
    let mut bed = Bed::new(n, &[], server, |vs| {
        vs.client_tls = Some(("vip".into(), vip_tls(timeout)));
        if reencrypt {
            vs.server_tls = Some(("members".into(), Arc::new(client_cfg("ca", None)), 16));
        }
    });
    for (m, cert) in bed.members.iter_mut().zip(member_certs) {
        m.tls = Some(server_cfg(vec![ident(cert)], timeout));
    }
    bed
}

fn done(b: &Bed, h: ConnHandle) -> bool {
    let c = &b.clients[&h];
    c.eof && c.shut && b.host.proxy().flow_count() == 0
}

/// 4 MiB down and 1 MiB up (1 GiB down and 64 MiB up when `ROUGE_PROXY_FULL=1`, as
/// `scripts/test.sh` runs it, in release) through TLS on both sides (client to VIP, VIP
/// to member), with loss, duplication and reordering on both links: every byte arrives
/// as sent (each checked against its pattern), one full handshake counted on each side,
/// nothing left held.
#[test]
fn tls_on_both_sides_relays_every_byte_through_loss() {
    let full = std::env::var("ROUGE_PROXY_FULL").is_ok_and(|v| v == "1");
    let (down, up) = if full {
        (1u64 << 30, 64u64 << 20)
    } else {
        (4u64 << 20, 1u64 << 20)
    };
    SERVER_BYTES.with(|b| *b.borrow_mut() = down);
    let mut bed = bed(2, &["member", "member"], true, Duration::from_secs(10));
    let faults = Faults {
        loss: 0.01,
        dup: 0.005,
        reorder: 0.01,
    };
    bed.client_faults = faults;
    bed.server_faults = faults;
    let cfg = client_cfg("ca", Some("s3.rouge.test"));
    let h = bed.connect_tls(40_000, downloader(up), &cfg);
    assert!(bed.run_until(Duration::from_secs(3000), |b| done(b, h)));
    let c = &bed.clients[&h];
    assert_eq!(c.received, down);
    assert!(!c.corrupt && !c.tls_failed && !c.reset, "{:?}", c.tls);
    let m = bed
        .members
        .iter()
        .flat_map(|m| m.conns.values())
        .next()
        .unwrap();
    assert_eq!(m.received, up);
    assert!(!m.corrupt && !m.tls_failed);
    let k = &bed.vs().counters;
    let (ct, st) = (k.client_tls(), k.server_tls());
    assert_eq!(ct.full, [0, 1], "one TLS 1.3 handshake with the client");
    assert_eq!(st.full, [0, 1], "one TLS 1.3 handshake with the member");
    assert_eq!((ct.current, st.current), (0, 0));
    assert_eq!(ct.by_suite.iter().sum::<u64>(), 1);
    assert_eq!(ct.failures.iter().sum::<u64>(), 0, "{ct:?}");
    assert_eq!(st.failures.iter().sum::<u64>(), 0, "{st:?}");
    assert_eq!((ct.bytes_decrypted, ct.bytes_encrypted), (up, down));
    assert_eq!((st.bytes_encrypted, st.bytes_decrypted), (up, down));
    let cs = k.client_side();
    assert_eq!((cs.bytes_in, cs.bytes_out), (up, down), "plaintext counted");
    assert_eq!(bed.host.tcp().buffer_bytes(), 0, "buffers given back");
}

/// Termination only (`web-tls`): plain members; the member is chosen only after the
/// client's handshake, and the RSA certificate is served to a client that asks for it.
#[test]
fn client_tls_to_plain_members_and_the_member_waits_for_the_handshake() {
    SERVER_BYTES.with(|b| *b.borrow_mut() = 100_000);
    let mut bed = bed(1, &[], false, Duration::from_secs(10));
    let cfg = client_cfg("ca", Some("s3.rouge.test"));
    let h = bed.connect_tls(40_000, downloader(5000), &cfg);
    // Two round trips in: the TCP handshake done, TLS not yet.
    bed.run_until(Duration::from_millis(3), |_| false);
    assert_eq!(
        bed.members[0].accepted, 0,
        "no member before the TLS handshake"
    );
    assert!(bed.run_until(Duration::from_secs(10), |b| done(b, h)));
    let c = &bed.clients[&h];
    assert_eq!((c.received, c.sent), (100_000, 5000));
    assert!(!c.corrupt && !c.tls_failed && !c.reset);
    let t = c.tls.as_ref().unwrap();
    assert_eq!(t.alpn(), Some(&b"http/1.1"[..]));
    assert_eq!(bed.members[0].conns.values().next().unwrap().received, 5000);
    assert_eq!(bed.vs().counters.client_tls().full, [0, 1]);
}

/// Garbage instead of a ClientHello: an alert and a FIN to the client, counted as
/// `not-tls`; no member is ever contacted.
#[test]
fn garbage_instead_of_a_client_hello_gets_an_alert_and_no_member() {
    SERVER_BYTES.with(|b| *b.borrow_mut() = 0);
    let mut bed = bed(1, &[], false, Duration::from_secs(10));
    let h = bed.connect(40_000, downloader(0));
    bed.clients.get_mut(&h).unwrap().shut = true;
    assert!(
        bed.run_until(Duration::from_millis(10), |b| b.client.state(h)
            == Some(crate::tcp::State::Established))
    );
    bed.client
        .write(h, b"GET / HTTP/1.1\r\nHost: s3.rouge.test\r\n\r\n")
        .unwrap();
    let ok = bed.run_until(Duration::from_secs(5), |b| {
        b.clients[&h].eof && b.host.proxy().flow_count() == 0
    });
    let c = &bed.clients[&h];
    assert!(
        ok,
        "eof {} received {} flows {} state {:?} {:?} {:?}",
        c.eof,
        c.received,
        bed.host.proxy().flow_count(),
        bed.client.state(h),
        bed.client.counters(),
        bed.host.tcp().counters()
    );
    assert!(!c.reset, "a FIN after the alert, not a reset");
    // At most an alert record (7 bytes) came back.
    assert!(c.received < 16, "{} bytes", c.received);
    let k = &bed.vs().counters;
    assert_eq!(k.client_tls().failed(TlsFailure::NotTls), 1);
    assert_eq!(k.resets(ResetCause::Tls), 1);
    assert_eq!(bed.members[0].accepted, 0);
    assert_eq!(k.client_tls().current, 0);
}

/// A client that connects and never speaks is dropped at the handshake timeout.
#[test]
fn a_silent_client_is_dropped_at_the_handshake_timeout() {
    SERVER_BYTES.with(|b| *b.borrow_mut() = 0);
    let mut bed = bed(1, &[], false, Duration::from_secs(2));
    let h = bed.connect(40_000, downloader(0));
    bed.clients.get_mut(&h).unwrap().shut = true;
    assert!(
        bed.run_until(Duration::from_millis(10), |b| b.host.proxy().flow_count()
            == 1)
    );
    assert!(
        !bed.run_until(Duration::from_millis(1900), |b| b.host.proxy().flow_count()
            == 0)
    );
    assert!(bed.run_until(Duration::from_secs(1), |b| b.host.proxy().flow_count() == 0));
    let k = &bed.vs().counters;
    assert_eq!(k.client_tls().failed(TlsFailure::HandshakeTimeout), 1);
    assert_eq!(bed.members[0].accepted, 0);
}

/// A member whose certificate comes from another CA is refused (counted) and the next
/// member is used; when every member is refused, a client whose handshake finished gets
/// `close_notify` and a FIN, not a reset.
#[test]
fn a_member_with_a_certificate_from_another_ca_is_passed_over() {
    SERVER_BYTES.with(|b| *b.borrow_mut() = 10_000);
    let mut bed = bed(2, &["other", "member"], true, Duration::from_secs(10));
    let cfg = client_cfg("ca", Some("s3.rouge.test"));
    // Round robin starts with the first member: "other" is tried, then "member".
    let h = bed.connect_tls(40_000, downloader(100), &cfg);
    assert!(bed.run_until(Duration::from_secs(10), |b| done(b, h)));
    let c = &bed.clients[&h];
    assert_eq!(c.received, 10_000);
    assert!(!c.tls_failed && !c.reset);
    let k = &bed.vs().counters;
    assert_eq!(k.server_tls().failed(TlsFailure::PeerCertificate), 1);
    assert_eq!(k.reselects(), 1);
    assert_eq!(k.server_tls().full, [0, 1]);

    let mut bed = bed_all_other();
    let h = bed.connect_tls(40_001, downloader(100), &cfg);
    assert!(bed.run_until(Duration::from_secs(10), |b| b.clients[&h].eof
        && b.host.proxy().flow_count() == 0));
    let c = &bed.clients[&h];
    assert!(!c.reset, "close_notify and FIN, not a reset");
    assert!(c.tls.as_ref().unwrap().peer_closed(), "close_notify");
    assert_eq!(c.received, 0);
    let k = &bed.vs().counters;
    assert_eq!(k.server_tls().failed(TlsFailure::PeerCertificate), 2);
    assert_eq!(k.resets(ResetCause::NoMember), 1);
}

fn bed_all_other() -> Bed {
    bed(2, &["other", "other"], true, Duration::from_secs(10))
}

/// A storm of ClientHellos in one turn: at most `HANDSHAKES_PER_TURN` are worked on,
/// the rest wait for the next turns (and all finish).
#[test]
fn a_handshake_storm_is_worked_off_a_bounded_number_per_turn() {
    SERVER_BYTES.with(|b| *b.borrow_mut() = 1000);
    let mut bed = bed(1, &[], false, Duration::from_secs(10));
    let cfg = client_cfg("ca", Some("s3.rouge.test"));
    let n = 40usize;
    let hs: Vec<ConnHandle> = (0..n)
        .map(|i| bed.connect_tls(40_000 + i as u16, downloader(10), &cfg))
        .collect();
    let (mut most, mut turns_waiting) = (0, 0);
    for _ in 0..20_000 {
        if hs.iter().all(|h| bed.clients[h].eof) && bed.host.proxy().flow_count() == 0 {
            break;
        }
        bed.step();
        let waiting = bed.host.proxy().deferred.len();
        most = most.max(waiting);
        turns_waiting += usize::from(waiting > 0);
    }
    for h in &hs {
        let c = &bed.clients[h];
        assert!(c.eof && c.received == 1000 && !c.tls_failed && !c.corrupt);
    }
    assert_eq!(bed.vs().counters.client_tls().full[1], n as u64);
    let per_turn = HANDSHAKES_PER_TURN as usize;
    assert!(
        most >= n - per_turn,
        "the storm waited in line (at most {most} waiting)"
    );
    assert!(
        turns_waiting >= n / per_turn - 1,
        "worked off over several turns ({turns_waiting})"
    );
}

/// A small send buffer toward the client keeps the session's records waiting: writing
/// them out must count as progress, or a download stalls until some unrelated timer
/// (it did: 1 MiB answers through `web-tls` waited for the 10 s handshake timer), and the
/// member's side must not be let go while records toward the client still wait (it was:
/// the last records of an answer followed by the member's FIN were never sent). Both
/// with the ends closing after the transfer and with them staying open (keep-alive).
#[test]
fn records_waiting_for_send_buffer_room_never_stall_a_download() {
    for keep_alive in [false, true] {
        let down = 1u64 << 20;
        SERVER_BYTES.with(|b| *b.borrow_mut() = down);
        let template = if keep_alive {
            server_open
        } else {
            server_plain
        };
        let mut bed = Bed::new(1, &[], template, |vs| {
            vs.client_tls = Some(("vip".into(), vip_tls(Duration::from_secs(10))));
            vs.client_profile.send_buffer = 16 * 1024;
        });
        let cfg = client_cfg("ca", Some("s3.rouge.test"));
        let mut e = downloader(100);
        e.shut = keep_alive;
        let h = bed.connect_tls(40_000, e, &cfg);
        // Without loss 1 MiB takes well under a second of virtual time; the handshake
        // timer (10 s) must not be what moves it.
        let ok = bed.run_until(Duration::from_secs(3), |b| b.clients[&h].received == down);
        let c = &bed.clients[&h];
        assert!(
            ok,
            "keep-alive {keep_alive}: received {} of {down}",
            c.received
        );
        assert!(!c.corrupt && !c.tls_failed);
    }
}

fn server_plain() -> Endpoint {
    member(SERVER_BYTES.with(|b| *b.borrow()))
}

/// A member that never closes its side (keep-alive).
fn server_open() -> Endpoint {
    Endpoint {
        shut: true,
        ..server_plain()
    }
}
