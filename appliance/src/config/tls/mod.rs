//! The TLS part of the configuration: `[[tls_profile]]` tables and their checks, the
//! certificates, keys and CA bundles they name (read once each time the file is read,
//! relative paths resolved against the file's directory), the warnings of `rouge
//! check`, and the TLS configurations of standard virtual servers, built with the state
//! that outlives snapshots ([`TlsRuntime`]: ticket keys by profile, the wall clock).
//!
//! Key material never leaves the loaded identities: errors, warnings, `show` and `config
//! save` name files only.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde::{Deserialize, Serialize};

use rouge_pipelines::tls::{
    CaBundle, ClientAuth, ClientProfile, ServerProfile, TicketKeys, TlsClientConfig,
    TlsConfigError, TlsIdentity, TlsServerConfig, TlsVersion, WallClock, DEFAULT_HANDSHAKE_TIMEOUT,
};

use super::model::{Config, VirtualType};
use super::validate::{Checker, Problem};
use super::FieldPath;

mod review;
mod runtime;

pub use review::{date, review, unix_now, Review, EXPIRY_WARNING_SECS};
pub(in crate::config) use runtime::Built;
pub use runtime::TlsRuntime;

/// Ticket key rotation period when a profile does not set one (a ticket lives one to
/// two periods).
pub const DEFAULT_TICKET_ROTATION_SECS: u64 = 3600;
/// Per-worker TLS 1.2 session-ID cache of a profile used as `client_tls`.
pub const DEFAULT_SERVER_SESSION_CACHE: usize = 1024;
/// Per-worker session cache of a profile used as `server_tls`.
pub const DEFAULT_CLIENT_SESSION_CACHE: usize = 256;
/// Largest certificate, key or CA file read (a PEM bundle of many CAs fits).
const MAX_PEM_FILE: u64 = 4 << 20;

/// A certificate chain and its key: `{ cert = "PATH", key = "PATH" }`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertKeyCfg {
    /// PEM certificate chain, leaf first (the whole chain is served).
    pub cert: String,
    /// PEM private key of the leaf (PKCS#8, SEC1 or PKCS#1).
    pub key: String,
}

/// Lowest TLS version a profile accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum MinVersion {
    /// TLS 1.2 and 1.3.
    #[default]
    #[serde(rename = "1.2")]
    V1_2,
    /// TLS 1.3 only.
    #[serde(rename = "1.3")]
    V1_3,
}

/// Client certificates asked for by a `client_tls` profile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuthCfg {
    /// Not asked for.
    #[default]
    None,
    /// Asked for; clients without one are let in, a bad one is refused.
    Request,
    /// Required: clients without a valid one are refused.
    Require,
}

/// A TLS profile (`[[tls_profile]]`), named by standard virtual servers' `client_tls`
/// (clients to the appliance: the profile's certificates) and `server_tls` (the
/// appliance to members: the profile's `ca`, `verify`, `server_name`). One profile may
/// serve both sides; fields of the other side are not used. Paths are resolved against
/// the directory of the configuration file when it is read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsProfileCfg {
    /// Name the virtual servers use.
    pub name: String,
    /// client side: certificates chosen by SNI among their names (the first one, and
    /// those with the same names, for clients without SNI or with an unknown name); an
    /// ECDSA and an RSA certificate for the same names are chosen by what the client
    /// supports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<CertKeyCfg>,
    /// Lowest version: `"1.2"` (default) or `"1.3"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_version: Option<MinVersion>,
    /// ALPN protocols offered, in preference order, e.g. `["http/1.1"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alpn: Vec<String>,
    /// client side: refuse clients whose SNI names no certificate (default false: they
    /// get the default certificate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni_required: Option<bool>,
    /// client side: seconds between ticket key rotations (default 3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_rotation_secs: Option<u64>,
    /// 0-RTT early data: only `false` (the default) until Rouge parses HTTP, since 0-RTT
    /// may be replayed and is safe only for idempotent requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_data: Option<bool>,
    /// client side: `"none"` (default), `"request"` or `"require"` client certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_auth: Option<ClientAuthCfg>,
    /// client side: CA bundle (PEM) that client certificates must chain to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<String>,
    /// server side: CA bundle (PEM) members' certificates must chain to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    /// server side: verify members' certificates (default true; `false` must be written
    /// and `rouge check` warns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<bool>,
    /// server side: the name sent as SNI and verified (default: none, the member's
    /// address is verified against the certificate's IP names). On a client side
    /// profile: the name clients ask for (`rouge check` warns when no certificate
    /// covers it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Sessions remembered per worker: TLS 1.2 session IDs on the client side (default
    /// 1024; tickets need none), sessions to resume with members on the server side
    /// (default 256); 0: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_cache: Option<usize>,
    /// Milliseconds a handshake may take (default 10000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handshake_timeout_ms: Option<u64>,
    /// server side: a client certificate to present to members that ask for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertKeyCfg>,
}

impl TlsProfileCfg {
    /// Every path the profile names, for resolution.
    fn paths_mut(&mut self) -> impl Iterator<Item = &mut String> {
        self.certificates
            .iter_mut()
            .chain(self.certificate.as_mut())
            .flat_map(|c| [&mut c.cert, &mut c.key])
            .chain(self.client_ca.as_mut())
            .chain(self.ca.as_mut())
    }

    fn version(&self) -> TlsVersion {
        match self.min_version.unwrap_or_default() {
            MinVersion::V1_2 => TlsVersion::V1_2,
            MinVersion::V1_3 => TlsVersion::V1_3,
        }
    }

    fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout_ms
            .map_or(DEFAULT_HANDSHAKE_TIMEOUT, Duration::from_millis)
    }

    /// The ticket key rotation period in seconds.
    pub fn rotation_secs(&self) -> u64 {
        self.ticket_rotation_secs
            .unwrap_or(DEFAULT_TICKET_ROTATION_SECS)
    }

    /// True unless `verify = false` is written.
    pub fn verifies(&self) -> bool {
        self.verify != Some(false)
    }

    /// What the engine needs for the client side; `None` without certificates.
    fn server_profile(&self, l: &LoadedProfile) -> Option<ServerProfile> {
        if l.identities.is_empty() {
            return None;
        }
        Some(ServerProfile {
            identities: l.identities.clone(),
            min_version: self.version(),
            alpn: self.alpn.clone(),
            sni_required: self.sni_required.unwrap_or(false),
            client_auth: match self.client_auth.unwrap_or_default() {
                ClientAuthCfg::None => ClientAuth::None,
                ClientAuthCfg::Request => ClientAuth::Request,
                ClientAuthCfg::Require => ClientAuth::Require,
            },
            client_ca: l.client_ca.clone(),
            session_cache: self.session_cache.unwrap_or(DEFAULT_SERVER_SESSION_CACHE),
            handshake_timeout: self.handshake_timeout(),
            ..ServerProfile::default()
        })
    }

    /// The per-worker session cache of the server side.
    pub fn client_session_cache(&self) -> usize {
        self.session_cache.unwrap_or(DEFAULT_CLIENT_SESSION_CACHE)
    }

    /// What the engine needs for the server side; `None` when it verifies without a CA.
    fn client_profile(&self, l: &LoadedProfile) -> Option<ClientProfile> {
        if self.verifies() && l.ca.is_none() {
            return None;
        }
        Some(ClientProfile {
            ca: l.ca.clone(),
            verify: self.verifies(),
            server_name: self.server_name.clone(),
            alpn: self.alpn.clone(),
            min_version: self.version(),
            identity: l.client_identity.clone(),
            session_cache: self.client_session_cache(),
            handshake_timeout: self.handshake_timeout(),
        })
    }
}

/// What one profile's files held.
#[derive(Clone, Default)]
pub struct LoadedProfile {
    /// `certificates`, in order.
    pub identities: Vec<TlsIdentity>,
    /// `certificate` (the client certificate toward members).
    pub client_identity: Option<TlsIdentity>,
    /// `ca`.
    pub ca: Option<CaBundle>,
    /// `client_ca`.
    pub client_ca: Option<CaBundle>,
    /// The certificates of `ca` and `client_ca` (field, path, DER), for the warnings.
    anchors: Vec<(&'static str, String, Vec<CertificateDer<'static>>)>,
}

impl fmt::Debug for LoadedProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names and files only: never key material.
        f.debug_struct("LoadedProfile")
            .field("identities", &self.identities)
            .field("client_identity", &self.client_identity)
            .field("ca", &self.ca)
            .field("client_ca", &self.client_ca)
            .finish()
    }
}

/// The files of every profile, by profile name, as read with the configuration. Derived
/// from the profiles' fields and the files' contents: two configurations are equal when
/// their fields are, so this compares equal always.
#[derive(Debug, Clone, Default)]
pub struct TlsMaterial {
    profiles: BTreeMap<String, Arc<LoadedProfile>>,
}

impl PartialEq for TlsMaterial {
    fn eq(&self, _: &TlsMaterial) -> bool {
        true
    }
}

impl TlsMaterial {
    /// What the files of profile `name` held.
    pub fn get(&self, name: &str) -> Option<&LoadedProfile> {
        self.profiles.get(name).map(|p| &**p)
    }
}

/// The directory relative paths in `file` are resolved against: the file's own
/// directory, absolute (from the current directory when `file` is relative).
pub fn base_dir(file: &str) -> PathBuf {
    let dir = Path::new(file).parent().unwrap_or(Path::new(""));
    if dir.as_os_str().is_empty() {
        std::env::current_dir().unwrap_or_default()
    } else {
        std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
    }
}

/// Makes every relative path of the TLS profiles absolute, from `base`; what `config
/// save` writes then resolves from wherever the saved file lands.
pub(super) fn resolve_paths(cfg: &mut Config, base: &Path) {
    for p in &mut cfg.tls_profiles {
        for s in p.paths_mut() {
            if !s.is_empty() && Path::new(s.as_str()).is_relative() {
                *s = base.join(s.as_str()).display().to_string();
            }
        }
    }
}

const T: &str = "tls_profile";

/// Checks the `[[tls_profile]]` tables and the virtual servers' `client_tls` and
/// `server_tls` (the files are read by [`load`]).
pub(super) fn check(c: &mut Checker, cfg: &Config) {
    c.unique(T, "name", cfg.tls_profiles.iter().map(|p| p.name.as_str()));
    for (i, p) in cfg.tls_profiles.iter().enumerate() {
        for (k, ck) in p.certificates.iter().enumerate() {
            if ck.cert.is_empty() || ck.key.is_empty() {
                c.err(
                    T,
                    Some(i),
                    "certificates",
                    format!("entry {k} has an empty cert or key"),
                    "give both files: { cert = \"tls/NAME.crt\", key = \"tls/NAME.key\" }",
                );
            }
        }
        if let Some(ck) = &p.certificate {
            if ck.cert.is_empty() || ck.key.is_empty() {
                c.err(
                    T,
                    Some(i),
                    "certificate",
                    "has an empty cert or key".into(),
                    "give both files: { cert = \"tls/client.crt\", key = \"tls/client.key\" }",
                );
            }
        }
        for (field, v) in [("client_ca", &p.client_ca), ("ca", &p.ca)] {
            if v.as_deref() == Some("") {
                c.err(
                    T,
                    Some(i),
                    field,
                    "is empty".into(),
                    "give the path of a PEM CA bundle, e.g. \"tls/ca.crt\"",
                );
            }
        }
        let mut seen = HashSet::new();
        for a in &p.alpn {
            if a.is_empty() || a.len() > 255 || !a.bytes().all(|b| b.is_ascii_graphic()) {
                c.err(
                    T,
                    Some(i),
                    "alpn",
                    format!("`{a}` is not an ALPN protocol name"),
                    "write names such as \"http/1.1\" or \"h2\" (1 to 255 printable characters)",
                );
            } else if !seen.insert(a) {
                c.err(
                    T,
                    Some(i),
                    "alpn",
                    format!("`{a}` is listed twice"),
                    "list each protocol once, in preference order",
                );
            }
        }
        if let Some(s) = p.ticket_rotation_secs {
            if !(1..=604_800).contains(&s) {
                c.err(
                    T,
                    Some(i),
                    "ticket_rotation_secs",
                    format!("{s} is out of range"),
                    "use 1 to 604800 seconds (default 3600; a ticket lives one to two periods)",
                );
            }
        }
        if p.early_data == Some(true) {
            c.err(
                T,
                Some(i),
                "early_data",
                "0-RTT early data can be replayed by an attacker; Rouge does not accept it (it would have to hold each early request until the handshake ends, or prove it idempotent)".into(),
                "remove the line (or write early_data = false); 0-RTT stays off",
            );
        }
        match (p.client_auth.unwrap_or_default(), &p.client_ca) {
            (ClientAuthCfg::None, Some(_)) => c.err(
                T,
                Some(i),
                "client_ca",
                "is set but client_auth is \"none\": no client certificate is asked for".into(),
                "set client_auth = \"request\" or \"require\", or remove client_ca",
            ),
            (ClientAuthCfg::Request | ClientAuthCfg::Require, None) => c.err(
                T,
                Some(i),
                "client_auth",
                "client certificates need a CA bundle to check them against".into(),
                "add client_ca = \"PATH\" (a PEM file of the CAs that issue client certificates)",
            ),
            _ => {}
        }
        if let Some(n) = p.session_cache {
            if n > 1_000_000 {
                c.err(
                    T,
                    Some(i),
                    "session_cache",
                    format!("{n} is out of range"),
                    "use 0 (none) to 1000000 sessions per worker",
                );
            }
        }
        if let Some(ms) = p.handshake_timeout_ms {
            if !(100..=120_000).contains(&ms) {
                c.err(
                    T,
                    Some(i),
                    "handshake_timeout_ms",
                    format!("{ms} is out of range"),
                    "use 100 to 120000 milliseconds (default 10000)",
                );
            }
        }
        if let Some(n) = &p.server_name {
            if ServerName::try_from(n.as_str()).is_err() || n.is_empty() {
                c.err(
                    T,
                    Some(i),
                    "server_name",
                    format!("`{n}` is neither a DNS name nor an IP address"),
                    "write a name such as \"s3.rouge.test\", or remove it to verify members by address",
                );
            }
        }
    }
    check_virtuals(c, cfg);
}

/// `client_tls` and `server_tls` of every virtual server.
fn check_virtuals(c: &mut Checker, cfg: &Config) {
    let known = || {
        let v: Vec<&str> = cfg.tls_profiles.iter().map(|p| p.name.as_str()).collect();
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    for (i, v) in cfg.virtuals.iter().enumerate() {
        for (field, name) in [("client_tls", &v.client_tls), ("server_tls", &v.server_tls)] {
            let Some(n) = name else { continue };
            if v.kind != VirtualType::Standard {
                c.err(
                    "virtual",
                    Some(i),
                    field,
                    "only a standard virtual server (full proxy) terminates or originates TLS"
                        .into(),
                    "use type = \"standard\", or remove the field (fastl4 passes TLS through untouched)",
                );
                continue;
            }
            let Some(p) = cfg.tls_profiles.iter().find(|p| &p.name == n) else {
                c.err(
                    "virtual",
                    Some(i),
                    field,
                    format!("no tls_profile named `{n}`"),
                    format!("define it under [[tls_profile]] (defined: {})", known()),
                );
                continue;
            };
            if field == "client_tls" && p.certificates.is_empty() {
                c.err(
                    "virtual",
                    Some(i),
                    field,
                    format!("tls_profile `{n}` has no certificates to present to clients"),
                    format!("add certificates = [{{ cert = \"tls/NAME.crt\", key = \"tls/NAME.key\" }}] to tls_profile `{n}`"),
                );
            }
            if field == "server_tls" && p.verifies() && p.ca.is_none() {
                c.err(
                    "virtual",
                    Some(i),
                    field,
                    format!("tls_profile `{n}` verifies members' certificates (verify is on by default) but names no ca"),
                    format!("add ca = \"tls/ca.crt\" (the CA bundle members' certificates chain to) to tls_profile `{n}`, or write verify = false there to accept any certificate"),
                );
            }
        }
    }
}

fn problem(i: usize, field: &'static str, problem: String, fix: impl Into<String>) -> Problem {
    Problem {
        path: FieldPath {
            table: T,
            index: Some(i),
            field: Some(field),
        },
        problem,
        fix: fix.into(),
    }
}

/// The problem and fix for an engine error about a file.
fn describe(e: &TlsConfigError) -> (String, String) {
    match e {
        TlsConfigError::Read { file, error } => (
            format!("cannot read {file}: {error}"),
            "give the path of a readable PEM file (a relative path is resolved against the directory of the configuration file that names it)".into(),
        ),
        TlsConfigError::NoCertificate { file } => (
            format!("{file} holds no PEM certificate"),
            "give a PEM file with -----BEGIN CERTIFICATE----- blocks (leaf first, then the intermediates)".into(),
        ),
        TlsConfigError::BadKey { file, reason } => (
            format!("{file} holds no usable private key ({reason})"),
            "give the PEM private key (PKCS#8, SEC1 or PKCS#1) of an ECDSA P-256/P-384 or RSA 2048+ certificate".into(),
        ),
        TlsConfigError::KeyMismatch { cert, key } => (
            format!("the key in {key} does not match the certificate in {cert}"),
            format!("give the key {cert} was issued for (compare `openssl x509 -noout -pubkey -in CERT` with `openssl pkey -pubout -in KEY`)"),
        ),
        TlsConfigError::BadCertificate { file, reason } => (
            format!("{file}: {reason}"),
            "give a PEM X.509 certificate that is not expired garbage (check it with `openssl x509 -noout -text -in FILE`)".into(),
        ),
        other => (other.to_string(), "see docs/tls.md for a working profile".into()),
    }
}

/// Refuses what is not a regular file of sensible size before the engine reads it
/// (a device such as /dev/zero would never end).
fn readable(path: &str) -> Result<(), TlsConfigError> {
    let fail = |error: String| TlsConfigError::Read {
        file: path.into(),
        error,
    };
    let m = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
    if !m.is_file() {
        return Err(fail("not a regular file".into()));
    }
    if m.len() > MAX_PEM_FILE {
        return Err(fail(format!(
            "{} bytes; a PEM file is at most {MAX_PEM_FILE}",
            m.len()
        )));
    }
    Ok(())
}

fn identity(ck: &CertKeyCfg) -> Result<TlsIdentity, TlsConfigError> {
    readable(&ck.cert)?;
    readable(&ck.key)?;
    TlsIdentity::load(Path::new(&ck.cert), Path::new(&ck.key))
}

fn anchors(path: &str) -> Result<(CaBundle, Vec<CertificateDer<'static>>), TlsConfigError> {
    readable(path)?;
    let pem = std::fs::read(path).map_err(|e| TlsConfigError::Read {
        file: path.into(),
        error: e.to_string(),
    })?;
    let bundle = CaBundle::from_pem(&pem, path)?;
    let ders = CertificateDer::pem_slice_iter(&pem)
        .filter_map(Result::ok)
        .collect();
    Ok((bundle, ders))
}

/// Reads every file the profiles name (all profiles, used or not) and tries their
/// configurations; problems name the profile's field and the file.
pub(super) fn load(cfg: &Config) -> (TlsMaterial, Vec<Problem>) {
    let mut out = TlsMaterial::default();
    let mut problems = Vec::new();
    for (i, p) in cfg.tls_profiles.iter().enumerate() {
        let mut l = LoadedProfile::default();
        let mut failed = false;
        for (k, ck) in p.certificates.iter().enumerate() {
            if ck.cert.is_empty() || ck.key.is_empty() {
                failed = true;
                continue;
            }
            match identity(ck) {
                Ok(id) => l.identities.push(id),
                Err(e) => {
                    failed = true;
                    let (what, fix) = describe(&e);
                    problems.push(problem(
                        i,
                        "certificates",
                        format!("entry {k}: {what}"),
                        fix,
                    ));
                }
            }
        }
        if let Some(ck) = p.certificate.as_ref().filter(|c| !c.cert.is_empty()) {
            match identity(ck) {
                Ok(id) => l.client_identity = Some(id),
                Err(e) => {
                    failed = true;
                    let (what, fix) = describe(&e);
                    problems.push(problem(i, "certificate", what, fix));
                }
            }
        }
        for (field, path) in [("ca", &p.ca), ("client_ca", &p.client_ca)] {
            let Some(path) = path.as_deref().filter(|s| !s.is_empty()) else {
                continue;
            };
            match anchors(path) {
                Ok((bundle, ders)) => {
                    l.anchors.push((field, path.to_string(), ders));
                    if field == "ca" {
                        l.ca = Some(bundle);
                    } else {
                        l.client_ca = Some(bundle);
                    }
                }
                Err(e) => {
                    failed = true;
                    let (what, fix) = describe(&e);
                    problems.push(problem(i, field, what, fix));
                }
            }
        }
        if !failed {
            // What rustls would refuse at build time is refused now, with the file.
            let clock = WallClock::at(unix_now());
            if let (Some(sp), Some(keys)) = (
                p.server_profile(&l),
                TicketKeys::new(clock.clone(), p.rotation_secs()),
            ) {
                if let Err(e) = TlsServerConfig::new(&sp, keys, clock.clone()) {
                    let (what, fix) = describe(&e);
                    problems.push(problem(i, "certificates", what, fix));
                }
            }
            if let Some(cp) = p.client_profile(&l) {
                if let Err(e) = TlsClientConfig::new(&cp, clock) {
                    let (what, fix) = describe(&e);
                    problems.push(problem(i, "ca", what, fix));
                }
            }
        }
        out.profiles.insert(p.name.clone(), Arc::new(l));
    }
    (out, problems)
}
