//! Arbitrary segments into a listening and an established connection of the userspace
//! TCP stack, interleaved with time steps and application reads and writes (a sequence
//! of operations, not only bytes). It must never panic and never exceed its limits.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use rouge_pipelines::tcp::{Event, ProfileId, StackConfig, TcpProfile, TcpStack};
use rouge_pipelines::wire::checksum;
use rouge_pipelines::Instant;

const SERVER: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 1, 1));
const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 1, 2));

fn stack() -> TcpStack {
    let cfg = StackConfig { max_connections: 64, max_time_wait: 16, secret: (1, 2), ..StackConfig::default() };
    TcpStack::new(cfg, TcpProfile::default())
}

/// Moves every pending segment from `a` to `b`.
fn exchange(now: Instant, a: &mut TcpStack, b: &mut TcpStack, buf: &mut [u8]) {
    while let Some(t) = a.poll_transmit(now, buf) {
        b.handle_segment(now, t.src, t.dst, &buf[..t.len]);
    }
}

/// Fixes the checksum of a fuzzed segment half of the time, so it gets past the check.
fn seal(seg: &mut [u8], fix: bool) {
    if fix && seg.len() >= 20 {
        seg[16] = 0;
        seg[17] = 0;
        let (IpAddr::V4(s), IpAddr::V4(d)) = (CLIENT, SERVER) else { return };
        let acc = checksum::pseudo_header_v4(s.octets(), d.octets(), 6, seg.len() as u16);
        let c = checksum::finish(checksum::sum(acc, seg));
        seg[16..18].copy_from_slice(&c.to_be_bytes());
    }
}

fuzz_target!(|data: &[u8]| {
    let mut now = Instant::from_secs(1);
    let mut server = stack();
    let mut client = stack();
    let mut buf = vec![0u8; 4096];
    let listener = server.listen(SocketAddr::new(SERVER, 7), 8, ProfileId::DEFAULT).expect("listen");
    let c = client
        .connect(now, SocketAddr::new(CLIENT, 40000), SocketAddr::new(SERVER, 7), ProfileId::DEFAULT)
        .expect("connect");
    for _ in 0..3 {
        exchange(now, &mut client, &mut server, &mut buf);
        exchange(now, &mut server, &mut client, &mut buf);
    }
    let accepted = server.accept(listener);
    // Operations: [op, len, bytes...]
    let mut rest = data;
    let mut scratch = [0u8; 2048];
    while let [op, len, tail @ ..] = rest {
        let n = (*len as usize).min(tail.len());
        let (chunk, next) = tail.split_at(n);
        rest = next;
        match op % 6 {
            0 | 1 => {
                // A segment from the established client's 4-tuple (or a new port for op 1,
                // which hits the listener).
                let mut seg = chunk.to_vec();
                if seg.len() >= 4 {
                    let sport: u16 = if op % 6 == 0 { 40000 } else { 1024 + (seg[0] as u16) * 7 };
                    seg[0..2].copy_from_slice(&sport.to_be_bytes());
                    seg[2..4].copy_from_slice(&7u16.to_be_bytes());
                }
                seal(&mut seg, op & 0x80 == 0);
                server.handle_segment(now, CLIENT, SERVER, &seg);
            }
            2 => now += Duration::from_millis(chunk.first().copied().unwrap_or(1) as u64 * 10),
            3 => {
                if let Some(h) = accepted {
                    let _ = server.write(h, chunk);
                }
                let _ = client.write(c, chunk);
            }
            4 => {
                if let Some(h) = accepted {
                    let _ = server.read(h, &mut scratch);
                }
                let _ = client.read(c, &mut scratch);
            }
            _ => {
                exchange(now, &mut client, &mut server, &mut buf);
                exchange(now, &mut server, &mut client, &mut buf);
            }
        }
        server.handle_timeout(now);
        client.handle_timeout(now);
        while let Some(ev) = server.poll_event() {
            if let Event::Closed(h) = ev {
                let _ = server.close(now, h);
            }
        }
        while let Some(t) = server.poll_transmit(now, &mut buf) {
            assert!(t.len <= buf.len());
        }
        assert!(server.connection_count() <= 64);
    }
});
