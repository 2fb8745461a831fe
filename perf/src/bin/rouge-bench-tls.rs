//! `rouge-bench-tls`: Rouge's TLS engine (rustls 0.23 unbuffered on ring, behind
//! `rouge_pipelines::tls`) measured on one core, in memory: a rustls client and the
//! engine as server hand records to each other, no network. Figures: full TLS 1.3
//! handshakes per second with ECDSA P-256 and with RSA 2048, resumed handshakes (TLS
//! 1.3 tickets), and bulk bytes per second each way. Each is given for the whole loop
//! (client and server on the same core) and for the server side alone (the time spent
//! in the engine's calls), which is what the appliance pays. Time is this thread's CPU
//! time (`CLOCK_THREAD_CPUTIME_ID`), so a busy machine lowers the figures less: rates
//! are per CPU-second. Printed as a table or JSON; never asserted.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use rouge_pipelines::tls::{
    ServerProfile, TicketKeys, TlsIdentity, TlsServerConfig, TlsSession, WallClock,
};
use rouge_pipelines::Instant;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Measure the TLS engine in memory.
#[derive(Debug, Parser)]
#[command(name = "rouge-bench-tls", version)]
struct Args {
    /// Handshakes per kind (at most 1 million).
    #[arg(long, default_value_t = 2000)]
    handshakes: u64,
    /// Bytes each way for the bulk figure (at most 16 GiB).
    #[arg(long, default_value_t = 1 << 30)]
    bytes: u64,
    /// Folder with ca.crt, s3.rouge.test(.crt,.key) and s3.rouge.test-rsa(.crt,.key).
    #[arg(long)]
    certs: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// One measured figure.
#[derive(Debug, serde::Serialize)]
struct Row {
    name: String,
    count: u64,
    unit: &'static str,
    /// Per CPU-second of the whole loop (client and server on one core).
    per_sec_loop: f64,
    /// Per CPU-second spent in the server engine only.
    per_sec_server: f64,
    /// The suite negotiated.
    suite: String,
}

struct Bed {
    server: TlsServerConfig,
    client: Arc<ClientConfig>,
}

fn die(msg: String) -> ! {
    eprintln!("rouge-bench-tls: {msg}");
    std::process::exit(2)
}

fn bed(dir: &std::path::Path, cert: &str, resume: bool) -> Bed {
    let id = TlsIdentity::load(
        &dir.join(format!("{cert}.crt")),
        &dir.join(format!("{cert}.key")),
    )
    .unwrap_or_else(|e| die(e.to_string()));
    let (nb, _) = id
        .validity()
        .unwrap_or_else(|| die(format!("{cert}.crt: no validity")));
    let clock = WallClock::at(nb + 3600);
    let profile = ServerProfile {
        identities: vec![id],
        tls13_tickets: if resume { 2 } else { 0 },
        ..ServerProfile::default()
    };
    let keys = TicketKeys::new(clock.clone(), 3600).unwrap_or_else(|| die("no randomness".into()));
    let server =
        TlsServerConfig::new(&profile, keys, clock.clone()).unwrap_or_else(|e| die(e.to_string()));
    let mut roots = RootCertStore::empty();
    let ca = dir.join("ca.crt");
    for c in
        CertificateDer::pem_file_iter(&ca).unwrap_or_else(|e| die(format!("{}: {e}", ca.display())))
    {
        roots
            .add(c.unwrap_or_else(|e| die(format!("{}: {e}", ca.display()))))
            .unwrap_or_else(|e| die(format!("{}: {e}", ca.display())));
    }
    #[allow(deprecated)] // ring, as the engine uses it
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut client = ClientConfig::builder_with_details(provider, Arc::new(clock))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap_or_else(|e| die(e.to_string()))
        .with_root_certificates(roots)
        .with_no_client_auth();
    if !resume {
        client.resumption = rustls::client::Resumption::disabled();
    }
    Bed {
        server,
        client: Arc::new(client),
    }
}

/// This thread's CPU time.
fn cpu() -> Duration {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID) {
        Ok(t) => Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32),
        Err(e) => die(format!("clock_gettime: {e}")),
    }
}

/// CPU time spent in server calls.
#[derive(Default)]
struct Meter(Duration);

impl Meter {
    fn time<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let t = cpu();
        let r = f();
        self.0 += cpu().saturating_sub(t);
        r
    }
}

/// One handshake (and the tickets after it); returns (resumed, suite).
fn handshake(b: &Bed, m: &mut Meter, wire: &mut Vec<u8>) -> (bool, &'static str) {
    let name = ServerName::try_from("s3.rouge.test").unwrap_or_else(|e| die(e.to_string()));
    let mut c =
        ClientConnection::new(b.client.clone(), name).unwrap_or_else(|e| die(e.to_string()));
    let mut s = m
        .time(|| TlsSession::server(&b.server, Instant::ZERO))
        .unwrap_or_else(|e| die(e.to_string()));
    for _ in 0..64 {
        wire.clear();
        while c.wants_write() {
            c.write_tls(wire).unwrap_or_else(|e| die(e.to_string()));
        }
        let mut off = 0;
        while off < wire.len() {
            off += m
                .time(|| s.feed_ciphertext(&wire[off..]))
                .unwrap_or_else(|e| die(e.to_string()));
        }
        let out = s.pending_ciphertext();
        let moved = !out.is_empty() || !wire.is_empty();
        let mut rd = out;
        while !rd.is_empty() {
            c.read_tls(&mut rd).unwrap_or_else(|e| die(e.to_string()));
            c.process_new_packets()
                .unwrap_or_else(|e| die(e.to_string()));
        }
        let n = s.pending_ciphertext().len();
        s.consume_ciphertext(n);
        if !moved && !s.is_handshaking() && !c.is_handshaking() {
            return (s.resumed(), s.suite().unwrap_or("?"));
        }
    }
    die("handshake did not finish".into())
}

fn handshakes(name: &str, b: &Bed, n: u64, want_resumed: bool) -> Row {
    let mut wire = Vec::with_capacity(64 * 1024);
    // Warm up (and, for resumption, get the first tickets).
    for _ in 0..20 {
        handshake(b, &mut Meter::default(), &mut wire);
    }
    let mut m = Meter::default();
    let mut suite = "";
    let start = cpu();
    for _ in 0..n {
        let (resumed, s) = handshake(b, &mut m, &mut wire);
        if resumed != want_resumed {
            die(format!("{name}: resumed = {resumed}"));
        }
        suite = s;
    }
    let total = cpu().saturating_sub(start).as_secs_f64();
    Row {
        name: name.into(),
        count: n,
        unit: "handshakes",
        per_sec_loop: n as f64 / total,
        per_sec_server: n as f64 / m.0.as_secs_f64(),
        suite: suite.into(),
    }
}

/// Bulk both ways through one connection; rows for server→client (encrypt) and
/// client→server (decrypt).
fn bulk(b: &Bed, bytes: u64) -> [Row; 2] {
    let mut wire = Vec::with_capacity(1 << 20);
    let name = ServerName::try_from("s3.rouge.test").unwrap_or_else(|e| die(e.to_string()));
    let mut c =
        ClientConnection::new(b.client.clone(), name).unwrap_or_else(|e| die(e.to_string()));
    c.set_buffer_limit(None);
    let mut s = TlsSession::server(&b.server, Instant::ZERO).unwrap_or_else(|e| die(e.to_string()));
    let mut m = Meter::default();
    // Handshake.
    for _ in 0..64 {
        wire.clear();
        while c.wants_write() {
            c.write_tls(&mut wire)
                .unwrap_or_else(|e| die(e.to_string()));
        }
        let mut off = 0;
        while off < wire.len() {
            off += s
                .feed_ciphertext(&wire[off..])
                .unwrap_or_else(|e| die(e.to_string()));
        }
        let mut rd = s.pending_ciphertext();
        while !rd.is_empty() {
            c.read_tls(&mut rd).unwrap_or_else(|e| die(e.to_string()));
            c.process_new_packets()
                .unwrap_or_else(|e| die(e.to_string()));
        }
        let n = s.pending_ciphertext().len();
        s.consume_ciphertext(n);
        if !s.is_handshaking() && !c.is_handshaking() && !c.wants_write() {
            break;
        }
    }
    let suite = s.suite().unwrap_or("?").to_string();
    let block = vec![0x5au8; 256 * 1024];
    let mut sink = vec![0u8; 256 * 1024];
    // Server to client: the engine encrypts.
    let start = cpu();
    let mut sent = 0u64;
    let mut got = 0u64;
    while got < bytes {
        if sent < bytes {
            let want = block.len().min((bytes - sent) as usize);
            let mut off = 0;
            while off < want {
                let n = m
                    .time(|| s.write_plaintext(&block[off..want]))
                    .unwrap_or_else(|e| die(e.to_string()));
                off += n;
                let mut rd = s.pending_ciphertext();
                let len = rd.len();
                while !rd.is_empty() {
                    c.read_tls(&mut rd).unwrap_or_else(|e| die(e.to_string()));
                    c.process_new_packets()
                        .unwrap_or_else(|e| die(e.to_string()));
                    while let Ok(k) = c.reader().read(&mut sink) {
                        if k == 0 {
                            break;
                        }
                        got += k as u64;
                    }
                }
                s.consume_ciphertext(len);
            }
            sent += want as u64;
        } else {
            die("bulk down: bytes missing".into());
        }
    }
    let down = Row {
        name: "bulk server->client (encrypt)".into(),
        count: bytes,
        unit: "bytes",
        per_sec_loop: bytes as f64 / cpu().saturating_sub(start).as_secs_f64(),
        per_sec_server: bytes as f64 / m.0.as_secs_f64(),
        suite: suite.clone(),
    };
    // Client to server: the engine decrypts.
    let mut m = Meter::default();
    let start = cpu();
    let (mut sent, mut got) = (0u64, 0u64);
    while got < bytes {
        if sent < bytes {
            let want = block.len().min((bytes - sent) as usize);
            c.writer()
                .write_all(&block[..want])
                .unwrap_or_else(|e| die(e.to_string()));
            sent += want as u64;
        }
        wire.clear();
        while c.wants_write() {
            c.write_tls(&mut wire)
                .unwrap_or_else(|e| die(e.to_string()));
        }
        let mut off = 0;
        while off < wire.len() {
            off += m
                .time(|| s.feed_ciphertext(&wire[off..]))
                .unwrap_or_else(|e| die(e.to_string()));
            let n = m.time(|| s.take_plaintext(&mut sink));
            got += n as u64;
        }
        if wire.is_empty() && sent >= bytes {
            die("bulk up: bytes missing".into());
        }
    }
    let up = Row {
        name: "bulk client->server (decrypt)".into(),
        count: bytes,
        unit: "bytes",
        per_sec_loop: bytes as f64 / cpu().saturating_sub(start).as_secs_f64(),
        per_sec_server: bytes as f64 / m.0.as_secs_f64(),
        suite,
    };
    [down, up]
}

fn main() {
    let a = Args::parse();
    if a.handshakes == 0 || a.handshakes > 1_000_000 || a.bytes == 0 || a.bytes > 16 << 30 {
        die("--handshakes 1..=1000000, --bytes 1..=16 GiB".into());
    }
    let dir = a.certs.clone().unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../appliance/configs/tls")
    });
    let ecdsa = bed(&dir, "s3.rouge.test", false);
    let rsa = bed(&dir, "s3.rouge.test-rsa", false);
    let resume = bed(&dir, "s3.rouge.test", true);
    let mut rows = vec![
        handshakes("full TLS 1.3, ECDSA P-256", &ecdsa, a.handshakes, false),
        handshakes("full TLS 1.3, RSA 2048", &rsa, a.handshakes, false),
        handshakes("resumed TLS 1.3 (ticket)", &resume, a.handshakes, true),
    ];
    rows.extend(bulk(&ecdsa, a.bytes));
    if a.json {
        match serde_json::to_string_pretty(&rows) {
            Ok(j) => println!("{j}"),
            Err(e) => die(e.to_string()),
        }
        return;
    }
    println!(
        "{:<34} {:>12} {:>16} {:>16}  suite",
        "rouge-bench-tls (one core)", "count", "per CPU-s loop", "per CPU-s server"
    );
    for r in &rows {
        let fmt = |v: f64| {
            if r.unit == "bytes" {
                format!("{:.2} GB/s", v / 1e9)
            } else {
                format!("{v:.0}/s")
            }
        };
        println!(
            "{:<34} {:>12} {:>16} {:>16}  {}",
            r.name,
            r.count,
            fmt(r.per_sec_loop),
            fmt(r.per_sec_server),
            r.suite
        );
    }
}
