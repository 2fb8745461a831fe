//! The DPDK Environment Abstraction Layer: initialised once per process.
//!
//! `rte_eal_init` sets up process-wide state (memory, lcores, devices) and cannot run
//! twice, nor again after `rte_eal_cleanup`. [`Eal::init`] therefore succeeds at most
//! once per process; a second call gets [`DpdkError::AlreadyInitialised`] whatever its
//! arguments. The [`Eal`] value it returns is a token that proves initialisation and
//! is needed to open ports; [`Eal::get`] returns it again afterwards.
//!
//! `rte_eal_init` makes the calling thread DPDK's main lcore and pins it to that lcore's
//! CPUs, so call it from the thread that may be pinned (the control thread), with
//! `-l`/`--lcores` naming the cores to use.

use std::ffi::{CStr, CString};
use std::os::raw::c_char;
use std::sync::atomic::{AtomicU8, Ordering};

use rouge_dpdk_sys as sys;

use crate::DpdkError;

/// 0: never initialised, 1: initialising, 2: initialised, 3: initialisation failed.
static STATE: AtomicU8 = AtomicU8::new(0);

/// Proof that the EAL of this process is initialised.
#[derive(Debug, Clone, Copy)]
pub struct Eal {
    _private: (),
}

/// The text of DPDK error `code` (`rte_strerror`).
pub(super) fn strerror(code: i32) -> String {
    // SAFETY: rte_strerror returns a pointer to a NUL-terminated string that stays
    // valid at least until the next call on this thread; it is copied at once.
    unsafe {
        let p = sys::rte_strerror(code.abs());
        if p.is_null() {
            format!("error {code}")
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}

impl Eal {
    /// Initialises the EAL with `args` (EAL arguments, without a program name; e.g.
    /// `["--no-huge", "-m", "128", "--no-pci", "--vdev", "net_ring0"]`). Succeeds once
    /// per process: a later call, or a call after a failed one, is refused.
    pub fn init(args: &[&str]) -> Result<Eal, DpdkError> {
        if STATE
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(DpdkError::AlreadyInitialised);
        }
        let mut owned = Vec::with_capacity(args.len() + 1);
        for a in std::iter::once("rouge").chain(args.iter().copied()) {
            match CString::new(a) {
                Ok(c) => owned.push(c),
                Err(_) => {
                    STATE.store(0, Ordering::Release);
                    return Err(DpdkError::Eal {
                        args: args.join(" "),
                        reason: format!("argument {a:?} contains a NUL byte"),
                    });
                }
            }
        }
        // The EAL may keep pointers into argv (it reorders it and remembers names), and
        // it lives as long as the process: the strings are leaked on purpose, once.
        let argv: &'static mut [*mut c_char] = Box::leak(
            owned
                .into_iter()
                .map(CString::into_raw)
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        );
        // SAFETY: `argv` holds `argv.len()` valid NUL-terminated strings that live for
        // the rest of the process; the EAL may permute the array. STATE guarantees this
        // runs at most once per process.
        let rc = unsafe { sys::rte_eal_init(argv.len() as i32, argv.as_mut_ptr()) };
        if rc < 0 {
            STATE.store(3, Ordering::Release);
            // SAFETY: reads DPDK's thread-local error number, set by the failed call.
            let code = unsafe { sys::rouge_errno() };
            return Err(DpdkError::Eal {
                args: args.join(" "),
                reason: format!(
                    "{} (the EAL printed why on standard error; `dpdk-testpmd` with the same arguments checks them too)",
                    strerror(code)
                ),
            });
        }
        STATE.store(2, Ordering::Release);
        Ok(Eal { _private: () })
    }

    /// The token, if [`Eal::init`] succeeded earlier in this process.
    pub fn get() -> Option<Eal> {
        (STATE.load(Ordering::Acquire) == 2).then_some(Eal { _private: () })
    }

    /// Makes the calling thread a DPDK lcore (`rte_thread_register`) and returns its
    /// lcore id, so mempool operations from it use a per-lcore cache. A worker calls
    /// this once when it starts (calling it again returns the same id). Ids are a
    /// limited set (`RTE_MAX_LCORE`, 128 in Debian's build) and this driver does not
    /// give them back, so register long-lived threads only.
    pub fn register_thread(&self) -> Result<u32, DpdkError> {
        // SAFETY: the EAL is initialised; plain queries and registration of the
        // calling thread.
        let id = unsafe { sys::rouge_lcore_id() };
        if id != u32::MAX {
            return Ok(id);
        }
        // SAFETY: as above.
        let rc = unsafe { sys::rte_thread_register() };
        if rc < 0 {
            // SAFETY: reads DPDK's thread-local error number, set by the failed call.
            let code = unsafe { sys::rouge_errno() };
            return Err(DpdkError::Call {
                device: "EAL".into(),
                call: "rte_thread_register",
                reason: format!(
                    "{} (every lcore id is taken: fewer workers, or a larger RTE_MAX_LCORE)",
                    strerror(code)
                ),
            });
        }
        // SAFETY: as above.
        Ok(unsafe { sys::rouge_lcore_id() })
    }

    /// Hot-plugs a device (`rte_dev_probe`), e.g. `net_ring3` or
    /// `net_af_packet1,iface=lb-c`. Kernel-backed virtual devices open their sockets in
    /// the calling thread's network namespace.
    pub fn probe(&self, devargs: &str) -> Result<(), DpdkError> {
        let c = CString::new(devargs).map_err(|_| DpdkError::Call {
            device: devargs.into(),
            call: "rte_dev_probe",
            reason: "device arguments contain a NUL byte".into(),
        })?;
        // SAFETY: the EAL is initialised (this token exists); `c` is a valid string
        // that outlives the call.
        let rc = unsafe { sys::rte_dev_probe(c.as_ptr()) };
        if rc < 0 {
            return Err(DpdkError::Call {
                device: devargs.into(),
                call: "rte_dev_probe",
                reason: strerror(rc),
            });
        }
        Ok(())
    }
}
