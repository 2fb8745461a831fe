//! Raw bindings to DPDK (22.11 or later), generated at build time from the installed
//! headers with a narrow allowlist, plus `rouge_*` functions from a C shim that export
//! DPDK's `static inline` fast path (burst receive and transmit, mbuf allocation and
//! access, `rte_errno`). Everything here is `unsafe`; `rouge-drivers` (feature `dpdk`)
//! wraps it in a safe port.
//!
//! Without feature `dpdk` (the default) the crate is empty and needs nothing, so the
//! workspace builds on machines without DPDK. With it, building needs `pkg-config`, DPDK's development files and libclang (Debian:
//! `apt-get install libdpdk-dev libclang-dev pkg-config`).

#![allow(non_upper_case_globals, non_camel_case_types, non_snake_case)]
#![allow(missing_docs, clippy::all)]
#![allow(unsafe_op_in_unsafe_fn)]

#[cfg(feature = "dpdk")]
include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
