//! Data transfer: reassembly, ACK policy, windows, Nagle, backpressure, timestamps, and
//! the RFC 5961 checks on a synchronised connection.

use super::*;

#[test]
fn in_order_data_is_readable_and_acknowledged() {
    let (mut s, h, iss) = established();
    send!(s, 10, seg(PSHACK, PEER_ISS + 1, iss + 1), b"hello");
    recv!(s, 10, [(ACK, iss + 1, PEER_ISS + 6, 0)]);
    assert_eq!(events(&mut s), vec![Event::Readable(h)]);
    send!(s, 11, seg(PSHACK, PEER_ISS + 6, iss + 1), b" world");
    recv!(s, 11, [(ACK, iss + 1, PEER_ISS + 12, 0)]);
    assert!(
        events(&mut s).is_empty(),
        "edge-triggered: no second Readable before a read"
    );
    let mut buf = [0u8; 64];
    assert_eq!(s.read(h, &mut buf), Ok(11));
    assert_eq!(&buf[..11], b"hello world");
    assert_eq!(s.read(h, &mut buf), Err(TcpError::WouldBlock));
    send!(s, 12, seg(PSHACK, PEER_ISS + 12, iss + 1), b"!");
    assert_eq!(events(&mut s), vec![Event::Readable(h)]);
    // A duplicate of old data is acknowledged again, not delivered twice.
    send!(s, 13, seg(PSHACK, PEER_ISS + 1, iss + 1), b"hello");
    recv!(s, 13, [(ACK, iss + 1, PEER_ISS + 13, 0)]);
    assert_eq!(s.read(h, &mut buf), Ok(1));
}

#[test]
fn delayed_ack_every_second_segment_or_after_timeout() {
    let mut p = profile();
    p.delayed_ack = Duration::from_millis(40);
    let mut syn = seg(SYN, PEER_ISS, 0);
    syn.mss = Some(1000);
    let (mut s, _h, iss) = established_with(p, syn);
    let d = [7u8; 1000];
    send!(s, 10, seg(ACK, PEER_ISS + 1, iss + 1), &d);
    recv_nothing!(s, 10);
    recv_nothing!(s, 49);
    recv!(s, 50, [(ACK, iss + 1, PEER_ISS + 1001, 0)]);
    send!(s, 60, seg(ACK, PEER_ISS + 1001, iss + 1), &d);
    recv_nothing!(s, 60);
    send!(s, 61, seg(ACK, PEER_ISS + 2001, iss + 1), &d);
    recv!(s, 61, [(ACK, iss + 1, PEER_ISS + 3001, 0)]);
    recv_nothing!(s, 200);
}

#[test]
fn short_segments_wait_for_the_delayed_ack_until_more_than_a_full_segment_is_owed() {
    // A response's head and body sent as two short segments (together under one full
    // segment) get one delayed ACK, not one at once: Linux counts the bytes owed against
    // a full segment, and a proxy that acknowledged every second short segment sent its
    // members a pure ACK per request.
    let mut p = profile();
    p.delayed_ack = Duration::from_millis(40);
    let full = u32::from(p.mss);
    let (mut s, _h, iss) = established_with(p, seg(SYN, PEER_ISS, 0));
    let base = PEER_ISS + 1;
    let body = vec![2u8; (full - 400) as usize];
    send!(s, 10, seg(PSHACK, base, iss + 1), &[1u8; 300]);
    send!(s, 10, seg(PSHACK, base + 300, iss + 1), &body);
    recv_nothing!(s, 10);
    recv_nothing!(s, 49);
    let acked = base + full - 100;
    recv!(s, 50, [(ACK, iss + 1, acked, 0)]);
    // More than one full segment's worth owed: acknowledged at once.
    let more = vec![3u8; (full - 100) as usize];
    send!(s, 60, seg(PSHACK, acked, iss + 1), &[4u8; 200]);
    send!(s, 60, seg(PSHACK, acked + 200, iss + 1), &more);
    recv!(s, 60, [(ACK, iss + 1, acked + 200 + full - 100, 0)]);
}

#[test]
fn out_of_order_data_is_reassembled_and_sacked() {
    let mut p = profile();
    p.sack = true;
    let mut syn = seg(SYN, PEER_ISS, 0);
    syn.mss = Some(1000);
    syn.sack_permitted = true;
    let (mut s, h, iss) = established_with(p, syn);
    let base = PEER_ISS + 1;
    send!(s, 10, seg(ACK, base + 100, iss + 1), &[2u8; 100]);
    let out = recv!(s, 10, [(ACK, iss + 1, base, 0)]);
    assert_eq!(out[0].repr.sack_blocks(), &[(base + 100, base + 200)]);
    send!(s, 11, seg(ACK, base + 300, iss + 1), &[4u8; 100]);
    let out = recv!(s, 11, [(ACK, iss + 1, base, 0)]);
    assert_eq!(
        out[0].repr.sack_blocks(),
        &[(base + 300, base + 400), (base + 100, base + 200)],
        "most recent block first (RFC 2018 section 4)"
    );
    assert!(events(&mut s).is_empty());
    send!(s, 12, seg(ACK, base, iss + 1), &[1u8; 100]);
    let out = recv!(s, 12, [(ACK, iss + 1, base + 200, 0)]);
    assert_eq!(out[0].repr.sack_blocks(), &[(base + 300, base + 400)]);
    send!(s, 13, seg(ACK, base + 200, iss + 1), &[3u8; 100]);
    let out = recv!(s, 13, [(ACK, iss + 1, base + 400, 0)]);
    assert_eq!(out[0].repr.sack_len, 0);
    let mut buf = [0u8; 500];
    assert_eq!(s.read(h, &mut buf), Ok(400));
    for (i, chunk) in buf[..400].chunks(100).enumerate() {
        assert!(chunk.iter().all(|&b| b == i as u8 + 1), "chunk {i}");
    }
}

#[test]
fn sends_by_mss_within_peer_window_and_releases_on_ack() {
    let (mut s, h, iss) = established();
    let mut a = seg(ACK, PEER_ISS + 1, iss + 1);
    a.window = 2500;
    send!(s, 5, a);
    assert_eq!(s.write(h, &[9u8; 5000]), Ok(5000));
    recv!(
        s,
        10,
        [
            (ACK, iss + 1, PEER_ISS + 1, 1000),
            (ACK, iss + 1001, PEER_ISS + 1, 1000)
        ]
    );
    // 500 bytes of window left: less than half the largest window, so held (SWS).
    recv_nothing!(s, 11);
    let mut a = seg(ACK, PEER_ISS + 1, iss + 2001);
    a.window = 2500;
    send!(s, 20, a);
    recv!(
        s,
        20,
        [
            (ACK, iss + 2001, PEER_ISS + 1, 1000),
            (ACK, iss + 3001, PEER_ISS + 1, 1000)
        ]
    );
    assert_eq!(s.connection(h).unwrap().tx.len(), 3000);
}

#[test]
fn write_backpressure_and_writable_event() {
    let (mut s, h, iss) = established();
    assert_eq!(s.write(h, &[1u8; 10_000]), Ok(8000), "send buffer is 8000");
    assert_eq!(s.write(h, b"x"), Ok(0));
    let out = recv_all(&mut s, t(10));
    assert_eq!(out.len(), 8);
    assert!(events(&mut s).is_empty());
    send!(s, 20, seg(ACK, PEER_ISS + 1, iss + 1 + 4000));
    assert_eq!(events(&mut s), vec![Event::Writable(h)]);
    assert_eq!(s.send_capacity(h), 4000);
}

#[test]
fn nagle_holds_small_segments_while_data_is_unacked() {
    let mut p = profile();
    p.nagle = true;
    let mut syn = seg(SYN, PEER_ISS, 0);
    syn.mss = Some(1000);
    let (mut s, h, iss) = established_with(p.clone(), syn);
    s.write(h, b"a").unwrap();
    recv!(s, 10, [(PSHACK, iss + 1, PEER_ISS + 1, 1)]);
    s.write(h, b"b").unwrap();
    s.write(h, b"c").unwrap();
    recv_nothing!(s, 11);
    send!(s, 20, seg(ACK, PEER_ISS + 1, iss + 2));
    recv!(s, 20, [(PSHACK, iss + 2, PEER_ISS + 1, 2)]);
    // Nagle off: every write goes at once.
    p.nagle = false;
    let (mut s, h, iss) = established_with(p, syn);
    s.write(h, b"a").unwrap();
    recv!(s, 10, [(PSHACK, iss + 1, PEER_ISS + 1, 1)]);
    s.write(h, b"b").unwrap();
    recv!(s, 11, [(PSHACK, iss + 2, PEER_ISS + 1, 1)]);
}

#[test]
fn a_cork_holds_a_short_tail_until_lifted_or_due_and_never_a_full_segment_or_fin() {
    let (mut s, h, iss) = established();
    // Corked (until 50 ms): a short write waits for the rest of its message.
    s.cork(t(10), h, t(50)).unwrap();
    assert!(s.corked(h));
    s.write(h, b"HTTP/1.1 200 OK\r\n\r\n").unwrap();
    recv_nothing!(s, 10);
    // The rest arrives: lifted, head and body leave in one segment.
    s.write(h, &[b'x'; 100]).unwrap();
    s.uncork(h).unwrap();
    assert!(!s.corked(h));
    recv!(s, 11, [(PSHACK, iss + 1, PEER_ISS + 1, 119)]);
    send!(s, 12, seg(ACK, PEER_ISS + 1, iss + 120));
    assert_eq!((s.counters().corks, s.counters().cork_expired), (1, 0));

    // A full segment goes at once; only the short tail waits.
    s.cork(t(20), h, t(60)).unwrap();
    s.write(h, &[b'y'; 1300]).unwrap();
    recv!(s, 20, [(ACK, iss + 120, PEER_ISS + 1, 1000)]);
    recv_nothing!(s, 59);
    // Nobody lifted it: at its deadline the tail goes alone.
    recv!(s, 60, [(PSHACK, iss + 1120, PEER_ISS + 1, 300)]);
    assert_eq!((s.counters().corks, s.counters().cork_expired), (2, 1));
    send!(s, 61, seg(ACK, PEER_ISS + 1, iss + 1420));

    // A FIN is never held: closing sends the corked bytes with it.
    s.cork(t(70), h, t(500)).unwrap();
    s.write(h, b"bye").unwrap();
    recv_nothing!(s, 70);
    s.shutdown(t(71), h).unwrap();
    recv!(
        s,
        71,
        [(Flags(FINACK.0 | Flags::PSH.0), iss + 1420, PEER_ISS + 1, 3)]
    );
}

#[test]
fn zero_window_is_probed_by_the_persist_timer() {
    let (mut s, h, iss) = established();
    let mut a = seg(ACK, PEER_ISS + 1, iss + 1);
    a.window = 0;
    send!(s, 5, a);
    s.write(h, b"abc").unwrap();
    recv_nothing!(s, 10);
    // Persist at the RTO (200 ms: the handshake's RTT sample was 1 ms): a one-byte
    // probe past the closed window.
    recv_nothing!(s, 209);
    recv!(s, 210, [(ACK, iss + 1, PEER_ISS + 1, 1)]);
    assert_eq!(s.counters().window_probes, 1);
    // Still closed: the probe is not accepted; probing backs off (RTO doubles).
    send!(s, 220, a);
    recv_nothing!(s, 609);
    recv!(s, 610, [(ACK, iss + 1, PEER_ISS + 1, 1)]);
    // The window opens: the rest goes.
    let mut a = seg(ACK, PEER_ISS + 1, iss + 1);
    a.window = 4000;
    send!(s, 700, a);
    recv!(s, 700, [(PSHACK, iss + 1, PEER_ISS + 1, 3)]);
}

#[test]
fn receive_window_closes_when_unread_and_reopens_after_read() {
    let (mut s, h, iss) = established();
    let base = PEER_ISS + 1;
    let d = [5u8; 1000];
    let mut last = 0;
    for i in 0..8 {
        send!(s, 10, seg(ACK, base + i * 1000, iss + 1), &d);
        let out = recv_all(&mut s, t(10));
        last = out.last().unwrap().repr.window;
    }
    assert_eq!(last, 0, "8000-byte buffer full");
    // Data past the window is not taken; the ACK repeats the zero window.
    send!(s, 11, seg(ACK, base + 8000, iss + 1), &d);
    let out = recv!(s, 11, [(ACK, iss + 1, base + 8000, 0)]);
    assert_eq!(out[0].repr.window, 0);
    let mut buf = [0u8; 3000];
    assert_eq!(s.read(h, &mut buf), Ok(3000));
    let out = recv!(s, 12, [(ACK, iss + 1, base + 8000, 0)]);
    assert_eq!(out[0].repr.window, 3000, "window update after the read");
}

#[test]
fn window_scaling_shifts_our_advertised_window() {
    let mut p = profile();
    p.window_scaling = true;
    p.recv_buffer = 1 << 20;
    let mut syn = seg(SYN, PEER_ISS, 0);
    syn.mss = Some(1000);
    syn.wscale = Some(0);
    let (mut s, h, iss) = established_with(p, syn);
    let c = s.connection(h).unwrap();
    assert_eq!((c.rcv_wscale, c.snd_wscale), (5, 0));
    send!(s, 10, seg(ACK, PEER_ISS + 1, iss + 1), &[0u8; 1000]);
    let out = recv!(s, 10, [(ACK, iss + 1, PEER_ISS + 1001, 0)]);
    assert_eq!(out[0].repr.window as usize, ((1 << 20) - 1000) >> 5);
}

#[test]
fn timestamps_are_echoed_and_paws_drops_old_segments() {
    let mut p = profile();
    p.timestamps = true;
    let mut syn = seg(SYN, PEER_ISS, 0);
    syn.mss = Some(1000);
    syn.timestamps = Some((100, 0));
    let mut s = stack_with(p);
    let l = s.listen(local(), 4, ProfileId::DEFAULT).unwrap();
    send!(s, 0, syn);
    let sa = recv_all(&mut s, t(0))[0].repr;
    let (our_ts, echo) = sa.timestamps.unwrap();
    assert_eq!(echo, 100);
    let iss = sa.seq;
    let mut a = seg(ACK, PEER_ISS + 1, iss + 1);
    a.timestamps = Some((101, our_ts));
    send!(s, 50, a);
    let h = s.accept(l).unwrap();
    let c = s.connection(h).unwrap();
    assert_eq!(c.mss, 1000 - 12, "timestamps take 12 bytes of each segment");
    assert_eq!(
        c.rtt.srtt(),
        Duration::from_millis(50),
        "RTT from the echoed timestamp"
    );
    let mut d = seg(ACK, PEER_ISS + 1, iss + 1);
    d.timestamps = Some((200, our_ts));
    send!(s, 60, d, b"new");
    let out = recv!(s, 60, [(ACK, iss + 1, PEER_ISS + 4, 0)]);
    assert_eq!(out[0].repr.timestamps.unwrap().1, 200);
    assert_eq!(out[0].repr.timestamps.unwrap().0, our_ts.wrapping_add(60));
    // An older timestamp: PAWS drops it and re-acknowledges.
    d.seq = PEER_ISS + 4;
    d.timestamps = Some((150, our_ts));
    send!(s, 70, d, b"old");
    let out = recv!(s, 70, [(ACK, iss + 1, PEER_ISS + 4, 0)]);
    assert_eq!(out[0].repr.timestamps.unwrap().1, 200);
    assert_eq!(s.counters().dropped(TcpDrop::Paws), 1);
    assert_eq!(s.readable_bytes(h), 3);
}

#[test]
fn rst_must_match_rcv_nxt_exactly_rfc5961() {
    let (mut s, h, iss) = established();
    // Out of window: ignored.
    send!(s, 10, seg(RST, PEER_ISS + 100_000, 0));
    recv_nothing!(s, 10);
    // In window, not exact: challenge ACK.
    send!(s, 11, seg(RST, PEER_ISS + 10, 0));
    recv!(s, 11, [(ACK, iss + 1, PEER_ISS + 1, 0)]);
    assert_eq!(s.counters().challenge_acks, 1);
    assert!(events(&mut s).is_empty());
    // Exact: reset.
    send!(s, 12, seg(RST, PEER_ISS + 1, 0));
    recv_nothing!(s, 12);
    assert_eq!(events(&mut s), vec![Event::Reset(h, ResetReason::Peer)]);
    assert_eq!(s.read(h, &mut [0u8; 4]), Err(TcpError::InvalidHandle));
}

#[test]
fn syn_on_established_connection_gets_challenge_ack() {
    let (mut s, h, iss) = established();
    send!(s, 10, seg(SYN, PEER_ISS + 5000, 0));
    recv!(s, 10, [(ACK, iss + 1, PEER_ISS + 1, 0)]);
    assert_eq!(s.state(h), Some(State::Established));
    assert_eq!(s.counters().dropped(TcpDrop::UnexpectedSyn), 1);
}

#[test]
fn unacceptable_acks_rfc5961() {
    let (mut s, h, iss) = established();
    s.write(h, b"abc").unwrap();
    recv!(s, 1, [(PSHACK, iss + 1, PEER_ISS + 1, 3)]);
    // Acknowledges data never sent: ACK and drop.
    send!(s, 2, seg(ACK, PEER_ISS + 1, iss + 100), b"zz");
    recv!(s, 2, [(ACK, iss + 4, PEER_ISS + 1, 0)]);
    assert_eq!(s.readable_bytes(h), 0, "the segment was dropped");
    // Far too old (below snd_una - max window): challenge ACK.
    send!(
        s,
        3,
        seg(ACK, PEER_ISS + 1, iss.wrapping_sub(100_000)),
        b"zz"
    );
    recv!(s, 3, [(ACK, iss + 4, PEER_ISS + 1, 0)]);
    assert_eq!(s.counters().dropped(TcpDrop::BadAck), 2);
}

#[test]
fn challenge_acks_are_rate_limited() {
    let cfg = StackConfig {
        challenge_ack_limit: 2,
        ..StackConfig::default()
    };
    let mut s = TcpStack::new(cfg, profile());
    let l = s.listen(local(), 4, ProfileId::DEFAULT).unwrap();
    let mut syn = seg(SYN, PEER_ISS, 0);
    syn.mss = Some(1000);
    send!(s, 0, syn);
    let iss = recv_all(&mut s, t(0))[0].repr.seq;
    send!(s, 1, seg(ACK, PEER_ISS + 1, iss + 1));
    s.accept(l).unwrap();
    for _ in 0..5 {
        send!(s, 10, seg(RST, PEER_ISS + 10, 0));
    }
    let out = recv_all(&mut s, t(10));
    assert_eq!(out.len(), 1, "ACKs coalesce; the limit counts challenges");
    assert_eq!(s.counters().challenge_acks, 2);
    send!(s, 1010, seg(RST, PEER_ISS + 10, 0));
    assert_eq!(
        s.counters().challenge_acks,
        3,
        "a new second, a new allowance"
    );
}

#[test]
fn window_restarts_after_idle() {
    let (mut s, h, iss) = established();
    s.write(h, &[1u8; 8000]).unwrap();
    assert_eq!(recv_all(&mut s, t(10)).len(), 8);
    send!(s, 20, seg(ACK, PEER_ISS + 1, iss + 8001));
    let grown = s.connection(h).unwrap().cc.cwnd();
    assert_eq!(grown, 18_000, "slow start grew the window");
    // Idle for longer than an RTO: RFC 5681 section 4.1 restarts from the initial window.
    s.write(h, &[1u8; 100]).unwrap();
    recv!(s, 5000, [(PSHACK, iss + 8001, PEER_ISS + 1, 100)]);
    assert_eq!(s.connection(h).unwrap().cc.cwnd(), 10_000);
}

#[test]
fn sequence_numbers_wrap_around() {
    let mut p = profile();
    p.sack = true;
    let peer_iss = u32::MAX - 1500;
    let mut syn = seg(SYN, peer_iss, 0);
    syn.mss = Some(1000);
    syn.sack_permitted = true;
    let mut s = stack_with(p);
    let l = s.listen(local(), 4, ProfileId::DEFAULT).unwrap();
    send!(s, 0, syn);
    let iss = recv_all(&mut s, t(0))[0].repr.seq;
    let base = peer_iss.wrapping_add(1);
    send!(s, 1, seg(ACK, base, iss.wrapping_add(1)));
    let h = s.accept(l).unwrap();
    // Three segments straddling 2^32, the middle one first (out of order).
    let d: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    send!(
        s,
        2,
        seg(ACK, base.wrapping_add(1000), iss.wrapping_add(1)),
        &d[1000..2000]
    );
    let out = recv!(s, 2, [(ACK, iss.wrapping_add(1), base, 0)]);
    assert_eq!(
        out[0].repr.sack_blocks(),
        &[(base.wrapping_add(1000), base.wrapping_add(2000))]
    );
    send!(s, 3, seg(ACK, base, iss.wrapping_add(1)), &d[..1000]);
    recv!(
        s,
        3,
        [(ACK, iss.wrapping_add(1), base.wrapping_add(2000), 0)]
    );
    send!(
        s,
        4,
        seg(ACK, base.wrapping_add(2000), iss.wrapping_add(1)),
        &d[2000..]
    );
    recv!(
        s,
        4,
        [(ACK, iss.wrapping_add(1), base.wrapping_add(3000), 0)]
    );
    assert!(
        base.wrapping_add(3000) < base,
        "the stream crossed the wrap"
    );
    let mut buf = vec![0u8; 4000];
    assert_eq!(s.read(h, &mut buf), Ok(3000));
    assert_eq!(&buf[..3000], &d[..]);
}

#[test]
fn connections_take_turns_on_output() {
    let mut p = profile();
    p.initial_cwnd = 40;
    p.send_buffer = 40_000;
    let mut s = stack_with(p);
    let r2: SocketAddr = "198.18.1.2:40001".parse().unwrap();
    let mut hs = Vec::new();
    for r in [remote(), r2] {
        let h = s.connect(t(0), local(), r, ProfileId::DEFAULT).unwrap();
        let mut buf = [0u8; 2048];
        let tx = s.poll_transmit(t(0), &mut buf).unwrap();
        let iss = TcpPacket::new_checked(&buf[..tx.len]).unwrap().seq();
        let mut sa = seg(SYNACK, PEER_ISS, iss + 1);
        sa.dst_port = 80;
        sa.src_port = r.port();
        sa.window = 60_000;
        sa.mss = Some(1000);
        let b = encode(&sa, &[], r.ip(), local().ip());
        s.handle_segment(t(1), r.ip(), local().ip(), &b);
        while s.poll_transmit(t(1), &mut buf).is_some() {}
        assert_eq!(s.state(h), Some(State::Established));
        hs.push(h);
    }
    let mut buf = [0u8; 2048];
    for &h in &hs {
        assert_eq!(s.write(h, &[1u8; 40_000]), Ok(40_000));
    }
    let mut order = Vec::new();
    while let Some(tx) = s.poll_transmit(t(2), &mut buf) {
        order.push(TcpPacket::new_checked(&buf[..tx.len]).unwrap().dst_port());
    }
    assert_eq!(order.len(), 80);
    let runs: Vec<(u16, usize)> = order
        .chunk_by(|a, b| a == b)
        .map(|c| (c[0], c.len()))
        .collect();
    assert_eq!(
        runs,
        vec![
            (40000, 16),
            (40001, 16),
            (40000, 16),
            (40001, 16),
            (40000, 8),
            (40001, 8)
        ]
    );
}

#[test]
fn persist_timer_overrides_silly_window_avoidance() {
    let (mut s, h, iss) = established();
    // The window shrinks to 300 bytes (its update "lost" nothing: it is just small).
    let mut a = seg(ACK, PEER_ISS + 1, iss + 1);
    a.window = 300;
    send!(s, 5, a);
    s.write(h, &[1u8; 2000]).unwrap();
    // 300 < half the largest window (8000): held back...
    recv_nothing!(s, 10);
    // ...until the persist timer (RTO, 200 ms) forces what fits.
    recv_nothing!(s, 209);
    recv!(s, 210, [(ACK, iss + 1, PEER_ISS + 1, 300)]);
}

/// A shaped connection whose class has no room holds its new data back (counted), sends
/// it once room returns, and loses nothing.
#[test]
fn a_shaped_connection_waits_for_room_and_loses_nothing() {
    let (mut s, h, iss) = established();
    let sh = Shaping {
        port: 1,
        class: 2,
        hash: 7,
    };
    s.set_shaping(h, Some(sh)).unwrap();
    s.write(h, &[7u8; 3000]).unwrap();
    let mut buf = [0u8; 1600];
    let mut asked = Vec::new();
    let none = s.poll_transmit_shaped(t(1), &mut buf, &mut |x, len| {
        asked.push((x, len));
        false
    });
    assert_eq!(none, None, "nothing leaves without room");
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].0, sh);
    assert!(asked[0].1 >= 1000, "asks room for a full segment");
    assert!(s.shaped_waiting());
    assert_eq!(s.counters().shaping_deferrals, 1);
    // Without a requeue it stays out of line.
    assert_eq!(
        s.poll_transmit_shaped(t(2), &mut buf, &mut |_, _| true),
        None
    );
    s.requeue_shaped();
    let mut sent = 0;
    while let Some(tx) = s.poll_transmit_shaped(t(3), &mut buf, &mut |_, _| true) {
        assert_eq!(tx.shaping, Some(sh));
        let p = TcpPacket::new_checked(&buf[..tx.len]).unwrap();
        sent += p.payload().len();
    }
    assert_eq!(sent, 3000, "all of it, once");
    assert!(!s.shaped_waiting());
    // Acknowledged: nothing is left to retransmit.
    send!(s, 10, seg(ACK, PEER_ISS + 1, iss.wrapping_add(3001)));
    assert_eq!(s.send_queued(h), 0);
}

/// Not only new data: a shaped connection's retransmission and its FIN also wait for
/// room (the class would drop them otherwise), and leave once room returns.
#[test]
fn a_shaped_connections_retransmission_and_fin_wait_for_room() {
    let (mut s, h, iss) = established();
    let sh = Shaping {
        port: 1,
        class: 2,
        hash: 7,
    };
    s.set_shaping(h, Some(sh)).unwrap();
    s.write(h, &[7u8; 500]).unwrap();
    let mut buf = [0u8; 1600];
    let first = s.poll_transmit_shaped(t(1), &mut buf, &mut |_, _| true);
    assert!(first.is_some(), "the data leaves with room");
    // The segment is lost; when the retransmission timer fires the class is full.
    s.handle_timeout(t(1000));
    assert_eq!(
        s.poll_transmit_shaped(t(1000), &mut buf, &mut |_, _| false),
        None,
        "the retransmission waits"
    );
    assert_eq!(s.counters().shaping_deferrals, 1);
    s.requeue_shaped();
    let rtx = s
        .poll_transmit_shaped(t(1001), &mut buf, &mut |_, _| true)
        .expect("the retransmission leaves once room returns");
    let p = TcpPacket::new_checked(&buf[..rtx.len]).unwrap();
    assert_eq!((p.seq(), p.payload().len()), (iss.wrapping_add(1), 500));
    send!(s, 1002, seg(ACK, PEER_ISS + 1, iss.wrapping_add(501)));
    // The close's FIN also waits for room.
    s.close(t(1003), h).unwrap();
    assert_eq!(
        s.poll_transmit_shaped(t(1003), &mut buf, &mut |_, _| false),
        None,
        "the FIN waits"
    );
    s.requeue_shaped();
    let fin = s
        .poll_transmit_shaped(t(1004), &mut buf, &mut |_, _| true)
        .expect("the FIN leaves once room returns");
    let p = TcpPacket::new_checked(&buf[..fin.len]).unwrap();
    assert!(p.flags().fin(), "a FIN");
    assert_eq!(fin.shaping, Some(sh));
}

#[test]
fn a_read_after_the_handshake_leaves_the_wider_window_to_the_reply() {
    // The SYN-ACK can offer at most 64 KiB; reading a request afterwards opens the
    // window to the whole buffer. That is no reason for a frame of its own: the peer
    // still has far more room than it needs, and the reply carries the new window.
    let mut p = profile();
    p.window_scaling = true;
    p.recv_buffer = 256 << 10;
    p.delayed_ack = Duration::from_millis(40);
    let mut syn = seg(SYN, PEER_ISS, 0);
    syn.mss = Some(1000);
    syn.wscale = Some(0);
    let (mut s, h, iss) = established_with(p, syn);
    send!(s, 10, seg(PSHACK, PEER_ISS + 1, iss + 1), &[1u8; 83]);
    let mut buf = [0u8; 128];
    assert_eq!(s.read(h, &mut buf), Ok(83));
    recv_nothing!(s, 10);
    assert_eq!(s.write(h, b"reply"), Ok(5));
    let out = recv!(s, 11, [(PSHACK, iss + 1, PEER_ISS + 84, 5)]);
    let rcv_wscale = s.connection(h).unwrap().rcv_wscale;
    assert_eq!(
        (out[0].repr.window as usize) << rcv_wscale,
        ((256 << 10) >> rcv_wscale) << rcv_wscale,
        "the reply announces the whole buffer"
    );
    // A window the peer has nearly used up is announced at once when a read opens it.
    let base = PEER_ISS + 84;
    let d = [5u8; 1000];
    for i in 0..259 {
        send!(s, 20, seg(ACK, base + i * 1000, iss + 6), &d);
        recv_all(&mut s, t(20));
    }
    let left = {
        let c = s.connection(h).unwrap();
        seq::dist(c.rcv_nxt, c.rcv_adv)
    };
    assert!(left < 4 * 1000, "{left} bytes of window left");
    let mut big = vec![0u8; 64 << 10];
    assert_eq!(s.read(h, &mut big), Ok(64 << 10));
    let out = recv!(s, 21, [(ACK, iss + 6, base + 259_000, 0)]);
    assert!(
        (out[0].repr.window as usize) << rcv_wscale >= 64 << 10,
        "the window update after the read: {}",
        out[0].repr.window
    );
}
