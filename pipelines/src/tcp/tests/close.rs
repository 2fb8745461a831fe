//! Closing: active, passive and simultaneous close, half-close, TIME-WAIT, close with
//! unread data, abort.

use super::*;

#[test]
fn active_close_goes_through_fin_wait_to_time_wait() {
    let (mut s, h, iss) = established();
    s.write(h, b"bye").unwrap();
    s.close(t(10), h).unwrap();
    // Data and FIN in one segment.
    recv!(
        s,
        10,
        [(Flags(FINACK.0 | Flags::PSH.0), iss + 1, PEER_ISS + 1, 3)]
    );
    send!(s, 20, seg(ACK, PEER_ISS + 1, iss + 5));
    assert_eq!(
        s.connections_by_state()[State::ALL
            .iter()
            .position(|&x| x == State::FinWait2)
            .unwrap()],
        1
    );
    send!(s, 30, seg(FINACK, PEER_ISS + 1, iss + 5));
    recv!(s, 30, [(ACK, iss + 5, PEER_ISS + 2, 0)]);
    assert_eq!(
        s.connection_count(),
        0,
        "handle released by close, state in TIME-WAIT table"
    );
    assert_eq!(s.time_wait_count(), 1);
    assert!(events(&mut s).is_empty(), "no events after close");
    // A retransmitted FIN is acknowledged again; a RST is ignored (RFC 1337).
    send!(s, 40, seg(FINACK, PEER_ISS + 1, iss + 5));
    recv!(s, 40, [(ACK, iss + 5, PEER_ISS + 2, 0)]);
    send!(s, 41, seg(RST, PEER_ISS + 2, 0));
    recv_nothing!(s, 41);
    assert_eq!(s.time_wait_count(), 1);
    // 2 MSL (60 s) after the last FIN, the entry goes.
    recv_nothing!(s, 60_039);
    assert_eq!(s.time_wait_count(), 1);
    recv_nothing!(s, 60_040);
    assert_eq!(s.time_wait_count(), 0);
    assert_eq!(s.counters().closed, 1);
}

#[test]
fn passive_close_and_half_close_keep_data_flowing() {
    let (mut s, h, iss) = established();
    // The peer half-closes: we can still send.
    send!(s, 10, seg(FINACK, PEER_ISS + 1, iss + 1), b"last");
    recv!(s, 10, [(ACK, iss + 1, PEER_ISS + 6, 0)]);
    assert_eq!(
        events(&mut s),
        vec![Event::Readable(h), Event::PeerClosed(h)]
    );
    assert_eq!(s.state(h), Some(State::CloseWait));
    let mut buf = [0u8; 8];
    assert_eq!(s.read(h, &mut buf), Ok(4));
    assert_eq!(s.read(h, &mut buf), Ok(0), "end of stream");
    s.write(h, b"reply").unwrap();
    recv!(s, 11, [(PSHACK, iss + 1, PEER_ISS + 6, 5)]);
    s.shutdown(t(12), h).unwrap();
    assert_eq!(s.write(h, b"more"), Err(TcpError::NotWritable));
    recv!(s, 12, [(FINACK, iss + 6, PEER_ISS + 6, 0)]);
    assert_eq!(s.state(h), Some(State::LastAck));
    send!(s, 20, seg(ACK, PEER_ISS + 6, iss + 7));
    assert_eq!(events(&mut s), vec![Event::Closed(h)]);
    assert_eq!(
        s.time_wait_count(),
        0,
        "the side closing second keeps no TIME-WAIT"
    );
    assert_eq!(
        s.state(h),
        Some(State::Closed),
        "kept until the application closes"
    );
    s.close(t(21), h).unwrap();
    assert_eq!(s.state(h), None);
    assert_eq!(s.connection_count(), 0);
}

#[test]
fn our_half_close_still_receives() {
    let (mut s, h, iss) = established();
    s.shutdown(t(5), h).unwrap();
    recv!(s, 5, [(FINACK, iss + 1, PEER_ISS + 1, 0)]);
    send!(s, 6, seg(ACK, PEER_ISS + 1, iss + 2));
    assert_eq!(s.state(h), Some(State::FinWait2));
    send!(s, 7, seg(PSHACK, PEER_ISS + 1, iss + 2), b"still here");
    recv!(s, 7, [(ACK, iss + 2, PEER_ISS + 11, 0)]);
    assert_eq!(events(&mut s), vec![Event::Readable(h)]);
    assert_eq!(s.readable_bytes(h), 10);
    send!(s, 8, seg(FINACK, PEER_ISS + 11, iss + 2));
    recv!(s, 8, [(ACK, iss + 2, PEER_ISS + 12, 0)]);
    assert_eq!(events(&mut s), vec![Event::PeerClosed(h), Event::Closed(h)]);
    assert_eq!(s.time_wait_count(), 1);
    let mut buf = [0u8; 16];
    assert_eq!(
        s.read(h, &mut buf),
        Ok(10),
        "data stays readable after Closed"
    );
}

#[test]
fn simultaneous_close_goes_through_closing() {
    let (mut s, h, iss) = established();
    s.shutdown(t(5), h).unwrap();
    recv!(s, 5, [(FINACK, iss + 1, PEER_ISS + 1, 0)]);
    // The peer's FIN crosses ours (it has not seen our FIN).
    send!(s, 6, seg(FINACK, PEER_ISS + 1, iss + 1));
    recv!(s, 6, [(ACK, iss + 2, PEER_ISS + 2, 0)]);
    assert_eq!(s.state(h), Some(State::Closing));
    send!(s, 7, seg(ACK, PEER_ISS + 2, iss + 2));
    assert_eq!(events(&mut s), vec![Event::PeerClosed(h), Event::Closed(h)]);
    assert_eq!(s.time_wait_count(), 1);
}

#[test]
fn fin_is_retransmitted() {
    let (mut s, h, iss) = established();
    s.shutdown(t(5), h).unwrap();
    recv!(s, 5, [(FINACK, iss + 1, PEER_ISS + 1, 0)]);
    recv_nothing!(s, 204);
    recv!(s, 205, [(FINACK, iss + 1, PEER_ISS + 1, 0)]);
}

#[test]
fn close_with_unread_data_resets() {
    let (mut s, h, iss) = established();
    send!(s, 5, seg(PSHACK, PEER_ISS + 1, iss + 1), b"unread");
    recv!(s, 5, [(ACK, iss + 1, PEER_ISS + 7, 0)]);
    s.close(t(6), h).unwrap();
    recv!(s, 6, [(RSTACK, iss + 1, PEER_ISS + 7, 0)]);
    assert_eq!(s.connection_count(), 0);
    assert_eq!(s.counters().resets_sent, 1);
}

#[test]
fn data_after_close_resets() {
    let (mut s, h, iss) = established();
    s.close(t(5), h).unwrap();
    recv!(s, 5, [(FINACK, iss + 1, PEER_ISS + 1, 0)]);
    send!(s, 6, seg(PSHACK, PEER_ISS + 1, iss + 2), b"late");
    recv!(s, 6, [(RSTACK, iss + 2, PEER_ISS + 5, 0)]);
    assert_eq!(s.connection_count(), 0);
}

#[test]
fn abort_sends_rst_and_releases() {
    let (mut s, h, iss) = established();
    s.abort(t(5), h).unwrap();
    recv!(s, 5, [(RSTACK, iss + 1, PEER_ISS + 1, 0)]);
    assert_eq!(s.state(h), None);
    assert_eq!(s.abort(t(5), h), Err(TcpError::InvalidHandle));
    // The tuple is free again: a segment for it is answered as for a closed port.
    send!(s, 6, seg(ACK, PEER_ISS + 1, iss + 1));
    recv!(s, 6, [(RST, iss + 1, 0, 0)]);
}

#[test]
fn orphaned_fin_wait_2_times_out() {
    let mut p = profile();
    p.fin_wait2_timeout = Duration::from_secs(5);
    let mut syn = seg(SYN, PEER_ISS, 0);
    syn.mss = Some(1000);
    let (mut s, h, iss) = established_with(p, syn);
    s.close(t(5), h).unwrap();
    recv!(s, 5, [(FINACK, iss + 1, PEER_ISS + 1, 0)]);
    send!(s, 6, seg(ACK, PEER_ISS + 1, iss + 2));
    assert_eq!(s.connection_count(), 1);
    recv_nothing!(s, 5005);
    assert_eq!(s.connection_count(), 1);
    recv_nothing!(s, 5006);
    assert_eq!(s.connection_count(), 0);
}

#[test]
fn new_syn_reuses_a_time_wait_tuple() {
    let (mut s, h, iss) = established();
    s.close(t(5), h).unwrap();
    recv!(s, 5, [(FINACK, iss + 1, PEER_ISS + 1, 0)]);
    send!(s, 6, seg(FINACK, PEER_ISS + 1, iss + 2));
    recv!(s, 6, [(ACK, iss + 2, PEER_ISS + 2, 0)]);
    assert_eq!(s.time_wait_count(), 1);
    // An old duplicate SYN is answered with the TIME-WAIT ACK.
    send!(s, 7, seg(SYN, PEER_ISS, 0));
    recv!(s, 7, [(ACK, iss + 2, PEER_ISS + 2, 0)]);
    // A SYN beyond the old sequence space starts a new connection (RFC 6191).
    send!(s, 8, seg(SYN, PEER_ISS + 100_000, 0));
    let out = recv_all(&mut s, t(8));
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].flags(), out[0].repr.ack),
        (SYNACK, PEER_ISS + 100_001)
    );
    assert_eq!(s.time_wait_count(), 0);
}
