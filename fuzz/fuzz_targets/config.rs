//! Arbitrary text into the configuration loader: it must never panic, and a file it
//! accepts must build a data-plane snapshot and survive a save-and-reload unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rouge_appliance::config::{self, build};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match config::parse("fuzz.toml", text) {
        Ok(cfg) => {
            let _ = build::dataplane(&cfg, 1, 2, None);
            let again = config::parse("saved.toml", &config::to_toml(&cfg)).expect("saved config reloads");
            assert_eq!(cfg, again);
        }
        Err(e) => assert!(!e.0.is_empty()),
    }
});
