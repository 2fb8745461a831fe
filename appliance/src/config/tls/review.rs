//! `rouge check`'s warnings about TLS profiles, judged at a time passed in: expiry,
//! test certificates, key file modes, `verify = false`, uncovered `server_name`.

use rustls_pki_types::ServerName;

use rouge_pipelines::tls::x509;

use super::super::model::Config;
use super::super::FieldPath;
use super::T;

/// `rouge check` warns about certificates that expire within this many seconds.
pub const EXPIRY_WARNING_SECS: u64 = 30 * 86_400;

/// Seconds since the UNIX epoch on the system clock.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `YYYY-MM-DD` (UTC) of a UNIX time.
pub fn date(unix: u64) -> String {
    // Civil date from days (Howard Hinnant's algorithm).
    let z = (unix / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// One finding of [`review`], before it is located in the file.
pub struct Review {
    /// The field.
    pub path: FieldPath,
    /// An error for `rouge check` (an expired certificate), else a warning.
    pub severe: bool,
    /// What is wrong.
    pub problem: String,
    /// What to do.
    pub fix: String,
}

/// True for the certificates of `scripts/make-test-certs.sh` (`O=Rouge TEST ONLY`,
/// `CN=Rouge Test CA`): their keys are public.
fn is_test(der: &[u8]) -> Option<String> {
    let s = x509::subject(der)?;
    let l = s.to_ascii_lowercase();
    (l.contains("rouge test") || l.contains("test only")).then_some(s)
}

/// What `rouge check` warns about in the TLS profiles at UNIX time `now`: certificates
/// expired, not yet valid or expiring within 30 days (severe when no longer valid),
/// test certificates, key files other users can read, `verify = false`, a
/// `server_name` no certificate of the profile covers.
pub fn review(cfg: &Config, now: u64) -> Vec<Review> {
    let mut out = Vec::new();
    for (i, p) in cfg.tls_profiles.iter().enumerate() {
        let Some(l) = cfg.tls_loaded.get(&p.name) else {
            continue;
        };
        let mut push = |field: &'static str, severe: bool, problem: String, fix: String| {
            out.push(Review {
                path: FieldPath {
                    table: T,
                    index: Some(i),
                    field: Some(field),
                },
                severe,
                problem,
                fix,
            })
        };
        let ids = l
            .identities
            .iter()
            .zip(&p.certificates)
            .map(|(id, ck)| ("certificates", id, ck))
            .chain(
                l.client_identity
                    .iter()
                    .zip(&p.certificate)
                    .map(|(id, ck)| ("certificate", id, ck)),
            );
        for (field, id, ck) in ids {
            if let Some((nb, na)) = id.validity() {
                if now >= na {
                    push(
                        field,
                        true,
                        format!("{} expired on {}", ck.cert, date(na)),
                        "renew the certificate (peers refuse an expired one)".into(),
                    );
                } else if now < nb {
                    push(
                        field,
                        true,
                        format!("{} is not valid before {}", ck.cert, date(nb)),
                        "check the system clock, or give a certificate valid now".into(),
                    );
                } else if na - now < EXPIRY_WARNING_SECS {
                    push(
                        field,
                        false,
                        format!(
                            "{} expires on {} (in {} days)",
                            ck.cert,
                            date(na),
                            (na - now) / 86_400
                        ),
                        "renew it before then".into(),
                    );
                }
            }
            if let Some(s) = id.chain().first().and_then(|c| is_test(c)) {
                push(
                    field,
                    false,
                    format!("{} is a TEST-ONLY certificate ({s}): its private key is public in Rouge's repository", ck.cert),
                    "use your own certificate and key for anything but the test bed (docs/tls.md)".into(),
                );
            }
            if let Ok(m) = std::fs::metadata(&ck.key) {
                use std::os::unix::fs::PermissionsExt;
                let mode = m.permissions().mode() & 0o777;
                if mode & 0o044 != 0 {
                    push(
                        field,
                        false,
                        format!(
                            "key file {} is readable by other users (mode {mode:04o})",
                            ck.key
                        ),
                        format!("chmod 600 {} (owned by the user rouge runs as)", ck.key),
                    );
                }
            }
        }
        for (field, path, ders) in &l.anchors {
            if let Some(s) = ders.iter().find_map(|d| is_test(d)) {
                push(
                    field,
                    false,
                    format!("{path} holds a TEST-ONLY CA ({s}): certificates anyone can make are trusted"),
                    "trust your own CA bundle for anything but the test bed".into(),
                );
            }
            for d in ders {
                if let Some((_, na)) = x509::validity(d) {
                    if now >= na {
                        push(
                            field,
                            false,
                            format!(
                                "{path} holds a CA certificate ({}) that expired on {}",
                                x509::subject(d).unwrap_or_default(),
                                date(na)
                            ),
                            "remove it or replace it with its renewal".into(),
                        );
                    }
                }
            }
        }
        if p.verify == Some(false) {
            push(
                "verify",
                false,
                "verify = false: members' certificates are not checked, so anyone on the path to a member can pose as it".into(),
                "give ca = \"PATH\" (the CA bundle of the members' certificates) and remove verify = false".into(),
            );
        }
        if let (Some(n), false) = (&p.server_name, l.identities.is_empty()) {
            if let Ok(name) = ServerName::try_from(n.as_str()) {
                let covered = l.identities.iter().any(|id| {
                    id.chain().first().is_some_and(|leaf| {
                        webpki::EndEntityCert::try_from(leaf)
                            .is_ok_and(|ee| ee.verify_is_valid_for_subject_name(&name).is_ok())
                    })
                });
                if !covered {
                    push(
                        "server_name",
                        false,
                        format!("no certificate of this profile covers `{n}`: clients asking for it get the default certificate and refuse it"),
                        "add a certificate for that name, or correct server_name".into(),
                    );
                }
            }
        }
    }
    out
}
