//! The engine against rustls's own buffered connections, in memory: versions, SNI,
//! ECDSA/RSA choice, ALPN, resumption on another worker's config, client
//! certificates, bad peers, bulk data both ways, and the engine as a client.

use std::sync::Arc;

use ring::digest::{Context, SHA256};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use super::*;
use crate::time::Instant;
use crate::tls::test_certs::{ca, clock, dir, ident};

const T0: Instant = Instant::from_secs(100);

fn profile() -> ServerProfile {
    ServerProfile {
        identities: vec![
            ident("s3.rouge.test"),
            ident("s3.rouge.test-rsa"),
            ident("admin.rouge.test"),
        ],
        alpn: vec!["http/1.1".into()],
        ..ServerProfile::default()
    }
}

fn server_cfg(p: &ServerProfile, c: &WallClock) -> TlsServerConfig {
    let keys = TicketKeys::new(c.clone(), 3600).unwrap();
    TlsServerConfig::new(p, keys, c.clone()).unwrap()
}

/// A verifier that offers only some signature schemes (to make the server choose).
#[derive(Debug)]
struct Schemes(Arc<WebPkiServerVerifier>, Vec<SignatureScheme>);

impl ServerCertVerifier for Schemes {
    fn verify_server_cert(
        &self,
        ee: &CertificateDer<'_>,
        im: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.0.verify_server_cert(ee, im, name, ocsp, now)
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(m, c, d)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(m, c, d)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.1.clone()
    }
}

#[derive(Clone)]
struct Peer {
    versions: Vec<&'static rustls::SupportedProtocolVersion>,
    alpn: Vec<&'static str>,
    schemes: Option<Vec<SignatureScheme>>,
    client_cert: Option<&'static str>,
    ca: &'static str,
    suites: Option<Vec<rustls::SupportedCipherSuite>>,
    extract: bool,
}

impl Default for Peer {
    fn default() -> Peer {
        Peer {
            versions: vec![&rustls::version::TLS13, &rustls::version::TLS12],
            alpn: vec![],
            schemes: None,
            client_cert: None,
            ca: "ca",
            suites: None,
            extract: false,
        }
    }
}

/// A rustls client configuration trusting `p.ca`, at the clock's time.
fn rustls_client(p: &Peer, c: &WallClock) -> Arc<ClientConfig> {
    let mut provider = (*config::provider()).clone();
    if let Some(s) = &p.suites {
        provider.cipher_suites = s.clone();
    }
    let provider = Arc::new(provider);
    let mut roots = RootCertStore::empty();
    let pem = std::fs::read(dir().join(format!("{}.crt", p.ca))).unwrap();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let v = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .unwrap();
    let schemes = p
        .schemes
        .clone()
        .unwrap_or_else(|| v.supported_verify_schemes());
    let b = ClientConfig::builder_with_details(provider, Arc::new(c.clone()))
        .with_protocol_versions(&p.versions)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Schemes(v, schemes)));
    let mut cfg = match p.client_cert {
        Some(n) => {
            let chain = CertificateDer::pem_file_iter(dir().join(format!("{n}.crt")))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let key = PrivateKeyDer::from_pem_file(dir().join(format!("{n}.key"))).unwrap();
            b.with_client_auth_cert(chain, key).unwrap()
        }
        None => b.with_no_client_auth(),
    };
    cfg.alpn_protocols = p.alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
    cfg.enable_secret_extraction = p.extract;
    Arc::new(cfg)
}

fn connect(cfg: &Arc<ClientConfig>, name: &str) -> ClientConnection {
    ClientConnection::new(cfg.clone(), ServerName::try_from(name.to_string()).unwrap()).unwrap()
}

/// Moves bytes both ways until neither side has anything to say; plaintext the server
/// receives is appended to `got`. The server's error, if any.
fn pump(c: &mut ClientConnection, s: &mut TlsSession, got: &mut Vec<u8>) -> Result<(), TlsError> {
    for _ in 0..10_000 {
        let mut moved = false;
        let mut wire = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut wire).unwrap();
        }
        let mut off = 0;
        let mut failed = None;
        while off < wire.len() {
            match s.feed_ciphertext(&wire[off..]) {
                Ok(n) => off += n,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
            got.extend_from_slice(s.plaintext());
            let k = s.plaintext().len();
            s.consume_plaintext(k);
            moved = true;
        }
        // Whatever the server says (an alert too) reaches the client.
        let out = s.pending_ciphertext().to_vec();
        s.consume_ciphertext(out.len());
        if !out.is_empty() {
            moved = true;
            let mut rd = &out[..];
            while !rd.is_empty() {
                c.read_tls(&mut rd).unwrap();
                if c.process_new_packets().is_err() {
                    // The client's alert reaches the server.
                    let mut wire = Vec::new();
                    while c.wants_write() {
                        c.write_tls(&mut wire).unwrap();
                    }
                    return match failed {
                        Some(e) => Err(e),
                        None => s.feed_ciphertext(&wire).map(|_| ()),
                    };
                }
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        if !moved {
            return Ok(());
        }
    }
    panic!("pump did not settle");
}

/// A full handshake of `peer` with SNI `name` against `cfg`; the open session.
fn handshake(
    cfg: &TlsServerConfig,
    peer: &Arc<ClientConfig>,
    name: &str,
) -> (ClientConnection, TlsSession) {
    let mut c = connect(peer, name);
    let mut s = TlsSession::server(cfg, T0).unwrap();
    pump(&mut c, &mut s, &mut Vec::new()).expect("handshake");
    assert!(!s.is_handshaking(), "server finished");
    assert!(!c.is_handshaking(), "client finished");
    assert!(s.take_handshake_done());
    assert!(!s.take_handshake_done(), "the edge is reported once");
    (c, s)
}

fn leaf_of(c: &ClientConnection) -> Vec<u8> {
    c.peer_certificates().unwrap()[0].to_vec()
}

#[test]
fn tls13_and_tls12_handshakes_carry_data_both_ways() {
    let clk = clock();
    let cfg = server_cfg(&profile(), &clk);
    for (v, want) in [
        (&rustls::version::TLS13, TlsVersion::V1_3),
        (&rustls::version::TLS12, TlsVersion::V1_2),
    ] {
        let peer = rustls_client(
            &Peer {
                versions: vec![v],
                ..Peer::default()
            },
            &clk,
        );
        let (mut c, mut s) = handshake(&cfg, &peer, "s3.rouge.test");
        assert_eq!(s.version(), Some(want));
        assert!(s.suite().unwrap().contains("GCM") || s.suite().unwrap().contains("CHACHA"));
        assert!(!s.resumed());
        assert_eq!(s.sni(), Some("s3.rouge.test"));
        use std::io::{Read, Write};
        c.writer().write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let mut got = Vec::new();
        pump(&mut c, &mut s, &mut got).unwrap();
        assert_eq!(got, b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(s.write_plaintext(b"HTTP/1.1 200 OK\r\n\r\n").unwrap(), 19);
        pump(&mut c, &mut s, &mut Vec::new()).unwrap();
        let mut buf = [0u8; 64];
        let n = c.reader().read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(s.bytes(), (19, 18));
        // close_notify both ways.
        s.close().unwrap();
        assert!(s.wants_write());
        c.send_close_notify();
        pump(&mut c, &mut s, &mut Vec::new()).unwrap();
        assert!(s.peer_closed());
        s.end_of_input().unwrap();
        assert_eq!(s.feed_ciphertext(b"after close").unwrap(), 11, "dropped");
        assert!(s.plaintext().is_empty());
    }
}

#[test]
fn min_version_13_refuses_a_tls12_client() {
    let clk = clock();
    let p = ServerProfile {
        min_version: TlsVersion::V1_3,
        ..profile()
    };
    let cfg = server_cfg(&p, &clk);
    let peer = rustls_client(
        &Peer {
            versions: vec![&rustls::version::TLS12],
            ..Peer::default()
        },
        &clk,
    );
    let mut c = connect(&peer, "s3.rouge.test");
    let mut s = TlsSession::server(&cfg, T0).unwrap();
    let e = pump(&mut c, &mut s, &mut Vec::new()).unwrap_err();
    assert_eq!(e.reason, TlsFailure::Incompatible);
    assert_eq!(e.alert_sent, Some(TlsAlert::PROTOCOL_VERSION));
    assert!(c.process_new_packets().is_err(), "client saw the alert");
}

#[test]
fn sni_selects_between_certificates_and_unknown_names_get_the_default() {
    let clk = clock();
    let cfg = server_cfg(&profile(), &clk);
    let peer = rustls_client(&Peer::default(), &clk);
    let s3 = ident("s3.rouge.test").chain()[0].to_vec();
    let admin = ident("admin.rouge.test").chain()[0].to_vec();
    let (c, s) = handshake(&cfg, &peer, "admin.rouge.test");
    assert_eq!(leaf_of(&c), admin);
    assert_eq!(s.certificate_index(), Some(2));
    let (c, s) = handshake(&cfg, &peer, "bucket.s3.rouge.test");
    assert_eq!(leaf_of(&c), s3, "wildcard");
    assert_eq!(s.sni(), Some("bucket.s3.rouge.test"));
    // An unknown name gets the default (first) certificate; the client then refuses
    // it for the wrong name, which is the client's business.
    let mut c = connect(&peer, "other.rouge.test");
    let mut s = TlsSession::server(&cfg, T0).unwrap();
    let r = pump(&mut c, &mut s, &mut Vec::new());
    assert_eq!(s.certificate_index(), Some(0));
    assert_eq!(s.sni(), Some("other.rouge.test"));
    let e = r
        .err()
        .or_else(|| s.error().cloned())
        .expect("client refused the name");
    assert_eq!(e.reason, TlsFailure::AlertReceived);
    assert_eq!(e.alert_received, Some(TlsAlert::BAD_CERTIFICATE));
}

#[test]
fn sni_required_refuses_unknown_names_with_an_alert() {
    let clk = clock();
    let p = ServerProfile {
        sni_required: true,
        ..profile()
    };
    let cfg = server_cfg(&p, &clk);
    let peer = rustls_client(&Peer::default(), &clk);
    let mut c = connect(&peer, "other.rouge.test");
    let mut s = TlsSession::server(&cfg, T0).unwrap();
    let e = pump(&mut c, &mut s, &mut Vec::new()).unwrap_err();
    assert_eq!(e.reason, TlsFailure::UnknownSni);
    assert_eq!(e.alert_sent, Some(TlsAlert::ACCESS_DENIED));
    match c.process_new_packets() {
        Err(rustls::Error::AlertReceived(a)) => assert_eq!(u8::from(a), 49),
        other => panic!("client: {other:?}"),
    }
    let mut counters = TlsCounters::default();
    counters.failure(&e);
    assert_eq!(counters.failed(TlsFailure::UnknownSni), 1);
    // Known names still work.
    handshake(&cfg, &peer, "s3.rouge.test");
}

#[test]
fn ecdsa_or_rsa_is_chosen_by_what_the_client_verifies() {
    let clk = clock();
    let cfg = server_cfg(&profile(), &clk);
    let ecdsa = ident("s3.rouge.test").chain()[0].to_vec();
    let rsa = ident("s3.rouge.test-rsa").chain()[0].to_vec();
    let rsa_only = vec![
        SignatureScheme::RSA_PSS_SHA256,
        SignatureScheme::RSA_PKCS1_SHA256,
        SignatureScheme::RSA_PSS_SHA384,
    ];
    for v in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let peer = rustls_client(
            &Peer {
                versions: vec![v],
                ..Peer::default()
            },
            &clk,
        );
        let (c, _) = handshake(&cfg, &peer, "s3.rouge.test");
        assert_eq!(leaf_of(&c), ecdsa, "ECDSA first when the client takes it");
        let peer = rustls_client(
            &Peer {
                versions: vec![v],
                schemes: Some(rsa_only.clone()),
                ..Peer::default()
            },
            &clk,
        );
        let (c, s) = handshake(&cfg, &peer, "s3.rouge.test");
        assert_eq!(leaf_of(&c), rsa, "RSA for an RSA-only client");
        assert_eq!(s.certificate_index(), Some(1));
        // Without SNI (an address): the default pair, chosen the same way.
        let peer_ip = rustls_client(
            &Peer {
                versions: vec![v],
                schemes: Some(rsa_only.clone()),
                ..Peer::default()
            },
            &clk,
        );
        let (c, s) = handshake(&cfg, &peer_ip, "198.18.1.100");
        assert_eq!(leaf_of(&c), rsa);
        assert_eq!(s.sni(), None);
    }
    // admin.rouge.test has only ECDSA: an RSA-only client is refused, counted.
    let peer = rustls_client(
        &Peer {
            schemes: Some(rsa_only),
            ..Peer::default()
        },
        &clk,
    );
    let mut c = connect(&peer, "admin.rouge.test");
    let mut s = TlsSession::server(&cfg, T0).unwrap();
    let e = pump(&mut c, &mut s, &mut Vec::new()).unwrap_err();
    assert_eq!(e.reason, TlsFailure::NoUsableCertificate);
}

#[test]
fn alpn_is_agreed_or_refused() {
    let clk = clock();
    let cfg = server_cfg(&profile(), &clk);
    let peer = rustls_client(
        &Peer {
            alpn: vec!["h2", "http/1.1"],
            ..Peer::default()
        },
        &clk,
    );
    let (c, s) = handshake(&cfg, &peer, "s3.rouge.test");
    assert_eq!(s.alpn(), Some(&b"http/1.1"[..]));
    assert_eq!(c.alpn_protocol(), Some(&b"http/1.1"[..]));
    let peer = rustls_client(&Peer::default(), &clk);
    let (_, s) = handshake(&cfg, &peer, "s3.rouge.test");
    assert_eq!(s.alpn(), None, "no ALPN offered, none agreed");
    let peer = rustls_client(
        &Peer {
            alpn: vec!["h2"],
            ..Peer::default()
        },
        &clk,
    );
    let mut c = connect(&peer, "s3.rouge.test");
    let mut s = TlsSession::server(&cfg, T0).unwrap();
    let e = pump(&mut c, &mut s, &mut Vec::new()).unwrap_err();
    assert_eq!(e.reason, TlsFailure::NoApplicationProtocol);
    assert_eq!(e.alert_sent, Some(TlsAlert::NO_APPLICATION_PROTOCOL));
}

#[test]
fn a_ticket_from_one_worker_resumes_on_another() {
    let clk = clock();
    let keys = TicketKeys::new(clk.clone(), 3600).unwrap();
    let w1 = TlsServerConfig::new(&profile(), keys.clone(), clk.clone()).unwrap();
    let w2 = w1.for_worker();
    // A separately built config sharing only the keys (another worker process-wide).
    let w3 = TlsServerConfig::new(&profile(), keys.clone(), clk.clone()).unwrap();
    // Keys of nobody else: the ticket does not open.
    let stranger = server_cfg(&profile(), &clk);
    for v in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let peer = rustls_client(
            &Peer {
                versions: vec![v],
                ..Peer::default()
            },
            &clk,
        );
        let (mut c, mut s) = handshake(&w1, &peer, "s3.rouge.test");
        // TLS 1.3 tickets come after the handshake: let the client read them.
        pump(&mut c, &mut s, &mut Vec::new()).unwrap();
        for w in [&w2, &w3] {
            let (_, s) = handshake(w, &peer, "s3.rouge.test");
            assert!(s.resumed(), "{v:?} resumed on another worker");
            let mut counters = TlsCounters::default();
            counters.handshake(&s);
            let i = if *v == rustls::version::TLS13 { 1 } else { 0 };
            assert_eq!(counters.resumed[i], 1);
        }
        let (_, s) = handshake(&stranger, &peer, "s3.rouge.test");
        assert!(!s.resumed(), "{v:?}: other keys give a full handshake");
    }
    // After two rotations the ticket's key is gone.
    let peer = rustls_client(&Peer::default(), &clk);
    let (mut c, mut s) = handshake(&w1, &peer, "s3.rouge.test");
    pump(&mut c, &mut s, &mut Vec::new()).unwrap();
    assert!(keys.rotate());
    let (_, s) = handshake(&w2, &peer, "s3.rouge.test");
    assert!(s.resumed(), "the previous key still opens tickets");
    let (mut c, mut s) = handshake(&w1, &peer, "s3.rouge.test");
    pump(&mut c, &mut s, &mut Vec::new()).unwrap();
    clk.set(clk.now() + 3 * 3600);
    let (_, s) = handshake(&w2, &peer, "s3.rouge.test");
    assert!(!s.resumed(), "expired");
    assert!(keys.rotations() >= 2);
}

#[test]
fn client_certificates_required_requested_and_refused() {
    let clk = clock();
    let req = ServerProfile {
        client_auth: ClientAuth::Require,
        client_ca: Some(ca("ca")),
        ..profile()
    };
    let cfg = server_cfg(&req, &clk);
    for v in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let peer = rustls_client(
            &Peer {
                versions: vec![v],
                client_cert: Some("client"),
                ..Peer::default()
            },
            &clk,
        );
        let (_, s) = handshake(&cfg, &peer, "s3.rouge.test");
        assert_eq!(
            s.peer_subject().as_deref(),
            Some("O=Rouge TEST ONLY,CN=ai-host-1.rouge.test")
        );
        // No certificate: refused.
        let peer = rustls_client(
            &Peer {
                versions: vec![v],
                ..Peer::default()
            },
            &clk,
        );
        let mut c = connect(&peer, "s3.rouge.test");
        let mut s = TlsSession::server(&cfg, T0).unwrap();
        let e = pump(&mut c, &mut s, &mut Vec::new()).unwrap_err();
        assert_eq!(e.reason, TlsFailure::ClientCertificateMissing, "{v:?}");
        assert!(e.alert_sent.is_some());
        // A certificate from another CA: refused.
        let peer = rustls_client(
            &Peer {
                versions: vec![v],
                client_cert: Some("other"),
                ..Peer::default()
            },
            &clk,
        );
        let mut c = connect(&peer, "s3.rouge.test");
        let mut s = TlsSession::server(&cfg, T0).unwrap();
        let e = pump(&mut c, &mut s, &mut Vec::new()).unwrap_err();
        assert_eq!(e.reason, TlsFailure::PeerCertificate, "{v:?}");
        assert_eq!(e.alert_sent, Some(TlsAlert::UNKNOWN_CA));
    }
    // `request`: no certificate is fine, a bad one is still refused.
    let p = ServerProfile {
        client_auth: ClientAuth::Request,
        ..req
    };
    let cfg = server_cfg(&p, &clk);
    let (_, s) = handshake(
        &cfg,
        &rustls_client(&Peer::default(), &clk),
        "s3.rouge.test",
    );
    assert_eq!(s.peer_subject(), None);
    let peer = rustls_client(
        &Peer {
            client_cert: Some("other"),
            ..Peer::default()
        },
        &clk,
    );
    let mut c = connect(&peer, "s3.rouge.test");
    let mut s = TlsSession::server(&cfg, T0).unwrap();
    assert_eq!(
        pump(&mut c, &mut s, &mut Vec::new()).unwrap_err().reason,
        TlsFailure::PeerCertificate
    );
}

fn client_hello(clk: &WallClock, peer: &Peer) -> Vec<u8> {
    let mut c = connect(&rustls_client(peer, clk), "s3.rouge.test");
    let mut wire = Vec::new();
    while c.wants_write() {
        c.write_tls(&mut wire).unwrap();
    }
    wire
}

#[test]
fn garbage_instead_of_a_client_hello_is_refused_with_an_alert() {
    let clk = clock();
    let cfg = server_cfg(&profile(), &clk);
    for junk in [
        &b"GET / HTTP/1.1\r\nHost: s3.rouge.test\r\n\r\n"[..],
        b"\x80\x2e\x01\x00\x02\x00\x15\x00\x00\x00\x10", // SSLv2 hello
        b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00",     // a ClientHello of nothing
        &[0u8; 64],
    ] {
        let mut s = TlsSession::server(&cfg, T0).unwrap();
        let e = s.feed_ciphertext(junk).unwrap_err();
        assert!(
            matches!(e.reason, TlsFailure::NotTls | TlsFailure::Decode),
            "{junk:?}: {e}"
        );
        assert!(e.alert_sent.is_some(), "{e}");
        assert_eq!(s.pending_ciphertext()[0], 0x15, "an alert record");
        assert_eq!(s.pending_ciphertext()[6], e.alert_sent.unwrap().0);
        // Every later call says the same, nothing panics.
        assert_eq!(s.feed_ciphertext(b"more").unwrap_err(), e);
        assert_eq!(s.write_plaintext(b"x").unwrap_err(), e);
    }
    let mut s = TlsSession::server(&cfg, T0).unwrap();
    let e = s.feed_ciphertext(b"GET / HTTP/1.1\r\n\r\n").unwrap_err();
    assert_eq!(e.reason, TlsFailure::NotTls);
}

#[test]
fn oversized_and_truncated_records_are_refused() {
    let clk = clock();
    let cfg = server_cfg(&profile(), &clk);
    // A header announcing 20,000 bytes: more than any record.
    let mut s = TlsSession::server(&cfg, T0).unwrap();
    let e = s
        .feed_ciphertext(&[0x16, 0x03, 0x01, 0x4e, 0x20])
        .unwrap_err();
    assert_eq!(e.reason, TlsFailure::RecordOverflow);
    // rustls answers an oversized header with decode_error (read back from the wire).
    assert_eq!(e.alert_sent, Some(TlsAlert::DECODE_ERROR));
    assert_eq!(s.pending_ciphertext()[..7], [0x15, 3, 3, 0, 2, 2, 50]);
    // The largest legal record length is taken in whole (and then judged).
    let mut s = TlsSession::server(&cfg, T0).unwrap();
    let mut big = vec![0x16, 0x03, 0x03, 0x48, 0x00];
    big.resize(5 + 0x4800, 0);
    let n = s.feed_ciphertext(&big).unwrap_or(big.len());
    assert_eq!(n, big.len());
    // Half a ClientHello, then the TCP peer closes.
    let hello = client_hello(&clk, &Peer::default());
    let mut s = TlsSession::server(&cfg, T0).unwrap();
    assert_eq!(
        s.feed_ciphertext(&hello[..hello.len() / 2]).unwrap(),
        hello.len() / 2
    );
    assert!(s.is_handshaking());
    let e = s.end_of_input().unwrap_err();
    assert_eq!(e.reason, TlsFailure::Truncated);
    // An established connection cut inside a record.
    let peer = rustls_client(&Peer::default(), &clk);
    let (mut c, mut s) = handshake(&cfg, &peer, "s3.rouge.test");
    pump(&mut c, &mut s, &mut Vec::new()).unwrap();
    use std::io::Write;
    c.writer().write_all(&[7u8; 1000]).unwrap();
    let mut wire = Vec::new();
    c.write_tls(&mut wire).unwrap();
    s.feed_ciphertext(&wire[..500]).unwrap();
    assert_eq!(s.end_of_input().unwrap_err().reason, TlsFailure::Truncated);
}

#[test]
fn a_client_hello_in_one_byte_segments_or_tiny_records_completes() {
    let clk = clock();
    let cfg = server_cfg(&profile(), &clk);
    let peer = rustls_client(&Peer::default(), &clk);
    let mut c = connect(&peer, "s3.rouge.test");
    let mut wire = Vec::new();
    while c.wants_write() {
        c.write_tls(&mut wire).unwrap();
    }
    let mut s = TlsSession::server(&cfg, T0).unwrap();
    for b in &wire {
        assert_eq!(s.feed_ciphertext(std::slice::from_ref(b)).unwrap(), 1);
    }
    assert!(s.wants_write(), "answered once whole");
    pump(&mut c, &mut s, &mut Vec::new()).unwrap();
    assert!(!s.is_handshaking());

    // The same hello cut into records of 7 bytes each.
    let hello = client_hello(&clk, &Peer::default());
    let body = &hello[5..];
    let mut tiny = Vec::new();
    for chunk in body.chunks(7) {
        tiny.extend_from_slice(&[0x16, 0x03, 0x01, 0, chunk.len() as u8]);
        tiny.extend_from_slice(chunk);
    }
    let mut s = TlsSession::server(&cfg, T0).unwrap();
    assert_eq!(s.feed_ciphertext(&tiny).unwrap(), tiny.len());
    assert!(
        s.wants_write(),
        "a ServerHello for a hello in {} records",
        body.len() / 7
    );
}

#[test]
fn a_slow_handshake_times_out() {
    let clk = clock();
    let cfg = server_cfg(&profile(), &clk);
    let mut s = TlsSession::server(&cfg, T0).unwrap();
    assert_eq!(s.write_plaintext(b"too early").unwrap(), 0);
    let deadline = s.poll_timeout().unwrap();
    assert_eq!(deadline, T0 + DEFAULT_HANDSHAKE_TIMEOUT);
    s.handle_timeout(Instant::from_nanos(deadline.as_nanos() - 1_000_000))
        .unwrap();
    let e = s.handle_timeout(deadline).unwrap_err();
    assert_eq!(e.reason, TlsFailure::HandshakeTimeout);
    assert_eq!(s.poll_timeout(), None);
    // A finished handshake has no deadline.
    let (_, s) = handshake(
        &cfg,
        &rustls_client(&Peer::default(), &clk),
        "s3.rouge.test",
    );
    assert_eq!(s.poll_timeout(), None);
}

/// Seals one TLS 1.2 AES-128-GCM record as the client would.
fn seal12(key: &[u8], iv: &[u8], seq: u64, typ: u8, plain: &[u8]) -> Vec<u8> {
    use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
    let k = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, key).unwrap());
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(iv);
    for (n, s) in nonce[4..].iter_mut().zip(seq.to_be_bytes()) {
        *n ^= s;
    }
    let mut aad = seq.to_be_bytes().to_vec();
    aad.extend_from_slice(&[typ, 3, 3]);
    aad.extend_from_slice(&(plain.len() as u16).to_be_bytes());
    let mut body = plain.to_vec();
    k.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(&aad),
        &mut body,
    )
    .unwrap();
    let mut rec = vec![typ, 3, 3];
    rec.extend_from_slice(&((8 + body.len()) as u16).to_be_bytes());
    rec.extend_from_slice(&nonce[4..]);
    rec.extend_from_slice(&body);
    rec
}

#[test]
fn renegotiation_is_refused_then_fatal() {
    let clk = clock();
    let cfg = server_cfg(&profile(), &clk);
    let suite = rustls::crypto::ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256;
    let p = Peer {
        versions: vec![&rustls::version::TLS12],
        suites: Some(vec![suite]),
        extract: true,
        ..Peer::default()
    };
    let (mut c, mut s) = handshake(&cfg, &rustls_client(&p, &clk), "s3.rouge.test");
    pump(&mut c, &mut s, &mut Vec::new()).unwrap();
    let secrets = c.dangerous_extract_secrets().unwrap();
    let (seq, rustls::ConnectionTrafficSecrets::Aes128Gcm { key, iv }) = secrets.tx else {
        panic!("AES-128-GCM expected");
    };
    // A real ClientHello handshake message, sent encrypted after the handshake.
    let hello = client_hello(&clk, &p);
    let msg = &hello[5..];
    let r1 = seal12(key.as_ref(), iv.as_ref(), seq, 0x16, msg);
    assert_eq!(s.feed_ciphertext(&r1).unwrap(), r1.len());
    assert!(
        s.error().is_none(),
        "the first attempt gets a no_renegotiation warning"
    );
    assert_eq!(s.pending_ciphertext()[0], 0x15, "an alert went out");
    let r2 = seal12(key.as_ref(), iv.as_ref(), seq + 1, 0x16, msg);
    let e = s.feed_ciphertext(&r2).unwrap_err();
    assert_eq!(e.reason, TlsFailure::Renegotiation);
}

/// Seals one TLS 1.3 AES-128-GCM record (inner content type `typ`) as the client would.
fn seal13(key: &[u8], iv: &[u8], seq: u64, typ: u8, plain: &[u8]) -> Vec<u8> {
    use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
    let k = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, key).unwrap());
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(iv);
    for (n, s) in nonce[4..].iter_mut().zip(seq.to_be_bytes()) {
        *n ^= s;
    }
    let mut body = plain.to_vec();
    body.push(typ);
    let len = (body.len() + 16) as u16;
    let mut rec = vec![0x17, 3, 3];
    rec.extend_from_slice(&len.to_be_bytes());
    k.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(&rec[..5]),
        &mut body,
    )
    .unwrap();
    rec.extend_from_slice(&body);
    rec
}

#[test]
fn a_client_hello_after_a_tls13_handshake_is_refused() {
    let clk = clock();
    let cfg = server_cfg(
        &ServerProfile {
            tls13_tickets: 0,
            ..profile()
        },
        &clk,
    );
    let suite = rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256;
    let p = Peer {
        versions: vec![&rustls::version::TLS13],
        suites: Some(vec![suite]),
        extract: true,
        ..Peer::default()
    };
    let (mut c, mut s) = handshake(&cfg, &rustls_client(&p, &clk), "s3.rouge.test");
    pump(&mut c, &mut s, &mut Vec::new()).unwrap();
    let secrets = c.dangerous_extract_secrets().unwrap();
    let (seq, rustls::ConnectionTrafficSecrets::Aes128Gcm { key, iv }) = secrets.tx else {
        panic!("AES-128-GCM expected");
    };
    // Application data sealed the same way gets through (the sealing is right)...
    let r = seal13(key.as_ref(), iv.as_ref(), seq, 0x17, b"hello");
    s.feed_ciphertext(&r).unwrap();
    assert_eq!(s.plaintext(), b"hello");
    // ...and a ClientHello is refused.
    let hello = client_hello(&clk, &p);
    let r = seal13(key.as_ref(), iv.as_ref(), seq + 1, 0x16, &hello[5..]);
    let e = s.feed_ciphertext(&r).unwrap_err();
    assert_eq!(e.reason, TlsFailure::Renegotiation);
    assert_eq!(e.alert_sent, Some(TlsAlert::UNEXPECTED_MESSAGE));
    // A record with a broken tag: bad_record_mac.
    let (mut c, mut s) = handshake(&cfg, &rustls_client(&p, &clk), "s3.rouge.test");
    pump(&mut c, &mut s, &mut Vec::new()).unwrap();
    let secrets = c.dangerous_extract_secrets().unwrap();
    let (seq, rustls::ConnectionTrafficSecrets::Aes128Gcm { key, iv }) = secrets.tx else {
        panic!("AES-128-GCM expected");
    };
    let mut r = seal13(key.as_ref(), iv.as_ref(), seq, 0x17, b"hello");
    *r.last_mut().unwrap() ^= 0x80;
    let e = s.feed_ciphertext(&r).unwrap_err();
    assert_eq!(e.reason, TlsFailure::BadRecordMac);
    assert_eq!(e.alert_sent, Some(TlsAlert::BAD_RECORD_MAC));
}

/// Deterministic bytes for the bulk test.
struct Stream(u64);

impl Stream {
    fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            let b = self.0.to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
    }
}

#[test]
fn sixty_four_mib_each_way_arrive_intact() {
    use std::io::{Read, Write};
    const TOTAL: usize = 64 << 20;
    let clk = clock();
    let cfg = server_cfg(&profile(), &clk);
    let (mut c, mut s) = handshake(
        &cfg,
        &rustls_client(&Peer::default(), &clk),
        "s3.rouge.test",
    );
    let (mut up_src, mut down_src) = (Stream(1), Stream(2));
    let (mut up_sent_h, mut up_got_h) = (Context::new(&SHA256), Context::new(&SHA256));
    let (mut down_sent_h, mut down_got_h) = (Context::new(&SHA256), Context::new(&SHA256));
    let (mut up_sent, mut up_got, mut down_sent, mut down_got) = (0, 0, 0, 0);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut pending_down: Vec<u8> = Vec::new();
    let mut wire = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut turns = 0;
    while up_got < TOTAL || down_got < TOTAL {
        turns += 1;
        assert!(turns < 100_000, "stuck at up {up_got} down {down_got}");
        // Client writes a chunk.
        if up_sent < TOTAL && !c.wants_write() {
            let n = chunk.len().min(TOTAL - up_sent);
            up_src.fill(&mut chunk[..n]);
            up_sent_h.update(&chunk[..n]);
            c.writer().write_all(&chunk[..n]).unwrap();
            up_sent += n;
        }
        wire.clear();
        while c.wants_write() {
            c.write_tls(&mut wire).unwrap();
        }
        let mut off = 0;
        while off < wire.len() {
            off += s.feed_ciphertext(&wire[off..]).unwrap();
            let p = s.plaintext();
            up_got_h.update(p);
            up_got += p.len();
            let k = p.len();
            s.consume_plaintext(k);
        }
        // Server writes its stream.
        if pending_down.is_empty() && down_sent < TOTAL {
            let n = chunk.len().min(TOTAL - down_sent);
            pending_down.resize(n, 0);
            down_src.fill(&mut pending_down);
            down_sent_h.update(&pending_down);
            down_sent += n;
        }
        loop {
            let n = s.write_plaintext(&pending_down).unwrap();
            pending_down.drain(..n);
            let out = s.pending_ciphertext();
            let len = out.len();
            let mut rd = out;
            while !rd.is_empty() {
                c.read_tls(&mut rd).unwrap();
                c.process_new_packets().unwrap();
                loop {
                    match c.reader().read(&mut buf) {
                        Ok(0) => break,
                        Ok(k) => {
                            down_got_h.update(&buf[..k]);
                            down_got += k;
                        }
                        Err(_) => break,
                    }
                }
            }
            s.consume_ciphertext(len);
            if n == 0 || pending_down.is_empty() {
                break;
            }
        }
    }
    assert_eq!((up_got, down_got), (TOTAL, TOTAL));
    assert_eq!(
        up_sent_h.finish().as_ref(),
        up_got_h.finish().as_ref(),
        "up intact"
    );
    assert_eq!(
        down_sent_h.finish().as_ref(),
        down_got_h.finish().as_ref(),
        "down intact"
    );
    assert_eq!(s.bytes(), (TOTAL as u64, TOTAL as u64));
    assert!(
        s.buffer_bytes() < 128 * 1024,
        "staging stayed bounded: {}",
        s.buffer_bytes()
    );
}

#[test]
fn plaintext_backpressure_stops_input_and_never_blocks_output() {
    use std::io::Write;
    let clk = clock();
    let cfg = server_cfg(&profile(), &clk);
    let (mut c, mut s) = handshake(
        &cfg,
        &rustls_client(&Peer::default(), &clk),
        "s3.rouge.test",
    );
    pump(&mut c, &mut s, &mut Vec::new()).unwrap();
    c.set_buffer_limit(None);
    c.writer().write_all(&vec![1u8; 200_000]).unwrap();
    let mut wire = Vec::new();
    while c.wants_write() {
        c.write_tls(&mut wire).unwrap();
    }
    // Nobody takes the plaintext: input stops after the high-water mark.
    let mut off = 0;
    loop {
        let n = s.feed_ciphertext(&wire[off..]).unwrap();
        if n == 0 {
            break;
        }
        off += n;
    }
    assert!(off < wire.len());
    assert!(s.plaintext().len() >= PLAINTEXT_HIGH);
    assert!(s.plaintext().len() <= PLAINTEXT_HIGH + MAX_WIRE_RECORD);
    // Writing the other way still works.
    assert_eq!(s.write_plaintext(b"still talking").unwrap(), 13);
    let held = s.plaintext().len();
    s.consume_plaintext(held);
    while off < wire.len() {
        off += s.feed_ciphertext(&wire[off..]).unwrap();
        let k = s.plaintext().len();
        s.consume_plaintext(k);
    }
    assert_eq!(s.bytes().1, 200_000);
}

// ---- the engine as a client ----

fn rustls_server(cert: &str, clk: &WallClock) -> Arc<rustls::ServerConfig> {
    let chain = CertificateDer::pem_file_iter(dir().join(format!("{cert}.crt")))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(dir().join(format!("{cert}.key"))).unwrap();
    let cfg = rustls::ServerConfig::builder_with_details(config::provider(), Arc::new(clk.clone()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    Arc::new(cfg)
}

/// Moves bytes between our client session and a rustls server until quiet.
fn pump_client(
    s: &mut TlsSession,
    srv: &mut rustls::ServerConnection,
    got: &mut Vec<u8>,
) -> Result<(), TlsError> {
    use std::io::Read;
    for _ in 0..10_000 {
        let mut moved = false;
        let out = s.pending_ciphertext().to_vec();
        s.consume_ciphertext(out.len());
        if !out.is_empty() {
            moved = true;
            let mut rd = &out[..];
            while !rd.is_empty() {
                srv.read_tls(&mut rd).unwrap();
                if srv.process_new_packets().is_err() {
                    break;
                }
            }
            let mut buf = [0u8; 4096];
            while let Ok(n) = srv.reader().read(&mut buf) {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
        }
        let mut wire = Vec::new();
        while srv.wants_write() {
            srv.write_tls(&mut wire).unwrap();
        }
        let mut off = 0;
        while off < wire.len() {
            match s.feed_ciphertext(&wire[off..]) {
                Ok(n) => off += n,
                Err(e) => {
                    // Our alert reaches the member.
                    let mut rd = s.pending_ciphertext();
                    while !rd.is_empty() {
                        srv.read_tls(&mut rd).unwrap();
                    }
                    return Err(e);
                }
            }
            moved = true;
        }
        if !moved {
            return Ok(());
        }
    }
    panic!("pump did not settle");
}

#[test]
fn as_a_client_it_verifies_members_against_the_ca_and_resumes() {
    use std::io::{Read, Write};
    let clk = clock();
    let profile = ClientProfile {
        ca: Some(ca("ca")),
        ..ClientProfile::default()
    };
    let cfg = TlsClientConfig::new(&profile, clk.clone()).unwrap();
    let member: std::net::IpAddr = "198.18.2.11".parse().unwrap();
    let server = rustls_server("member", &clk);
    for round in 0..2 {
        let mut srv = rustls::ServerConnection::new(server.clone()).unwrap();
        let mut s = TlsSession::client(&cfg, member, T0).unwrap();
        assert!(s.wants_write(), "ClientHello ready");
        pump_client(&mut s, &mut srv, &mut Vec::new()).unwrap();
        assert!(!s.is_handshaking());
        assert_eq!(s.resumed(), round == 1, "round {round}");
        assert_eq!(
            s.peer_subject().as_deref(),
            Some("O=Rouge TEST ONLY,CN=member.rouge.test")
        );
        assert_eq!(s.write_plaintext(b"ping").unwrap(), 4);
        let mut got = Vec::new();
        pump_client(&mut s, &mut srv, &mut got).unwrap();
        assert_eq!(got, b"ping");
        srv.writer().write_all(b"pong").unwrap();
        pump_client(&mut s, &mut srv, &mut Vec::new()).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(s.take_plaintext(&mut buf), 4);
        assert_eq!(&buf[..4], b"pong");
        let _ = srv.reader().read(&mut buf);
    }
    // The address not in the certificate: refused.
    let mut srv = rustls::ServerConnection::new(server.clone()).unwrap();
    let mut s = TlsSession::client(&cfg, "198.18.2.99".parse().unwrap(), T0).unwrap();
    let e = pump_client(&mut s, &mut srv, &mut Vec::new()).unwrap_err();
    assert_eq!(e.reason, TlsFailure::PeerCertificate);
    assert_eq!(e.alert_sent, Some(TlsAlert::BAD_CERTIFICATE));
}

#[test]
fn as_a_client_it_refuses_another_ca_unless_verification_is_off() {
    let clk = clock();
    let member: std::net::IpAddr = "198.18.2.11".parse().unwrap();
    let server = rustls_server("other", &clk);
    let profile = ClientProfile {
        ca: Some(ca("ca")),
        ..ClientProfile::default()
    };
    let cfg = TlsClientConfig::new(&profile, clk.clone()).unwrap();
    let mut srv = rustls::ServerConnection::new(server.clone()).unwrap();
    let mut s = TlsSession::client(&cfg, member, T0).unwrap();
    let e = pump_client(&mut s, &mut srv, &mut Vec::new()).unwrap_err();
    assert_eq!(e.reason, TlsFailure::PeerCertificate);
    assert_eq!(e.alert_sent, Some(TlsAlert::UNKNOWN_CA));
    match srv.process_new_packets() {
        Err(rustls::Error::AlertReceived(a)) => assert_eq!(u8::from(a), 48),
        other => panic!("member: {other:?}"),
    }
    // verify = false (written explicitly): accepted.
    let off = ClientProfile {
        verify: false,
        ..ClientProfile::default()
    };
    let cfg = TlsClientConfig::new(&off, clk.clone()).unwrap();
    let mut srv = rustls::ServerConnection::new(server).unwrap();
    let mut s = TlsSession::client(&cfg, member, T0).unwrap();
    pump_client(&mut s, &mut srv, &mut Vec::new()).unwrap();
    assert!(!s.is_handshaking());
    // verify = true without a CA is a configuration error naming the field.
    let e = TlsClientConfig::new(&ClientProfile::default(), clk).unwrap_err();
    assert!(e.to_string().contains("verify"), "{e}");
}

#[test]
fn configuration_errors_name_the_file() {
    let d = dir();
    let e = TlsIdentity::load(&d.join("s3.rouge.test.crt"), &d.join("member.key")).unwrap_err();
    assert!(matches!(e, TlsConfigError::KeyMismatch { .. }), "{e}");
    assert!(e.to_string().contains("member.key"), "{e}");
    let e = TlsIdentity::load(&d.join("nope.crt"), &d.join("member.key")).unwrap_err();
    assert!(e.to_string().contains("nope.crt"), "{e}");
    let e = TlsIdentity::load(&d.join("README.md"), &d.join("member.key")).unwrap_err();
    assert!(e.to_string().contains("README.md"), "{e}");
    let e = CaBundle::load(&d.join("member.key")).unwrap_err();
    assert!(e.to_string().contains("member.key"), "{e}");
    let id = ident("s3.rouge.test");
    assert!(id.covers("s3.rouge.test") && id.covers("x.s3.rouge.test"));
    assert!(!id.is_rsa() && ident("s3.rouge.test-rsa").is_rsa());
    let (nb, na) = id.validity().unwrap();
    assert!(na > nb + 3000 * 86_400, "ten years");
    let e = TlsServerConfig::new(
        &ServerProfile::default(),
        TicketKeys::new(clock(), 60).unwrap(),
        clock(),
    )
    .unwrap_err();
    assert_eq!(e, TlsConfigError::NoIdentity);
    let dbg = format!("{id:?} {:?}", TicketKeys::new(clock(), 60).unwrap());
    assert!(!dbg.contains("PRIVATE"), "{dbg}");
}

#[test]
fn ticket_keys_refuse_forgeries_and_unknown_names() {
    use rustls::server::ProducesTickets;
    let k = TicketKeys::new(clock(), 60).unwrap();
    let t = k.encrypt(b"session state").unwrap();
    assert_eq!(k.decrypt(&t).unwrap(), b"session state");
    let mut bad = t.clone();
    *bad.last_mut().unwrap() ^= 1;
    assert_eq!(k.decrypt(&bad), None, "tag");
    let mut bad = t.clone();
    bad[0] ^= 1;
    assert_eq!(k.decrypt(&bad), None, "key name");
    assert_eq!(k.decrypt(&t[..10]), None, "short");
    let t2 = k.encrypt(b"session state").unwrap();
    assert_ne!(t, t2, "fresh nonce each time");
    let other = TicketKeys::new(clock(), 60).unwrap();
    assert_eq!(other.decrypt(&t), None);
}
