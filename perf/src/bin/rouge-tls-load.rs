//! `rouge-tls-load`: the TLS load of `perf/run tls`, a bounded HTTPS client on
//! rustls + ring with blocking sockets, one thread per concurrent connection.
//!
//! It does deliberately what each measurement needs and counts what it got, so the
//! runner can check the load did what it claims:
//!
//! - `--mode full`: every request on a new connection with a full TLS 1.3 handshake
//!   (resumption off in the client);
//! - `--mode resumed`: every request on a new connection that resumes with a TLS 1.3
//!   ticket from the previous one (each thread's first handshake is full);
//! - `--mode bulk`: one keep-alive connection per thread, requests one after the other.
//!
//! `--key-type ecdsa|rsa` offers only that kind's signature schemes, so a server with an
//! ECDSA and an RSA certificate for the same names must choose that one; every handshake's
//! leaf certificate is compared with `--expect-cert` (a mismatch is counted, not
//! accepted). Requests are `GET PATH` with `Host: SNI`; a response counts when its status is
//! 200 and its body has the `Content-Length` announced. Bounded by `--seconds` (at most 120)
//! and `--max` requests. Prints JSON.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, HandshakeKind, RootCertStore,
    SignatureScheme,
};

/// What each connection does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// A new connection and a full handshake per request.
    Full,
    /// A new connection per request, resumed with a ticket.
    Resumed,
    /// Keep-alive requests on one connection per thread.
    Bulk,
}

/// The signature schemes the client offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum KeyType {
    /// ECDSA schemes only.
    Ecdsa,
    /// RSA schemes only (PSS and PKCS#1).
    Rsa,
}

/// A bounded HTTPS load for `perf/run tls`.
#[derive(Debug, Parser)]
#[command(name = "rouge-tls-load", version)]
struct Args {
    /// Address and port to connect to.
    #[arg(long)]
    connect: SocketAddr,
    /// Server name sent in SNI and in `Host`.
    #[arg(long, default_value = "s3.rouge.test")]
    sni: String,
    /// CA bundle the server's chain is verified against.
    #[arg(long)]
    ca: PathBuf,
    /// The leaf certificate the server must present (PEM).
    #[arg(long)]
    expect_cert: Option<PathBuf>,
    /// Signature schemes offered.
    #[arg(long, value_enum, default_value = "ecdsa")]
    key_type: KeyType,
    /// What each connection does.
    #[arg(long, value_enum)]
    mode: Mode,
    /// Path requested.
    #[arg(long, default_value = "/1k")]
    path: String,
    /// Concurrent connections (threads), 1 to 256.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Seconds to run (at most 120).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Requests at most, over all threads.
    #[arg(long, default_value_t = 10_000_000)]
    max: u64,
}

/// What the threads counted.
#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    full: AtomicU64,
    resumed: AtomicU64,
    wrong_cert: AtomicU64,
    failed: AtomicU64,
    body_bytes: AtomicU64,
    errors: Mutex<Vec<String>>,
}

impl Counts {
    fn fail(&self, e: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut v) = self.errors.lock() {
            if v.len() < 5 {
                v.push(e);
            }
        }
    }
}

/// The result printed.
#[derive(serde::Serialize)]
struct Report {
    mode: String,
    key_type: String,
    clients: usize,
    seconds: f64,
    requests: u64,
    handshakes_full: u64,
    handshakes_resumed: u64,
    wrong_certificate: u64,
    failed: u64,
    body_bytes: u64,
    errors: Vec<String>,
}

fn die(msg: String) -> ! {
    eprintln!("rouge-tls-load: {msg}");
    std::process::exit(2)
}

/// rustls's ring provider (deprecated only for its lack of post-quantum key exchange;
/// ring is the crypto Rouge's engine uses, as rouge-bench-tls does).
#[allow(deprecated)]
fn ring_provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// ring's schemes, less those of the other key type (leaked once at start: the provider
/// wants `'static` slices).
fn schemes(key: KeyType) -> WebPkiSupportedAlgorithms {
    let all = ring_provider().signature_verification_algorithms;
    let keep = |s: &SignatureScheme| {
        let rsa = matches!(
            s,
            SignatureScheme::RSA_PSS_SHA256
                | SignatureScheme::RSA_PSS_SHA384
                | SignatureScheme::RSA_PSS_SHA512
                | SignatureScheme::RSA_PKCS1_SHA256
                | SignatureScheme::RSA_PKCS1_SHA384
                | SignatureScheme::RSA_PKCS1_SHA512
        );
        let ecdsa = matches!(
            s,
            SignatureScheme::ECDSA_NISTP256_SHA256 | SignatureScheme::ECDSA_NISTP384_SHA384
        );
        match key {
            KeyType::Rsa => rsa,
            KeyType::Ecdsa => ecdsa,
        }
    };
    let mapping: Vec<_> = all
        .mapping
        .iter()
        .filter(|(s, _)| keep(s))
        .cloned()
        .collect();
    WebPkiSupportedAlgorithms {
        all: all.all,
        mapping: Box::leak(mapping.into_boxed_slice()),
    }
}

/// A verifier that checks the chain with webpki (the CA) and the handshake signatures
/// with only the offered schemes (so `supported_verify_schemes`, what the client offers,
/// is the restricted list).
#[derive(Debug)]
struct Verifier {
    inner: Arc<dyn ServerCertVerifier>,
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

fn config(a: &Args) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(&a.ca)
        .unwrap_or_else(|e| die(format!("{}: {e}", a.ca.display())));
    for c in certs {
        let c = c.unwrap_or_else(|e| die(format!("{}: {e}", a.ca.display())));
        roots
            .add(c)
            .unwrap_or_else(|e| die(format!("{}: {e}", a.ca.display())));
    }
    let algs = schemes(a.key_type);
    let provider = Arc::new(CryptoProvider {
        signature_verification_algorithms: algs,
        ..ring_provider()
    });
    let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap_or_else(|e| die(e.to_string()));
    let mut cfg = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap_or_else(|e| die(e.to_string()))
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Verifier { inner, algs }))
        .with_no_client_auth();
    if a.mode != Mode::Resumed {
        cfg.resumption = rustls::client::Resumption::disabled();
    }
    Arc::new(cfg)
}

/// Reads one HTTP/1.1 response from `s`; returns its body length, or why it is not a
/// whole 200 response.
fn response(s: &mut impl Read, buf: &mut Vec<u8>) -> Result<u64, String> {
    buf.clear();
    let mut chunk = [0u8; 16384];
    // Head.
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 16384 {
            return Err("response head over 16 KiB".into());
        }
        let n = s.read(&mut chunk).map_err(|e| format!("read head: {e}"))?;
        if n == 0 {
            return Err("connection closed before a response".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    if !head.starts_with("http/1.1 200") && !head.starts_with("http/1.0 200") {
        return Err(format!(
            "status: {}",
            head.lines().next().unwrap_or("").trim()
        ));
    }
    let len: u64 = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or("no content-length")?;
    let mut got = (buf.len() - head_end) as u64;
    while got < len {
        let n = s.read(&mut chunk).map_err(|e| format!("read body: {e}"))?;
        if n == 0 {
            return Err(format!("body cut at {got} of {len} bytes"));
        }
        got += n as u64;
    }
    if got != len {
        return Err(format!("{got} body bytes for content-length {len}"));
    }
    Ok(len)
}

struct Job {
    args: Args,
    cfg: Arc<ClientConfig>,
    name: ServerName<'static>,
    expect: Option<Vec<u8>>,
    counts: Counts,
    stop: AtomicBool,
    deadline: Instant,
}

impl Job {
    /// Takes one request from the budget; false when the run is over.
    fn take(&self) -> bool {
        if self.stop.load(Ordering::Relaxed) || Instant::now() >= self.deadline {
            return false;
        }
        if self.counts.requests.fetch_add(1, Ordering::Relaxed) >= self.args.max {
            self.counts.requests.fetch_sub(1, Ordering::Relaxed);
            self.stop.store(true, Ordering::Relaxed);
            return false;
        }
        true
    }

    fn open(&self, cfg: &Arc<ClientConfig>) -> Result<(ClientConnection, TcpStream), String> {
        let sock = TcpStream::connect_timeout(&self.args.connect, Duration::from_secs(5))
            .map_err(|e| format!("connect: {e}"))?;
        sock.set_nodelay(true).map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        sock.set_write_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        let conn =
            ClientConnection::new(cfg.clone(), self.name.clone()).map_err(|e| e.to_string())?;
        Ok((conn, sock))
    }

    /// Counts the handshake of a connection (once it is done).
    fn handshake(&self, conn: &ClientConnection) {
        match conn.handshake_kind() {
            Some(HandshakeKind::Resumed) => {
                self.counts.resumed.fetch_add(1, Ordering::Relaxed);
            }
            Some(_) => {
                self.counts.full.fetch_add(1, Ordering::Relaxed);
            }
            None => {}
        }
        if let Some(want) = &self.expect {
            let got = conn.peer_certificates().and_then(|c| c.first());
            if got.map(|c| c.as_ref()) != Some(want.as_slice()) {
                self.counts.wrong_cert.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// One request on a new connection.
    fn once(
        &self,
        cfg: &Arc<ClientConfig>,
        request: &[u8],
        buf: &mut Vec<u8>,
    ) -> Result<u64, String> {
        let (mut conn, mut sock) = self.open(cfg)?;
        let mut s = rustls::Stream::new(&mut conn, &mut sock);
        s.write_all(request).map_err(|e| format!("write: {e}"))?;
        let n = response(&mut s, buf)?;
        self.handshake(&conn);
        conn.send_close_notify();
        let _ = conn.write_tls(&mut sock);
        Ok(n)
    }

    fn run_thread(&self) {
        let conn_hdr = if self.args.mode == Mode::Bulk {
            "keep-alive"
        } else {
            "close"
        };
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: {conn_hdr}\r\n\r\n",
            self.args.path, self.args.sni
        )
        .into_bytes();
        let mut buf = Vec::with_capacity(32 * 1024);
        // Each thread resumes from its own ticket store: a shared one keeps at most 8
        // TLS 1.3 tickets per server, fewer than the threads taking them.
        let cfg = if self.args.mode == Mode::Resumed {
            let mut c = (*self.cfg).clone();
            c.resumption = rustls::client::Resumption::in_memory_sessions(16);
            Arc::new(c)
        } else {
            self.cfg.clone()
        };
        if self.args.mode != Mode::Bulk {
            while self.take() {
                match self.once(&cfg, &request, &mut buf) {
                    Ok(n) => {
                        self.counts.body_bytes.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(e) => self.counts.fail(e),
                }
            }
            return;
        }
        // Keep-alive: one connection, reopened only after a failure.
        let mut cur: Option<(ClientConnection, TcpStream)> = None;
        while self.take() {
            if cur.is_none() {
                match self.open(&cfg) {
                    Ok(c) => cur = Some(c),
                    Err(e) => {
                        self.counts.fail(e);
                        continue;
                    }
                }
            }
            let Some((conn, sock)) = cur.as_mut() else {
                continue;
            };
            let fresh = conn.is_handshaking();
            let mut s = rustls::Stream::new(conn, sock);
            let r = s
                .write_all(&request)
                .map_err(|e| format!("write: {e}"))
                .and_then(|()| response(&mut s, &mut buf));
            match r {
                Ok(n) => {
                    if fresh {
                        self.handshake(conn);
                    }
                    self.counts.body_bytes.fetch_add(n, Ordering::Relaxed);
                }
                Err(e) => {
                    self.counts.fail(e);
                    cur = None;
                }
            }
        }
        if let Some((mut conn, mut sock)) = cur {
            conn.send_close_notify();
            let _ = conn.write_tls(&mut sock);
        }
    }
}

fn main() {
    let args = Args::parse();
    if !(1..=256).contains(&args.clients) {
        die("--clients: 1 to 256".into());
    }
    if !(args.seconds > 0.0 && args.seconds <= 120.0) {
        die("--seconds: more than 0, at most 120".into());
    }
    let cfg = config(&args);
    let name = ServerName::try_from(args.sni.clone())
        .unwrap_or_else(|e| die(format!("--sni {}: {e}", args.sni)));
    let expect = args.expect_cert.as_ref().map(|p| {
        CertificateDer::from_pem_file(p)
            .unwrap_or_else(|e| die(format!("{}: {e}", p.display())))
            .as_ref()
            .to_vec()
    });
    let start = Instant::now();
    let job = Arc::new(Job {
        deadline: start + Duration::from_secs_f64(args.seconds),
        args,
        cfg,
        name,
        expect,
        counts: Counts::default(),
        stop: AtomicBool::new(false),
    });
    let threads: Vec<_> = (0..job.args.clients)
        .map(|_| {
            let j = job.clone();
            std::thread::spawn(move || j.run_thread())
        })
        .collect();
    for t in threads {
        if t.join().is_err() {
            job.counts.fail("a client thread panicked".into());
        }
    }
    let c = &job.counts;
    // Requests taken from the budget include the failed ones.
    let failed = c.failed.load(Ordering::Relaxed);
    let report = Report {
        mode: format!("{:?}", job.args.mode).to_lowercase(),
        key_type: format!("{:?}", job.args.key_type).to_lowercase(),
        clients: job.args.clients,
        seconds: start.elapsed().as_secs_f64(),
        requests: c.requests.load(Ordering::Relaxed).saturating_sub(failed),
        handshakes_full: c.full.load(Ordering::Relaxed),
        handshakes_resumed: c.resumed.load(Ordering::Relaxed),
        wrong_certificate: c.wrong_cert.load(Ordering::Relaxed),
        failed,
        body_bytes: c.body_bytes.load(Ordering::Relaxed),
        errors: c.errors.lock().map(|v| v.clone()).unwrap_or_default(),
    };
    match serde_json::to_string_pretty(&report) {
        Ok(j) => println!("{j}"),
        Err(e) => die(e.to_string()),
    }
}
