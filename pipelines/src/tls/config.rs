//! TLS configurations: identities (certificate chain and key) loaded from PEM, CA
//! bundles, and the server and client configurations built from a profile, each with
//! the ring provider restricted to Rouge's policy (AEAD suites, X25519 and P-256).

use std::cell::RefCell;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::{ring as ring_provider, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{
    ClientHello, ResolvesServerCert, ServerSessionMemoryCache, WebPkiClientVerifier,
};
use rustls::sign::CertifiedKey;
use rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureAlgorithm,
    SignatureScheme, SupportedProtocolVersion,
};

use super::ticket::{TicketKeys, WallClock};
use super::x509;

/// The handshake timeout when a profile does not set one.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsVersion {
    /// TLS 1.2.
    V1_2,
    /// TLS 1.3.
    V1_3,
}

impl TlsVersion {
    /// `1.2` or `1.3`, as the configuration writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::V1_2 => "1.2",
            TlsVersion::V1_3 => "1.3",
        }
    }

    fn rustls(self) -> &'static [&'static SupportedProtocolVersion] {
        static BOTH: [&SupportedProtocolVersion; 2] =
            [&rustls::version::TLS13, &rustls::version::TLS12];
        static ONLY13: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
        match self {
            TlsVersion::V1_2 => &BOTH,
            TlsVersion::V1_3 => &ONLY13,
        }
    }
}

/// Whether the server asks clients for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// No client certificates.
    #[default]
    None,
    /// Asked for; a client without one is let in, one with a bad one is refused.
    Request,
    /// Required: a client without a valid certificate is refused.
    Require,
}

/// A configuration error: names the file (or field) and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsConfigError {
    /// A file could not be read.
    #[error("{file}: cannot read: {error}")]
    Read {
        /// The file.
        file: String,
        /// The system's words.
        error: String,
    },
    /// No PEM certificate in a certificate or CA file.
    #[error("{file}: no PEM certificate found (expected -----BEGIN CERTIFICATE-----)")]
    NoCertificate {
        /// The file.
        file: String,
    },
    /// No usable private key in a key file.
    #[error("{file}: no usable private key ({reason}); give a PEM PKCS#8, SEC1 or PKCS#1 key for ECDSA P-256/P-384 or RSA 2048+")]
    BadKey {
        /// The file.
        file: String,
        /// Why.
        reason: String,
    },
    /// The key does not belong to the certificate.
    #[error("{key}: this key does not match the certificate in {cert}; give the key the certificate was issued for")]
    KeyMismatch {
        /// The certificate file.
        cert: String,
        /// The key file.
        key: String,
    },
    /// A certificate rustls or webpki cannot use.
    #[error("{file}: {reason}")]
    BadCertificate {
        /// The file.
        file: String,
        /// Why.
        reason: String,
    },
    /// A server profile without certificates.
    #[error("certificates: a client TLS profile needs at least one {{ cert, key }}")]
    NoIdentity,
    /// Verification asked for without a CA bundle.
    #[error("{field}: verification needs a CA bundle; set `ca = \"PATH\"` (or `verify = false` explicitly)")]
    NoCa {
        /// The field that needs it.
        field: &'static str,
    },
    /// rustls refused the combination.
    #[error("tls profile: {0}")]
    Rustls(String),
}

fn read(path: &Path) -> Result<Vec<u8>, TlsConfigError> {
    std::fs::read(path).map_err(|e| TlsConfigError::Read {
        file: path.display().to_string(),
        error: e.to_string(),
    })
}

/// The crypto provider of Rouge's policy: ring, AEAD suites only (rustls offers no
/// others: AES-128/256-GCM and ChaCha20-Poly1305 for TLS 1.3 and ECDHE TLS 1.2), key
/// exchange X25519 and P-256.
pub(super) fn provider() -> Arc<CryptoProvider> {
    // Deprecated in late 0.23 only because ring has no post-quantum key exchange; the
    // issue asks for ring as the provider (aws-lc-rs is not built).
    #[allow(deprecated)]
    let mut p = ring_provider::default_provider();
    p.kx_groups = vec![
        ring_provider::kx_group::X25519,
        ring_provider::kx_group::SECP256R1,
    ];
    Arc::new(p)
}

/// A certificate chain and its private key, with the DNS names the leaf covers.
#[derive(Clone)]
pub struct TlsIdentity {
    key: Arc<CertifiedKey>,
    names: Vec<String>,
    label: String,
    validity: Option<(u64, u64)>,
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names and origin only: never key material.
        f.debug_struct("TlsIdentity")
            .field("label", &self.label)
            .field("names", &self.names)
            .field("rsa", &self.is_rsa())
            .finish()
    }
}

impl TlsIdentity {
    /// Loads a PEM chain (leaf first, the whole chain is served) and its PEM key; the
    /// key must match the leaf.
    pub fn load(cert: &Path, key: &Path) -> Result<TlsIdentity, TlsConfigError> {
        let (c, k) = (read(cert)?, read(key)?);
        Self::from_pem_named(
            &c,
            &k,
            &cert.display().to_string(),
            &key.display().to_string(),
        )
    }

    /// As [`TlsIdentity::load`], from PEM bytes; `label` names them in errors.
    pub fn from_pem(cert: &[u8], key: &[u8], label: &str) -> Result<TlsIdentity, TlsConfigError> {
        Self::from_pem_named(cert, key, label, label)
    }

    fn from_pem_named(
        cert: &[u8],
        key: &[u8],
        cert_file: &str,
        key_file: &str,
    ) -> Result<TlsIdentity, TlsConfigError> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert)
            .collect::<Result<_, _>>()
            .map_err(|e| TlsConfigError::BadCertificate {
                file: cert_file.into(),
                reason: format!("bad PEM: {e}"),
            })?;
        if chain.is_empty() {
            return Err(TlsConfigError::NoCertificate {
                file: cert_file.into(),
            });
        }
        let der = PrivateKeyDer::from_pem_slice(key).map_err(|e| TlsConfigError::BadKey {
            file: key_file.into(),
            reason: e.to_string(),
        })?;
        let p = provider();
        let signer = p
            .key_provider
            .load_private_key(der)
            .map_err(|e| TlsConfigError::BadKey {
                file: key_file.into(),
                reason: e.to_string(),
            })?;
        let certified = CertifiedKey::new(chain, signer);
        match certified.keys_match() {
            Ok(()) => {}
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
                return Err(TlsConfigError::KeyMismatch {
                    cert: cert_file.into(),
                    key: key_file.into(),
                })
            }
            Err(e) => {
                return Err(TlsConfigError::BadCertificate {
                    file: cert_file.into(),
                    reason: e.to_string(),
                })
            }
        }
        let leaf = &certified.cert[0];
        let ee =
            webpki::EndEntityCert::try_from(leaf).map_err(|e| TlsConfigError::BadCertificate {
                file: cert_file.into(),
                reason: format!("not a usable X.509 certificate: {e}"),
            })?;
        let names = ee
            .valid_dns_names()
            .map(|n| n.to_ascii_lowercase())
            .collect();
        let validity = x509::validity(leaf);
        Ok(TlsIdentity {
            key: Arc::new(certified),
            names,
            label: cert_file.into(),
            validity,
        })
    }

    /// The DNS names of the leaf (wildcards as `*.example`), lower case.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// True when the leaf covers `name` (exactly, or by a wildcard for one label).
    pub fn covers(&self, name: &str) -> bool {
        self.names.iter().any(|n| name_matches(n, name))
    }

    /// True for an RSA key (else ECDSA or EdDSA).
    pub fn is_rsa(&self) -> bool {
        self.key.key.algorithm() == SignatureAlgorithm::RSA
    }

    /// The leaf's validity period (notBefore, notAfter) in UNIX seconds.
    pub fn validity(&self) -> Option<(u64, u64)> {
        self.validity
    }

    /// Where it was loaded from.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The chain, leaf first, DER.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.key.cert
    }
}

/// `pattern` (a certificate name, maybe `*.x`) against `name` (from SNI), ignoring
/// ASCII case and a trailing dot.
fn name_matches(pattern: &str, name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    if let Some(suffix) = pattern.strip_prefix("*.") {
        match name.split_once('.') {
            Some((label, rest)) => !label.is_empty() && rest.eq_ignore_ascii_case(suffix),
            None => false,
        }
    } else {
        pattern.eq_ignore_ascii_case(name)
    }
}

/// Trust anchors for verifying peers.
#[derive(Clone)]
pub struct CaBundle {
    roots: Arc<RootCertStore>,
}

impl fmt::Debug for CaBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CaBundle({} anchors)", self.roots.len())
    }
}

impl CaBundle {
    /// Loads every certificate of a PEM file.
    pub fn load(path: &Path) -> Result<CaBundle, TlsConfigError> {
        Self::from_pem(&read(path)?, &path.display().to_string())
    }

    /// As [`CaBundle::load`], from PEM bytes; `label` names them in errors.
    pub fn from_pem(pem: &[u8], label: &str) -> Result<CaBundle, TlsConfigError> {
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(pem) {
            let c = c.map_err(|e| TlsConfigError::BadCertificate {
                file: label.into(),
                reason: format!("bad PEM: {e}"),
            })?;
            roots.add(c).map_err(|e| TlsConfigError::BadCertificate {
                file: label.into(),
                reason: format!("not a usable CA certificate: {e}"),
            })?;
        }
        if roots.is_empty() {
            return Err(TlsConfigError::NoCertificate { file: label.into() });
        }
        Ok(CaBundle {
            roots: Arc::new(roots),
        })
    }
}

/// What a client TLS profile (clients to the appliance) says.
#[derive(Debug, Clone)]
pub struct ServerProfile {
    /// Certificates, the first one (and any with the same names) the default.
    pub identities: Vec<TlsIdentity>,
    /// Lowest version accepted.
    pub min_version: TlsVersion,
    /// ALPN protocols offered, in preference order (empty: no ALPN).
    pub alpn: Vec<String>,
    /// Refuse clients whose SNI names no certificate (else: the default certificate).
    pub sni_required: bool,
    /// Client certificates.
    pub client_auth: ClientAuth,
    /// Trust anchors for client certificates (needed unless `client_auth` is none).
    pub client_ca: Option<CaBundle>,
    /// TLS 1.3 tickets sent after each full handshake (0: no TLS 1.3 resumption).
    pub tls13_tickets: usize,
    /// Per-worker cache of TLS 1.2 session IDs (0: none; tickets still work).
    pub session_cache: usize,
    /// How long a handshake may take.
    pub handshake_timeout: Duration,
}

impl Default for ServerProfile {
    fn default() -> ServerProfile {
        ServerProfile {
            identities: Vec::new(),
            min_version: TlsVersion::V1_2,
            alpn: Vec::new(),
            sni_required: false,
            client_auth: ClientAuth::None,
            client_ca: None,
            tls13_tickets: 2,
            session_cache: 1024,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }
}

/// What the certificate resolver decided for the last ClientHello on this thread
/// (rustls's unbuffered server does not expose the SNI; the resolver is called, on the
/// worker's own thread, from inside the session's `process_tls_records`).
#[derive(Debug, Clone)]
pub(super) struct HelloSeen {
    pub sni: Option<Box<str>>,
    pub pick: Pick,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pick {
    Chosen(usize),
    UnknownSni,
    NoUsableKey,
}

thread_local! {
    static LAST_HELLO: RefCell<Option<HelloSeen>> = const { RefCell::new(None) };
}

/// Takes what the resolver recorded for the ClientHello just processed on this thread.
pub(super) fn take_hello() -> Option<HelloSeen> {
    LAST_HELLO.with(|h| h.borrow_mut().take())
}

/// Chooses a certificate by SNI and by what the client can verify.
#[derive(Debug)]
struct Resolver {
    ids: Vec<TlsIdentity>,
    /// Indices of the default certificates (those with the first one's names).
    defaults: Vec<usize>,
    sni_required: bool,
}

impl Resolver {
    fn pick(&self, sni: Option<&str>, schemes: &[SignatureScheme]) -> Pick {
        let usable = |i: &usize| self.ids[*i].key.key.choose_scheme(schemes).is_some();
        if let Some(name) = sni {
            let mut named = (0..self.ids.len())
                .filter(|&i| self.ids[i].covers(name))
                .peekable();
            if named.peek().is_some() {
                return named.find(usable).map_or(Pick::NoUsableKey, Pick::Chosen);
            }
            if self.sni_required {
                return Pick::UnknownSni;
            }
        }
        self.defaults
            .iter()
            .copied()
            .find(usable)
            .map_or(Pick::NoUsableKey, Pick::Chosen)
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let sni = hello.server_name();
        let pick = self.pick(sni, hello.signature_schemes());
        LAST_HELLO.with(|h| {
            *h.borrow_mut() = Some(HelloSeen {
                sni: sni.map(Into::into),
                pick,
            })
        });
        match pick {
            Pick::Chosen(i) => Some(Arc::clone(&self.ids[i].key)),
            _ => None,
        }
    }
}

/// A worker's server-side TLS configuration, built from a [`ServerProfile`]. Workers
/// share the certificates and the ticket keys; each has its own TLS 1.2 session cache
/// ([`TlsServerConfig::for_worker`]).
#[derive(Clone)]
pub struct TlsServerConfig {
    pub(super) rustls: Arc<ServerConfig>,
    pub(super) handshake_timeout: Duration,
    session_cache: usize,
    identities: Arc<Vec<TlsIdentity>>,
    tickets: Arc<TicketKeys>,
}

impl fmt::Debug for TlsServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsServerConfig")
            .field("identities", &self.identities)
            .finish()
    }
}

impl TlsServerConfig {
    /// Builds the configuration; tickets are sealed with `tickets` (shared by every
    /// worker), certificates and tickets checked against `clock`.
    pub fn new(
        profile: &ServerProfile,
        tickets: Arc<TicketKeys>,
        clock: WallClock,
    ) -> Result<TlsServerConfig, TlsConfigError> {
        if profile.identities.is_empty() {
            return Err(TlsConfigError::NoIdentity);
        }
        let p = provider();
        let verifier: Arc<dyn ClientCertVerifier> = match profile.client_auth {
            ClientAuth::None => WebPkiClientVerifier::no_client_auth(),
            auth => {
                let ca = profile.client_ca.as_ref().ok_or(TlsConfigError::NoCa {
                    field: "client_auth",
                })?;
                let b = WebPkiClientVerifier::builder_with_provider(
                    Arc::clone(&ca.roots),
                    Arc::clone(&p),
                );
                let b = if auth == ClientAuth::Request {
                    b.allow_unauthenticated()
                } else {
                    b
                };
                b.build()
                    .map_err(|e| TlsConfigError::Rustls(format!("client_ca: {e}")))?
            }
        };
        let first = &profile.identities[0];
        let defaults = (0..profile.identities.len())
            .filter(|&i| profile.identities[i].names == first.names)
            .collect();
        let resolver = Arc::new(Resolver {
            ids: profile.identities.clone(),
            defaults,
            sni_required: profile.sni_required,
        });
        let mut cfg = ServerConfig::builder_with_details(p, Arc::new(clock))
            .with_protocol_versions(profile.min_version.rustls())
            .map_err(|e| TlsConfigError::Rustls(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(resolver);
        cfg.alpn_protocols = profile.alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
        cfg.ticketer = Arc::clone(&tickets) as Arc<dyn rustls::server::ProducesTickets>;
        cfg.send_tls13_tickets = profile.tls13_tickets;
        cfg.max_early_data_size = 0;
        cfg.ignore_client_order = true;
        cfg.session_storage = session_storage(profile.session_cache);
        Ok(TlsServerConfig {
            rustls: Arc::new(cfg),
            handshake_timeout: profile.handshake_timeout,
            session_cache: profile.session_cache,
            identities: Arc::new(profile.identities.clone()),
            tickets,
        })
    }

    /// The same configuration for another worker: shared certificates and ticket keys,
    /// its own TLS 1.2 session cache.
    pub fn for_worker(&self) -> TlsServerConfig {
        let mut cfg = (*self.rustls).clone();
        cfg.session_storage = session_storage(self.session_cache);
        TlsServerConfig {
            rustls: Arc::new(cfg),
            handshake_timeout: self.handshake_timeout,
            session_cache: self.session_cache,
            identities: Arc::clone(&self.identities),
            tickets: Arc::clone(&self.tickets),
        }
    }

    /// The ticket keys (shared by every worker), for their counters.
    pub fn ticket_keys(&self) -> &TicketKeys {
        &self.tickets
    }

    /// The certificates, in profile order.
    pub fn identities(&self) -> &[TlsIdentity] {
        &self.identities
    }
}

/// A worker's cache of TLS 1.2 session IDs (`n` 0: none).
fn session_storage(n: usize) -> Arc<dyn rustls::server::StoresServerSessions> {
    if n == 0 {
        Arc::new(rustls::server::NoServerSessionStorage {})
    } else {
        ServerSessionMemoryCache::new(n)
    }
}

/// What a server TLS profile (the appliance to members) says.
#[derive(Debug, Clone)]
pub struct ClientProfile {
    /// Trust anchors (needed when `verify`).
    pub ca: Option<CaBundle>,
    /// Verify the member's certificate (`false` only when written explicitly).
    pub verify: bool,
    /// Name sent as SNI and verified (default: none for an address; the address is
    /// verified against the certificate's IP names).
    pub server_name: Option<String>,
    /// ALPN protocols offered.
    pub alpn: Vec<String>,
    /// Lowest version accepted.
    pub min_version: TlsVersion,
    /// A client certificate to present, if any.
    pub identity: Option<TlsIdentity>,
    /// Sessions remembered per worker for resumption (0: none).
    pub session_cache: usize,
    /// How long a handshake may take.
    pub handshake_timeout: Duration,
}

impl Default for ClientProfile {
    fn default() -> ClientProfile {
        ClientProfile {
            ca: None,
            verify: true,
            server_name: None,
            alpn: Vec::new(),
            min_version: TlsVersion::V1_2,
            identity: None,
            session_cache: 256,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }
}

/// Accepts any certificate but still checks the handshake signatures (`verify =
/// false`).
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Presents one client certificate whenever asked.
#[derive(Debug)]
struct ClientCert(Arc<CertifiedKey>);

impl ResolvesClientCert for ClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.0
            .key
            .choose_scheme(sigschemes)
            .map(|_| Arc::clone(&self.0))
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A worker's client-side TLS configuration (toward members), with its own session
/// cache.
#[derive(Clone)]
pub struct TlsClientConfig {
    pub(super) rustls: Arc<ClientConfig>,
    pub(super) server_name: Option<ServerName<'static>>,
    pub(super) handshake_timeout: Duration,
}

impl fmt::Debug for TlsClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClientConfig")
            .field("server_name", &self.server_name)
            .finish()
    }
}

impl TlsClientConfig {
    /// Builds the configuration; certificates are checked against `clock`.
    pub fn new(
        profile: &ClientProfile,
        clock: WallClock,
    ) -> Result<TlsClientConfig, TlsConfigError> {
        let p = provider();
        let builder = ClientConfig::builder_with_details(Arc::clone(&p), Arc::new(clock))
            .with_protocol_versions(profile.min_version.rustls())
            .map_err(|e| TlsConfigError::Rustls(e.to_string()))?;
        let builder = if profile.verify {
            let ca = profile
                .ca
                .as_ref()
                .ok_or(TlsConfigError::NoCa { field: "verify" })?;
            let v =
                WebPkiServerVerifier::builder_with_provider(Arc::clone(&ca.roots), Arc::clone(&p))
                    .build()
                    .map_err(|e| TlsConfigError::Rustls(format!("ca: {e}")))?;
            builder.with_webpki_verifier(v)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(Arc::clone(&p))))
        };
        let mut cfg = match &profile.identity {
            Some(id) => {
                builder.with_client_cert_resolver(Arc::new(ClientCert(Arc::clone(&id.key))))
            }
            None => builder.with_no_client_auth(),
        };
        cfg.alpn_protocols = profile.alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
        cfg.resumption = if profile.session_cache == 0 {
            rustls::client::Resumption::disabled()
        } else {
            rustls::client::Resumption::in_memory_sessions(profile.session_cache)
        };
        let server_name = match &profile.server_name {
            Some(n) => Some(
                ServerName::try_from(n.clone())
                    .map_err(|e| TlsConfigError::Rustls(format!("server_name \"{n}\": {e}")))?,
            ),
            None => None,
        };
        Ok(TlsClientConfig {
            rustls: Arc::new(cfg),
            server_name,
            handshake_timeout: profile.handshake_timeout,
        })
    }

    /// The same configuration for another worker, with its own session cache.
    pub fn for_worker(&self, session_cache: usize) -> TlsClientConfig {
        let mut cfg = (*self.rustls).clone();
        cfg.resumption = if session_cache == 0 {
            rustls::client::Resumption::disabled()
        } else {
            rustls::client::Resumption::in_memory_sessions(session_cache)
        };
        TlsClientConfig {
            rustls: Arc::new(cfg),
            server_name: self.server_name.clone(),
            handshake_timeout: self.handshake_timeout,
        }
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn wildcards_cover_one_label_only() {
        assert!(name_matches("*.s3.rouge.test", "bucket.s3.rouge.test"));
        assert!(name_matches("*.s3.rouge.test", "BUCKET.S3.rouge.test."));
        assert!(!name_matches("*.s3.rouge.test", "a.b.s3.rouge.test"));
        assert!(!name_matches("*.s3.rouge.test", "s3.rouge.test"));
        assert!(!name_matches("*.s3.rouge.test", ".s3.rouge.test"));
        assert!(name_matches("s3.rouge.test", "S3.Rouge.Test"));
        assert!(!name_matches("s3.rouge.test", "x3.rouge.test"));
    }
}
