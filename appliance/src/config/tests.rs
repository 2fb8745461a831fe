use super::*;

const TESTBED: &str = include_str!("../../configs/testbed.toml");

/// `name` in the shipped configurations' directory, so relative TLS paths (`tls/…`)
/// resolve as they do for the shipped files.
fn at(name: &str) -> String {
    format!("{}/configs/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The problems of `text` read as `configs/x.toml`, with the file named `x.toml`.
fn errors(text: &str) -> Vec<ConfigError> {
    let mut e = parse(&at("x.toml"), text).unwrap_err().0;
    for e in &mut e {
        e.file = "x.toml".into();
    }
    e
}

#[test]
fn the_testbed_config_is_valid_and_builds() {
    let cfg = parse(&at("testbed.toml"), TESTBED).unwrap();
    assert_eq!(cfg.interfaces.len(), 2);
    let dp = build::dataplane(&cfg, 1, 1, None);
    assert_eq!(dp.self_ips.len(), 4);
    assert_eq!(dp.forwarding.len(), 4);
    assert!(
        dp.answers_nd("2001:2:0:1::100".parse().unwrap(), 0),
        "web6's VIP"
    );
    assert_eq!(
        dp.source_for_v6(1, "2001:2:0:2::11".parse().unwrap()),
        Some("2001:2:0:2::1".parse().unwrap())
    );
    assert_eq!(dp.vlan_of(1, None), Some(1));
    assert!(
        dp.routes
            .lookup_v4("198.18.2.11".parse().unwrap())
            .unwrap()
            .connected
    );
}

#[test]
fn a_realtime_priority_parses_and_saves() {
    let text = TESTBED.replace("[system]\n", "[system]\nrealtime_priority = 50\n");
    let cfg = parse(&at("testbed.toml"), &text).unwrap();
    assert_eq!(cfg.system.realtime_priority, Some(50));
    assert_eq!(parse(&at("saved.toml"), &to_toml(&cfg)).unwrap(), cfg);
}

#[test]
fn saved_config_parses_back_to_the_same() {
    let cfg = parse(&at("testbed.toml"), TESTBED).unwrap();
    let again = parse(&at("saved.toml"), &to_toml(&cfg)).unwrap();
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
realtime_priority = 0

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
address = "fe80::1/64"
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
        "system.realtime_priority",
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
        "pool[4].monitor",
        "pool[4].members",
        "pool[5].members",
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
    let cfg = parse(&at("ok.toml"), &ok).unwrap();
    assert_eq!(
        cfg.pools.iter().find(|p| p.name == "web2").unwrap().members[1].state,
        model::MemberState::ForcedOffline
    );
    assert_eq!(
        parse(&at("saved.toml"), &to_toml(&cfg)).unwrap(),
        cfg,
        "round trip"
    );
}

const SHAPING: &str = include_str!("../../configs/shaping.toml");

#[test]
fn the_shaping_example_builds_its_policy_and_round_trips() {
    let cfg = parse("shaping.toml", SHAPING).unwrap();
    assert_eq!(
        parse(&at("saved.toml"), &to_toml(&cfg)).unwrap(),
        cfg,
        "round trip"
    );
    let dp = build::dataplane(&cfg, 1, 1, None);
    let p = dp.shaping.as_ref().expect("shaping on");
    let names: Vec<&str> = p.classes().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["gold", "bronze", "priority", "default"]);
    assert_eq!(p.default_class(), 3);
    for port in 0..2 {
        let root = p.root(port).expect("both egresses shaped");
        assert_eq!(root.rate_bps, 200_000_000);
        // No shaping_burst: 2 ms of the line rate.
        assert_eq!(root.burst_bytes, 50_000);
        assert!(p.shaper_config(port).unwrap().validate().is_ok());
    }
    let prio = &p.classes()[2].config;
    assert_eq!(
        (prio.priority, prio.ceiling_bps),
        (Some(0), Some(20_000_000))
    );
    let member = |s: &str| s.parse().unwrap();
    let client = "198.18.1.3".parse().unwrap();
    assert_eq!(
        p.classify("gold-udp", member("198.18.2.11:5201"), client),
        0
    );
    assert_eq!(p.classify("bronze", member("198.18.2.12:5201"), client), 1);
    assert_eq!(
        p.classify("priority", member("198.18.2.13:5201"), client),
        2
    );
    // The test bed's config shapes nothing.
    let plain = parse(&at("testbed.toml"), TESTBED).unwrap();
    assert!(build::dataplane(&plain, 1, 1, None).shaping.is_none());
}

#[test]
fn pools_members_and_clients_assign_classes_most_specific_first() {
    let text = format!(
        "{SHAPING}\n{}",
        r#"
[[class]]
name = "replication"
pools = ["bronze"]
members = ["198.18.2.11:5201"]
clients = ["198.18.1.128/25"]
"#
    )
    .replace(
        "virtuals = [\"bronze\", \"bronze-udp\", \"bronze-proxy\"]",
        "",
    );
    let cfg = parse(&at("x.toml"), &text).unwrap();
    let dp = build::dataplane(&cfg, 1, 1, None);
    let p = dp.shaping.as_ref().unwrap();
    let r = p.class_by_name("replication").unwrap();
    let m = |s: &str| s.parse().unwrap();
    let low = "198.18.1.3".parse().unwrap();
    let high = "198.18.1.200".parse().unwrap();
    // The member rule beats gold's virtual-server rule.
    assert_eq!(p.classify("gold", m("198.18.2.11:5201"), low), r);
    // The pool's virtual servers follow the pool once no class names them.
    assert_eq!(p.classify("bronze-udp", m("198.18.2.12:5201"), low), r);
    // A client network catches what nothing else claims; the rest is default.
    let other = m("198.18.2.14:80");
    assert_eq!(p.classify("web", other, high), r);
    assert_eq!(p.classify("web", other, low), p.default_class());
}

#[test]
fn bad_classes_name_field_and_fix() {
    let text = format!(
        "{SHAPING}\n{}",
        r#"
[[class]]
name = "bad"
parent = "later"
weight = 0
priority = 9
guaranteed = "50Mbit"
ceiling = "10Mbit"
burst = 100
queue_limit = 0
virtuals = ["gold", "nosuch"]
pools = ["nopool"]
members = ["198.18.2.99:1"]
clients = ["198.18.1.0/33"]

[[class]]
name = "later"
"#
    );
    let e = errors(&text);
    let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
    for want in [
        "class[3].parent",
        "class[3].weight",
        "class[3].priority",
        "class[3].guaranteed",
        "class[3].burst",
        "class[3].queue_limit",
        "class[3].virtuals",
        "class[3].pools",
        "class[3].members",
        "class[3].clients",
    ] {
        assert!(fields.contains(&want), "missing {want} in {e:#?}");
    }
    let msgs: Vec<String> = e.iter().map(|e| e.to_string()).collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("define class `later` before its children")),
        "{msgs:#?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("`gold` is already in another class")),
        "{msgs:#?}"
    );
    for err in &e {
        assert!(err.line.is_some() && !err.fix.is_empty(), "{err}");
    }
    // A bad rate names the field's line and how to write one.
    let e = errors(&SHAPING.replace(
        "shaping_rate = \"200Mbit\"      # the",
        "shaping_rate = \"fast\"      # the",
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].to_string().contains("\"200Mbit\""), "{}", e[0]);
    // Guarantees above the line rate, queues beyond the buffers, classes with no root.
    let e = errors(&SHAPING.replace("weight = 3\n", "weight = 3\nguaranteed = \"300Mbit\"\n"));
    assert!(
        e.iter().any(|e| e.field == "interface[0].shaping_rate"),
        "{e:?}"
    );
    let e = errors(&SHAPING.replace(
        "idle = \"adaptive\"",
        "idle = \"adaptive\"\npool_size = 1024",
    ));
    assert!(
        e.iter()
            .any(|e| e.field == "system.pool_size" && e.fix.contains("4096")),
        "{e:?}"
    );
    let e = errors(&SHAPING.replace("shaping_rate = \"200Mbit\"", ""));
    assert!(
        e.iter().any(|e| e.problem.contains("no interface shapes")),
        "{e:?}"
    );
    // A strict-priority class must have a ceiling.
    let e = errors(&SHAPING.replace("ceiling = \"20Mbit\"", ""));
    assert!(e.iter().any(|e| e.field == "class[2].ceiling"), "{e:?}");
}

#[test]
fn the_root_burst_defaults_to_two_ms_of_line_rate_and_obeys_shaping_burst() {
    use super::shaping::{default_root_burst, DEFAULT_ROOT_BURST};
    // Slow roots keep the 16 KiB floor; fast ones get 2 ms of their rate.
    assert_eq!(default_root_burst(1_000_000), DEFAULT_ROOT_BURST);
    assert_eq!(default_root_burst(65_536_000), DEFAULT_ROOT_BURST);
    assert_eq!(default_root_burst(1_000_000_000), 250_000);
    assert_eq!(default_root_burst(100_000_000_000), 25_000_000);
    // Absurd rates stop at the largest burst a config may set.
    assert_eq!(default_root_burst(u64::MAX), 64 << 20);
    let cfg = parse(
        "shaping.toml",
        &SHAPING.replacen(
            "shaping_rate = \"200Mbit\"",
            "shaping_rate = \"200Mbit\"\nshaping_burst = 20000",
            1,
        ),
    )
    .unwrap();
    let dp = build::dataplane(&cfg, 1, 1, None);
    let p = dp.shaping.as_ref().unwrap();
    assert_eq!(p.root(0).unwrap().burst_bytes, 20_000);
    assert_eq!(p.root(1).unwrap().burst_bytes, 50_000);
}

/// The one error of `text`, as printed.
fn one_error(text: &str) -> (ConfigError, String) {
    let e = errors(text);
    assert_eq!(e.len(), 1, "{e:?}");
    let shown = e[0].to_string();
    (e[0].clone(), shown)
}

#[test]
fn an_enumeration_given_the_wrong_type_names_the_field_and_every_allowed_value() {
    let text = TESTBED.replace("idle = \"adaptive\"", "idle = [\"this is not valid\"]");
    let line = text.lines().position(|l| l.starts_with("idle =")).unwrap() + 1;
    let (e, shown) = one_error(&text);
    assert_eq!(e.line, Some(line));
    assert_eq!(e.field, "system.idle");
    assert_eq!(
        e.problem,
        "expected \"busy\", \"adaptive\" or \"sleep\", found [\"this is not valid\"]"
    );
    assert!(
        shown.contains(
            "fix: write one value in double quotes: idle = \"busy\" or idle = \"adaptive\" or idle = \"sleep\""
        ),
        "{shown}"
    );
}

#[test]
fn a_misspelt_value_gets_the_nearest_allowed_one() {
    let (e, _) = one_error(&TESTBED.replace("idle = \"adaptive\"", "idle = \"bsy\""));
    assert_eq!(e.field, "system.idle");
    assert_eq!(
        e.problem,
        "\"bsy\" is not allowed; expected \"busy\", \"adaptive\" or \"sleep\""
    );
    assert_eq!(e.fix, "did you mean \"busy\"? write idle = \"busy\"");

    let text = TESTBED.replace("type = \"fastl4\"", "type = \"fast-l4\"");
    let (e, shown) = one_error(&text);
    assert_eq!(e.field, "virtual[7].type");
    assert!(e.problem.contains("\"forwarding\", \"fastl4\""), "{shown}");
    assert!(e.fix.starts_with("did you mean \"fastl4\"?"), "{shown}");

    // Nothing close: every allowed value instead of a guess.
    let text = TESTBED.replace(
        "{ address = \"198.18.2.12:80\" }",
        "{ address = \"198.18.2.12:80\", state = \"off\" }",
    );
    let (e, shown) = one_error(&text);
    assert_eq!(e.field, "pool[0].members[1].state");
    assert_eq!(
        e.fix, "write state = one of \"enabled\", \"disabled\" or \"forced-offline\"",
        "{shown}"
    );
}

#[test]
fn a_misspelt_key_gets_the_nearest_valid_key() {
    let (e, _) = one_error(&TESTBED.replace("idle = \"adaptive\"", "idel = \"busy\""));
    assert_eq!(e.field, "system.idel");
    assert!(e
        .problem
        .starts_with("unknown field `idel`; the fields of system are: cores, idle,"));
    assert_eq!(e.fix, "did you mean `idle`?");

    let text = TESTBED.replace(
        "{ address = \"198.18.2.12:80\" }",
        "{ address = \"198.18.2.12:80\", stat = \"disabled\" }",
    );
    let (e, _) = one_error(&text);
    assert_eq!(e.field, "pool[0].members[1].stat");
    assert_eq!(e.fix, "did you mean `state`?");

    let (e, _) = one_error(&TESTBED.replace("[arp]", "[arpp]"));
    assert_eq!(e.field, "arpp");
    assert!(e.problem.starts_with("unknown table `arpp`"), "{e}");
    assert_eq!(e.fix, "did you mean `arp`?");

    let (e, _) = one_error("[system]\nwibble = 1\n");
    assert!(
        e.fix.starts_with("remove it, or use one of: cores, idle"),
        "{e}"
    );
}

#[test]
fn wrong_types_say_what_was_expected_with_an_example() {
    let text = TESTBED.replace("interval = 1 ", "interval = \"1s\" ");
    let (e, _) = one_error(&text);
    assert_eq!(e.field, "monitor[0].interval");
    assert_eq!(e.problem, "expected a number, found \"1s\"");
    assert_eq!(
        e.fix,
        "write interval = a number, e.g. interval = 1 (as in appliance/configs/testbed.toml)"
    );

    let (e, _) = one_error(&TESTBED.replace("max_entries = 4096", "max_entries = -1"));
    assert_eq!(e.field, "arp.max_entries");
    assert_eq!(e.problem, "expected a whole number, 0 or more, found -1");

    let (e, _) = one_error(&TESTBED.replace(
        "reset_on_member_down = true",
        "reset_on_member_down = \"yes\"",
    ));
    assert_eq!(e.field, "virtual[7].reset_on_member_down");
    assert_eq!(
        e.problem,
        "expected true or false (without quotes), found \"yes\""
    );

    let (e, _) = one_error("[system]\ncores = [1, \"x\"]\n");
    assert_eq!(e.field, "system.cores[1]");
    assert_eq!(
        e.fix,
        "make every element of cores a whole number, 0 or more"
    );

    let (e, _) = one_error(&TESTBED.replace("http = \"127.0.0.1:9400\"", "http = \"localhost\""));
    assert_eq!(e.field, "management.http");
    assert!(e.problem.contains("invalid socket address"), "{e}");
    assert!(e.fix.contains("http = \"127.0.0.1:9400\""), "{e}");
}

#[test]
fn a_missing_field_is_named_with_its_table() {
    let text = TESTBED.replacen("name = \"client-self\"\n", "", 1);
    let (e, _) = one_error(&text);
    assert_eq!(e.field, "self_ip[0].name");
    assert_eq!(e.problem, "is required but missing");
    assert!(e.fix.starts_with("add name = … to this table"), "{e}");
}

#[test]
fn text_that_is_not_toml_is_a_syntax_error_on_its_line() {
    let (e, shown) = one_error("[system]\nidle = \"busy\"\nidle = \"busy\"\n");
    assert_eq!(e.line, Some(3));
    assert_eq!(e.field, "(syntax)");
    assert!(shown.contains("duplicate key `idle`"), "{shown}");
}

#[test]
fn the_management_address_needs_a_port() {
    let text = TESTBED.replace("http = \"127.0.0.1:9400\"", "http = \"127.0.0.1:0\"");
    let line = text.lines().position(|l| l.starts_with("http =")).unwrap() + 1;
    let (e, shown) = one_error(&text);
    assert_eq!(e.line, Some(line), "{shown}");
    assert_eq!(e.field, "management.http");
    assert!(
        shown.contains("127.0.0.1:0 has no port; fix: give the port"),
        "{shown}"
    );
    let cfg = parse(&at("t.toml"), TESTBED).unwrap();
    assert_eq!(cfg.management.http, Some("127.0.0.1:9400".parse().unwrap()));
    // Absent: no server.
    let off = parse(
        &at("t.toml"),
        &TESTBED.replace("[management]\nhttp = \"127.0.0.1:9400\"\n", ""),
    )
    .unwrap();
    assert_eq!(off.management.http, None);
    assert!(!to_toml(&off).contains("[management]"));
}

const TESTBED_AFXDP: &str = include_str!("../../configs/testbed-afxdp.toml");
const TESTBED_DPDK: &str = include_str!("../../configs/testbed-dpdk.toml");

/// `cfg` with the driver fields of its interfaces and `[system] dpdk_args` back to
/// AF_PACKET's defaults.
fn as_afpacket(mut cfg: Config) -> Config {
    cfg.system.dpdk_args.clear();
    for i in &mut cfg.interfaces {
        i.driver = model::Driver::Afpacket;
        i.queues = None;
        i.pci = None;
        i.vdev = None;
    }
    cfg
}

#[test]
fn the_driver_variants_of_the_testbed_config_differ_from_it_only_in_their_ports() {
    let base = parse(&at("testbed.toml"), TESTBED).unwrap();
    let afxdp = parse(&at("testbed-afxdp.toml"), TESTBED_AFXDP).unwrap();
    assert!(afxdp
        .interfaces
        .iter()
        .all(|i| i.driver == model::Driver::Afxdp && i.queues == Some(1)));
    assert_eq!(as_afpacket(afxdp.clone()), base, "same appliance otherwise");
    assert_eq!(
        afxdp.management.http,
        Some("127.0.0.1:9400".parse().unwrap())
    );
    assert_eq!(parse(&at("saved.toml"), &to_toml(&afxdp)).unwrap(), afxdp);

    match (
        drivers::DPDK_BUILT,
        parse(&at("testbed-dpdk.toml"), TESTBED_DPDK),
    ) {
        (true, Ok(dpdk)) => {
            assert_eq!(
                dpdk.interfaces
                    .iter()
                    .map(|i| drivers::dpdk_device(i).unwrap())
                    .collect::<Vec<_>>(),
                ["net_af_packet0", "net_af_packet1"]
            );
            assert!(drivers::dpdk_no_huge(&dpdk));
            assert_eq!(parse(&at("saved.toml"), &to_toml(&dpdk)).unwrap(), dpdk);
            assert_eq!(as_afpacket(dpdk), base, "same appliance otherwise");
        }
        (false, Err(e)) => {
            // Without DPDK support each DPDK interface is refused, with the rebuild.
            assert_eq!(e.0.len(), 2, "{e}");
            let line = TESTBED_DPDK
                .lines()
                .position(|l| l.starts_with("driver = \"dpdk\""))
                .unwrap()
                + 1;
            assert_eq!(e.0[0].line, Some(line));
            assert_eq!(e.0[0].field, "interface[0].driver");
            assert!(e.0[0].problem.contains("built without it"), "{e}");
            assert!(
                e.0[0]
                    .fix
                    .contains("cargo build --release -p rouge-appliance --features dpdk"),
                "{e}"
            );
        }
        (built, r) => panic!("built with DPDK: {built}, yet {r:?}"),
    }
}

#[test]
fn an_unknown_driver_lists_every_driver() {
    let text = TESTBED.replace("rx_ring = \"v2\" ", "driver = \"xdp\"\nrx_ring = \"v2\" ");
    let (e, shown) = one_error(&text);
    assert_eq!(e.field, "interface[0].driver", "{shown}");
    assert!(
        e.problem.contains("\"afpacket\", \"afxdp\" or \"dpdk\""),
        "{shown}"
    );
}

#[test]
fn driver_fields_that_do_not_fit_name_the_line_field_and_fix() {
    // `queues` on an AF_PACKET port.
    let text = TESTBED.replace("rx_ring = \"v2\" ", "queues = 2\nrx_ring = \"v2\" ");
    let (e, shown) = one_error(&text);
    assert_eq!(e.field, "interface[0].queues");
    assert_eq!(
        e.line,
        Some(text.lines().position(|l| l == "queues = 2").unwrap() + 1)
    );
    assert!(e.fix.contains("set driver = \"afxdp\""), "{shown}");

    // `tx_path` chooses how AF_PACKET sends: valid there, refused on AF_XDP.
    for path in ["auto", "ring", "copy"] {
        let text = TESTBED.replace(
            "rx_ring = \"v2\" ",
            &format!("tx_path = \"{path}\"\nrx_ring = \"v2\" "),
        );
        let cfg = parse(&at("x.toml"), &text).unwrap_or_else(|e| panic!("{path}: {e:?}"));
        assert_eq!(cfg.interfaces[0].tx_path.is_auto(), path == "auto");
    }
    let text = TESTBED_AFXDP.replacen("queues = 1", "queues = 1\ntx_path = \"ring\"", 1);
    let (e, shown) = one_error(&text);
    assert_eq!(e.field, "interface[0].tx_path", "{shown}");
    assert!(e.fix.contains("set driver = \"afpacket\""), "{shown}");
    let text = TESTBED.replace("rx_ring = \"v2\" ", "tx_path = \"mmap\"\nrx_ring = \"v2\" ");
    let (e, shown) = one_error(&text);
    assert_eq!(e.field, "interface[0].tx_path", "{shown}");
    assert!(
        e.problem.contains("\"auto\", \"ring\" or \"copy\""),
        "{shown}"
    );

    // AF_XDP: one queue but two workers.
    let text = TESTBED_AFXDP.replace("# cores = [1]", "cores = [0, 1]");
    let e = errors(&text);
    assert_eq!(e.len(), 2, "{e:?}");
    assert_eq!(e[1].field, "interface[1].queues");
    assert!(
        e[1].problem.contains("queues = 1 but 2 worker(s) run"),
        "{e:?}"
    );
    assert!(e[1].fix.contains("a veth has one queue"), "{e:?}");
    // Absent `queues` means one per worker: valid for the configuration.
    let text = text.replace("queues = 1 ", "").replace("queues = 1\n", "");
    assert!(parse(&at("x.toml"), &text).is_ok());

    // A DPDK device on an AF_XDP port.
    let text = TESTBED_AFXDP.replacen("queues = 1 ", "pci = \"0000:00:04.0\" ", 1);
    let (e, shown) = one_error(&text);
    assert_eq!(e.field, "interface[0].pci");
    assert!(e.fix.starts_with("set driver = \"dpdk\""), "{shown}");
}

#[cfg(feature = "dpdk")]
#[test]
fn dpdk_ports_need_one_valid_unique_device_and_a_queue_pair_per_worker() {
    let check = |from: &str, to: &str, field: &str, says: &str| {
        let text = TESTBED_DPDK.replacen(from, to, 1);
        let (e, shown) = one_error(&text);
        assert_eq!(e.field, field, "{shown}");
        assert!(shown.contains(says), "{shown}");
    };
    check(
        "vdev = \"net_af_packet0,iface=lb-c\"",
        "",
        "interface[0].driver",
        "add pci = \"0000:00:04.0\"",
    );
    check(
        "vdev = \"net_af_packet0,iface=lb-c\"",
        "pci = \"00:04\"",
        "interface[0].pci",
        "`00:04` is not a PCI address",
    );
    check(
        "net_af_packet1",
        "net_af_packet0",
        "interface[1].vdev",
        "device `net_af_packet0` is already interface[0]",
    );
    check(
        "vdev = \"net_af_packet0,iface=lb-c\"",
        "vdev = \"af_packet0\"",
        "interface[0].vdev",
        "is not a DPDK network vdev",
    );
    let text = TESTBED_DPDK.replace("# cores = [1]", "cores = [0, 1]");
    let e = errors(&text);
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].problem.contains("has 1 queue pair(s), but 2 workers"),
        "{e:?}"
    );
    assert!(e[0].fix.contains(",qpairs=2"), "{e:?}");
    let text = text
        .replace("iface=lb-c\"", "iface=lb-c,qpairs=2\"")
        .replace("iface=lb-s\"", "iface=lb-s,qpairs=2\"");
    assert!(
        parse(&at("x.toml"), &text).is_ok(),
        "two workers, two queue pairs each"
    );
}

#[test]
fn workers_from_the_command_line_are_checked_against_the_queues() {
    let cfg = parse(&at("testbed-afxdp.toml"), TESTBED_AFXDP).unwrap();
    assert!(check_workers("testbed-afxdp.toml", &cfg, 1).is_ok());
    let e = check_workers("testbed-afxdp.toml", &cfg, 2)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("testbed-afxdp.toml: interface[0].queues: queues = 1 but 2 worker(s) run"),
        "{e}"
    );
    assert!(e.contains("fix: set queues = 2"), "{e}");
    assert_eq!(e.lines().count(), 2, "both interfaces: {e}");
}

#[test]
fn the_testbed_proxy_builds_with_its_profiles() {
    let cfg = parse(&at("testbed.toml"), TESTBED).unwrap();
    let dp = build::dataplane(&cfg, 1, 2, None);
    assert_eq!(dp.standard.len(), 2, "web-proxy and web-tls");
    let vs = &dp.standard[0];
    assert_eq!(vs.name, "web-proxy");
    assert_eq!(vs.vip, "198.18.1.100:8080".parse().unwrap());
    assert_eq!(vs.lb.pool.members().len(), 4);
    assert_eq!(vs.client_profile.recv_buffer, 262_144);
    assert_eq!(vs.server_profile.recv_buffer, 524_288);
    assert!(!vs.server_profile.nagle);
    assert_eq!(
        vs.server_profile.delayed_ack,
        std::time::Duration::from_millis(40)
    );
    assert_eq!((vs.buffer_high, vs.buffer_low), (131_072, 98_304));
    assert!(dp.is_proxy_endpoint("198.18.1.100".parse().unwrap(), 8080));
    assert!(!dp.is_proxy_endpoint("198.18.1.100".parse().unwrap(), 80));
    // Counters survive a configuration change.
    vs.counters.shard(1).reselects.inc();
    let again = build::dataplane(&cfg, 2, 2, Some(&dp));
    assert_eq!(again.standard[0].counters.reselects(), 1);
}

#[test]
fn standard_virtual_server_mistakes_are_each_reported() {
    let text = format!(
        "{TESTBED}\n{}",
        r#"
[[tcp_profile]]
name = "bad"
proxy_buffer_high = 1000
congestion = "vegas"
mss = 100
delayed_ack_ms = 900

[[tcp_profile]]
name = "upside-down"
proxy_buffer_high = 65536
proxy_buffer_low = 65536

[[virtual]]
name = "p2"
type = "standard"
destination = "198.18.1.100:8080"
pool = "nope"
tcp_profile_client = "missing"
snat = "sometimes"
allow = ["not-a-network"]
reselect_tries = 0
connect_timeout_ms = 1
idle_timeout = 5

[[virtual]]
name = "p3"
type = "standard"
destination = "198.18.1.100:80"
pool = "web"
"#
    );
    let e = errors(&text);
    let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
    // p2 and p3 follow the test bed's virtual servers.
    let n = TESTBED.matches("[[virtual]]").count();
    let (p2, p3) = (format!("virtual[{n}]"), format!("virtual[{}]", n + 1));
    let renumbered: Vec<String> = fields
        .iter()
        .map(|f| {
            // Through placeholders: p3 may be the name p2 is given.
            f.replacen(&p2, "P2", 1)
                .replacen(&p3, "P3", 1)
                .replacen("P2", "virtual[12]", 1)
                .replacen("P3", "virtual[13]", 1)
        })
        .collect();
    let fields: Vec<&str> = renumbered.iter().map(String::as_str).collect();
    for want in [
        "tcp_profile[2].proxy_buffer_high",
        "tcp_profile[2].congestion",
        "tcp_profile[2].mss",
        "tcp_profile[2].delayed_ack_ms",
        "tcp_profile[3].proxy_buffer_low",
        "virtual[12].destination",
        "virtual[12].pool",
        "virtual[12].tcp_profile_client",
        "virtual[12].snat",
        "virtual[12].allow",
        "virtual[12].reselect_tries",
        "virtual[12].connect_timeout_ms",
        "virtual[12].idle_timeout",
        "virtual[13].destination",
    ] {
        assert!(fields.contains(&want), "missing {want} in {fields:#?}");
    }
    let dup = e
        .iter()
        .find(|e| e.field == format!("{p3}.destination"))
        .unwrap();
    assert!(dup.problem.contains("198.18.1.100:80"), "{dup:?}");
    assert!(e.iter().all(|e| !e.fix.is_empty() && e.file == "x.toml"));
}

#[test]
fn ipv6_mistakes_are_each_reported() {
    let text = format!(
        "{TESTBED}\n{}",
        r#"
[[self_ip]]
name = "bad6"
address = "2001:2:0:3::/64"
vlan = "client"

[[route]]
name = "mixed"
destination = "2001:2:0:40::/58"
gateway = "198.18.2.254"

[[virtual]]
name = "cross"
type = "fastl4"
destination = "[2001:2:0:1::101]:80"
pool = "web"
"#
    );
    let e = errors(&text);
    let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
    let cross = format!(
        "virtual[{}].destination",
        TESTBED.matches("[[virtual]]").count()
    );
    for want in ["self_ip[4].address", "route[0].gateway", cross.as_str()] {
        assert!(fields.contains(&want), "missing {want} in {e:#?}");
    }
    let cross = e.iter().find(|e| e.field == cross).unwrap();
    assert!(cross.problem.contains("address families"), "{cross}");
}

const VM_DPDK: &str = include_str!("../../configs/vm-dpdk.toml");

/// The DPDK image's configuration is the test bed's with the VM's NICs by PCI address
/// (the slots scripts/image gives them) on hugepages.
#[test]
fn the_dpdk_image_config_is_the_testbed_on_the_vms_pci_nics() {
    let base = parse(&at("testbed.toml"), TESTBED).unwrap();
    match (drivers::DPDK_BUILT, parse(&at("vm-dpdk.toml"), VM_DPDK)) {
        (true, Ok(vm)) => {
            assert_eq!(
                vm.interfaces
                    .iter()
                    .map(|i| drivers::dpdk_device(i).unwrap())
                    .collect::<Vec<_>>(),
                ["0000:00:10.0", "0000:00:11.0"]
            );
            assert!(!drivers::dpdk_no_huge(&vm), "the image reserves hugepages");
            assert_eq!(as_afpacket(vm), base, "same appliance otherwise");
        }
        (false, Err(e)) => {
            assert_eq!(e.0.len(), 2, "{e}");
            assert!(
                e.0.iter().all(|e| e.problem.contains("built without it")),
                "{e}"
            );
        }
        (built, other) => panic!("DPDK built: {built}, vm-dpdk.toml: {other:?}"),
    }
}

#[test]
fn a_built_in_service_takes_the_tcp_profile_it_names() {
    let text = TESTBED.replacen(
        "type = \"chargen\"\n",
        "type = \"chargen\"\ntcp_profile_client = \"wan-bbr\"\n",
        1,
    ) + "\n[[tcp_profile]]\nname = \"wan-bbr\"\ncongestion = \"bbr\"\n";
    let cfg = parse(&at("x.toml"), &text).unwrap();
    let dp = build::dataplane(&cfg, 1, 1, None);
    let chargen = dp.services.iter().find(|s| s.name == "chargen").unwrap();
    assert_eq!(
        chargen.profile.as_ref().map(|p| p.congestion),
        Some(rouge_pipelines::tcp::CongestionAlgo::Bbr)
    );
    let echo = dp.services.iter().find(|s| s.name == "echo").unwrap();
    assert!(echo.profile.is_none(), "the stack's default profile");
    // A profile that does not exist is named with the fix.
    let bad = TESTBED.replacen(
        "type = \"echo\"\n",
        "type = \"echo\"\ntcp_profile_client = \"wan-bbbr\"\n",
        1,
    );
    let e = errors(&bad);
    assert!(
        e.iter().any(|e| e.field.ends_with("tcp_profile_client")
            && e.to_string().contains("no tcp_profile named `wan-bbbr`")),
        "{e:?}"
    );
}
