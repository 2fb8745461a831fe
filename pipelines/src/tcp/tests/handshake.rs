//! Opening: passive and active handshakes, simultaneous open, options, refusal, SYN
//! cookies, queues and limits.

use super::*;

#[test]
fn passive_open_negotiates_mss_and_fills_accept_queue() {
    let mut s = stack_with(profile());
    let l = s.listen(local(), 4, ProfileId::DEFAULT).unwrap();
    let mut syn = seg(SYN, PEER_ISS, 0);
    syn.mss = Some(1400);
    send!(s, 0, syn);
    let out = recv_all(&mut s, t(0));
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].flags(), out[0].repr.ack), (SYNACK, PEER_ISS + 1));
    assert_eq!(out[0].repr.mss, Some(1000), "our MSS from the profile");
    assert_eq!(
        out[0].repr.wscale, None,
        "not offered back: profile has scaling off"
    );
    let iss = out[0].repr.seq;
    assert_eq!(s.listener(l).unwrap().syn_queue, 1);
    assert!(events(&mut s).is_empty());
    send!(s, 10, seg(ACK, PEER_ISS + 1, iss + 1));
    assert_eq!(events(&mut s), vec![Event::Accepted(l)]);
    assert_eq!(s.listener(l).unwrap().syn_queue, 0);
    let h = s.accept(l).unwrap();
    assert_eq!(s.addresses(h), Some((local(), remote())));
    assert_eq!(
        s.connection(h).unwrap().mss,
        1000,
        "min(peer 1400, ours 1000)"
    );
    assert_eq!(s.accept(l), None);
    recv_nothing!(s, 10);
    assert_eq!(s.counters().passive_opens, 1);
}

#[test]
fn active_open_sends_options_and_completes() {
    let mut p = profile();
    p.window_scaling = true;
    p.sack = true;
    p.recv_buffer = 1 << 20;
    let mut s = stack_with(p);
    let h = s
        .connect(t(0), local(), remote(), ProfileId::DEFAULT)
        .unwrap();
    let out = recv_all(&mut s, t(0));
    assert_eq!(out.len(), 1);
    let syn = &out[0].repr;
    assert_eq!(syn.flags, SYN);
    assert_eq!(
        (syn.mss, syn.wscale, syn.sack_permitted),
        (Some(1000), Some(5), true)
    );
    assert_eq!(syn.window, 65535, "SYN windows are never scaled");
    let iss = syn.seq;
    let mut sa = seg(SYNACK, PEER_ISS, iss + 1);
    sa.mss = Some(1460);
    sa.wscale = Some(2);
    sa.window = 1000;
    sa.sack_permitted = true;
    send!(s, 30, sa);
    recv!(s, 30, [(ACK, iss + 1, PEER_ISS + 1, 0)]);
    assert_eq!(events(&mut s), vec![Event::Connected(h)]);
    let c = s.connection(h).unwrap();
    assert_eq!(c.state, State::Established);
    assert_eq!(
        (c.snd_wscale, c.rcv_wscale, c.sack_ok, c.mss),
        (2, 5, true, 1000)
    );
    assert_eq!(c.snd_wnd, 1000, "the SYN-ACK window is not scaled");
    assert_eq!(
        c.rtt.srtt(),
        Duration::from_millis(30),
        "RTT sampled on the SYN"
    );
    // Later windows are scaled by the peer's shift.
    send!(s, 40, {
        let mut a = seg(ACK, PEER_ISS + 1, iss + 1);
        a.window = 1000;
        a
    });
    assert_eq!(s.connection(h).unwrap().snd_wnd, 4000);
    assert_eq!(s.counters().active_opens, 1);
}

#[test]
fn active_open_without_options_uses_defaults() {
    let mut s = stack_with(TcpProfile {
        window_scaling: true,
        sack: true,
        ..profile()
    });
    let h = s
        .connect(t(0), local(), remote(), ProfileId::DEFAULT)
        .unwrap();
    let iss = recv_all(&mut s, t(0))[0].repr.seq;
    send!(s, 5, seg(SYNACK, PEER_ISS, iss + 1));
    recv!(s, 5, [(ACK, iss + 1, PEER_ISS + 1, 0)]);
    let c = s.connection(h).unwrap();
    assert_eq!(
        (c.snd_wscale, c.rcv_wscale, c.sack_ok, c.mss),
        (0, 0, false, 536)
    );
}

#[test]
fn syn_retransmits_with_backoff_then_times_out() {
    let mut s = stack_with(TcpProfile {
        syn_retries: 2,
        ..profile()
    });
    let h = s
        .connect(t(0), local(), remote(), ProfileId::DEFAULT)
        .unwrap();
    let iss = recv_all(&mut s, t(0))[0].repr.seq;
    recv_nothing!(s, 999);
    recv!(s, 1000, [(SYN, iss, 0, 0)]);
    recv_nothing!(s, 2999);
    recv!(s, 3000, [(SYN, iss, 0, 0)]);
    recv_nothing!(s, 6999);
    assert!(events(&mut s).is_empty());
    recv_nothing!(s, 7000);
    assert_eq!(events(&mut s), vec![Event::Reset(h, ResetReason::TimedOut)]);
    assert_eq!(s.state(h), None, "released");
    assert_eq!(s.counters().retransmits, 2);
}

#[test]
fn rst_answering_syn_refuses() {
    let mut s = stack_with(profile());
    let h = s
        .connect(t(0), local(), remote(), ProfileId::DEFAULT)
        .unwrap();
    let iss = recv_all(&mut s, t(0))[0].repr.seq;
    // A RST whose ACK does not cover our SYN is ignored.
    send!(s, 1, seg(RSTACK, 0, iss));
    assert!(events(&mut s).is_empty());
    send!(s, 2, seg(RSTACK, 0, iss + 1));
    assert_eq!(events(&mut s), vec![Event::Reset(h, ResetReason::Refused)]);
    assert_eq!(s.counters().resets_received, 1);
}

#[test]
fn bad_ack_in_syn_sent_is_answered_with_rst() {
    let mut s = stack_with(profile());
    s.connect(t(0), local(), remote(), ProfileId::DEFAULT)
        .unwrap();
    let iss = recv_all(&mut s, t(0))[0].repr.seq;
    send!(s, 1, seg(SYNACK, PEER_ISS, iss + 5));
    // The RST, then our SYN again at once (see the next test).
    recv!(s, 1, [(RST, iss + 5, 0, 0), (SYN, iss, 0, 0)]);
    assert_eq!(s.counters().drops[TcpDrop::BadAck as usize], 1);
}

/// Opens a connection whose SYN the peer answers with an ACK `behind` bytes below our
/// ISS (for an older connection on the 4-tuple), and checks the RST and the prompt SYN
/// that follow. Returns the stack, the handle, our ISS and the peer's ACK number.
fn syn_answered_for_an_older_connection(behind: u32) -> (TcpStack, ConnHandle, u32, u32) {
    let mut s = stack_with(profile());
    let h = s
        .connect(t(0), local(), remote(), ProfileId::DEFAULT)
        .unwrap();
    let iss = recv_all(&mut s, t(0))[0].repr.seq;
    let old_ack = iss.wrapping_sub(behind);
    send!(s, 1, seg(ACK, PEER_ISS, old_ack));
    recv!(s, 1, [(RST, old_ack, 0, 0), (SYN, iss, 0, 0)]);
    assert_eq!(s.counters().syn_resent_after_rst, 1);
    (s, h, iss, old_ack)
}

/// The member still holds an older connection on the 4-tuple (its TIME-WAIT refusing a
/// SYN whose timestamp is below the old one's, or a connection of a previous run of the
/// appliance) and answers our SYN with an ACK for that one. A RST ends it, and our SYN
/// goes again behind the RST at once, not a retransmission timeout (1 s) later.
#[test]
fn syn_answered_for_an_older_connection_is_sent_again_behind_a_rst() {
    let (mut s, h, iss, _) = syn_answered_for_an_older_connection(123_456);
    // The RST freed the peer's old connection: the new one opens a round trip later.
    send!(s, 2, seg(SYNACK, PEER_ISS, iss + 1));
    recv!(s, 2, [(ACK, iss + 1, PEER_ISS + 1, 0)]);
    assert_eq!(events(&mut s), vec![Event::Connected(h)]);
}

/// A peer that keeps its old connection whatever we send (RFC 1337's TIME-WAIT
/// protection) gets one prompt SYN, then the SYN on the retransmission timer only:
/// never a RST/SYN storm.
#[test]
fn a_peer_that_ignores_the_rst_gets_the_syn_on_the_timer() {
    let (mut s, _, iss, old_ack) = syn_answered_for_an_older_connection(99);
    send!(s, 2, seg(ACK, PEER_ISS, old_ack));
    recv!(s, 2, [(RST, old_ack, 0, 0)]);
    send!(s, 3, seg(ACK, PEER_ISS, old_ack));
    recv!(s, 3, [(RST, old_ack, 0, 0)]);
    recv_nothing!(s, 999);
    recv!(s, 1000, [(SYN, iss, 0, 0)]);
    assert_eq!(s.counters().syn_resent_after_rst, 1);
    assert_eq!(s.counters().drops[TcpDrop::BadAck as usize], 3);
}

#[test]
fn simultaneous_open() {
    let mut s = stack_with(profile());
    let h = s
        .connect(t(0), local(), remote(), ProfileId::DEFAULT)
        .unwrap();
    let iss = recv_all(&mut s, t(0))[0].repr.seq;
    // The peer's SYN crosses ours.
    send!(s, 1, seg(SYN, PEER_ISS, 0));
    recv!(s, 1, [(SYNACK, iss, PEER_ISS + 1, 0)]);
    assert_eq!(s.state(h), Some(State::SynReceived));
    // Then its SYN-ACK for our SYN arrives.
    send!(s, 2, seg(SYNACK, PEER_ISS, iss + 1));
    recv!(s, 2, [(ACK, iss + 1, PEER_ISS + 1, 0)]);
    assert_eq!(s.state(h), Some(State::Established));
    assert_eq!(events(&mut s), vec![Event::Connected(h)]);
}

#[test]
fn closed_port_answers_rst() {
    let mut s = stack_with(profile());
    send!(s, 0, seg(SYN, PEER_ISS, 0));
    recv!(s, 0, [(RSTACK, 0, PEER_ISS + 1, 0)]);
    send!(s, 0, seg(ACK, 5, 77), b"abc");
    recv!(s, 0, [(RST, 77, 0, 0)]);
    send!(s, 0, seg(RST, 5, 0));
    recv_nothing!(s, 0);
    assert_eq!(s.counters().dropped(TcpDrop::NoSocket), 3);
    assert_eq!(s.counters().resets_sent, 2);
}

#[test]
fn corrupt_and_malformed_segments_are_counted_and_dropped() {
    let mut s = stack_with(profile());
    s.listen(local(), 4, ProfileId::DEFAULT).unwrap();
    let mut b = encode(&seg(SYN, PEER_ISS, 0), &[], remote().ip(), local().ip());
    b[4] ^= 1;
    s.handle_segment(t(0), remote().ip(), local().ip(), &b);
    s.handle_segment(t(0), remote().ip(), local().ip(), &b[..10]);
    recv_nothing!(s, 0);
    assert_eq!(s.counters().dropped(TcpDrop::BadChecksum), 1);
    assert_eq!(s.counters().dropped(TcpDrop::Malformed), 1);
    // With checksum offload the same bytes are taken (and the SYN answered).
    s.handle_segment_trusted(t(0), remote().ip(), local().ip(), &b);
    assert_eq!(recv_all(&mut s, t(0)).len(), 1);
}

#[test]
fn synack_is_retransmitted_and_duplicate_syn_answered() {
    let mut s = stack_with(profile());
    s.listen(local(), 4, ProfileId::DEFAULT).unwrap();
    send!(s, 0, seg(SYN, PEER_ISS, 0));
    let iss = recv_all(&mut s, t(0))[0].repr.seq;
    send!(s, 100, seg(SYN, PEER_ISS, 0));
    recv!(s, 100, [(SYNACK, iss, PEER_ISS + 1, 0)]);
    recv!(s, 1000, [(SYNACK, iss, PEER_ISS + 1, 0)]);
}

#[test]
fn syn_cookies_when_syn_queue_is_full() {
    let mut p = profile();
    p.timestamps = true;
    p.window_scaling = true;
    p.sack = true;
    let mut s = stack_with(p);
    let l = s.listen(local(), 1, ProfileId::DEFAULT).unwrap();
    // First SYN takes the one SYN-queue slot.
    let mut other = seg(SYN, 1, 0);
    other.src_port = 40001;
    send!(s, 0, other);
    assert_eq!(recv_all(&mut s, t(0)).len(), 1);
    assert_eq!(s.connection_count(), 1);
    // The next one gets a cookie and no state.
    let mut syn = seg(SYN, PEER_ISS, 0);
    syn.mss = Some(1200);
    syn.wscale = Some(3);
    syn.sack_permitted = true;
    syn.timestamps = Some((5000, 0));
    send!(s, 10, syn);
    let out = recv_all(&mut s, t(10));
    assert_eq!(out.len(), 1);
    let sa = out[0].repr;
    assert_eq!(sa.flags, SYNACK);
    assert_eq!(
        sa.mss,
        Some(1000),
        "largest cookie MSS not above min(1200, 1000)"
    );
    assert_eq!(s.connection_count(), 1, "a cookie keeps no state");
    assert_eq!(s.counters().syn_cookies_sent, 1);
    // A forged ACK is refused.
    let mut bad = seg(ACK, PEER_ISS + 1, sa.seq.wrapping_add(2));
    bad.timestamps = Some((5001, sa.timestamps.unwrap().0));
    send!(s, 20, bad);
    recv!(s, 20, [(RST, sa.seq.wrapping_add(2), 0, 0)]);
    assert_eq!(s.counters().dropped(TcpDrop::BadCookie), 1);
    // The right one creates the connection, with the options the SYN asked for, and
    // its data is delivered.
    let mut ack = seg(ACK, PEER_ISS + 1, sa.seq.wrapping_add(1));
    ack.timestamps = Some((5001, sa.timestamps.unwrap().0));
    ack.window = 100;
    send!(s, 20, ack, b"hello");
    assert_eq!(s.counters().syn_cookies_validated, 1);
    // The accept queue (backlog 1) takes it.
    assert_eq!(events(&mut s), vec![Event::Accepted(l)]);
    let h = s.accept(l).unwrap();
    let c = s.connection(h).unwrap();
    assert_eq!(c.state, State::Established);
    assert_eq!(
        (c.snd_wscale, c.sack_ok, c.ts_ok, c.mss),
        (3, true, true, 1000 - 12)
    );
    assert_eq!(c.snd_wnd, 800, "window scaled by the cookie's shift");
    assert_eq!(events(&mut s), vec![Event::Readable(h)]);
    let mut buf = [0u8; 16];
    assert_eq!(s.read(h, &mut buf), Ok(5));
    assert_eq!(&buf[..5], b"hello");
}

#[test]
fn accept_queue_full_drops_final_ack_until_room() {
    let mut s = stack_with(profile());
    let l = s.listen(local(), 1, ProfileId::DEFAULT).unwrap();
    let mut isss = Vec::new();
    for port in [40000u16, 40001] {
        let mut syn = seg(SYN, PEER_ISS, 0);
        syn.src_port = port;
        send!(s, 0, syn);
        let out = recv_all(&mut s, t(0));
        isss.push(out.first().map(|o| o.repr.seq));
    }
    // The listener's SYN queue (1) was full for the second SYN: it got a cookie.
    assert_eq!(s.counters().syn_cookies_sent, 1);
    send!(s, 1, seg(ACK, PEER_ISS + 1, isss[0].unwrap() + 1));
    assert_eq!(events(&mut s), vec![Event::Accepted(l)]);
    // Accept queue now full: the cookie ACK is dropped.
    let mut ack = seg(ACK, PEER_ISS + 1, isss[1].unwrap().wrapping_add(1));
    ack.src_port = 40001;
    send!(s, 2, ack);
    assert_eq!(s.counters().dropped(TcpDrop::AcceptQueueFull), 1);
    assert!(s.accept(l).is_some());
    send!(s, 3, ack);
    assert_eq!(events(&mut s), vec![Event::Accepted(l)]);
}

#[test]
fn connection_and_memory_limits() {
    let cfg = StackConfig {
        max_connections: 1,
        max_buffer_bytes: 20_000,
        ..StackConfig::default()
    };
    let mut s = TcpStack::new(cfg, profile());
    s.connect(t(0), local(), remote(), ProfileId::DEFAULT)
        .unwrap();
    let r2: SocketAddr = "198.18.1.2:40001".parse().unwrap();
    assert_eq!(
        s.connect(t(0), local(), r2, ProfileId::DEFAULT),
        Err(TcpError::ConnectionLimit)
    );
    // Buffers come with data and go when drained: an idle connection holds none.
    let cfg = StackConfig {
        max_buffer_bytes: 12_000,
        ..StackConfig::default()
    };
    let mut syn = seg(SYN, PEER_ISS, 0);
    syn.mss = Some(1000);
    let mut s = TcpStack::new(cfg, profile());
    let l = s.listen(local(), 4, ProfileId::DEFAULT).unwrap();
    send!(s, 0, syn);
    let iss = recv_all(&mut s, t(0))[0].repr.seq;
    send!(s, 1, seg(ACK, PEER_ISS + 1, iss + 1));
    let h = s.accept(l).unwrap();
    assert_eq!(
        s.buffer_bytes(),
        0,
        "idle established connection: no buffers"
    );
    assert_eq!(s.write(h, b"abc"), Ok(3));
    let records = s.connection(h).unwrap().rtx_accounted as usize;
    assert!(records > 0 && records < 4000, "{records}");
    assert_eq!(
        s.buffer_bytes(),
        8000 + records,
        "the send ring and its retransmission records, allocated by the write"
    );
    send!(s, 2, seg(PSHACK, PEER_ISS + 1, iss + 1), b"xyz");
    assert_eq!(
        s.counters().dropped(TcpDrop::MemoryLimit),
        1,
        "no room for a receive ring"
    );
    assert_eq!(s.readable_bytes(h), 0);
    let out = recv_all(&mut s, t(3));
    assert_eq!(
        out.last().unwrap().repr.ack,
        PEER_ISS + 1,
        "the data was not taken"
    );
    // Our data is acknowledged: the send ring goes back, the peer's retransmission fits.
    send!(s, 4, seg(ACK, PEER_ISS + 1, iss + 4));
    assert_eq!(s.buffer_bytes(), 0);
    send!(s, 5, seg(PSHACK, PEER_ISS + 1, iss + 4), b"xyz");
    assert_eq!(s.buffer_bytes(), 8000);
    let mut buf = [0u8; 8];
    assert_eq!(s.read(h, &mut buf), Ok(3));
    assert_eq!(s.buffer_bytes(), 0, "drained: the receive ring goes back");
    let r2: SocketAddr = "198.18.1.2:40001".parse().unwrap();
    s.connect(t(6), local(), r2, ProfileId::DEFAULT).unwrap();
    assert_eq!(
        s.connect(t(0), local(), remote(), ProfileId::DEFAULT),
        Err(TcpError::AddressInUse)
    );
}

#[test]
fn rst_in_syn_received_frees_the_half_open_connection() {
    let mut s = stack_with(profile());
    let l = s.listen(local(), 4, ProfileId::DEFAULT).unwrap();
    send!(s, 0, seg(SYN, PEER_ISS, 0));
    assert_eq!(recv_all(&mut s, t(0)).len(), 1);
    assert_eq!(s.listener(l).unwrap().syn_queue, 1);
    send!(s, 1, seg(RST, PEER_ISS + 1, 0));
    recv_nothing!(s, 1);
    assert_eq!(s.connection_count(), 0);
    assert_eq!(s.listener(l).unwrap().syn_queue, 0);
    assert!(events(&mut s).is_empty());
}

#[test]
fn congestion_control_is_chosen_per_profile() {
    let mut s = stack_with(profile());
    let cubic = s.add_profile(TcpProfile {
        congestion: CongestionAlgo::Cubic,
        ..profile()
    });
    let a = s
        .connect(t(0), local(), remote(), ProfileId::DEFAULT)
        .unwrap();
    let r2: SocketAddr = "198.18.1.2:40001".parse().unwrap();
    let b = s.connect(t(0), local(), r2, cubic).unwrap();
    assert_eq!(s.connection(a).unwrap().cc.algo(), CongestionAlgo::NewReno);
    assert_eq!(s.connection(b).unwrap().cc.algo(), CongestionAlgo::Cubic);
}

#[test]
fn mss_is_clamped_to_the_profile() {
    let mut syn = seg(SYN, PEER_ISS, 0);
    syn.mss = Some(9000);
    let (s, h, _) = established_with(profile(), syn);
    assert_eq!(s.connection(h).unwrap().mss, 1000);
    let mut syn = seg(SYN, PEER_ISS, 0);
    syn.mss = Some(700);
    let (s, h, _) = established_with(profile(), syn);
    assert_eq!(s.connection(h).unwrap().mss, 700);
}

#[test]
fn syn_flood_keeps_the_syn_queue_bounded_and_legitimate_clients_get_in() {
    let mut s = stack_with(profile());
    let l = s.listen(local(), 8, ProfileId::DEFAULT).unwrap();
    // 2,000 SYNs from spoofed sources inside 198.18.1.0/24 that never answer, in
    // bursts of 32 as a worker receives them.
    let mut out = 0;
    for i in 0..2000u32 {
        if i % 32 == 0 {
            out += recv_all_any(&mut s, t(0));
        }
        let src: IpAddr = format!("198.18.1.{}", 10 + i % 200).parse().unwrap();
        let mut syn = seg(SYN, i * 7919, 0);
        syn.src_port = 1024 + (i / 200) as u16;
        let b = encode(&syn, &[], src, local().ip());
        s.handle_segment(t(0), src, local().ip(), &b);
    }
    out += recv_all_any(&mut s, t(0));
    assert_eq!(out, 2000, "every SYN answered");
    assert_eq!(s.listener(l).unwrap().syn_queue, 8);
    assert_eq!(s.connection_count(), 8, "state only for the SYN queue");
    assert_eq!(s.counters().syn_cookies_sent, 1992);
    // A real client during the flood completes through a cookie.
    let mut syn = seg(SYN, PEER_ISS, 0);
    syn.mss = Some(1000);
    send!(s, 1, syn);
    let sa = recv_all(&mut s, t(1))[0].repr;
    send!(s, 2, seg(ACK, PEER_ISS + 1, sa.seq.wrapping_add(1)), b"GET");
    assert_eq!(s.counters().syn_cookies_validated, 1);
    assert_eq!(events(&mut s), vec![Event::Accepted(l)]);
    let h = s.accept(l).unwrap();
    assert_eq!(s.readable_bytes(h), 3);
    // The half-open flood entries time out after their SYN-ACK retries.
    for ms in (0..200_000).step_by(500) {
        recv_all_any(&mut s, t(ms));
    }
    assert_eq!(s.listener(l).unwrap().syn_queue, 0);
    assert_eq!(s.connection_count(), 1);
}

/// Drains output to any address; returns the number of segments.
fn recv_all_any(s: &mut TcpStack, now: Instant) -> usize {
    s.handle_timeout(now);
    let mut buf = [0u8; 2048];
    let mut n = 0;
    while s.poll_transmit(now, &mut buf).is_some() {
        n += 1;
    }
    n
}

#[test]
fn ipv6_handshake_and_data() {
    let mut s = stack_with(profile());
    let la: SocketAddr = "[2001:db8::1]:80".parse().unwrap();
    let ra: SocketAddr = "[2001:db8::2]:40000".parse().unwrap();
    let l = s.listen(la, 4, ProfileId::DEFAULT).unwrap();
    let feed = |s: &mut TcpStack, r: &TcpRepr, p: &[u8]| {
        let b = encode(r, p, ra.ip(), la.ip());
        s.handle_segment(t(0), ra.ip(), la.ip(), &b);
    };
    feed(&mut s, &seg(SYN, PEER_ISS, 0), &[]);
    let mut buf = [0u8; 2048];
    let tx = s.poll_transmit(t(0), &mut buf).unwrap();
    assert_eq!((tx.src, tx.dst), (la.ip(), ra.ip()));
    let p = TcpPacket::new_checked(&buf[..tx.len]).unwrap();
    assert!(p.verify_checksum(tx.src, tx.dst));
    let iss = p.seq();
    feed(&mut s, &seg(ACK, PEER_ISS + 1, iss + 1), b"v6");
    let h = s.accept(l).unwrap();
    assert_eq!(s.readable_bytes(h), 2);
}

#[test]
fn unlisten_resets_queued_connections_and_refuses_new_ones() {
    let mut s = stack_with(profile());
    let l = s.listen(local(), 4, ProfileId::DEFAULT).unwrap();
    assert_eq!(
        s.listen(local(), 4, ProfileId::DEFAULT),
        Err(TcpError::AddressInUse)
    );
    send!(s, 0, seg(SYN, PEER_ISS, 0));
    let iss = recv_all(&mut s, t(0))[0].repr.seq;
    send!(s, 1, seg(ACK, PEER_ISS + 1, iss + 1));
    assert_eq!(events(&mut s), vec![Event::Accepted(l)]);
    // And one half-open.
    let mut syn2 = seg(SYN, PEER_ISS, 0);
    syn2.src_port = 40002;
    send!(s, 1, syn2);
    let iss2 = recv_all(&mut s, t(1))[0].repr.seq;
    assert_eq!(s.connection_count(), 2);
    s.unlisten(t(2), l);
    recv!(
        s,
        2,
        [
            (RSTACK, iss + 1, PEER_ISS + 1, 0),
            (RSTACK, iss2 + 1, PEER_ISS + 1, 0)
        ]
    );
    assert_eq!(s.connection_count(), 0);
    let mut syn = seg(SYN, PEER_ISS, 0);
    syn.src_port = 40001;
    send!(s, 3, syn);
    recv!(s, 3, [(RSTACK, 0, PEER_ISS + 1, 0)]);
}

/// Every event carries the owner of its listener or connection: accepted connections
/// inherit the listener's, `set_owner` changes it, and a reset (whose handle is gone
/// by then) still names the owner.
#[test]
fn events_carry_the_owner_also_after_reset() {
    let mut s = stack_with(profile());
    let l = s.listen(local(), 16, ProfileId::DEFAULT).unwrap();
    let lo = Owner::new(1, 5);
    s.set_listener_owner(l, lo);
    let mut syn = seg(SYN, PEER_ISS, 0);
    syn.mss = Some(1000);
    send!(s, 0, syn);
    let out = recv_all(&mut s, t(0));
    let iss = out[0].repr.seq;
    send!(s, 1, seg(ACK, PEER_ISS + 1, iss.wrapping_add(1)));
    assert_eq!(s.poll_owned_event(), Some((lo, Event::Accepted(l))));
    let h = s.accept(l).unwrap();
    send!(s, 2, seg(PSHACK, PEER_ISS + 1, iss.wrapping_add(1)), b"hi");
    assert_eq!(s.poll_owned_event(), Some((lo, Event::Readable(h))));
    let mine = Owner::new(3, 77);
    s.set_owner(h, mine).unwrap();
    send!(s, 3, seg(RST, PEER_ISS + 3, 0));
    assert_eq!(
        s.poll_owned_event(),
        Some((mine, Event::Reset(h, ResetReason::Peer)))
    );
    assert!(!s.has_events());
    assert_eq!(s.set_owner(h, lo), Err(TcpError::InvalidHandle));
}

#[test]
fn an_equal_profile_is_registered_once() {
    let mut s = stack_with(profile());
    let a = s.add_profile(TcpProfile {
        mss: 1200,
        ..profile()
    });
    let b = s.add_profile(TcpProfile {
        mss: 1200,
        ..profile()
    });
    assert_eq!(a, b);
    assert_eq!(s.add_profile(profile()), ProfileId::DEFAULT);
    assert_ne!(
        s.add_profile(TcpProfile {
            mss: 1300,
            ..profile()
        }),
        a
    );
}

/// After an active open the promised window starts at the peer's sequence numbers,
/// whatever they are: data beyond what we offered is not accepted, and what we
/// advertise next is our free space, not a window left over from the SYN.
#[test]
fn an_active_open_promises_only_its_free_space() {
    for irs in [10_000u32, 0x9000_0000, 0xffff_ff00] {
        let mut s = stack_with(profile());
        let h = s
            .connect(t(0), local(), remote(), ProfileId::DEFAULT)
            .unwrap();
        let out = recv_all(&mut s, t(0));
        let iss = out[0].repr.seq;
        let mut synack = seg(SYNACK, irs, iss.wrapping_add(1));
        synack.src_port = 40000;
        synack.dst_port = 80;
        send!(s, 1, synack);
        let ack = recv_all(&mut s, t(1));
        assert_eq!(ack[0].repr.ack, irs.wrapping_add(1));
        assert!(
            ack[0].repr.window as usize <= 8000,
            "irs {irs:#x}: {}",
            ack[0].repr.window
        );
        let c = s.connection(h).unwrap();
        let promised = crate::tcp::seq::dist(c.rcv_nxt, c.rcv_adv);
        assert!(promised <= 8000, "irs {irs:#x}: promised {promised}");
        assert_eq!(c.rcv_wnd(), 8000, "irs {irs:#x}");
    }
}
