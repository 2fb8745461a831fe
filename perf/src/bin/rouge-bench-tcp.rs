//! `rouge-bench-tcp`: Rouge's userspace TCP stack measured on one core, in memory (two
//! stacks handing segments to each other, no network): bytes per second of one bulk
//! connection, connections opened and closed per second, and the memory an idle
//! established connection costs. Printed as a table or JSON; never asserted.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant as WallClock};

use clap::Parser;
use rouge_pipelines::tcp::{
    CongestionAlgo, Connection, Event, ProfileId, StackConfig, TcpProfile, TcpStack,
};
use rouge_pipelines::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Measure the TCP stack in memory.
#[derive(Debug, Parser)]
#[command(name = "rouge-bench-tcp", version)]
struct Args {
    /// Bytes for the bulk transfer (at most 16 GiB).
    #[arg(long, default_value_t = 1 << 30)]
    bytes: u64,
    /// Connections to open and close (at most 10 million).
    #[arg(long, default_value_t = 100_000)]
    connections: u64,
    /// Idle connections to hold for the memory figure (at most 1 million).
    #[arg(long, default_value_t = 10_000)]
    idle: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

const SERVER: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 1, 1));
const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 1, 2));

fn stack(seed: u64, max: usize) -> TcpStack {
    let cfg = StackConfig {
        secret: (seed, !seed),
        max_connections: max,
        max_time_wait: 16,
        ..StackConfig::default()
    };
    let profile = TcpProfile {
        send_buffer: 512 * 1024,
        recv_buffer: 512 * 1024,
        congestion: CongestionAlgo::Cubic,
        time_wait: Duration::from_millis(1),
        ..TcpProfile::default()
    };
    TcpStack::new(cfg, profile)
}

/// Moves every pending segment both ways; returns how many moved.
fn exchange(now: Instant, a: &mut TcpStack, b: &mut TcpStack, seg: &mut [u8]) -> u64 {
    let mut n = 0;
    while let Some(t) = a.poll_transmit(now, seg) {
        b.handle_segment(now, t.src, t.dst, &seg[..t.len]);
        n += 1;
    }
    while let Some(t) = b.poll_transmit(now, seg) {
        a.handle_segment(now, t.src, t.dst, &seg[..t.len]);
        n += 1;
    }
    n
}

fn bulk(total: u64) -> (f64, u64) {
    let (mut a, mut b) = (stack(1, 16), stack(2, 16));
    let srv = SocketAddr::new(SERVER, 9);
    let l = b.listen(srv, 4, ProfileId::DEFAULT).expect("listen");
    let mut now = Instant::ZERO;
    let c = a
        .connect(now, SocketAddr::new(CLIENT, 40000), srv, ProfileId::DEFAULT)
        .expect("connect");
    let data = vec![0x5au8; 64 * 1024];
    let mut rbuf = vec![0u8; 64 * 1024];
    let mut seg = vec![0u8; 1600];
    let (mut sent, mut received, mut segments) = (0u64, 0u64, 0u64);
    let mut server = None;
    let wall = WallClock::now();
    while received < total {
        segments += exchange(now, &mut a, &mut b, &mut seg);
        while let Some(e) = b.poll_event() {
            if let Event::Accepted(_) = e {
                server = b.accept(l);
            }
        }
        while a.poll_event().is_some() {}
        while sent < total {
            let want = data.len().min((total - sent) as usize);
            match a.write(c, &data[..want]) {
                Ok(0) | Err(_) => break,
                Ok(n) => sent += n as u64,
            }
        }
        if let Some(h) = server {
            while let Ok(n) = b.read(h, &mut rbuf) {
                if n == 0 {
                    break;
                }
                received += n as u64;
            }
        }
        now += Duration::from_micros(50);
        a.handle_timeout(now);
        b.handle_timeout(now);
    }
    (wall.elapsed().as_secs_f64(), segments)
}

fn churn(count: u64) -> f64 {
    let (mut a, mut b) = (stack(3, 1024), stack(4, 1024));
    let srv = SocketAddr::new(SERVER, 7);
    let l = b.listen(srv, 1024, ProfileId::DEFAULT).expect("listen");
    let mut now = Instant::ZERO;
    let mut seg = vec![0u8; 1600];
    let wall = WallClock::now();
    let mut done = 0u64;
    let mut port = 1024u16;
    while done < count {
        // 64 connections at a time: open, handshake, close both ways.
        let mut opened = Vec::with_capacity(64);
        for _ in 0..64 {
            port = if port == u16::MAX { 1024 } else { port + 1 };
            if let Ok(h) = a.connect(now, SocketAddr::new(CLIENT, port), srv, ProfileId::DEFAULT) {
                opened.push(h);
            }
        }
        exchange(now, &mut a, &mut b, &mut seg);
        while let Some(h) = b.accept(l) {
            let _ = b.close(now, h);
        }
        while b.poll_event().is_some() {}
        for h in &opened {
            let _ = a.close(now, *h);
        }
        exchange(now, &mut a, &mut b, &mut seg);
        exchange(now, &mut a, &mut b, &mut seg);
        while let Some(e) = a.poll_event() {
            if let Event::Closed(h) = e {
                let _ = a.close(now, h);
            }
        }
        while let Some(e) = b.poll_event() {
            if let Event::Closed(h) = e {
                let _ = b.close(now, h);
            }
        }
        done += opened.len() as u64;
        now += Duration::from_millis(2);
        a.handle_timeout(now);
        b.handle_timeout(now);
    }
    // Count only connections that completed the handshake and closed cleanly on both ends.
    let secs = wall.elapsed().as_secs_f64();
    let clean = a
        .counters()
        .closed
        .min(b.counters().closed)
        .min(b.counters().passive_opens);
    clean as f64 / secs
}

fn idle(count: u64) -> (usize, usize) {
    let n = count as usize;
    let (mut a, mut b) = (stack(5, n + 16), stack(6, n + 16));
    let srv = SocketAddr::new(SERVER, 7);
    let l = b.listen(srv, n + 16, ProfileId::DEFAULT).expect("listen");
    let now = Instant::ZERO;
    let mut seg = vec![0u8; 1600];
    for i in 0..n {
        let client = IpAddr::V4(Ipv4Addr::new(198, 18, 1, 2 + (i / 60000) as u8));
        let _ = a.connect(
            now,
            SocketAddr::new(client, 1024 + (i % 60000) as u16),
            srv,
            ProfileId::DEFAULT,
        );
        if i % 256 == 255 {
            exchange(now, &mut a, &mut b, &mut seg);
        }
    }
    exchange(now, &mut a, &mut b, &mut seg);
    while b.accept(l).is_some() {}
    (b.connection_count(), b.buffer_bytes())
}

fn main() {
    let args = Args::parse();
    let (secs, segments) = bulk(args.bytes.min(16 << 30));
    let bulk_bps = args.bytes as f64 / secs;
    let cps = churn(args.connections.min(10_000_000));
    let (idle_conns, idle_buffers) = idle(args.idle.min(1_000_000));
    let control_block = std::mem::size_of::<Connection>();
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "bulk_bytes": args.bytes, "bulk_seconds": secs, "bulk_bytes_per_sec": bulk_bps,
                "bulk_segments": segments, "connections_per_sec": cps,
                "idle_connections": idle_conns, "idle_buffer_bytes": idle_buffers,
                "connection_bytes": control_block,
            })
        );
    } else {
        println!("one connection, two stacks on one core: {:.2} GiB/s ({:.2} Gbit/s, {} segments both ways in {secs:.2} s)",
            bulk_bps / (1u64 << 30) as f64, bulk_bps * 8.0 / 1e9, segments);
        println!("connections opened and closed: {cps:.0} per second (client and server stack on one core)");
        println!("idle established connections: {idle_conns} hold {idle_buffers} buffer bytes; control block {control_block} bytes each");
    }
}
