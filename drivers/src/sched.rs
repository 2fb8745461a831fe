//! Scheduling of a worker thread: the real-time `SCHED_FIFO` policy, for a worker that
//! must run the moment a frame wakes it instead of waiting for the scheduler's next slice
//! behind other tasks on its core (VPP's `scheduler-policy fifo` does the same).
//!
//! A `SCHED_FIFO` thread is only preempted by higher real-time priorities; one that
//! never sleeps (busy polling, or an adaptive worker under steady traffic) keeps its
//! core for itself until the kernel's real-time throttling (`sched_rt_runtime_us`, by
//! default 950 ms of every second) stops it for the rest of the second, and per-CPU
//! kernel threads such as `ksoftirqd` only run in that gap. Use it on cores dedicated
//! to the workers, for adaptive workers that sleep between packets, or with throttling
//! turned off.

use std::io;

/// Highest `SCHED_FIFO` priority Linux accepts (the lowest is 1).
pub const MAX_FIFO_PRIORITY: u8 = 99;

/// Puts the calling thread under `SCHED_FIFO` at `priority` (1 to
/// [`MAX_FIFO_PRIORITY`]). Needs `CAP_SYS_NICE` (root) or an `RLIMIT_RTPRIO` allowing it.
pub fn set_fifo(priority: u8) -> io::Result<()> {
    if !(1..=MAX_FIFO_PRIORITY).contains(&priority) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("SCHED_FIFO priority {priority}: use 1 to {MAX_FIFO_PRIORITY}"),
        ));
    }
    let param = libc::sched_param {
        sched_priority: i32::from(priority),
    };
    // SAFETY: `param` is a valid sched_param that lives across the call; pid 0 is the
    // calling thread.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// True when the calling thread runs under `SCHED_FIFO`.
pub fn is_fifo() -> bool {
    // SAFETY: no arguments besides the pid (0: the calling thread).
    unsafe { libc::sched_getscheduler(0) == libc::SCHED_FIFO }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_out_of_range_are_refused() {
        for p in [0, 100, 255] {
            let e = set_fifo(p).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{p}");
        }
    }

    #[test]
    fn a_thread_becomes_fifo_when_allowed() {
        let (set, fifo) = std::thread::spawn(|| (set_fifo(1), is_fifo()))
            .join()
            .unwrap();
        match set {
            Ok(()) => assert!(fifo),
            // Without CAP_SYS_NICE the call fails cleanly and nothing changes.
            Err(e) => assert!(!fifo, "{e}"),
        }
        assert!(!is_fifo(), "only the thread that asked changed");
    }
}
