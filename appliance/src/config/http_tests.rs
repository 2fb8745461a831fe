//! Tests of the HTTP configuration: `[[http_profile]]`, `[[policy]]`, the virtual
//! servers' `http_profile` and `policy`, the s3 monitor, and what is built from them.

use std::sync::Arc;
use std::time::Duration;

use rouge_pipelines::http::{HostMatch, HttpProfile, Method};
use rouge_pipelines::lb::MonitorStatus;
use rouge_pipelines::monitor::ProbeKind;

use super::*;

const TESTBED: &str = include_str!("../../configs/testbed.toml");

/// The S3 front door as the issue gives it (`appliance/configs/s3.toml` is written
/// elsewhere; this snippet must parse and build as it stands).
const S3_SNIPPET: &str = r#"
[[http_profile]]
name = "s3"
s3_resume = true
oneconnect = true
max_idle_per_member = 32
idle_timeout = 60
header_timeout = 10
response_timeout = 60
passive_down_after = 3

[[monitor]]
name = "s3-alive"
type = "s3"
interval = 1
timeout = 3

[[pool]]
name = "s3"
monitor = "s3-alive"
members = [ { address = "198.18.2.11:9000" }, { address = "198.18.2.12:9000" }, { address = "198.18.2.13:9000" }, { address = "198.18.2.14:9000" } ]

[[policy]]
name = "s3-routing"
s3_domain = "s3.rouge.test"
rules = [ { name = "replica-bucket", bucket = "replica", pool = "s3" } ]

[[virtual]]
name = "s3"
type = "standard"
destination = "198.18.1.100:443"
pool = "s3"
snat = "automap"
client_tls = "s3-client"
http_profile = "s3"
policy = "s3-routing"
"#;

/// The test bed's interfaces, VLANs and self IPs, its `s3-client` TLS profile, and
/// `extra`.
fn base(extra: &str) -> String {
    let head = TESTBED.split("# Transit traffic").next().unwrap();
    let start = TESTBED
        .find("[[tls_profile]]\nname = \"s3-client\"")
        .unwrap();
    let len = TESTBED[start..].find("\n\n").unwrap();
    format!("{head}\n{}\n{extra}", &TESTBED[start..start + len])
}

fn file() -> String {
    format!("{}/configs/x.toml", env!("CARGO_MANIFEST_DIR"))
}

fn parsed(text: &str) -> Config {
    parse(&file(), text).unwrap_or_else(|e| panic!("{e}"))
}

fn errors(text: &str) -> Vec<ConfigError> {
    parse(&file(), text).expect_err("refused").0
}

/// The error on `field` whose problem contains `words`, checked to carry a line and
/// a fix.
fn error(e: &[ConfigError], field: &str, words: &str) -> ConfigError {
    let found = e
        .iter()
        .find(|e| e.field == field && e.problem.contains(words))
        .cloned()
        .unwrap_or_else(|| panic!("no error on {field} saying `{words}` in {e:#?}"));
    assert!(found.line.is_some(), "{found}");
    assert!(!found.fix.is_empty(), "{found}");
    found
}

/// The line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn the_s3_snippet_parses_and_builds_its_http_layer() {
    let cfg = parsed(&base(S3_SNIPPET));
    let dp = build::dataplane(&cfg, 1, 2, None);
    let vs = dp.standard.iter().find(|v| v.name == "s3").unwrap();
    assert!(vs.client_tls.is_some());
    let http = vs.http.as_ref().expect("http layer");
    let p = &http.profile;
    assert_eq!(p.name, "s3");
    assert!(p.s3_resume && p.oneconnect && !p.insert_xff);
    assert_eq!(p.max_idle_per_member, 32);
    assert_eq!(p.idle_timeout, Duration::from_secs(60));
    assert_eq!(p.header_timeout, Duration::from_secs(10));
    assert_eq!(p.response_timeout, Duration::from_secs(60));
    assert_eq!(p.passive_down_after, 3);
    assert_eq!(p.limits, HttpProfile::new("s3").limits);
    let policy = http.policy.as_ref().expect("policy");
    assert_eq!(policy.name, "s3-routing");
    assert_eq!(policy.s3_domain.as_deref(), Some("s3.rouge.test"));
    assert_eq!(policy.rules.len(), 1);
    let rule = &policy.rules[0];
    assert_eq!(
        (rule.name.as_str(), rule.bucket.as_deref(), rule.pool),
        ("replica-bucket", Some("replica"), 0)
    );
    assert_eq!(http.pools.len(), 1);
    let (name, binding) = &http.pools[0];
    assert_eq!(name, "s3");
    // The same pool as the virtual server's own and the snapshot's: shared member
    // states and connection counts.
    let (_, shared) = dp.pools.iter().find(|(n, _)| n == "s3").unwrap();
    assert!(Arc::ptr_eq(&binding.states, &shared.states));
    assert!(Arc::ptr_eq(&binding.counts, &shared.counts));
    assert!(Arc::ptr_eq(&vs.lb.states, &shared.states));
    // The s3 monitor: one target per member, each asking with its own address.
    let targets: Vec<_> = dp
        .monitor_targets
        .iter()
        .filter(|t| t.spec.name == "s3-alive")
        .collect();
    assert_eq!(targets.len(), 4);
    for t in targets {
        match &t.spec.kind {
            ProbeKind::S3 { send, tls: None } => assert_eq!(
                *send,
                format!(
                    "GET / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                    t.addr
                )
            ),
            other => panic!("{other:?}"),
        }
    }
    // `rouge check` has nothing to say about the HTTP part.
    let w = warnings(&file(), &base(S3_SNIPPET), &cfg, tls::unix_now());
    assert!(
        w.iter().all(|w| !w.error.field.starts_with("policy")),
        "{w:?}"
    );
}

#[test]
fn a_profile_of_only_a_name_has_the_engine_defaults_and_everything_saves() {
    let text = base(&format!(
        "{S3_SNIPPET}\n[[http_profile]]\nname = \"plain\"\n\n[[policy]]\nname = \"p2\"\nrules = [\n  {{ name = \"a\", host = \"*.Data.Rouge.Test\", methods = [\"PUT\", \"POST\", \"PROPFIND\"], pool = \"s3\" }},\n  {{ name = \"b\", path_prefix = \"/logs/\", header = {{ name = \"X-Tenant\", value = \"blue\" }}, pool = \"s3\" }},\n  {{ name = \"c\", host = \"S3.rouge.test\", pool = \"s3\" }},\n]\n"
    ))
    .replace("policy = \"s3-routing\"", "policy = \"p2\"");
    let cfg = parsed(&text);
    assert_eq!(cfg.http_profiles[1].profile(), HttpProfile::new("plain"));
    // Saved and read back: the same configuration.
    let again = parse(&file(), &to_toml(&cfg)).unwrap();
    assert_eq!(again, cfg);
    let dp = build::dataplane(&cfg, 1, 1, None);
    let vs = dp.standard.iter().find(|v| v.name == "s3").unwrap();
    let p = vs.http.as_ref().unwrap().policy.as_ref().unwrap();
    assert_eq!(p.name, "p2");
    assert_eq!(p.s3_domain, None);
    assert_eq!(
        p.rules[0].host,
        Some(HostMatch::Suffix(".data.rouge.test".into()))
    );
    assert_eq!(
        p.rules[0].methods,
        [Method::Put, Method::Post, Method::Other]
    );
    assert_eq!(p.rules[1].path_prefix.as_deref(), Some("/logs/"));
    assert_eq!(
        p.rules[1].header,
        Some(("x-tenant".to_string(), "blue".to_string()))
    );
    assert_eq!(
        p.rules[2].host,
        Some(HostMatch::Exact("s3.rouge.test".into()))
    );
    assert!(p.rules.iter().all(|r| r.pool == 0), "one pool, bound once");
    assert_eq!(vs.http.as_ref().unwrap().pools.len(), 1);
    // PROPFIND is not told apart: `rouge check` says so.
    let w = warnings(&file(), &text, &cfg, tls::unix_now());
    let m = w
        .iter()
        .find(|w| w.error.field == "policy[1].rules")
        .expect("method warning");
    assert!(!m.severe);
    assert!(m.error.problem.contains("`PROPFIND`"), "{}", m.error);
    // Located at the policy's `rules`.
    assert_eq!(
        m.error.line,
        Some(line_of(&text, "name = \"p2\"") + 1),
        "{}",
        m.error
    );
}

#[test]
fn a_lower_case_method_is_warned_about_with_its_spelling() {
    let text = base(S3_SNIPPET).replace(
        "bucket = \"replica\", pool",
        "bucket = \"replica\", methods = [\"get\"], pool",
    );
    let cfg = parsed(&text);
    let w = warnings(&file(), &text, &cfg, 0);
    let m = w
        .iter()
        .find(|w| w.error.field == "policy[0].rules")
        .unwrap();
    assert!(m.error.fix.contains("write \"GET\""), "{}", m.error);
}

#[test]
fn a_virtual_server_without_http_profile_has_no_http_layer() {
    let cfg = parsed(TESTBED);
    let dp = build::dataplane(&cfg, 1, 1, None);
    assert!(dp.standard.iter().all(|v| v.http.is_none()));
    let text = base(S3_SNIPPET).replace("policy = \"s3-routing\"\n", "");
    let dp = build::dataplane(&parsed(&text), 1, 1, None);
    let http = dp.standard[0].http.as_ref().unwrap();
    assert!(http.policy.is_none() && http.pools.is_empty());
}

#[test]
fn profile_values_out_of_range_are_refused() {
    for (line, field, words) in [
        ("max_headers = 129", "max_headers", "129 is out of range"),
        ("max_headers = 0", "max_headers", "0 is out of range"),
        ("header_timeout = 0", "header_timeout", "out of range"),
        ("keepalive_timeout = 0", "keepalive_timeout", "out of range"),
        (
            "response_timeout = 100000",
            "response_timeout",
            "out of range",
        ),
        ("max_request_line = 10", "max_request_line", "out of range"),
        ("max_header_bytes = 100", "max_header_bytes", "out of range"),
        (
            "max_request_line = 16384\nmax_header_bytes = 8192",
            "max_request_line",
            "more than max_header_bytes (8192)",
        ),
        (
            "max_idle_per_member = 0",
            "max_idle_per_member",
            "out of range",
        ),
        (
            "passive_down_after = 1000",
            "passive_down_after",
            "out of range",
        ),
    ] {
        // The snippet's own settings of these fields are taken out first.
        let text: String = base(S3_SNIPPET)
            .lines()
            .filter(|l| {
                !line
                    .lines()
                    .any(|x| l.starts_with(x.split(" = ").next().unwrap()))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let text = text.replace(
            "name = \"s3\"\ns3_resume = true",
            &format!("name = \"s3\"\ns3_resume = true\n{line}"),
        );
        let e = errors(&text);
        let found = error(&e, &format!("http_profile[0].{field}"), words);
        assert_eq!(found.line, Some(line_of(&text, &format!("{field} ="))));
        assert!(found.file.ends_with("x.toml"));
    }
    // No idle connections is fine without OneConnect.
    let text = base(S3_SNIPPET).replace(
        "oneconnect = true\nmax_idle_per_member = 32",
        "oneconnect = false\nmax_idle_per_member = 0",
    );
    parsed(&text);
    // An unknown field lists those that exist.
    let e = errors(&base(S3_SNIPPET).replace("s3_resume = true", "s3_resum = true"));
    assert!(e[0].problem.contains("s3_resume"), "{}", e[0]);
}

#[test]
fn policy_mistakes_are_each_refused_with_the_rule_named() {
    let rule = |r: &str| {
        base(S3_SNIPPET).replace(
            "{ name = \"replica-bucket\", bucket = \"replica\", pool = \"s3\" }",
            r,
        )
    };
    for (r, words, fix) in [
        (
            "{ name = \"x\", bucket = \"replica\", pool = \"nope\" }",
            "rule 0 (`x`): no pool named `nope`",
            "use one of: s3",
        ),
        (
            "{ name = \"all\", pool = \"s3\" }",
            "rule 0 (`all`) has no condition",
            "add host, path_prefix",
        ),
        (
            "{ name = \"h\", host = \"s3.*.test\", pool = \"s3\" }",
            "host `s3.*.test`",
            "*.s3.rouge.test",
        ),
        (
            "{ name = \"h\", host = \"*s3.rouge.test\", pool = \"s3\" }",
            "host `*s3.rouge.test`",
            "wildcard only as the first label",
        ),
        (
            "{ name = \"h\", host = \"s3.rouge.test:443\", pool = \"s3\" }",
            "host `s3.rouge.test:443`",
            "no port",
        ),
        (
            "{ name = \"p\", path_prefix = \"logs\", pool = \"s3\" }",
            "path_prefix `logs`",
            "starting with `/`",
        ),
        (
            "{ name = \"m\", methods = [\"GE T\"], pool = \"s3\" }",
            "method `GE T` is not an HTTP method token",
            "\"GET\"",
        ),
        (
            "{ name = \"hd\", header = { name = \"x tenant\", value = \"a\" }, pool = \"s3\" }",
            "header name `x tenant`",
            "field name",
        ),
        (
            "{ name = \"hd\", header = { name = \"x-t\", value = \" a\" }, pool = \"s3\" }",
            "header value",
            "without the blanks",
        ),
        (
            "{ name = \"b\", bucket = \"Replica_1\", pool = \"s3\" }",
            "`Replica_1` is not an S3 bucket name",
            "lower-case",
        ),
        (
            "{ name = \"d\", path_prefix = \"/a\", pool = \"s3\" }, { name = \"d\", path_prefix = \"/b\", pool = \"s3\" }",
            "rule 1 (`d`): the name is used twice",
            "its own name",
        ),
    ] {
        let text = rule(r);
        let e = errors(&text);
        let found = error(&e, "policy[0].rules", words);
        assert!(found.fix.contains(fix), "{found}");
        assert_eq!(found.line, Some(line_of(&text, "rules = [")), "{found}");
    }
    // `bucket` without `s3_domain`.
    let text = base(S3_SNIPPET).replace("s3_domain = \"s3.rouge.test\"\n", "");
    let e = errors(&text);
    let found = error(&e, "policy[0].rules", "needs the policy's s3_domain");
    assert!(found.fix.contains("add s3_domain = "), "{found}");
    // A bad s3_domain, no rules, a name used twice.
    let text = base(S3_SNIPPET).replace("\"s3.rouge.test\"\nrules", "\"*.s3.rouge.test\"\nrules");
    error(&errors(&text), "policy[0].s3_domain", "is not a DNS name");
    let text = base(S3_SNIPPET).replace(
        "rules = [ { name = \"replica-bucket\", bucket = \"replica\", pool = \"s3\" } ]",
        "rules = []",
    );
    error(&errors(&text), "policy[0].rules", "at least one rule");
}

#[test]
fn virtual_server_references_are_checked() {
    let text = base(S3_SNIPPET).replace("http_profile = \"s3\"", "http_profile = \"s4\"");
    let e = errors(&text);
    let f = error(&e, "virtual[0].http_profile", "no http_profile named `s4`");
    assert!(f.fix.contains("(defined: s3)"), "{f}");
    assert_eq!(f.line, Some(line_of(&text, "http_profile = \"s4\"")));
    let text = base(S3_SNIPPET).replace("policy = \"s3-routing\"\n", "policy = \"nope\"\n");
    let f = error(
        &errors(&text),
        "virtual[0].policy",
        "no policy named `nope`",
    );
    assert!(f.fix.contains("(defined: s3-routing)"), "{f}");
    // A policy needs the HTTP engine.
    let text = base(S3_SNIPPET).replace("http_profile = \"s3\"\n", "");
    let f = error(&errors(&text), "virtual[0].policy", "does not parse HTTP");
    assert!(f.fix.contains("add http_profile"), "{f}");
    // Only standard virtual servers speak HTTP.
    let text = base(&format!(
        "{S3_SNIPPET}\n[[virtual]]\nname = \"l4\"\ntype = \"fastl4\"\ndestination = \"198.18.1.100:80\"\npool = \"s3\"\nhttp_profile = \"s3\"\npolicy = \"s3-routing\"\n"
    ));
    let e = errors(&text);
    for field in ["http_profile", "policy"] {
        let f = error(
            &e,
            &format!("virtual[1].{field}"),
            "only a standard virtual server",
        );
        assert!(f.fix.contains("type = \"standard\""), "{f}");
    }
    // Names of profiles and policies are unique.
    let text = base(&format!("{S3_SNIPPET}\n[[http_profile]]\nname = \"s3\"\n"));
    error(&errors(&text), "http_profile[1].name", "used twice");
}

#[test]
fn s3_monitor_settings_are_checked_and_https_members_get_tls() {
    let with = |lines: &str| {
        base(S3_SNIPPET).replace(
            "type = \"s3\"\ninterval = 1",
            &format!("type = \"s3\"\n{lines}\ninterval = 1"),
        )
    };
    let f = error(
        &errors(&with("receive = \"403\"")),
        "monitor[0].receive",
        "any well-formed HTTP status line",
    );
    assert!(f.fix.contains("remove receive"), "{f}");
    error(
        &errors(&with("send = \"PING\"")),
        "monitor[0].send",
        "not an HTTP request",
    );
    error(
        &errors(&with("tls_profile = \"nope\"")),
        "monitor[0].tls_profile",
        "no tls_profile named `nope`",
    );
    // The s3-client profile verifies (the default) but names no CA.
    error(
        &errors(&with("tls_profile = \"s3-client\"")),
        "monitor[0].tls_profile",
        "names no ca",
    );
    // With a CA: the probes speak TLS; a given request is used as it is.
    let text = with(
        "tls_profile = \"members\"\nsend = \"GET /minio/health/live HTTP/1.1\\r\\nHost: s3\\r\\n\\r\\n\"",
    ) + "\n[[tls_profile]]\nname = \"members\"\nca = \"tls/ca.crt\"\n";
    let cfg = parsed(&text);
    let dp = build::dataplane(&cfg, 1, 1, None);
    let t = dp
        .monitor_targets
        .iter()
        .find(|t| t.spec.name == "s3-alive")
        .unwrap();
    match &t.spec.kind {
        ProbeKind::S3 {
            send,
            tls: Some(tls),
        } => {
            assert_eq!(send, "GET /minio/health/live HTTP/1.1\r\nHost: s3\r\n\r\n");
            assert_eq!(tls.profile, "members");
        }
        other => panic!("{other:?}"),
    }
    // tls_profile on an http monitor names both types that speak TLS.
    let text = TESTBED.replace(
        "receive = \"200\"\ninterval = 1",
        "receive = \"200\"\ntls_profile = \"members-https\"\ninterval = 1",
    );
    let f = error(&errors(&text), "monitor[0].tls_profile", "or an s3 monitor");
    assert!(f.fix.contains("\"s3\""), "{f}");
}

#[test]
fn a_new_snapshot_keeps_counters_and_member_states_for_the_http_pools() {
    let cfg = parsed(&base(S3_SNIPPET));
    let dp1 = build::dataplane(&cfg, 1, 1, None);
    let vs1 = &dp1.standard[0];
    vs1.counters.shard(0).http.requests.add(7);
    let (_, b1) = &vs1.http.as_ref().unwrap().pools[0];
    let id = b1.pool.ids().nth(1).unwrap();
    b1.states.set_monitor(id, MonitorStatus::Down);
    // The same configuration with another profile setting, applied over dp1.
    let text = base(S3_SNIPPET).replace("passive_down_after = 3", "passive_down_after = 5");
    let dp2 = build::dataplane(&parsed(&text), 2, 1, Some(&dp1));
    let vs2 = &dp2.standard[0];
    assert!(Arc::ptr_eq(&vs1.counters, &vs2.counters));
    assert_eq!(vs2.counters.http().requests, 7);
    let http = vs2.http.as_ref().unwrap();
    assert_eq!(http.profile.passive_down_after, 5);
    let (_, b2) = &http.pools[0];
    assert_eq!(b2.states.monitor(id), MonitorStatus::Down, "state carried");
    let (_, shared) = dp2.pools.iter().find(|(n, _)| n == "s3").unwrap();
    assert!(Arc::ptr_eq(&b2.states, &shared.states));
}

#[test]
fn show_virtual_and_the_metrics_carry_the_http_figures() {
    use rouge_pipelines::http::HttpError;
    use rouge_pipelines::proxy::HttpAnswer;
    // The S3 virtual server beside the test bed's (whose web-tls takes :443).
    let text = format!(
        "{TESTBED}\n{}",
        S3_SNIPPET
            .replace("198.18.1.100:443", "198.18.1.101:443")
            .replace("client_tls = \"s3-client\"\n", "")
    );
    let cfg = parsed(&text);
    let dp = build::dataplane(&cfg, 1, 2, None);
    let shared = crate::shared::Shared::new(cfg, "x.toml".into(), dp, &[None, None], None);
    {
        let dp = shared.dataplane.load();
        let vs = dp.standard.iter().find(|v| v.name == "s3").unwrap();
        let (w0, w1) = (&vs.counters.shard(0).http, &vs.counters.shard(1).http);
        w0.requests.add(5);
        w1.requests.add(4);
        w0.responses[0].add(6); // 2xx
        w1.responses[2].add(2); // 4xx
        w0.responses[3].inc(); // 5xx
        w1.responses[4].inc(); // 1xx
        w0.refused[HttpError::Smuggling as usize].add(2);
        w1.answers[HttpAnswer::NoMember as usize].inc();
        w0.server_connections_reused.add(7);
        w1.server_connections_opened.add(2);
        w0.retries.inc();
        w0.resumes_attempted.add(3);
        w1.resumes_succeeded.add(2);
        w0.resumes_refused.inc();
        w1.policy_routed.add(4);
        w0.passive_down.inc();
    }
    let one =
        crate::mgmt::execute(&shared, &["show".into(), "virtual".into(), "s3".into()]).unwrap();
    let h = &one[0]["http"];
    assert_eq!(
        *h,
        serde_json::json!({
            "profile": "s3", "policy": "s3-routing", "requests": 9,
            "responses": {"1xx": 1, "2xx": 6, "3xx": 0, "4xx": 2, "5xx": 1},
            "refused": {"malformed": 0, "smuggling": 2, "bad_chunk": 0,
                        "request_line_too_long": 0, "headers_too_large": 0, "bad_response": 0},
            "answers": {"header_timeout": 0, "bad_gateway": 0, "no_member": 1, "gateway_timeout": 0},
            "server_connections_reused": 7, "server_connections_opened": 2, "retries": 1,
            "resumes_attempted": 3, "resumes_succeeded": 2, "resumes_refused": 1,
            "policy_routed": 4, "passive_down": 1,
        })
    );
    let all = crate::views::virtuals(&shared);
    let web = all
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "web-proxy")
        .unwrap();
    assert!(web["http"].is_null(), "no http_profile, no http figures");
    let m = crate::metrics::render(&crate::metrics::registry(shared.clone())).unwrap();
    for line in [
        "rouge_http_requests_total{virtual=\"s3\"} 9",
        "rouge_http_responses_total{virtual=\"s3\",class=\"2xx\"} 6",
        "rouge_http_responses_total{virtual=\"s3\",class=\"1xx\"} 1",
        "rouge_http_refused_total{virtual=\"s3\",reason=\"smuggling\"} 2",
        "rouge_http_answers_total{virtual=\"s3\",answer=\"no_member\"} 1",
        "rouge_http_server_connections_reused_total{virtual=\"s3\"} 7",
        "rouge_http_server_connections_opened_total{virtual=\"s3\"} 2",
        "rouge_http_retries_total{virtual=\"s3\"} 1",
        "rouge_http_resumes_attempted_total{virtual=\"s3\"} 3",
        "rouge_http_resumes_succeeded_total{virtual=\"s3\"} 2",
        "rouge_http_resumes_refused_total{virtual=\"s3\"} 1",
        "rouge_http_policy_routed_total{virtual=\"s3\"} 4",
        "rouge_http_passive_down_total{virtual=\"s3\"} 1",
    ] {
        assert!(m.lines().any(|l| l == line), "{line} missing");
    }
    assert!(
        !m.contains("rouge_http_requests_total{virtual=\"web-proxy\"}"),
        "only virtual servers with HTTP"
    );
    // `show monitor` names the type.
    let mon = crate::views::monitors(&shared, Some("s3-alive")).unwrap();
    assert_eq!(mon[0]["type"], "s3");
    assert_eq!(mon[0]["members"]["unchecked"], 4);
}
