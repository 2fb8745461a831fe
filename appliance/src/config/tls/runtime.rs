//! TLS state that outlives configuration snapshots ([`TlsRuntime`]: the appliance's
//! wall clock and the ticket keys of each profile) and the TLS configurations of one
//! snapshot ([`Built`]).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};

use rouge_pipelines::tls::{TicketKeys, TlsClientConfig, TlsServerConfig, WallClock};

use super::super::model::Config;
use super::{unix_now, LoadedProfile, TlsProfileCfg};

/// TLS state of the appliance that outlives configuration snapshots: the wall clock the
/// engine reads (set from the system clock by the management thread, at least once a
/// second) and the ticket keys of each client side profile, kept across `config apply`
/// for a profile of the same name and rotation period, so tickets issued before a
/// change still resume after it.
pub struct TlsRuntime {
    clock: WallClock,
    tickets: Mutex<HashMap<String, (u64, Arc<TicketKeys>)>>,
}

impl fmt::Debug for TlsRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsRuntime")
            .field("clock", &self.clock)
            .finish()
    }
}

impl TlsRuntime {
    /// A runtime with its clock set from the system clock now.
    pub fn new() -> Arc<TlsRuntime> {
        Arc::new(TlsRuntime {
            clock: WallClock::at(unix_now()),
            tickets: Mutex::new(HashMap::new()),
        })
    }

    /// A runtime whose clock starts at `unix_secs` (tests).
    pub fn at(unix_secs: u64) -> Arc<TlsRuntime> {
        let r = TlsRuntime::new();
        r.clock.set(unix_secs);
        r
    }

    /// The clock every TLS configuration built here reads.
    pub fn clock(&self) -> &WallClock {
        &self.clock
    }

    /// Sets the clock from the system clock.
    pub fn tick(&self) {
        self.clock.set(unix_now());
    }

    /// The ticket keys of profile `name` (kept while its rotation period stays the
    /// same); `None` when the system's random source fails.
    pub fn ticket_keys(&self, name: &str, rotation_secs: u64) -> Option<Arc<TicketKeys>> {
        let mut map = self.tickets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((r, k)) = map.get(name) {
            if *r == rotation_secs {
                return Some(Arc::clone(k));
            }
        }
        let k = TicketKeys::new(self.clock.clone(), rotation_secs)?;
        map.insert(name.to_string(), (rotation_secs, Arc::clone(&k)));
        Some(k)
    }

    /// Forgets the ticket keys of profiles not in `names`.
    fn keep_only(&self, names: &HashSet<&str>) {
        self.tickets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|n, _| names.contains(n.as_str()));
    }
}

/// The TLS configurations of one snapshot, built once per profile and side.
pub(in crate::config) struct Built<'a> {
    cfg: &'a Config,
    rt: &'a TlsRuntime,
    servers: HashMap<String, Option<Arc<TlsServerConfig>>>,
    clients: HashMap<String, Option<Arc<TlsClientConfig>>>,
}

impl<'a> Built<'a> {
    /// Starts a snapshot's TLS configurations; ticket keys of profiles no longer
    /// configured are dropped.
    pub(in crate::config) fn new(cfg: &'a Config, rt: &'a TlsRuntime) -> Built<'a> {
        rt.keep_only(&cfg.tls_profiles.iter().map(|p| p.name.as_str()).collect());
        Built {
            cfg,
            rt,
            servers: HashMap::new(),
            clients: HashMap::new(),
        }
    }

    fn profile(&self, name: &str) -> Option<(&'a TlsProfileCfg, &'a LoadedProfile)> {
        let p = self.cfg.tls_profiles.iter().find(|p| p.name == name)?;
        Some((p, self.cfg.tls_loaded.get(name)?))
    }

    /// The client side configuration of profile `name` (`None`, logged, when it cannot
    /// be built: the virtual server is then left out rather than served without TLS).
    pub(in crate::config) fn server(&mut self, name: &str) -> Option<Arc<TlsServerConfig>> {
        if let Some(c) = self.servers.get(name) {
            return c.clone();
        }
        let built = self.profile(name).and_then(|(p, l)| {
            let sp = p.server_profile(l)?;
            let keys = self.rt.ticket_keys(name, p.rotation_secs())?;
            TlsServerConfig::new(&sp, keys, self.rt.clock.clone())
                .inspect_err(
                    |e| tracing::error!(profile = name, error = %e, "tls profile not built"),
                )
                .ok()
                .map(Arc::new)
        });
        self.servers.insert(name.to_string(), built.clone());
        built
    }

    /// The server side configuration of profile `name` and its per-worker session
    /// cache (`None`, logged, when it cannot be built).
    pub(in crate::config) fn client(
        &mut self,
        name: &str,
    ) -> Option<(Arc<TlsClientConfig>, usize)> {
        let cache = self.profile(name)?.0.client_session_cache();
        if let Some(c) = self.clients.get(name) {
            return c.clone().map(|c| (c, cache));
        }
        let built = self.profile(name).and_then(|(p, l)| {
            TlsClientConfig::new(&p.client_profile(l)?, self.rt.clock.clone())
                .inspect_err(
                    |e| tracing::error!(profile = name, error = %e, "tls profile not built"),
                )
                .ok()
                .map(Arc::new)
        });
        self.clients.insert(name.to_string(), built.clone());
        built.map(|c| (c, cache))
    }
}
