//! The key of the TCP stacks' initial sequence numbers, timestamp offsets and SYN
//! cookies: one per machine boot, kept in [`DEFAULT_PATH`] (`/run` is a tmpfs, emptied at
//! boot; the file is root's, mode 0600, and its content is never printed or logged).
//!
//! A sequence number is RFC 6528's clock plus an offset keyed by this secret, and a
//! timestamp the monotonic clock plus another: with the same key after a restart, a
//! connection to a member on the same addresses and ports starts above the last one,
//! so a member still holding that connection in TIME-WAIT takes the new SYN (RFC 6191;
//! Linux checks the timestamp) instead of answering for the old one. Where the file can
//! be neither read nor made, a fresh random key serves: correct, only such a restart then
//! costs a RST and a round trip (the stack's `syn_resent_after_rst`).

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::OnceLock;

/// Where the key is kept.
pub const DEFAULT_PATH: &str = "/run/rouge-tcp-secret";

/// Bytes of key in the file.
const LEN: usize = 16;

/// The key every worker of this process uses: [`DEFAULT_PATH`]'s, made there if missing;
/// a random one (with a warning naming the file, never the key) if that fails.
pub fn machine_secret() -> (u64, u64) {
    static SECRET: OnceLock<(u64, u64)> = OnceLock::new();
    *SECRET.get_or_init(|| {
        load_or_create(Path::new(DEFAULT_PATH)).unwrap_or_else(|e| {
            tracing::warn!(
                path = DEFAULT_PATH,
                error = %e,
                "TCP key not kept across restarts: a restart may cost new connections to members a reset and a round trip"
            );
            random_secret()
        })
    })
}

/// Reads the key at `path`, or makes one there (mode 0600) when there is none. Two
/// processes starting at once agree: the key is written to a file of its own first and
/// linked into place, so the loser reads the winner's whole key.
pub fn load_or_create(path: &Path) -> io::Result<(u64, u64)> {
    match fs::read(path) {
        Ok(b) => return parse(&b, path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let key = random_secret();
    let mut bytes = [0u8; LEN];
    bytes[..8].copy_from_slice(&key.0.to_le_bytes());
    bytes[8..].copy_from_slice(&key.1.to_le_bytes());
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(&bytes));
    let linked = written.and_then(|()| fs::hard_link(&tmp, path));
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => parse(&fs::read(path)?, path),
        Err(e) => Err(e),
    }
}

fn parse(b: &[u8], path: &Path) -> io::Result<(u64, u64)> {
    if b.len() != LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} holds {} bytes, not {LEN}: remove it and restart rouge",
                path.display(),
                b.len()
            ),
        ));
    }
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i..i + 8]);
        u64::from_le_bytes(w)
    };
    Ok((word(0), word(8)))
}

/// A key from the operating system's random source (through std's hash keys).
fn random_secret() -> (u64, u64) {
    use std::hash::{BuildHasher, Hasher};
    let next = || {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(u64::from(std::process::id()));
        h.finish()
    };
    (next(), next())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(name: &str) -> std::path::PathBuf {
        let d =
            std::env::temp_dir().join(format!("rouge-tcp-secret-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn the_key_is_made_once_and_read_back_by_every_later_start() {
        let d = scratch("once");
        let p = d.join("tcp-secret");
        let first = load_or_create(&p).unwrap();
        assert_eq!(fs::read(&p).unwrap().len(), LEN);
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "root's alone");
        assert_eq!(
            load_or_create(&p).unwrap(),
            first,
            "a restart keeps the key"
        );
        assert_eq!(
            fs::read_dir(&d).unwrap().count(),
            1,
            "no temporary file left"
        );
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_damaged_file_is_reported_not_trusted() {
        let d = scratch("damaged");
        let p = d.join("tcp-secret");
        fs::write(&p, b"short").unwrap();
        let e = load_or_create(&p).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("remove it"), "{e}");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_key_that_cannot_be_kept_is_an_error_and_random_keys_differ() {
        let p = Path::new("/proc/rouge-cannot-write-here/tcp-secret");
        assert!(load_or_create(p).is_err());
        assert_ne!(random_secret(), random_secret());
    }
}
