//! Operation sequences into proxied flows: a client stack and a member stack talk
//! through the proxy of one worker's host, and the input decides what happens each
//! step (connect, write, read, shut down, abort on either side, lose, duplicate or
//! delay a segment, advance the clock, take the member down). The proxy must never
//! panic, every flow must end, and the member's connection slots must all come back.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use rouge_pipelines::counters::PipelineCounters;
use rouge_pipelines::dataplane::Snat;
use rouge_pipelines::host::Host;
use rouge_pipelines::lb::{MemberId, MonitorStatus};
use rouge_pipelines::proxy::StandardVs;
use rouge_pipelines::tcp::{ConnHandle, Event, ProfileId, StackConfig, TcpProfile, TcpStack};
use rouge_pipelines::{testing, Instant};

const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
const MEMBER: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 11);

struct Seg {
    src: IpAddr,
    dst: IpAddr,
    bytes: Vec<u8>,
}

fuzz_target!(|data: &[u8]| {
    let member: SocketAddr = (MEMBER, 80).into();
    let mut vs = StandardVs::new(
        "p",
        "198.18.1.100:8080".parse().unwrap(),
        testing::pool_binding(&[member]),
        Snat::Automap,
        1,
    );
    vs.buffer_high = 4096;
    vs.buffer_low = 2048;
    vs.connect_timeout = Duration::from_millis(200);
    // An idle timeout, as an operator's profile has: when both peers vanish and their
    // resets are lost, nothing else ends the flow (the fuzzer found that input; it is
    // in seeds/proxy_ops). The final phase below runs past it.
    let small = TcpProfile {
        send_buffer: 8192,
        recv_buffer: 8192,
        delayed_ack: Duration::ZERO,
        idle_timeout: Some(Duration::from_secs(10)),
        ..TcpProfile::default()
    };
    vs.client_profile = small.clone();
    vs.server_profile = small.clone();
    let dp = Arc::new(testing::dataplane(1).with_standard(vec![vs]));
    let mid: MemberId = dp.standard[0].lb.pool.find(member).expect("the member");
    let mut host = Host::new(0, &dp, PipelineCounters::new_shared());
    host.set_tcp(&dp, StackConfig::default(), small.clone());
    let mut client = TcpStack::new(StackConfig::default(), small.clone());
    let mut server = TcpStack::new(StackConfig::default(), small);
    server.listen(member, 64, ProfileId::DEFAULT).unwrap();
    let mut now = Instant::from_secs(1);
    let mut flight: Vec<Seg> = Vec::new();
    let mut clients: Vec<ConnHandle> = Vec::new();
    let mut servers: Vec<ConnHandle> = Vec::new();
    let mut buf = vec![0u8; 2048];
    let mut scratch = [0u8; 8192];
    let mut port = 40_000u16;
    let ops = data.iter().copied().chain(std::iter::repeat(0xff).take(600));
    for op in ops.take(4000) {
        let pick = (op >> 4) as usize;
        match op & 0x0f {
            0 if clients.len() < 16 => {
                port += 1;
                let local = SocketAddr::new(IpAddr::V4(CLIENT), port);
                let vip = "198.18.1.100:8080".parse().unwrap();
                if let Ok(h) = client.connect(now, local, vip, ProfileId::DEFAULT) {
                    clients.push(h);
                }
            }
            1 => {
                if let Some(&h) = clients.get(pick % clients.len().max(1)) {
                    let _ = client.write(h, &scratch[..(pick + 1) * 200]);
                }
            }
            2 => {
                if let Some(&h) = servers.get(pick % servers.len().max(1)) {
                    let _ = server.write(h, &scratch[..(pick + 1) * 300]);
                }
            }
            3 => {
                if let Some(&h) = clients.get(pick % clients.len().max(1)) {
                    let _ = client.shutdown(now, h);
                }
            }
            4 => {
                if let Some(&h) = servers.get(pick % servers.len().max(1)) {
                    let _ = server.shutdown(now, h);
                }
            }
            5 => {
                if let Some(&h) = clients.get(pick % clients.len().max(1)) {
                    let _ = client.abort(now, h);
                }
            }
            6 => {
                if let Some(&h) = servers.get(pick % servers.len().max(1)) {
                    let _ = server.abort(now, h);
                }
            }
            7 if !flight.is_empty() => {
                let i = pick % flight.len();
                flight.remove(i);
            }
            8 if !flight.is_empty() => {
                let i = pick % flight.len();
                let s = Seg {
                    src: flight[i].src,
                    dst: flight[i].dst,
                    bytes: flight[i].bytes.clone(),
                };
                flight.push(s);
            }
            9 if flight.len() > 1 => {
                let i = pick % flight.len();
                let s = flight.remove(i);
                flight.push(s);
            }
            10 => {
                let b = &dp.standard[0].lb.states;
                let down = pick % 2 == 0;
                b.set_monitor(
                    mid,
                    if down { MonitorStatus::Down } else { MonitorStatus::Up },
                );
            }
            11 => now += Duration::from_millis(pick as u64 * 50),
            _ => {}
        }
        // One network step: deliver what is in flight, then let everyone send.
        now += Duration::from_millis(1);
        for s in std::mem::take(&mut flight) {
            if s.dst == IpAddr::V4(CLIENT) {
                client.handle_segment(now, s.src, s.dst, &s.bytes);
            } else if s.dst == IpAddr::V4(MEMBER) {
                server.handle_segment(now, s.src, s.dst, &s.bytes);
            } else {
                host.handle_segment(now, s.src, s.dst, &s.bytes, false);
            }
        }
        host.poll(now, &dp, &|_, _| false);
        client.handle_timeout(now);
        server.handle_timeout(now);
        while let Some(ev) = client.poll_event() {
            match ev {
                Event::Readable(h) | Event::PeerClosed(h) => while let Ok(n) = client.read(h, &mut scratch) {
                    if n == 0 {
                        break;
                    }
                },
                Event::Closed(h) => {
                    let _ = client.close(now, h);
                    clients.retain(|&x| x != h);
                }
                Event::Reset(h, _) => clients.retain(|&x| x != h),
                _ => {}
            }
        }
        while let Some(ev) = server.poll_event() {
            match ev {
                Event::Accepted(l) => {
                    while let Some(h) = server.accept(l) {
                        servers.push(h);
                    }
                }
                Event::Readable(h) | Event::PeerClosed(h) => while let Ok(n) = server.read(h, &mut scratch) {
                    if n == 0 {
                        break;
                    }
                },
                Event::Closed(h) => {
                    let _ = server.close(now, h);
                    servers.retain(|&x| x != h);
                }
                Event::Reset(h, _) => servers.retain(|&x| x != h),
                _ => {}
            }
        }
        for stack in [&mut client, &mut server] {
            while let Some(t) = stack.poll_transmit(now, &mut buf) {
                flight.push(Seg { src: t.src, dst: t.dst, bytes: buf[..t.len].to_vec() });
            }
        }
        while let Some(t) = host.poll_transmit(now, &mut buf) {
            flight.push(Seg { src: t.src, dst: t.dst, bytes: buf[..t.len].to_vec() });
        }
    }
    // Everyone lets go; after the timeouts every flow is gone and the slot is back.
    for h in clients.drain(..) {
        let _ = client.abort(now, h);
    }
    for h in servers.drain(..) {
        let _ = server.abort(now, h);
    }
    for _ in 0..400 {
        now += Duration::from_millis(100);
        for s in std::mem::take(&mut flight) {
            if s.dst == IpAddr::V4(CLIENT) {
                client.handle_segment(now, s.src, s.dst, &s.bytes);
            } else if s.dst == IpAddr::V4(MEMBER) {
                server.handle_segment(now, s.src, s.dst, &s.bytes);
            } else {
                host.handle_segment(now, s.src, s.dst, &s.bytes, false);
            }
        }
        host.poll(now, &dp, &|_, _| false);
        client.handle_timeout(now);
        server.handle_timeout(now);
        while client.poll_event().is_some() {}
        while server.poll_event().is_some() {}
        while let Some(t) = host.poll_transmit(now, &mut buf) {
            flight.push(Seg { src: t.src, dst: t.dst, bytes: buf[..t.len].to_vec() });
        }
        while let Some(t) = client.poll_transmit(now, &mut buf) {
            flight.push(Seg { src: t.src, dst: t.dst, bytes: buf[..t.len].to_vec() });
        }
        while let Some(t) = server.poll_transmit(now, &mut buf) {
            flight.push(Seg { src: t.src, dst: t.dst, bytes: buf[..t.len].to_vec() });
        }
        if host.proxy().flow_count() == 0 {
            break;
        }
    }
    assert_eq!(host.proxy().flow_count(), 0, "every flow ends");
    assert_eq!(
        dp.standard[0].lb.counts.current(mid),
        0,
        "the member's connection slots come back"
    );
});
