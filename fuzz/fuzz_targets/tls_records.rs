//! Arbitrary TLS records into a server-side and a client-side session of Rouge's TLS
//! engine, as a sequence of operations (feed bytes, write plaintext, take plaintext,
//! take ciphertext, time steps, end of input, close). It must never panic; every
//! error must carry a reason; the staging must stay bounded.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rouge_pipelines::tls::{
    CaBundle, ClientProfile, ServerProfile, TicketKeys, TlsClientConfig, TlsIdentity,
    TlsServerConfig, TlsSession, WallClock,
};
use rouge_pipelines::Instant;

const CERT: &[u8] = include_bytes!("../../appliance/configs/tls/s3.rouge.test.crt");
const KEY: &[u8] = include_bytes!("../../appliance/configs/tls/s3.rouge.test.key");
const CA: &[u8] = include_bytes!("../../appliance/configs/tls/ca.crt");

fn configs() -> &'static (TlsServerConfig, TlsClientConfig) {
    static C: OnceLock<(TlsServerConfig, TlsClientConfig)> = OnceLock::new();
    C.get_or_init(|| {
        let id = TlsIdentity::from_pem(CERT, KEY, "s3.rouge.test").unwrap();
        let clock = WallClock::at(id.validity().unwrap().0 + 3600);
        let p = ServerProfile { identities: vec![id], alpn: vec!["http/1.1".into()], ..ServerProfile::default() };
        let keys = TicketKeys::new(clock.clone(), 3600).unwrap();
        let s = TlsServerConfig::new(&p, keys, clock.clone()).unwrap();
        let cp = ClientProfile { ca: Some(CaBundle::from_pem(CA, "ca").unwrap()), ..ClientProfile::default() };
        let c = TlsClientConfig::new(&cp, clock).unwrap();
        (s, c)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut ops)) = data.split_first() else { return };
    let (scfg, ccfg) = configs();
    let mut now = Instant::from_secs(1);
    let mut s = if mode & 1 == 0 {
        TlsSession::server(scfg, now).unwrap()
    } else {
        TlsSession::client(ccfg, "198.18.2.11".parse().unwrap(), now).unwrap()
    };
    let mut out = [0u8; 4096];
    while let Some((&op, rest)) = ops.split_first() {
        ops = rest;
        let r = match op % 8 {
            // Feed the next 0..=255 bytes (or all that is left).
            0 | 1 | 2 => {
                let n = ops.first().map_or(0, |&b| b as usize);
                ops = ops.get(1..).unwrap_or(&[]);
                let n = n.min(ops.len());
                let (chunk, rest) = ops.split_at(n);
                ops = rest;
                s.feed_ciphertext(chunk).map(|k| assert!(k <= chunk.len()))
            }
            3 => s.write_plaintext(b"GET / HTTP/1.1\r\n\r\n").map(|_| ()),
            4 => {
                s.take_plaintext(&mut out);
                s.ciphertext_to_send(&mut out);
                Ok(())
            }
            5 => {
                now = now + std::time::Duration::from_secs(u64::from(op >> 3));
                s.handle_timeout(now)
            }
            6 => s.end_of_input(),
            _ => s.close(),
        };
        if let Err(e) = r {
            assert!(!e.reason.as_str().is_empty());
            assert_eq!(s.error(), Some(&e));
        }
        assert!(s.buffer_bytes() < 512 * 1024, "staging bounded");
    }
});
