//! Running code inside a named network namespace (`ip netns add NAME`), for tests and
//! tools.
//!
//! A network namespace is a property of a thread, so [`run_in`] starts a scoped thread,
//! moves it into `/run/netns/NAME` with `setns(CLONE_NEWNET)`, runs the closure there
//! and returns its result; the caller's thread never changes namespace. Sockets opened
//! inside (an [`AfPacketPort`](crate::afpacket::AfPacketPort) for example) stay in that
//! namespace wherever they are used afterwards.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

/// Why a closure could not be run in a namespace.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// `/run/netns/NAME` could not be opened.
    #[error("network namespace {name}: cannot open {path}: {source} (create it with `ip netns add {name}`)")]
    Open {
        /// Namespace name.
        name: String,
        /// The path tried.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// `setns` failed.
    #[error("network namespace {name}: setns(CLONE_NEWNET) failed: {source} (are you root?)")]
    Setns {
        /// Namespace name.
        name: String,
        /// The operating system's error.
        source: io::Error,
    },
}

/// Whether this process runs as root (effective user id 0), which entering a namespace
/// and opening a port on a real interface need; tests that need it check first.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no arguments and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Path of the namespace file `ip netns` creates for `name`.
pub fn path(name: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(name)
}

/// Runs `f` on a new thread inside network namespace `name` and returns its result.
/// A panic in `f` is resumed on the calling thread.
pub fn run_in<F, T>(name: &str, f: F) -> Result<T, NetnsError>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    let path = path(name);
    let ns = File::open(&path).map_err(|source| NetnsError::Open {
        name: name.to_string(),
        path: path.clone(),
        source,
    })?;
    std::thread::scope(|s| {
        let handle = s.spawn(move || {
            // SAFETY: `ns` is an open namespace file descriptor that lives across the
            // call; setns only changes this (new, scoped) thread's network namespace.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                return Err(NetnsError::Setns {
                    name: name.to_string(),
                    source: io::Error::last_os_error(),
                });
            }
            drop(ns);
            Ok(f())
        });
        match handle.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_namespaces_are_reported() {
        let e = run_in("rgt-does-not-exist", || ()).unwrap_err();
        assert!(
            e.to_string().contains("ip netns add rgt-does-not-exist"),
            "{e}"
        );
    }
}
