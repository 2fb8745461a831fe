//! Routing rules (F5's LTM policies): an ordered list of rules, each matching the
//! request's `Host`, path prefix, method, a header or an S3 bucket, and naming the pool
//! that takes the request. Evaluated per request: one keep-alive connection may reach
//! several pools. No rule matching means the virtual server's default pool.

use super::Method;

/// How a rule matches the `Host` (port removed, compared without case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    /// Exactly this name (lower case).
    Exact(String),
    /// Any name ending in this suffix, the dot included (`*.s3.rouge.test` is stored
    /// as `.s3.rouge.test`; it does not match `s3.rouge.test` itself).
    Suffix(String),
}

/// One rule: every condition given must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The rule's name (for `show` and errors).
    pub name: String,
    /// The `Host` condition.
    pub host: Option<HostMatch>,
    /// The path (target before `?`) starts with this.
    pub path_prefix: Option<String>,
    /// The method is one of these (empty: any).
    pub methods: Vec<Method>,
    /// A header (name lower case) has exactly this value.
    pub header: Option<(String, String)>,
    /// The request is for this S3 bucket, addressed either way: virtual-hosted
    /// (`BUCKET.<s3_domain>`) or path style (`<s3_domain>` and path `/BUCKET` or
    /// `/BUCKET/...`). Needs the policy's `s3_domain`.
    pub bucket: Option<String>,
    /// Index of the pool taking matching requests in the virtual server's
    /// [`crate::proxy::HttpVs::pools`].
    pub pool: usize,
}

/// An ordered list of rules; the first that matches routes the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The policy's name.
    pub name: String,
    /// The S3 service name (`s3.rouge.test`) that `bucket` conditions use.
    pub s3_domain: Option<String>,
    /// The rules, in order.
    pub rules: Vec<Rule>,
}

/// What a policy looks at of a request.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// The method.
    pub method: Method,
    /// The `Host` field's value as sent (may carry a port), empty when absent.
    pub host: &'a [u8],
    /// The request target (path and query) as sent.
    pub target: &'a [u8],
    /// The whole request head (for header conditions).
    pub head: &'a [u8],
}

impl Policy {
    /// The index of the rule that matches `req` first, and its pool; `None` when no
    /// rule matches (the default pool takes it). Looks at the request in place: no
    /// allocation.
    pub fn route(&self, req: &RequestView<'_>) -> Option<(usize, usize)> {
        let host = strip_port(req.host);
        let path = path_of(req.target);
        self.rules
            .iter()
            .position(|r| self.matches(r, req, host, path))
            .map(|i| (i, self.rules[i].pool))
    }

    /// True when every condition of `rule` holds (`host` without its port, `path` the
    /// target before `?`).
    fn matches(&self, rule: &Rule, req: &RequestView<'_>, host: &[u8], path: &[u8]) -> bool {
        if let Some(h) = &rule.host {
            if !h.matches(host) {
                return false;
            }
        }
        if let Some(p) = &rule.path_prefix {
            if !path.starts_with(p.as_bytes()) {
                return false;
            }
        }
        if !rule.methods.is_empty() && !rule.methods.contains(&req.method) {
            return false;
        }
        if let Some((name, value)) = &rule.header {
            if !has_header(req.head, name.as_bytes(), value.as_bytes()) {
                return false;
            }
        }
        if let Some(b) = &rule.bucket {
            // Validation refuses `bucket` without `s3_domain`; a policy built
            // otherwise matches no bucket.
            let Some(domain) = &self.s3_domain else {
                return false;
            };
            if !is_bucket(host, path, b.as_bytes(), domain.as_bytes()) {
                return false;
            }
        }
        true
    }
}

impl HostMatch {
    /// True when `host` (port removed) matches, compared without case.
    pub fn matches(&self, host: &[u8]) -> bool {
        match self {
            HostMatch::Exact(name) => host.eq_ignore_ascii_case(name.as_bytes()),
            HostMatch::Suffix(suffix) => {
                let s = suffix.as_bytes();
                host.len() > s.len() && host[host.len() - s.len()..].eq_ignore_ascii_case(s)
            }
        }
    }
}

/// The `Host` value without its port: `s3.rouge.test:443` is `s3.rouge.test`,
/// `[2001:2::1]:443` is `[2001:2::1]`; surrounding blanks are removed.
fn strip_port(host: &[u8]) -> &[u8] {
    let host = host.trim_ascii();
    if host.first() == Some(&b'[') {
        return match host.iter().position(|&b| b == b']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.iter().rposition(|&b| b == b':') {
        Some(colon) => &host[..colon],
        None => host,
    }
}

/// The path of a request target: before `?` (and `#`); for an absolute-form target
/// (`http://host/path`), the part after the authority (`/` when it has none).
fn path_of(target: &[u8]) -> &[u8] {
    let end = target
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(target.len());
    let t = &target[..end];
    if t.first() == Some(&b'/') {
        return t;
    }
    let rest = if t.len() >= 7 && t[..7].eq_ignore_ascii_case(b"http://") {
        &t[7..]
    } else if t.len() >= 8 && t[..8].eq_ignore_ascii_case(b"https://") {
        &t[8..]
    } else {
        return t;
    };
    match rest.iter().position(|&b| b == b'/') {
        Some(slash) => &rest[slash..],
        None => b"/",
    }
}

/// True when a field of the head `head` called `name` (compared without case) has
/// exactly `value` (after removing the blanks around it). Any of several fields of the
/// name may match. The request line is skipped.
fn has_header(head: &[u8], name: &[u8], value: &[u8]) -> bool {
    head.split(|&b| b == b'\n').skip(1).any(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return false;
        };
        line[..colon].eq_ignore_ascii_case(name) && line[colon + 1..].trim_ascii() == value
    })
}

/// True when the request is for `bucket` of the S3 service `domain`: virtual-hosted
/// (`host` is `BUCKET.DOMAIN`) or path style (`host` is `DOMAIN` and `path` is
/// `/BUCKET` or starts with `/BUCKET/`). Host names are compared without case, the
/// path exactly.
fn is_bucket(host: &[u8], path: &[u8], bucket: &[u8], domain: &[u8]) -> bool {
    let (b, d) = (bucket.len(), domain.len());
    if host.len() == b + 1 + d
        && host[..b].eq_ignore_ascii_case(bucket)
        && host[b] == b'.'
        && host[b + 1..].eq_ignore_ascii_case(domain)
    {
        return true;
    }
    host.eq_ignore_ascii_case(domain)
        && path.len() > b
        && path[0] == b'/'
        && &path[1..=b] == bucket
        && (path.len() == b + 1 || path[b + 1] == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, pool: usize) -> Rule {
        Rule {
            name: name.into(),
            host: None,
            path_prefix: None,
            methods: Vec::new(),
            header: None,
            bucket: None,
            pool,
        }
    }

    fn policy(rules: Vec<Rule>) -> Policy {
        Policy {
            name: "p".into(),
            s3_domain: Some("s3.rouge.test".into()),
            rules,
        }
    }

    /// A request whose head is built from its parts (and `extra` header lines).
    struct Req {
        method: Method,
        host: &'static str,
        target: &'static str,
        head: String,
    }

    fn req(method: Method, host: &'static str, target: &'static str, extra: &str) -> Req {
        let head = format!("X {target} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n");
        Req {
            method,
            host,
            target,
            head,
        }
    }

    fn route(p: &Policy, r: &Req) -> Option<(usize, usize)> {
        p.route(&RequestView {
            method: r.method,
            host: r.host.as_bytes(),
            target: r.target.as_bytes(),
            head: r.head.as_bytes(),
        })
    }

    fn get(host: &'static str, target: &'static str) -> Req {
        req(Method::Get, host, target, "")
    }

    #[test]
    fn host_exact_ignores_case_and_port() {
        let mut r = rule("h", 3);
        r.host = Some(HostMatch::Exact("s3.rouge.test".into()));
        let p = policy(vec![r]);
        assert_eq!(route(&p, &get("s3.rouge.test", "/")), Some((0, 3)));
        assert_eq!(route(&p, &get("S3.Rouge.TEST:443", "/")), Some((0, 3)));
        assert_eq!(route(&p, &get("  s3.rouge.test:9000 ", "/")), Some((0, 3)));
        assert_eq!(route(&p, &get("s3.rouge.test.evil", "/")), None);
        assert_eq!(route(&p, &get("x.s3.rouge.test", "/")), None);
        assert_eq!(route(&p, &get("", "/")), None, "no Host");
    }

    #[test]
    fn host_suffix_needs_a_label_before_it() {
        let mut r = rule("wild", 1);
        r.host = Some(HostMatch::Suffix(".s3.rouge.test".into()));
        let p = policy(vec![r]);
        assert_eq!(route(&p, &get("a.s3.rouge.test", "/")), Some((0, 1)));
        assert_eq!(route(&p, &get("A.B.S3.ROUGE.TEST:443", "/")), Some((0, 1)));
        assert_eq!(route(&p, &get("s3.rouge.test", "/")), None);
        assert_eq!(route(&p, &get(".s3.rouge.test", "/")), None);
        assert_eq!(route(&p, &get("as3.rouge.test", "/")), None);
    }

    #[test]
    fn ipv6_literal_hosts_keep_their_brackets() {
        let mut r = rule("v6", 0);
        r.host = Some(HostMatch::Exact("[2001:2::1]".into()));
        let p = policy(vec![r]);
        assert_eq!(route(&p, &get("[2001:2::1]:443", "/")), Some((0, 0)));
        assert_eq!(route(&p, &get("[2001:2::1]", "/")), Some((0, 0)));
        assert_eq!(route(&p, &get("[2001:2::2]", "/")), None);
    }

    #[test]
    fn path_prefix_looks_before_the_query_only() {
        let mut r = rule("logs", 2);
        r.path_prefix = Some("/logs/".into());
        let p = policy(vec![r]);
        assert_eq!(route(&p, &get("h", "/logs/2024/a")), Some((0, 2)));
        assert_eq!(route(&p, &get("h", "/logs/")), Some((0, 2)));
        assert_eq!(route(&p, &get("h", "/logs")), None);
        assert_eq!(route(&p, &get("h", "/data?x=/logs/")), None);
        assert_eq!(
            route(&p, &get("h", "/Logs/a")),
            None,
            "paths keep their case"
        );
        assert_eq!(
            route(&p, &get("h", "http://h:80/logs/a?b")),
            Some((0, 2)),
            "absolute form"
        );
        assert_eq!(route(&p, &get("h", "http://h/other")), None);
    }

    #[test]
    fn methods_list_any_of() {
        let mut r = rule("writes", 4);
        r.methods = vec![Method::Put, Method::Post, Method::Delete];
        let p = policy(vec![r]);
        for (m, want) in [
            (Method::Put, Some((0, 4))),
            (Method::Post, Some((0, 4))),
            (Method::Delete, Some((0, 4))),
            (Method::Get, None),
            (Method::Head, None),
            (Method::Other, None),
        ] {
            assert_eq!(route(&p, &req(m, "h", "/", "")), want, "{m:?}");
        }
    }

    #[test]
    fn header_value_is_exact_and_its_name_any_case() {
        let mut r = rule("tenant", 1);
        r.header = Some(("x-tenant".into(), "blue".into()));
        let p = policy(vec![r]);
        let with = |line: &str| req(Method::Get, "h", "/", line);
        assert_eq!(route(&p, &with("X-Tenant: blue\r\n")), Some((0, 1)));
        assert_eq!(route(&p, &with("x-tenant:blue  \r\n")), Some((0, 1)));
        assert_eq!(
            route(&p, &with("X-Other: 1\r\nX-TENANT: \tblue\r\n")),
            Some((0, 1))
        );
        assert_eq!(route(&p, &with("X-Tenant: Blue\r\n")), None, "values exact");
        assert_eq!(route(&p, &with("X-Tenant: blue2\r\n")), None);
        assert_eq!(route(&p, &with("X-Tenants: blue\r\n")), None);
        assert_eq!(route(&p, &with("")), None);
        // The request line is not a header, even if it looks like one.
        let mut odd = rule("odd", 0);
        odd.header = Some(("x".into(), "y".into()));
        let p = policy(vec![odd]);
        let r = Req {
            method: Method::Get,
            host: "h",
            target: "/",
            head: "x: y\r\nHost: h\r\n\r\n".into(),
        };
        assert_eq!(route(&p, &r), None);
    }

    #[test]
    fn bucket_is_found_both_ways() {
        let mut r = rule("replica", 5);
        r.bucket = Some("replica".into());
        let p = policy(vec![r]);
        // Virtual-hosted style.
        assert_eq!(
            route(&p, &get("replica.s3.rouge.test", "/key")),
            Some((0, 5))
        );
        assert_eq!(
            route(&p, &get("Replica.S3.rouge.test:443", "/")),
            Some((0, 5))
        );
        assert_eq!(route(&p, &get("replica2.s3.rouge.test", "/")), None);
        assert_eq!(route(&p, &get("x.replica.s3.rouge.test", "/")), None);
        assert_eq!(route(&p, &get("replica.s3.rouge.test.evil", "/")), None);
        // Path style.
        assert_eq!(route(&p, &get("s3.rouge.test", "/replica")), Some((0, 5)));
        assert_eq!(
            route(&p, &get("s3.rouge.test:443", "/replica/a/b")),
            Some((0, 5))
        );
        assert_eq!(
            route(&p, &get("s3.rouge.test", "/replica?uploads")),
            Some((0, 5))
        );
        assert_eq!(route(&p, &get("s3.rouge.test", "/replica2/a")), None);
        assert_eq!(route(&p, &get("s3.rouge.test", "/repl")), None);
        assert_eq!(route(&p, &get("s3.rouge.test", "/")), None);
        assert_eq!(route(&p, &get("s3.rouge.test", "/other/replica")), None);
        // Path style only on the service's own name.
        assert_eq!(route(&p, &get("other.test", "/replica/a")), None);
        assert_eq!(route(&p, &get("data.s3.rouge.test", "/replica/a")), None);
        // Without the service's name, no bucket matches.
        let mut q = p.clone();
        q.s3_domain = None;
        assert_eq!(route(&q, &get("replica.s3.rouge.test", "/")), None);
    }

    #[test]
    fn the_first_rule_that_matches_wins_and_every_condition_must_hold() {
        let mut both = rule("put-logs", 7);
        both.methods = vec![Method::Put];
        both.path_prefix = Some("/logs/".into());
        let mut logs = rule("logs", 8);
        logs.path_prefix = Some("/logs/".into());
        let mut again = rule("logs-again", 9);
        again.path_prefix = Some("/logs/".into());
        let p = policy(vec![both, logs, again]);
        assert_eq!(
            route(&p, &req(Method::Put, "h", "/logs/a", "")),
            Some((0, 7))
        );
        assert_eq!(
            route(&p, &req(Method::Get, "h", "/logs/a", "")),
            Some((1, 8)),
            "one condition failing skips the rule"
        );
        assert_eq!(route(&p, &req(Method::Put, "h", "/data", "")), None);
        assert_eq!(route(&policy(Vec::new()), &get("h", "/")), None);
    }
}
