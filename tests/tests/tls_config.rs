//! `rouge check` on TLS profiles, as an operator runs it: relative certificate paths
//! follow the configuration file wherever the command runs, the test bed's test
//! certificates are warned about, a missing file and a key that does not match its
//! certificate are refused with file, line, field and fix, and no output holds key
//! material. No root, no network.

use std::path::Path;
use std::process::{Command, Output};

use rouge_tests::*;

fn check(cwd: &Path, config: &Path) -> Output {
    Command::new(rouge_bin())
        .args(["check", "--config-only", "--config"])
        .arg(config)
        .current_dir(cwd)
        .output()
        .expect("run rouge check")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn check_resolves_tls_paths_against_the_file_and_names_what_is_wrong() {
    let configs = repo().join("appliance/configs");
    // From the configuration's parent directory, with a relative path, and from
    // elsewhere with an absolute one: the same files, valid, with the test-cert warnings.
    for (cwd, config) in [
        (
            repo().join("appliance"),
            Path::new("configs/testbed.toml").to_path_buf(),
        ),
        (std::env::temp_dir(), configs.join("testbed.toml")),
    ] {
        let out = check(&cwd, &config);
        let all = text(&out);
        assert!(out.status.success(), "{all}");
        assert!(all.contains("testbed.toml: valid"), "{all}");
        let line = std::fs::read_to_string(configs.join("testbed.toml"))
            .unwrap()
            .lines()
            .position(|l| l.starts_with("certificates = ["))
            .unwrap()
            + 1;
        assert!(
            all.contains(&format!(
                "warning: {}:{line}: tls_profile[0].certificates: {} is a TEST-ONLY certificate",
                config.display(),
                configs.join("tls/s3.rouge.test.crt").display()
            )),
            "{all}"
        );
        assert!(!all.contains("PRIVATE KEY"), "{all}");
    }

    // The same text elsewhere has no tls/ beside it.
    let dir = std::env::temp_dir().join(format!("rouge-tls-check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let moved = dir.join("moved.toml");
    std::fs::copy(configs.join("testbed.toml"), &moved).unwrap();
    let out = check(&repo(), &moved);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains(&format!(
            "tls_profile[0].certificates: entry 0: cannot read {}",
            dir.join("tls/s3.rouge.test.crt").display()
        )),
        "{all}"
    );
    assert!(
        all.contains("fix: give the path of a readable PEM file"),
        "{all}"
    );

    // A key that is not the certificate's: the key file is named.
    let tls = configs.join("tls");
    let mismatched = std::fs::read_to_string(configs.join("testbed.toml"))
        .unwrap()
        .replace(
            "key = \"tls/s3.rouge.test.key\"",
            &format!("key = \"{}\"", tls.join("admin.rouge.test.key").display()),
        )
        .replace("\"tls/", &format!("\"{}/", tls.display()));
    let file = dir.join("mismatch.toml");
    std::fs::write(&file, &mismatched).unwrap();
    let out = check(&repo(), &file);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains(&format!(
            "entry 0: the key in {} does not match the certificate in {}",
            tls.join("admin.rouge.test.key").display(),
            tls.join("s3.rouge.test.crt").display()
        )),
        "{all}"
    );
    assert!(!all.contains("PRIVATE KEY"), "{all}");
    let _ = std::fs::remove_dir_all(&dir);
}
