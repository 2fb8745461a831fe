//! Tests of the TLS profiles: every error and warning, path resolution, ticket keys
//! kept across snapshots, and key material kept out of every output.

use std::path::{Path, PathBuf};

use super::tls::{self, TlsRuntime};
use super::*;

const TESTBED: &str = include_str!("../../configs/testbed.toml");

fn configs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("configs")
}

fn tls_dir() -> PathBuf {
    configs().join("tls")
}

/// A scratch directory of this test (removed first).
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rouge-tls-config-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The test bed plus `extra`, read as `configs/x.toml`.
fn with(extra: &str) -> (String, Result<Config, ConfigErrors>) {
    let text = format!("{TESTBED}\n{extra}");
    let file = configs().join("x.toml").display().to_string();
    let r = parse(&file, &text);
    (text, r)
}

fn errors_of(extra: &str) -> Vec<ConfigError> {
    with(extra).1.expect_err("refused").0
}

/// The error on `field`, checked to carry a line and a fix.
fn error_on<'a>(e: &'a [ConfigError], field: &str) -> &'a ConfigError {
    let found = e
        .iter()
        .find(|e| e.field == field)
        .unwrap_or_else(|| panic!("no error on {field} in {e:#?}"));
    assert!(found.line.is_some(), "{found}");
    assert!(!found.fix.is_empty(), "{found}");
    found
}

/// The index the next `[[virtual]]` appended to the test bed gets.
fn next_virtual() -> usize {
    TESTBED.matches("[[virtual]]").count()
}

fn next_profile() -> usize {
    TESTBED.matches("[[tls_profile]]").count()
}

#[test]
fn the_testbed_terminates_tls_on_web_tls_with_both_certificates() {
    let (_, cfg) = with("");
    let cfg = cfg.unwrap();
    let dp = build::dataplane(&cfg, 1, 2, None);
    let vs = dp.standard.iter().find(|v| v.name == "web-tls").unwrap();
    assert_eq!(vs.vip, "198.18.1.100:443".parse().unwrap());
    let (name, server) = vs.client_tls.as_ref().expect("client_tls");
    assert_eq!(name, "s3-client");
    let ids = server.identities();
    assert_eq!(ids.len(), 2);
    assert_eq!(
        ids.iter().map(|i| i.is_rsa()).collect::<Vec<_>>(),
        [false, true],
        "ECDSA first, then RSA"
    );
    assert!(ids.iter().all(|i| i.covers("s3.rouge.test")));
    assert!(vs.server_tls.is_none());
    let web_proxy = dp.standard.iter().find(|v| v.name == "web-proxy").unwrap();
    assert!(web_proxy.client_tls.is_none() && web_proxy.server_tls.is_none());
    // Paths became absolute, from the file's directory.
    let p = &cfg.tls_profiles[0];
    assert_eq!(
        p.certificates[0].cert,
        tls_dir().join("s3.rouge.test.crt").display().to_string()
    );
    assert_eq!(
        cfg.tls_profiles[1].ca.as_deref(),
        Some(tls_dir().join("ca.crt").display().to_string().as_str())
    );
}

#[test]
fn a_server_tls_profile_is_built_with_its_session_cache() {
    let n = next_virtual();
    let (_, cfg) = with(
        r#"
[[pool]]
name = "https"
members = [{ address = "198.18.2.11:443" }]

[[virtual]]
name = "web-reencrypt"
type = "standard"
destination = "198.18.1.100:8443"
pool = "https"
client_tls = "s3-client"
server_tls = "members-https"
"#,
    );
    let cfg = cfg.unwrap();
    assert_eq!(cfg.virtuals[n].server_tls.as_deref(), Some("members-https"));
    let dp = build::dataplane(&cfg, 1, 1, None);
    let vs = dp
        .standard
        .iter()
        .find(|v| v.name == "web-reencrypt")
        .unwrap();
    let (name, _, cache) = vs.server_tls.as_ref().expect("server_tls");
    assert_eq!((name.as_str(), *cache), ("members-https", 256));
    assert!(vs.client_tls.is_some());
}

#[test]
fn references_to_profiles_are_checked() {
    let n = next_virtual();
    let e = errors_of(
        r#"
[[tls_profile]]
name = "server-only"
ca = "tls/ca.crt"

[[tls_profile]]
name = "no-ca"

[[virtual]]
name = "a"
type = "standard"
destination = "198.18.1.100:8443"
pool = "web"
client_tls = "nope"
server_tls = "no-ca"

[[virtual]]
name = "b"
type = "standard"
destination = "198.18.1.100:8444"
pool = "web"
client_tls = "server-only"

[[virtual]]
name = "c"
type = "fastl4"
destination = "198.18.1.100:9443"
pool = "web"
client_tls = "s3-client"
"#,
    );
    let unknown = error_on(&e, &format!("virtual[{n}].client_tls"));
    assert!(
        unknown.problem.contains("no tls_profile named `nope`"),
        "{unknown}"
    );
    assert!(
        unknown
            .fix
            .contains("s3-client, members-https, server-only, no-ca"),
        "{unknown}"
    );
    let no_ca = error_on(&e, &format!("virtual[{n}].server_tls"));
    assert!(
        no_ca.problem.contains("names no ca") && no_ca.fix.contains("verify = false"),
        "{no_ca}"
    );
    let no_certs = error_on(&e, &format!("virtual[{}].client_tls", n + 1));
    assert!(no_certs.problem.contains("no certificates"), "{no_certs}");
    let fastl4 = error_on(&e, &format!("virtual[{}].client_tls", n + 2));
    assert!(fastl4.problem.contains("only a standard"), "{fastl4}");
    assert_eq!(e.len(), 4, "{e:#?}");
}

#[test]
fn wrong_fields_are_each_refused_with_line_and_fix() {
    let i = next_profile();
    let e = errors_of(
        r#"
[[tls_profile]]
name = "bad"
certificates = [{ cert = "", key = "tls/s3.rouge.test.key" }]
alpn = ["http/1.1", "http/1.1", ""]
ticket_rotation_secs = 0
early_data = true
client_auth = "require"
session_cache = 2000000
handshake_timeout_ms = 5
server_name = "not a name"

[[tls_profile]]
name = "bad"
client_ca = "tls/ca.crt"
ca = ""
certificate = { cert = "", key = "tls/client.key" }

[[tls_profile]]
name = "no-client-cert"
certificate = { cert = "tls/missing-client.crt", key = "tls/client.key" }
"#,
    );
    let f = |field: &str| format!("tls_profile[{i}].{field}");
    for field in [
        "certificates",
        "ticket_rotation_secs",
        "early_data",
        "client_auth",
        "session_cache",
        "handshake_timeout_ms",
        "server_name",
    ] {
        error_on(&e, &f(field));
    }
    let alpn: Vec<_> = e.iter().filter(|x| x.field == f("alpn")).collect();
    assert_eq!(alpn.len(), 2, "twice and empty: {alpn:?}");
    let early = error_on(&e, &f("early_data"));
    assert!(
        early.problem.contains("replayed") && early.fix.contains("early_data = false"),
        "{early}"
    );
    let auth = error_on(&e, &f("client_auth"));
    assert!(auth.fix.contains("client_ca"), "{auth}");
    let second = |field: &str| format!("tls_profile[{}].{field}", i + 1);
    error_on(&e, &second("name"));
    let ca = error_on(&e, &second("client_ca"));
    assert!(ca.problem.contains("client_auth is \"none\""), "{ca}");
    assert!(error_on(&e, &second("ca")).problem.contains("is empty"));
    assert!(error_on(&e, &second("certificate"))
        .problem
        .contains("empty cert or key"));
    let third = format!("tls_profile[{}].certificate", i + 2);
    let missing = error_on(&e, &third);
    assert!(
        missing.problem.contains("cannot read") && missing.problem.contains("missing-client.crt"),
        "{missing}"
    );
}

#[test]
fn enumerations_and_unknown_fields_are_refused_by_the_parser() {
    let e = errors_of("[[tls_profile]]\nname = \"v\"\nmin_version = \"1.1\"\n");
    assert_eq!(e.len(), 1, "{e:?}");
    let msg = e[0].to_string();
    assert!(
        msg.contains("min_version") && msg.contains("1.2") && msg.contains("1.3"),
        "{msg}"
    );
    let e = errors_of("[[tls_profile]]\nname = \"v\"\nclient_auth = \"maybe\"\n");
    let msg = e[0].to_string();
    assert!(msg.contains("request") && msg.contains("require"), "{msg}");
    let e = errors_of("[[tls_profile]]\nname = \"v\"\ncerts = []\n");
    let msg = e[0].to_string();
    assert!(
        msg.contains("unknown field `certs`") && msg.contains("certificates"),
        "{msg}"
    );
    let e =
        errors_of("[[tls_profile]]\nname = \"v\"\ncertificate = { cert = \"a\", kye = \"b\" }\n");
    assert!(e[0].to_string().contains("kye"), "{}", e[0]);
}

#[test]
fn files_that_are_missing_unreadable_or_mismatched_are_named() {
    let d = scratch("files");
    std::fs::write(d.join("garbage.crt"), "not a certificate\n").unwrap();
    std::fs::write(
        d.join("garbage.key"),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let t = tls_dir();
    let text = format!(
        r#"
[[tls_profile]]
name = "missing"
certificates = [{{ cert = "tls/nope.crt", key = "tls/nope.key" }}]

[[tls_profile]]
name = "garbage"
certificates = [{{ cert = "{d}/garbage.crt", key = "{t}/s3.rouge.test.key" }}]

[[tls_profile]]
name = "bad-key"
certificates = [{{ cert = "{t}/s3.rouge.test.crt", key = "{d}/garbage.key" }}]

[[tls_profile]]
name = "mismatch"
certificates = [
    {{ cert = "{t}/s3.rouge.test.crt", key = "{t}/s3.rouge.test.key" }},
    {{ cert = "{t}/s3.rouge.test.crt", key = "{t}/admin.rouge.test.key" }},
]

[[tls_profile]]
name = "bad-ca"
ca = "{d}/garbage.crt"

[[tls_profile]]
name = "a-directory"
ca = "{d}"
"#,
        d = d.display(),
        t = t.display()
    );
    let i = next_profile();
    let e = errors_of(&text);
    let at = |k: usize, field: &str| format!("tls_profile[{}].{field}", i + k);
    let missing = error_on(&e, &at(0, "certificates"));
    assert!(
        missing.problem.contains(&format!(
            "cannot read {}",
            configs().join("tls/nope.crt").display()
        )),
        "resolved against the file's directory: {missing}"
    );
    let garbage = error_on(&e, &at(1, "certificates"));
    assert!(
        garbage
            .problem
            .contains("garbage.crt holds no PEM certificate"),
        "{garbage}"
    );
    let bad_key = error_on(&e, &at(2, "certificates"));
    assert!(
        bad_key
            .problem
            .contains("garbage.key holds no usable private key"),
        "{bad_key}"
    );
    let mismatch = error_on(&e, &at(3, "certificates"));
    assert!(
        mismatch.problem.starts_with("entry 1: the key in")
            && mismatch
                .problem
                .contains("admin.rouge.test.key does not match"),
        "names the key file: {mismatch}"
    );
    assert_eq!(
        e.iter()
            .filter(|x| x.field == at(3, "certificates"))
            .count(),
        1,
        "entry 0 is fine"
    );
    let bad_ca = error_on(&e, &at(4, "ca"));
    assert!(
        bad_ca.problem.contains("holds no PEM certificate"),
        "{bad_ca}"
    );
    let dir = error_on(&e, &at(5, "ca"));
    assert!(dir.problem.contains("not a regular file"), "{dir}");
    for x in &e {
        assert!(!x.to_string().contains("PRIVATE KEY"), "{x}");
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// The test bed's warnings at `now`, as `rouge check` prints them.
fn testbed_warnings(now: u64) -> Vec<String> {
    let (text, cfg) = with("");
    warnings("x.toml", &text, &cfg.unwrap(), now)
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn the_testbed_warns_about_its_test_certificates_only() {
    let (_, cfg) = with("");
    let cfg = cfg.unwrap();
    let id = &cfg.tls_loaded.get("s3-client").unwrap().identities[0];
    let (nb, na) = id.validity().unwrap();
    let now = nb + 86_400;
    assert!(na - now > tls::EXPIRY_WARNING_SECS);
    let w = testbed_warnings(now);
    let test_certs: Vec<_> = w.iter().filter(|l| l.contains("TEST-ONLY")).collect();
    assert_eq!(test_certs.len(), 3, "two certificates and the CA: {w:#?}");
    assert!(
        w.iter().all(|l| l.starts_with("warning: x.toml:")),
        "{w:#?}"
    );
    assert!(
        !w.iter()
            .any(|l| l.contains("expire") || l.contains("verify")),
        "{w:#?}"
    );
}

#[test]
fn expiry_is_a_warning_within_30_days_and_an_error_after() {
    let (_, cfg) = with("");
    let cfg = cfg.unwrap();
    let (nb, na) = cfg.tls_loaded.get("s3-client").unwrap().identities[0]
        .validity()
        .unwrap();
    let soon = testbed_warnings(na - 10 * 86_400);
    let expiring: Vec<_> = soon.iter().filter(|l| l.contains("expires on")).collect();
    assert_eq!(expiring.len(), 2, "{soon:#?}");
    assert!(
        expiring[0].starts_with("warning:") && expiring[0].contains("(in 10 days)"),
        "{}",
        expiring[0]
    );
    assert!(expiring[0].contains(&tls::date(na)), "{}", expiring[0]);
    let (text, cfg) = with("");
    let late = warnings("x.toml", &text, &cfg.unwrap(), na + 1);
    let expired: Vec<_> = late
        .iter()
        .filter(|w| {
            w.error.problem.contains("expired on") && w.error.field.ends_with(".certificates")
        })
        .collect();
    assert_eq!(expired.len(), 2, "{late:#?}");
    assert!(
        late.iter()
            .any(|w| !w.severe && w.error.field == "tls_profile[1].ca"),
        "an expired CA in a bundle is a warning: {late:#?}"
    );
    assert!(expired.iter().all(|w| w.to_string().starts_with("error:")));
    assert!(expired
        .iter()
        .any(|w| w.severe && w.error.field == "tls_profile[0].certificates"));
    let early = testbed_warnings(nb - 1);
    assert!(
        early
            .iter()
            .any(|l| l.starts_with("error:") && l.contains("is not valid before")),
        "{early:#?}"
    );
}

#[test]
fn dates_are_civil_utc() {
    assert_eq!(tls::date(0), "1970-01-01");
    assert_eq!(tls::date(951_782_400), "2000-02-29");
    assert_eq!(tls::date(1_796_582_942), "2026-12-06");
}

#[test]
fn key_modes_verify_off_and_uncovered_names_are_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let d = scratch("warnings");
    for f in [
        "s3.rouge.test.crt",
        "s3.rouge.test.key",
        "admin.rouge.test.crt",
        "admin.rouge.test.key",
    ] {
        std::fs::copy(tls_dir().join(f), d.join(f)).unwrap();
    }
    std::fs::set_permissions(
        d.join("s3.rouge.test.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::set_permissions(
        d.join("admin.rouge.test.key"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    let text = r#"[[interface]]
name = "lb-c"

[[tls_profile]]
name = "private"
certificates = [{ cert = "s3.rouge.test.crt", key = "s3.rouge.test.key" }]
server_name = "bucket.s3.rouge.test"

[[tls_profile]]
name = "group-readable"
certificates = [{ cert = "admin.rouge.test.crt", key = "admin.rouge.test.key" }]
server_name = "s3.rouge.test"

[[tls_profile]]
name = "by-address"
certificates = [{ cert = "s3.rouge.test.crt", key = "s3.rouge.test.key" }]
server_name = "198.18.1.100"

[[tls_profile]]
name = "trusting"
verify = false
"#;
    let file = d.join("w.toml").display().to_string();
    let cfg = parse(&file, text).unwrap();
    let w = warnings(&file, text, &cfg, tls::unix_now());
    let on = |field: &str| -> Vec<String> {
        w.iter()
            .filter(|x| x.error.field == field)
            .map(|x| x.error.problem.clone())
            .collect()
    };
    let private = on("tls_profile[0].certificates");
    assert!(
        private
            .iter()
            .all(|p| !p.contains("readable by other users")),
        "mode 0600 is fine: {private:?}"
    );
    assert!(
        on("tls_profile[0].server_name").is_empty(),
        "the wildcard covers it"
    );
    let group = on("tls_profile[1].certificates");
    assert!(
        group
            .iter()
            .any(|p| p.contains("admin.rouge.test.key is readable by other users (mode 0640)")),
        "{group:?}"
    );
    let uncovered = on("tls_profile[1].server_name");
    assert_eq!(uncovered.len(), 1, "{w:#?}");
    assert!(
        uncovered[0].contains("covers `s3.rouge.test`"),
        "{}",
        uncovered[0]
    );
    assert!(
        on("tls_profile[2].server_name").is_empty(),
        "an IP name of the certificate"
    );
    let verify = w
        .iter()
        .find(|x| x.error.field == "tls_profile[3].verify")
        .expect("verify = false is warned about");
    assert!(!verify.severe);
    assert_eq!(
        verify.error.line,
        Some(text.lines().position(|l| l == "verify = false").unwrap() + 1)
    );
    assert!(w.iter().all(|x| !x.severe), "{w:#?}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn relative_paths_follow_their_file_and_a_saved_file_resolves_anywhere() {
    let a = scratch("resolve-a");
    let b = scratch("resolve-b");
    std::fs::create_dir_all(a.join("certs")).unwrap();
    for f in ["s3.rouge.test.crt", "s3.rouge.test.key", "ca.crt"] {
        std::fs::copy(tls_dir().join(f), a.join("certs").join(f)).unwrap();
    }
    let text = TESTBED
        .replace("\"tls/", "\"certs/")
        .replace(
            "    { cert = \"certs/s3.rouge.test-rsa.crt\", key = \"certs/s3.rouge.test-rsa.key\" },  # RSA 2048, same names\n",
            "",
        );
    assert!(!text.contains("rsa"), "the RSA entry is gone");
    let file = a.join("appliance.toml");
    std::fs::write(&file, &text).unwrap();
    // Read from its own directory (the tests run in the crate's directory).
    let cfg = load(&file).unwrap();
    assert_eq!(
        cfg.tls_profiles[0].certificates[0].key,
        a.join("certs/s3.rouge.test.key").display().to_string()
    );
    // The same text in another directory has no certs/ beside it.
    std::fs::write(b.join("copy.toml"), &text).unwrap();
    let e = load(&b.join("copy.toml")).unwrap_err();
    assert!(
        e.to_string().contains(&format!(
            "cannot read {}",
            b.join("certs/s3.rouge.test.crt").display()
        )),
        "{e}"
    );
    // `config save` into another directory: absolute paths, read back the same.
    let dp = build::dataplane(&cfg, 1, 1, None);
    let shared =
        crate::shared::Shared::new(cfg.clone(), file.display().to_string(), dp, &[None], None);
    let saved = b.join("saved.toml");
    crate::mgmt::execute(
        &shared,
        &["config".into(), "save".into(), saved.display().to_string()],
    )
    .unwrap();
    let again = load(&saved).unwrap();
    assert_eq!(again, cfg);
    assert_eq!(
        again.tls_profiles[0].certificates,
        cfg.tls_profiles[0].certificates
    );
    let saved_text = std::fs::read_to_string(&saved).unwrap();
    assert!(saved_text.contains(&a.join("certs/s3.rouge.test.key").display().to_string()));
    assert!(!saved_text.contains("PRIVATE KEY"));
    let _ = std::fs::remove_dir_all(&a);
    let _ = std::fs::remove_dir_all(&b);
}

#[test]
fn ticket_keys_survive_a_reload_of_a_profile_of_the_same_name() {
    let (_, cfg) = with("");
    let cfg = cfg.unwrap();
    let rt = TlsRuntime::new();
    let keys =
        |dp: &rouge_pipelines::dataplane::Dataplane| -> *const rouge_pipelines::tls::TicketKeys {
            let vs = dp.standard.iter().find(|v| v.name == "web-tls").unwrap();
            vs.client_tls.as_ref().unwrap().1.ticket_keys()
        };
    let first = build::dataplane_with(&cfg, 1, 2, None, &rt);
    let second = build::dataplane_with(&cfg, 2, 2, Some(&first), &rt);
    assert!(
        std::ptr::eq(keys(&first), keys(&second)),
        "same keys after a reload"
    );
    // Every worker's copy shares them.
    let vs = second
        .standard
        .iter()
        .find(|v| v.name == "web-tls")
        .unwrap();
    let worker = vs.client_tls.as_ref().unwrap().1.for_worker();
    assert!(std::ptr::eq(worker.ticket_keys(), keys(&second)));
    // Another appliance (runtime) has its own.
    let other = build::dataplane(&cfg, 1, 2, None);
    assert!(!std::ptr::eq(keys(&other), keys(&first)));
    // A new rotation period: new keys.
    let mut faster = cfg.clone();
    faster.tls_profiles[0].ticket_rotation_secs = Some(600);
    let third = build::dataplane_with(&faster, 3, 2, Some(&second), &rt);
    assert!(!std::ptr::eq(keys(&third), keys(&second)));
    // A profile removed and added again starts afresh.
    let renamed_text = TESTBED.replace("\"s3-client\"", "\"s3-renamed\"");
    let renamed = parse(
        &configs().join("x.toml").display().to_string(),
        &renamed_text,
    )
    .unwrap();
    let fourth = build::dataplane_with(&renamed, 4, 2, Some(&third), &rt);
    let fifth = build::dataplane_with(&faster, 5, 2, Some(&fourth), &rt);
    assert!(!std::ptr::eq(keys(&fifth), keys(&third)));
}

#[test]
fn a_virtual_server_whose_tls_cannot_be_built_is_left_out() {
    // A configuration made without reading its files (no loaded material).
    let (_, cfg) = with("");
    let mut cfg = cfg.unwrap();
    cfg.tls_loaded = Default::default();
    let dp = build::dataplane(&cfg, 1, 1, None);
    assert!(
        dp.standard.iter().all(|v| v.name != "web-tls"),
        "never served in the clear"
    );
    assert!(dp.standard.iter().any(|v| v.name == "web-proxy"));
}

#[test]
fn no_output_holds_key_material() {
    let (text, cfg) = with("");
    let cfg = cfg.unwrap();
    let key_body: Vec<String> = std::fs::read_to_string(tls_dir().join("s3.rouge.test.key"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(String::from)
        .collect();
    let dp = build::dataplane(&cfg, 1, 1, None);
    let shared = crate::shared::Shared::new(cfg.clone(), "x.toml".into(), dp, &[None], None);
    let mut outputs = vec![
        to_toml(&cfg),
        format!("{cfg:?}"),
        format!("{:?}", shared.dataplane.load().standard),
        crate::views::virtuals(&shared).to_string(),
        crate::views::tls(&shared).to_string(),
        crate::mgmt::execute(&shared, &["show".into(), "config".into()])
            .unwrap()
            .to_string(),
        crate::metrics::render(&crate::metrics::registry(shared.clone())).unwrap(),
    ];
    outputs.extend(
        warnings("x.toml", &text, &cfg, 0)
            .iter()
            .map(ToString::to_string),
    );
    for out in &outputs {
        assert!(!out.contains("PRIVATE KEY"), "{out}");
        for l in &key_body {
            assert!(!out.contains(l.as_str()), "key material in {out}");
        }
    }
    assert!(outputs[0].contains("s3.rouge.test.key"), "the path is kept");
}

fn next_monitor() -> usize {
    TESTBED.matches("[[monitor]]").count()
}

#[test]
fn an_https_monitor_probes_with_the_server_side_of_its_profile() {
    let (_, cfg) = with(
        r#"
[[monitor]]
name = "https-get"
type = "https"
receive = "200"
tls_profile = "members-https"
interval = 1
timeout = 3

[[pool]]
name = "secure"
monitor = "https-get"
members = [{ address = "198.18.2.11:443" }, { address = "198.18.2.12:443" }]
"#,
    );
    let cfg = cfg.unwrap();
    let rt = TlsRuntime::new();
    let dp = build::dataplane_with(&cfg, 1, 1, None, &rt);
    let https: Vec<_> = dp
        .monitor_targets
        .iter()
        .filter(|t| t.spec.name == "https-get")
        .collect();
    assert_eq!(https.len(), 2);
    for t in &https {
        assert_eq!(t.addr.port(), 443);
        match &t.spec.kind {
            rouge_pipelines::monitor::ProbeKind::Https { send, receive, tls } => {
                assert_eq!(send, "GET / HTTP/1.0\r\n\r\n", "the default request");
                assert_eq!(receive, "200");
                assert_eq!(tls.profile, "members-https");
            }
            k => panic!("{k:?}"),
        }
    }
    // One build of the profile per snapshot, shared by its users.
    let cfg_of = |t: &rouge_pipelines::monitor::Target| match &t.spec.kind {
        rouge_pipelines::monitor::ProbeKind::Https { tls, .. } => tls.config.clone(),
        _ => unreachable!(),
    };
    assert!(std::sync::Arc::ptr_eq(&cfg_of(https[0]), &cfg_of(https[1])));
    // The saved configuration keeps the fields.
    let saved = to_toml(&cfg);
    assert!(saved.contains("tls_profile = \"members-https\""), "{saved}");
    assert!(saved.contains("type = \"https\""), "{saved}");
}

#[test]
fn https_monitor_mistakes_are_each_reported() {
    let n = next_monitor();
    let e = errors_of(
        r#"
[[tls_profile]]
name = "no-ca"

[[monitor]]
name = "a"
type = "https"
receive = "200"

[[monitor]]
name = "b"
type = "https"
receive = "200"
tls_profile = "nope"

[[monitor]]
name = "c"
type = "https"
receive = "200"
tls_profile = "no-ca"

[[monitor]]
name = "d"
type = "http"
receive = "200"
tls_profile = "members-https"

[[monitor]]
name = "e"
type = "https"
tls_profile = "members-https"
"#,
    );
    let missing = error_on(&e, &format!("monitor[{n}].tls_profile"));
    assert!(missing.fix.contains("members-https"), "{missing}");
    let unknown = error_on(&e, &format!("monitor[{}].tls_profile", n + 1));
    assert!(
        unknown.problem.contains("no tls_profile named `nope`"),
        "{unknown}"
    );
    let no_ca = error_on(&e, &format!("monitor[{}].tls_profile", n + 2));
    assert!(
        no_ca.problem.contains("names no ca") && no_ca.fix.contains("verify = false"),
        "{no_ca}"
    );
    let http = error_on(&e, &format!("monitor[{}].tls_profile", n + 3));
    assert!(http.problem.contains("only an https monitor"), "{http}");
    let receive = error_on(&e, &format!("monitor[{}].receive", n + 4));
    assert!(receive.problem.contains("an https monitor"), "{receive}");
    assert_eq!(e.len(), 5, "{e:#?}");
}

#[test]
fn show_tls_has_both_sides_by_version_suite_and_reason() {
    use rouge_pipelines::tls::TlsFailure;
    let n = next_virtual();
    let (_, cfg) = with(
        r#"
[[pool]]
name = "https"
members = [{ address = "198.18.2.11:443" }]

[[virtual]]
name = "web-reencrypt"
type = "standard"
destination = "198.18.1.100:8443"
pool = "https"
client_tls = "s3-client"
server_tls = "members-https"
"#,
    );
    let cfg = cfg.unwrap();
    assert_eq!(cfg.virtuals[n].name, "web-reencrypt");
    let dp = build::dataplane(&cfg, 1, 2, None);
    let shared = crate::shared::Shared::new(cfg, "x.toml".into(), dp, &[None, None], None);
    {
        let dp = shared.dataplane.load();
        let vs = dp.standard.iter().find(|v| v.name == "web-tls").unwrap();
        let (c, w1) = (
            &vs.counters.shard(0).client_tls,
            &vs.counters.shard(1).client_tls,
        );
        c.full[1].inc();
        w1.full[1].inc();
        c.resumed[0].inc();
        c.by_suite[0].add(2);
        c.failures[TlsFailure::NotTls as usize].inc();
        c.started.add(3);
        c.ended.inc();
        c.bytes_encrypted.add(1000);
        c.bytes_decrypted.add(10);
        let re = dp
            .standard
            .iter()
            .find(|v| v.name == "web-reencrypt")
            .unwrap();
        re.counters.shard(1).server_tls.failures[TlsFailure::PeerCertificate as usize].inc();
    }
    let all = crate::views::tls(&shared);
    let names: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["web-tls", "web-reencrypt"],
        "only virtual servers with TLS"
    );
    let web = &all[0];
    assert_eq!(web["destination"], "198.18.1.100:443");
    assert!(web["server_side"].is_null());
    let c = &web["client_side"];
    assert_eq!(c["profile"], "s3-client");
    assert_eq!(c["current"], 2);
    assert_eq!(c["handshakes"]["full"]["1.3"], 2, "summed over the workers");
    assert_eq!(c["handshakes"]["full"]["1.2"], 0);
    assert_eq!(c["handshakes"]["resumed"]["1.2"], 1);
    assert_eq!(c["handshakes"]["total"], 3);
    assert_eq!(c["suites"].as_object().unwrap().len(), 9);
    assert_eq!(c["suites"]["TLS13_AES_128_GCM_SHA256"], 2);
    assert_eq!(
        c["failures"].as_object().unwrap().len(),
        TlsFailure::ALL.len()
    );
    assert_eq!(c["failures"]["not-tls"], 1);
    assert_eq!(c["failures_total"], 1);
    assert_eq!(
        (c["bytes_encrypted"].as_u64(), c["bytes_decrypted"].as_u64()),
        (Some(1000), Some(10))
    );
    assert_eq!(
        c["tickets"],
        serde_json::json!({"issued": 0, "accepted": 0, "rotations": 0})
    );
    let certs = c["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 2);
    assert_eq!(certs[1]["key_type"], "rsa");
    assert!(certs[0]["cert"]
        .as_str()
        .unwrap()
        .ends_with("tls/s3.rouge.test.crt"));
    assert!(certs[0]["names"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n == "*.s3.rouge.test"));
    let re = &all[1];
    assert_eq!(re["server_side"]["profile"], "members-https");
    assert_eq!(re["server_side"]["failures"]["peer-certificate"], 1);
    assert!(
        re["server_side"]["tickets"].is_null(),
        "tickets are the client side's"
    );
    // The same figures in `show virtual NAME` and `show tls NAME`.
    let one = crate::mgmt::execute(
        &shared,
        &["show".into(), "virtual".into(), "web-tls".into()],
    )
    .unwrap();
    assert_eq!(one[0]["tls"]["client_side"], *c);
    let only = crate::mgmt::execute(
        &shared,
        &["show".into(), "tls".into(), "web-reencrypt".into()],
    )
    .unwrap();
    assert_eq!(only[0], *re);
    let e = crate::mgmt::execute(&shared, &["show".into(), "tls".into(), "web-proxy".into()])
        .unwrap_err();
    assert!(e.contains("`rouge show tls` lists them"), "{e}");
    // And in the metrics.
    let m = crate::metrics::render(&crate::metrics::registry(shared.clone())).unwrap();
    for line in [
        "rouge_tls_handshakes_total{virtual=\"web-tls\",side=\"client\",version=\"1.3\",kind=\"full\"} 2",
        "rouge_tls_handshakes_total{virtual=\"web-tls\",side=\"client\",version=\"1.2\",kind=\"resumed\"} 1",
        "rouge_tls_failures_total{virtual=\"web-reencrypt\",side=\"server\",reason=\"peer-certificate\"} 1",
        "rouge_tls_bytes_total{virtual=\"web-tls\",side=\"client\",direction=\"encrypted\"} 1000",
        "rouge_tls_current_connections{virtual=\"web-tls\",side=\"client\"} 2",
        "rouge_tls_suite_handshakes_total{virtual=\"web-tls\",side=\"client\",suite=\"TLS13_AES_128_GCM_SHA256\"} 2",
    ] {
        assert!(m.lines().any(|l| l == line), "{line} missing");
    }
    assert_eq!(
        m.lines()
            .filter(|l| l.starts_with("rouge_tls_tickets_issued_total{"))
            .count(),
        1,
        "one ticket family sample per profile, not per virtual server"
    );
}
