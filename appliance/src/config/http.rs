//! The HTTP part of the configuration: `[[http_profile]]` and `[[policy]]` tables, the
//! `http_profile` and `policy` fields of standard virtual servers, their checks, and the
//! [`HttpVs`] built from them (its pools bound like every other user of those pools:
//! the same shared member states and connection counts).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use rouge_pipelines::dataplane::LbBinding;
use rouge_pipelines::http::{HostMatch, HttpProfile, Limits, Method, Policy, Rule};
use rouge_pipelines::proxy::HttpVs;

use super::model::{Config, VirtualCfg, VirtualType};
use super::validate::{Checker, Problem};
use super::FieldPath;

/// Most header fields a profile may allow (the parser's array of fields holds this
/// many).
pub const MAX_HEADERS_LIMIT: usize = 128;

/// An HTTP profile (`[[http_profile]]`), named by standard virtual servers'
/// `http_profile`. Unset fields keep the defaults of [`HttpProfile::new`] (given in
/// each field). Times are in seconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpProfileCfg {
    /// Name the virtual servers use.
    pub name: String,
    /// Longest request line in bytes (default 8192; `400` above).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request_line: Option<usize>,
    /// Largest request head in bytes (default 32768; `431` above).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_header_bytes: Option<usize>,
    /// Most header fields in a head (default 100, at most 128; `431` above).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_headers: Option<usize>,
    /// Seconds a client may take to send a complete request head (default 10; `408`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_timeout: Option<u64>,
    /// Seconds a client's keep-alive connection may wait idle between requests
    /// (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_timeout: Option<u64>,
    /// Seconds a member may take to start its response (default 60; `504` after).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_timeout: Option<u64>,
    /// Seconds an idle server-side connection is kept for reuse (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<u64>,
    /// Add `X-Forwarded-For: <client address>` to requests (default false: requests
    /// reach members byte for byte, so S3 signatures verify).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insert_xff: Option<bool>,
    /// Continue a GET whose member died mid-response from another member (default
    /// false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_resume: Option<bool>,
    /// Reuse idle server-side connections for later requests (F5 OneConnect; default
    /// true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oneconnect: Option<bool>,
    /// Most idle server-side connections kept per member on each worker (default 32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_idle_per_member: Option<usize>,
    /// Passive health: mark a member down after this many failed connections in a row
    /// (default 0: off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passive_down_after: Option<u32>,
}

impl HttpProfileCfg {
    /// The engine's profile this table describes.
    pub fn profile(&self) -> HttpProfile {
        let d = HttpProfile::new(&self.name);
        let secs = |v: Option<u64>, d: Duration| v.map_or(d, Duration::from_secs);
        HttpProfile {
            limits: Limits {
                max_request_line: self.max_request_line.unwrap_or(d.limits.max_request_line),
                max_header_bytes: self.max_header_bytes.unwrap_or(d.limits.max_header_bytes),
                max_headers: self.max_headers.unwrap_or(d.limits.max_headers),
            },
            header_timeout: secs(self.header_timeout, d.header_timeout),
            keepalive_timeout: secs(self.keepalive_timeout, d.keepalive_timeout),
            response_timeout: secs(self.response_timeout, d.response_timeout),
            insert_xff: self.insert_xff.unwrap_or(d.insert_xff),
            s3_resume: self.s3_resume.unwrap_or(d.s3_resume),
            oneconnect: self.oneconnect.unwrap_or(d.oneconnect),
            max_idle_per_member: self.max_idle_per_member.unwrap_or(d.max_idle_per_member),
            idle_timeout: secs(self.idle_timeout, d.idle_timeout),
            passive_down_after: self.passive_down_after.unwrap_or(d.passive_down_after),
            ..d
        }
    }
}

/// A header condition: `{ name = "x-tenant", value = "blue" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderCfg {
    /// The field's name (compared without case).
    pub name: String,
    /// Its exact value (blanks around it ignored).
    pub value: String,
}

/// One rule of a policy; every condition given must hold, and at least one is needed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleCfg {
    /// Name for `show` and errors.
    pub name: String,
    /// `Host` (port removed, without case): a name, or `*.suffix` for any name ending
    /// in `.suffix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The path (before `?`) starts with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// The method is one of these (e.g. `["PUT", "POST"]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// A header has exactly this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<HeaderCfg>,
    /// The request is for this S3 bucket (virtual-hosted `BUCKET.<s3_domain>` or path
    /// style `<s3_domain>/BUCKET/...`); needs the policy's `s3_domain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// The `[[pool]]` taking matching requests.
    pub pool: String,
}

impl RuleCfg {
    fn has_condition(&self) -> bool {
        self.host.is_some()
            || self.path_prefix.is_some()
            || !self.methods.is_empty()
            || self.header.is_some()
            || self.bucket.is_some()
    }
}

/// A routing policy (`[[policy]]`, F5's LTM policy), named by standard virtual
/// servers' `policy`: ordered rules, the first that matches a request sends it to its
/// pool; no match sends it to the virtual server's own pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyCfg {
    /// Name the virtual servers use.
    pub name: String,
    /// The S3 service's name (e.g. `s3.rouge.test`) that `bucket` conditions use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_domain: Option<String>,
    /// The rules, in order.
    #[serde(default)]
    pub rules: Vec<RuleCfg>,
}

/// The methods the engine tells apart, by their token (case-sensitive, as RFC 9110
/// says); any other token is [`Method::Other`].
const METHODS: [(&str, Method); 9] = [
    ("GET", Method::Get),
    ("HEAD", Method::Head),
    ("PUT", Method::Put),
    ("POST", Method::Post),
    ("DELETE", Method::Delete),
    ("OPTIONS", Method::Options),
    ("PATCH", Method::Patch),
    ("CONNECT", Method::Connect),
    ("TRACE", Method::Trace),
];

/// The method of a token (any other token is [`Method::Other`]).
pub fn method(token: &str) -> Method {
    METHODS
        .iter()
        .find(|(t, _)| *t == token)
        .map_or(Method::Other, |(_, m)| *m)
}

/// An HTTP token (RFC 9110, section 5.6.2): method names and field names.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A DNS name as `Host` carries it: labels of letters, digits, `-` and `_`, separated
/// by dots (or an IPv6 literal in brackets).
fn is_host_name(s: &str) -> bool {
    if let Some(inner) = s.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The engine's form of a host pattern (`*.suffix` or a name), lower case; `None` for
/// a pattern that is neither.
fn host_match(pattern: &str) -> Option<HostMatch> {
    let p = pattern.to_ascii_lowercase();
    match p.strip_prefix("*.") {
        Some(rest) if is_host_name(rest) && !rest.starts_with('[') => {
            Some(HostMatch::Suffix(format!(".{rest}")))
        }
        Some(_) => None,
        None if is_host_name(&p) => Some(HostMatch::Exact(p)),
        None => None,
    }
}

/// An S3 bucket name: 3 to 63 lower-case letters, digits, dots and hyphens, starting
/// and ending with a letter or digit.
fn is_bucket_name(s: &str) -> bool {
    let b = s.as_bytes();
    (3..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

fn list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<&str> = names.collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// Checks the `[[http_profile]]` and `[[policy]]` tables and the virtual servers'
/// `http_profile` and `policy`.
pub(super) fn check(c: &mut Checker, cfg: &Config) {
    check_profiles(c, cfg);
    check_policies(c, cfg);
    for (i, v) in cfg.virtuals.iter().enumerate() {
        check_virtual(c, cfg, i, v);
    }
}

fn check_profiles(c: &mut Checker, cfg: &Config) {
    const T: &str = "http_profile";
    c.unique(T, "name", cfg.http_profiles.iter().map(|p| p.name.as_str()));
    for (i, p) in cfg.http_profiles.iter().enumerate() {
        let eff = p.profile();
        let l = eff.limits;
        if let Some(v) = p.max_request_line {
            if !(64..=65_536).contains(&v) {
                c.err(
                    T,
                    Some(i),
                    "max_request_line",
                    format!("{v} is out of range"),
                    "use 64 to 65536 bytes (default 8192)",
                );
            }
        }
        if let Some(v) = p.max_header_bytes {
            if !(1024..=1 << 20).contains(&v) {
                c.err(
                    T,
                    Some(i),
                    "max_header_bytes",
                    format!("{v} is out of range"),
                    "use 1024 to 1048576 bytes (default 32768)",
                );
            }
        }
        if l.max_request_line > l.max_header_bytes {
            c.err(
                T,
                Some(i),
                "max_request_line",
                format!(
                    "{} is more than max_header_bytes ({}): the request line is part of the head",
                    l.max_request_line, l.max_header_bytes
                ),
                "make max_request_line at most max_header_bytes",
            );
        }
        if let Some(v) = p.max_headers {
            if !(1..=MAX_HEADERS_LIMIT).contains(&v) {
                c.err(
                    T,
                    Some(i),
                    "max_headers",
                    format!("{v} is out of range"),
                    format!("use 1 to {MAX_HEADERS_LIMIT} header fields (default 100)"),
                );
            }
        }
        for (field, v) in [
            ("header_timeout", p.header_timeout),
            ("keepalive_timeout", p.keepalive_timeout),
            ("response_timeout", p.response_timeout),
            ("idle_timeout", p.idle_timeout),
        ] {
            if let Some(v) = v {
                if !(1..=86_400).contains(&v) {
                    c.err(
                        T,
                        Some(i),
                        field,
                        format!("{v} is out of range"),
                        "use 1 to 86400 seconds",
                    );
                }
            }
        }
        if let Some(v) = p.max_idle_per_member {
            if eff.oneconnect && !(1..=4096).contains(&v) {
                c.err(
                    T,
                    Some(i),
                    "max_idle_per_member",
                    format!("{v} is out of range"),
                    "use 1 to 4096 connections per member and worker (default 32), or oneconnect = false to keep none",
                );
            }
        }
        if let Some(v) = p.passive_down_after {
            if v > 100 {
                c.err(
                    T,
                    Some(i),
                    "passive_down_after",
                    format!("{v} is out of range"),
                    "use 1 to 100 failed connections in a row, or 0 (the default) for no passive health",
                );
            }
        }
    }
}

fn check_policies(c: &mut Checker, cfg: &Config) {
    const T: &str = "policy";
    c.unique(T, "name", cfg.policies.iter().map(|p| p.name.as_str()));
    for (i, p) in cfg.policies.iter().enumerate() {
        if let Some(d) = &p.s3_domain {
            if d.starts_with('[') || !is_host_name(d) {
                c.err(
                    T,
                    Some(i),
                    "s3_domain",
                    format!("`{d}` is not a DNS name"),
                    "write the S3 service's name as clients use it, e.g. s3_domain = \"s3.rouge.test\"",
                );
            }
        }
        if p.rules.is_empty() {
            c.err(
                T,
                Some(i),
                "rules",
                "a policy needs at least one rule".into(),
                "add rules = [{ name = \"NAME\", path_prefix = \"/logs/\", pool = \"POOL\" }]",
            );
        }
        let mut names = HashSet::new();
        for (k, r) in p.rules.iter().enumerate() {
            let at = format!("rule {k} (`{}`)", r.name);
            let mut err = |problem: String, fix: String| c.err(T, Some(i), "rules", problem, fix);
            if r.name.is_empty() {
                err(
                    format!("rule {k} has an empty name"),
                    "give every rule a name: { name = \"NAME\", ... }".into(),
                );
            } else if !names.insert(r.name.as_str()) {
                err(
                    format!("{at}: the name is used twice in this policy"),
                    "give each rule of a policy its own name".into(),
                );
            }
            if !r.has_condition() {
                err(
                    format!("{at} has no condition: it would take every request"),
                    "add host, path_prefix, methods, header or bucket (a request no rule matches goes to the virtual server's pool)".into(),
                );
            }
            if !cfg.pools.iter().any(|x| x.name == r.pool) {
                err(
                    format!("{at}: no pool named `{}`", r.pool),
                    format!(
                        "define it under [[pool]] or use one of: {}",
                        list(cfg.pools.iter().map(|x| x.name.as_str()))
                    ),
                );
            }
            if let Some(h) = &r.host {
                if host_match(h).is_none() {
                    err(
                        format!("{at}: host `{h}` is neither a name nor `*.` and a name"),
                        "write host = \"s3.rouge.test\" or host = \"*.s3.rouge.test\" (a wildcard only as the first label, no port)".into(),
                    );
                }
            }
            if let Some(pp) = &r.path_prefix {
                if !pp.starts_with('/') || pp.bytes().any(|b| b <= b' ' || b == b'?' || b == 0x7f) {
                    err(
                        format!("{at}: path_prefix `{pp}` is not the start of a path"),
                        "write a path starting with `/`, without blanks or `?`, e.g. path_prefix = \"/logs/\"".into(),
                    );
                }
            }
            for m in &r.methods {
                if !is_token(m) {
                    err(
                        format!("{at}: method `{m}` is not an HTTP method token"),
                        "write method names such as \"GET\" or \"PUT\"".into(),
                    );
                }
            }
            if let Some(hd) = &r.header {
                if !is_token(&hd.name) {
                    err(
                        format!("{at}: header name `{}` is not a field name", hd.name),
                        "write a field name such as \"x-tenant\" (letters, digits and -)".into(),
                    );
                }
                if hd.value.trim() != hd.value
                    || hd
                        .value
                        .bytes()
                        .any(|b| b < b' ' && b != b'\t' || b == 0x7f)
                {
                    err(
                        format!(
                            "{at}: header value `{}` has control characters or blanks around it",
                            hd.value.escape_debug()
                        ),
                        "write the value as it appears after `name: `, without the blanks around it".into(),
                    );
                }
            }
            if let Some(b) = &r.bucket {
                if !is_bucket_name(b) {
                    err(
                        format!("{at}: `{b}` is not an S3 bucket name"),
                        "write 3 to 63 lower-case letters, digits, dots or hyphens, starting and ending with a letter or digit".into(),
                    );
                }
                if p.s3_domain.is_none() {
                    err(
                        format!("{at}: bucket needs the policy's s3_domain to tell the bucket from the host name"),
                        "add s3_domain = \"s3.rouge.test\" (the S3 service's name) to this [[policy]]".into(),
                    );
                }
            }
        }
    }
}

fn check_virtual(c: &mut Checker, cfg: &Config, i: usize, v: &VirtualCfg) {
    const T: &str = "virtual";
    if v.kind != VirtualType::Standard {
        for (field, set) in [
            ("http_profile", v.http_profile.is_some()),
            ("policy", v.policy.is_some()),
        ] {
            if set {
                c.err(
                    T,
                    Some(i),
                    field,
                    "only a standard virtual server (full proxy) speaks HTTP".into(),
                    "use type = \"standard\", or remove the field",
                );
            }
        }
        return;
    }
    if let Some(n) = &v.http_profile {
        if !cfg.http_profiles.iter().any(|p| &p.name == n) {
            c.err(
                T,
                Some(i),
                "http_profile",
                format!("no http_profile named `{n}`"),
                format!(
                    "define it under [[http_profile]] (defined: {})",
                    list(cfg.http_profiles.iter().map(|p| p.name.as_str()))
                ),
            );
        }
    }
    if let Some(n) = &v.policy {
        if v.http_profile.is_none() {
            c.err(
                T,
                Some(i),
                "policy",
                "a policy routes HTTP requests, and this virtual server does not parse HTTP".into(),
                "add http_profile = \"NAME\" naming an [[http_profile]]",
            );
        }
        if !cfg.policies.iter().any(|p| &p.name == n) {
            c.err(
                T,
                Some(i),
                "policy",
                format!("no policy named `{n}`"),
                format!(
                    "define it under [[policy]] (defined: {})",
                    list(cfg.policies.iter().map(|p| p.name.as_str()))
                ),
            );
        }
    }
}

/// What `rouge check` warns about in the policies: a method the engine does not tell
/// apart (it matches every such method).
pub(super) fn warnings(cfg: &Config) -> Vec<Problem> {
    let mut out = Vec::new();
    for (i, p) in cfg.policies.iter().enumerate() {
        for (k, r) in p.rules.iter().enumerate() {
            for m in r.methods.iter().filter(|m| is_token(m)) {
                if method(m) != Method::Other {
                    continue;
                }
                let upper = m.to_ascii_uppercase();
                let fix = if method(&upper) != Method::Other {
                    format!("methods are case-sensitive: write \"{upper}\"")
                } else {
                    "list only GET, HEAD, PUT, POST, DELETE, OPTIONS, PATCH, CONNECT or TRACE, or accept that the rule takes every other method".into()
                };
                out.push(Problem {
                    path: FieldPath {
                        table: "policy",
                        index: Some(i),
                        field: Some("rules"),
                    },
                    problem: format!(
                        "rule {k} (`{}`): method `{m}` is not one Rouge tells apart: the rule matches every method other than GET, HEAD, PUT, POST, DELETE, OPTIONS, PATCH, CONNECT and TRACE",
                        r.name
                    ),
                    fix,
                });
            }
        }
    }
    out
}

/// The HTTP layer of standard virtual server `v`, or `None` without `http_profile`.
/// The policy's pools are taken from `pools` (the bindings every user of a pool shares),
/// each once, in the order the rules first name them.
pub(super) fn http_vs(
    cfg: &Config,
    v: &VirtualCfg,
    pools: &[(String, LbBinding)],
) -> Option<Arc<HttpVs>> {
    let profile = cfg
        .http_profiles
        .iter()
        .find(|p| Some(&p.name) == v.http_profile.as_ref())?
        .profile();
    let mut bound: Vec<(String, LbBinding)> = Vec::new();
    let policy = v
        .policy
        .as_ref()
        .and_then(|n| cfg.policies.iter().find(|p| &p.name == n))
        .map(|p| {
            let rules = p
                .rules
                .iter()
                .filter_map(|r| {
                    let pool = match bound.iter().position(|(n, _)| *n == r.pool) {
                        Some(k) => k,
                        None => {
                            let (n, b) = pools.iter().find(|(n, _)| *n == r.pool)?;
                            bound.push((n.clone(), b.clone()));
                            bound.len() - 1
                        }
                    };
                    // Validation refused a host that is no pattern; a rule never
                    // matches more than it says.
                    let host = match r.host.as_deref() {
                        Some(h) => Some(host_match(h)?),
                        None => None,
                    };
                    Some(Rule {
                        name: r.name.clone(),
                        host,
                        path_prefix: r.path_prefix.clone(),
                        methods: r.methods.iter().map(|m| method(m)).collect(),
                        header: r
                            .header
                            .as_ref()
                            .map(|h| (h.name.to_ascii_lowercase(), h.value.clone())),
                        bucket: r.bucket.clone(),
                        pool,
                    })
                })
                .collect();
            Policy {
                name: p.name.clone(),
                s3_domain: p.s3_domain.as_ref().map(|d| d.to_ascii_lowercase()),
                rules,
            }
        });
    Some(Arc::new(HttpVs {
        profile,
        policy,
        pools: bound,
    }))
}
