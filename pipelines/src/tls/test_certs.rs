//! The test certificates of `appliance/configs/tls/` for in-memory tests (the engine's
//! and the proxy's): identities, CA bundles and a wall clock inside their validity.

use std::path::PathBuf;

use super::{CaBundle, TlsIdentity, WallClock};

/// The folder of the test certificates.
pub(crate) fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../appliance/configs/tls")
}

/// The identity `NAME.crt` / `NAME.key`.
pub(crate) fn ident(name: &str) -> TlsIdentity {
    let d = dir();
    TlsIdentity::load(
        &d.join(format!("{name}.crt")),
        &d.join(format!("{name}.key")),
    )
    .unwrap()
}

/// The CA bundle `NAME.crt`.
pub(crate) fn ca(name: &str) -> CaBundle {
    CaBundle::load(&dir().join(format!("{name}.crt"))).unwrap()
}

/// A wall clock an hour into the test certificates' validity.
pub(crate) fn clock() -> WallClock {
    let (nb, _) = ident("s3.rouge.test").validity().expect("validity");
    WallClock::at(nb + 3600)
}
