use super::*;

const TESTBED: &str = include_str!("../../configs/testbed.toml");

fn errors(text: &str) -> Vec<ConfigError> {
    parse("x.toml", text).unwrap_err().0
}

#[test]
fn the_testbed_config_is_valid_and_builds() {
    let cfg = parse("testbed.toml", TESTBED).unwrap();
    assert_eq!(cfg.interfaces.len(), 2);
    let dp = build::dataplane(&cfg, 1, 1, None);
    assert_eq!(dp.self_ips.len(), 2);
    assert_eq!(dp.forwarding.len(), 2);
    assert_eq!(dp.vlan_of(1, None), Some(1));
    assert!(
        dp.routes
            .lookup_v4("198.18.2.11".parse().unwrap())
            .unwrap()
            .connected
    );
}

#[test]
fn saved_config_parses_back_to_the_same() {
    let cfg = parse("testbed.toml", TESTBED).unwrap();
    let again = parse("saved.toml", &to_toml(&cfg)).unwrap();
    assert_eq!(cfg, again);
}

#[test]
fn a_dangling_vlan_names_file_line_field_and_fix() {
    let text = TESTBED.replace(
        "vlan = \"server\"\nfloating",
        "vlan = \"servers\"\nfloating",
    );
    let e = errors(&text);
    assert_eq!(e.len(), 1, "{e:?}");
    let line = text
        .lines()
        .position(|l| l.contains("\"servers\""))
        .unwrap()
        + 1;
    assert_eq!(e[0].line, Some(line));
    assert_eq!(e[0].field, "self_ip[1].vlan");
    let msg = e[0].to_string();
    assert!(
        msg.starts_with(&format!(
            "x.toml:{line}: self_ip[1].vlan: no VLAN named `servers`"
        )),
        "{msg}"
    );
    assert!(msg.contains("use one of: client, server"), "{msg}");
}

#[test]
fn unknown_fields_and_bad_values_are_refused_with_their_line() {
    let e = errors("[[interface]]\nname = \"lb-c\"\nrx_rign = \"v3\"\n");
    assert_eq!(e[0].line, Some(3));
    assert!(e[0].problem.contains("unknown field `rx_rign`"), "{}", e[0]);
    assert!(
        e[0].problem.contains("rx_ring"),
        "lists the valid fields: {}",
        e[0]
    );
    let e = errors("[[interface]]\nname = \"lb-c\"\n[[vlan]]\nname = \"c\"\ninterface = \"lb-c\"\n[[self_ip]]\nname = \"s\"\nvlan = \"c\"\naddress = \"198.18.1.300/24\"\n");
    assert_eq!(e[0].line, Some(9));
    assert!(e[0].problem.contains("198.18.1.300"), "{}", e[0]);
    let e = errors("[system]\nidle = \"lazy\"\n");
    assert!(
        e[0].problem.contains("busy") && e[0].problem.contains("adaptive"),
        "{}",
        e[0]
    );
    let e = errors("[[interface\nname = 1");
    assert_eq!(e[0].line, Some(1));
}

#[test]
fn semantic_mistakes_are_each_reported() {
    let text = r#"
[system]
cores = [1, 1]
pool_size = 10

[[interface]]
name = "lb-c"

[[interface]]
name = "lb-c"

[[vlan]]
name = "client"
interface = "eth9"
tag = 5000

[[self_ip]]
name = "a"
address = "198.18.1.0/24"
vlan = "client"

[[self_ip]]
name = "b"
address = "2001:db8::1/64"
vlan = "client"

[[route]]
name = "default"
destination = "0.0.0.0/0"
gateway = "203.0.113.1"

[[virtual]]
name = "web"
type = "fastl4"
destination = "198.18.1.100:80"

[[virtual]]
name = "fwd"
type = "forwarding"
destination = "198.18.2.0/33"

[arp]
retries = 0
"#;
    let e = errors(text);
    let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
    for want in [
        "system.cores",
        "system.pool_size",
        "interface[1].name",
        "vlan[0].interface",
        "vlan[0].tag",
        "self_ip[0].address",
        "self_ip[1].address",
        "route[0].gateway",
        "virtual[0].pool",
        "virtual[1].destination",
        "arp.retries",
    ] {
        assert!(fields.contains(&want), "missing {want} in {fields:?}");
    }
    for err in &e {
        assert!(err.line.is_some(), "{err}");
        assert!(!err.fix.is_empty(), "{err}");
    }
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let e = load(Path::new("/nonexistent/rouge.toml")).unwrap_err();
    assert!(e.to_string().contains("cannot read"), "{e}");
}

#[test]
fn pools_and_monitors_are_checked() {
    let text = format!(
        "{TESTBED}\n{}",
        r#"
[[monitor]]
name = "http-root"
type = "http"
send = "GET / HTTP/1.0\r\n\r\n"
interval = 1
timeout = 0.5

[[pool]]
name = "web2"
method = "round-robin"
monitor = "http-rot"
members = [{ address = "198.18.2.11:80" }, { address = "198.18.2.11:80", ratio = 0 }]

[[pool]]
name = "empty"
method = "least-connections"
members = []
"#
    );
    let e = errors(&text);
    let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
    // The test bed's own monitor and pools come first.
    for want in [
        "monitor[1].timeout",
        "monitor[1].receive",
        "pool[2].monitor",
        "pool[2].members",
        "pool[3].members",
    ] {
        assert!(fields.contains(&want), "missing {want} in {e:#?}");
    }
    let ok = format!(
        "{TESTBED}\n{}",
        r#"
[[monitor]]
name = "http-root"
type = "http"
send = "GET / HTTP/1.0\r\n\r\n"
receive = "200"
interval = 1
timeout = 3

[[pool]]
name = "web2"
method = "weighted-least-connections"
monitor = "http-root"
members = [{ address = "198.18.2.11:80", ratio = 3, state = "disabled" }, { address = "198.18.2.12:80", state = "forced-offline" }]
"#
    );
    let cfg = parse("ok.toml", &ok).unwrap();
    assert_eq!(
        cfg.pools[2].members[1].state,
        model::MemberState::ForcedOffline
    );
    assert_eq!(
        parse("saved.toml", &to_toml(&cfg)).unwrap(),
        cfg,
        "round trip"
    );
}
