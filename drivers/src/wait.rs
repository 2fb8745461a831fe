//! Blocking until any of several ports has frames: the adaptive idle policy's sleep,
//! and the [`Waker`] another thread uses to end it early.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Most descriptors waited on at once.
pub const MAX_WAIT_FDS: usize = 16;

/// Blocks until one of `fds` is readable or `timeout` passes (one `ppoll` call;
/// `None` waits without a time limit). Returns which descriptors are readable: bit `i`
/// for `fds[i]` (0 when the time ran out). Extra descriptors beyond [`MAX_WAIT_FDS`]
/// are not waited on.
pub fn wait_readable(fds: &[RawFd], timeout: Option<Duration>) -> u32 {
    let mut pfds = [libc::pollfd {
        fd: -1,
        events: 0,
        revents: 0,
    }; MAX_WAIT_FDS];
    let n = fds.len().min(MAX_WAIT_FDS);
    for (p, &fd) in pfds.iter_mut().zip(fds) {
        p.fd = fd;
        p.events = libc::POLLIN;
    }
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let tsp = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `pfds` is a valid array of `n` initialised pollfd structures that lives
    // across the call; `tsp` is null (no limit) or points at `ts`, a valid timespec
    // that outlives the call; a null signal mask is allowed.
    let rc = unsafe { libc::ppoll(pfds.as_mut_ptr(), n as libc::nfds_t, tsp, std::ptr::null()) };
    if rc <= 0 {
        return 0;
    }
    pfds[..n]
        .iter()
        .enumerate()
        .filter(|(_, p)| p.revents != 0)
        .fold(0, |m, (i, _)| m | 1 << i)
}

/// An `eventfd` that makes a sleeping worker's [`wait_readable`] return: the control
/// thread calls [`Waker::wake`] after publishing a new configuration or asking the
/// workers to stop, so an idle worker needs no periodic wake-up to notice either.
#[derive(Debug)]
pub struct Waker {
    fd: OwnedFd,
}

impl Waker {
    /// A new, unsignalled waker.
    pub fn new() -> io::Result<Waker> {
        // SAFETY: eventfd takes no pointers; the result is checked below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a new descriptor this function owns exclusively.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Waker { fd })
    }

    /// Makes the descriptor readable (any thread). Never blocks.
    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes the 8 bytes of `one`, which lives across the call. A full
        // counter (EAGAIN) means the waker is already signalled, which is all we want.
        unsafe {
            libc::write(
                self.fd.as_raw_fd(),
                (&one as *const u64).cast(),
                std::mem::size_of::<u64>(),
            );
        }
    }

    /// Clears the signal (the owner, after waking). Never blocks.
    pub fn clear(&self) {
        let mut n: u64 = 0;
        // SAFETY: reads at most 8 bytes into `n`, which lives across the call; a
        // non-blocking eventfd returns EAGAIN when it is not signalled.
        unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&mut n as *mut u64).cast(),
                std::mem::size_of::<u64>(),
            );
        }
    }

    /// The descriptor to wait on with [`wait_readable`].
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn wakes_on_data_and_times_out_without() {
        let (mut a, b) = UnixStream::pair().unwrap();
        assert_eq!(
            wait_readable(&[b.as_raw_fd()], Some(Duration::from_millis(1))),
            0
        );
        a.write_all(b"x").unwrap();
        let (_c, d) = UnixStream::pair().unwrap();
        assert_eq!(
            wait_readable(&[d.as_raw_fd(), b.as_raw_fd()], None),
            0b10,
            "the readable one is named"
        );
    }

    #[test]
    fn a_waker_ends_a_wait_without_a_time_limit() {
        let w = std::sync::Arc::new(Waker::new().unwrap());
        assert_eq!(wait_readable(&[w.fd()], Some(Duration::ZERO)), 0);
        let other = w.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            other.wake();
            other.wake();
        });
        assert_eq!(
            wait_readable(&[w.fd()], None),
            1,
            "woken from another thread"
        );
        t.join().unwrap();
        w.clear();
        assert_eq!(
            wait_readable(&[w.fd()], Some(Duration::ZERO)),
            0,
            "one clear resets any number of wakes"
        );
    }
}
