//! Entering a named network namespace (as created by `ip netns add`) on this thread.
//!
//! Sockets keep the namespace they were opened in, so a generator opens its transmit
//! port in one namespace, enters another, and opens its receive port there: one thread,
//! two namespaces, as the test bed's client and server sides need.

use std::fs::File;

use nix::sched::{setns, CloneFlags};

/// Error entering a namespace.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// `/run/netns/NAME` could not be opened.
    #[error("network namespace `{name}`: {source} (is it created? `ip netns list` shows them)")]
    Open {
        /// The namespace's name.
        name: String,
        /// Why.
        source: std::io::Error,
    },
    /// `setns` failed.
    #[error("entering network namespace `{name}`: {source} (needs root)")]
    Enter {
        /// The namespace's name.
        name: String,
        /// Why.
        source: nix::Error,
    },
}

/// Moves the calling thread into the network namespace `name`.
pub fn enter(name: &str) -> Result<(), NetnsError> {
    let f = File::open(format!("/run/netns/{name}")).map_err(|source| NetnsError::Open {
        name: name.to_string(),
        source,
    })?;
    setns(&f, CloneFlags::CLONE_NEWNET).map_err(|source| NetnsError::Enter {
        name: name.to_string(),
        source,
    })
}
