//! Blocking until any of several ports has frames: the adaptive idle policy's sleep.

use std::os::fd::RawFd;
use std::time::Duration;

/// Most descriptors waited on at once.
pub const MAX_WAIT_FDS: usize = 16;

/// Blocks until one of `fds` is readable or `timeout` passes (one `ppoll` call).
/// Returns true if some descriptor is readable. Extra descriptors beyond
/// [`MAX_WAIT_FDS`] are not waited on.
pub fn wait_readable(fds: &[RawFd], timeout: Duration) -> bool {
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
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `pfds` is a valid array of `n` initialised pollfd structures that lives
    // across the call; `ts` is a valid timespec; a null signal mask is allowed.
    let rc = unsafe { libc::ppoll(pfds.as_mut_ptr(), n as libc::nfds_t, &ts, std::ptr::null()) };
    rc > 0
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
        assert!(!wait_readable(&[b.as_raw_fd()], Duration::from_millis(1)));
        a.write_all(b"x").unwrap();
        assert!(wait_readable(&[b.as_raw_fd()], Duration::from_secs(5)));
    }
}
