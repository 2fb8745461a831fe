//! What a probe's answer must look like: the `receive` string of an http or https
//! monitor, or, for an s3 monitor, any well-formed HTTP/1.x status line (an S3 server
//! answers an unauthenticated `GET /` with `403 AccessDenied`: it is alive).

use super::{contains, ProbeError, ProbeFailure, MAX_RESPONSE};

/// What makes an answer good.
#[derive(Debug, Clone, Copy)]
pub(super) enum Expect<'a> {
    /// The answer contains these bytes.
    Contains(&'a [u8]),
    /// The answer starts with a well-formed HTTP/1.x status line, whatever its status.
    StatusLine,
}

/// Longest status line looked for (an S3 server's is about 30 bytes).
const MAX_STATUS_LINE: usize = 1024;

/// The verdict on the answer so far: `Some(Ok)` good, `Some(Err)` failed, `None` not
/// known before more arrives. `ended`: nothing more will (the member closed).
pub(super) fn judge(
    response: &[u8],
    expect: Expect<'_>,
    ended: bool,
) -> Option<Result<(), ProbeError>> {
    match expect {
        Expect::Contains(receive) => {
            if contains(response, receive) {
                Some(Ok(()))
            } else if ended || response.len() >= MAX_RESPONSE {
                Some(Err(ProbeError::new(
                    ProbeFailure::Response,
                    "response did not contain the receive string",
                )))
            } else {
                None
            }
        }
        Expect::StatusLine => status_line(response, ended),
    }
}

fn status_line(response: &[u8], ended: bool) -> Option<Result<(), ProbeError>> {
    const VERSION: &[u8] = b"HTTP/1.";
    let start = response.len().min(VERSION.len());
    if response[..start] != VERSION[..start] {
        return Some(Err(not_http(response)));
    }
    let Some(lf) = response.iter().position(|&b| b == b'\n') else {
        if response.len() > MAX_STATUS_LINE {
            return Some(Err(ProbeError::new(
                ProbeFailure::Response,
                format!("no end of the status line in {MAX_STATUS_LINE} bytes"),
            )));
        }
        return ended.then(|| {
            Err(ProbeError::new(
                ProbeFailure::Response,
                if response.is_empty() {
                    "the member closed without answering".to_string()
                } else {
                    format!("answer ended inside the status line: {}", shown(response))
                },
            ))
        });
    };
    let line = &response[..lf];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if well_formed(line) {
        Some(Ok(()))
    } else {
        Some(Err(not_http(line)))
    }
}

/// `HTTP/1.D SP DDD` then the end or `SP reason` (RFC 9112, section 4; the reason may
/// be empty).
fn well_formed(line: &[u8]) -> bool {
    let digit = |i: usize| line.get(i).is_some_and(u8::is_ascii_digit);
    line.len() >= 12
        && line.starts_with(b"HTTP/1.")
        && digit(7)
        && line[8] == b' '
        && line[9] != b'0'
        && (9..12).all(digit)
        && (line.len() == 12 || line[12] == b' ')
        && line[12..]
            .iter()
            .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80)
}

fn not_http(start: &[u8]) -> ProbeError {
    ProbeError::new(
        ProbeFailure::Response,
        format!("answer is not HTTP/1.x: {}", shown(start)),
    )
}

/// The first bytes of an answer, printable (others escaped), for the log.
fn shown(b: &[u8]) -> String {
    let head = &b[..b.len().min(40)];
    let mut s: String = head.escape_ascii().to_string();
    if b.len() > head.len() {
        s.push('…');
    }
    format!("\"{s}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(answer: &[u8], ended: bool) -> Option<Result<(), ProbeFailure>> {
        judge(answer, Expect::StatusLine, ended).map(|r| r.map_err(|e| e.reason))
    }

    #[test]
    fn any_status_is_alive() {
        for a in [
            &b"HTTP/1.1 403 Forbidden\r\n\r\n<Error><Code>AccessDenied</Code></Error>"[..],
            b"HTTP/1.1 200 OK\r\n",
            b"HTTP/1.0 500 Internal Server Error\r\n",
            b"HTTP/1.1 503 \r\n",
            b"HTTP/1.1 204\r\n",
            b"HTTP/1.1 301 Moved\n",
            b"HTTP/1.1 100 Continue\r\n",
        ] {
            assert_eq!(verdict(a, false), Some(Ok(())), "{}", a.escape_ascii());
        }
    }

    #[test]
    fn anything_else_is_a_response_failure() {
        for a in [
            &b"SSH-2.0-OpenSSH_9.2\r\n"[..],
            b"HTTP/2 200\r\n",
            b"HTTP/1.1 20 OK\r\n",
            b"HTTP/1.1 2000 OK\r\n",
            b"HTTP/1.1 099 Low\r\n",
            b"HTTP/1.1  200 OK\r\n",
            b"HTTP/1.x 200 OK\r\n",
            b"HTTP/1.1 200OK\r\n",
            b"HTTP/1.1 200 O\x01K\r\n",
            b"\x16\x03\x03\x00\x02",
            b"http/1.1 200 OK\r\n",
        ] {
            assert_eq!(
                verdict(a, false),
                Some(Err(ProbeFailure::Response)),
                "{}",
                a.escape_ascii()
            );
        }
    }

    #[test]
    fn a_partial_status_line_waits_unless_the_member_closed() {
        assert_eq!(verdict(b"", false), None);
        assert_eq!(verdict(b"HTT", false), None);
        assert_eq!(verdict(b"HTTP/1.1 403 Forb", false), None);
        assert_eq!(verdict(b"X", false), Some(Err(ProbeFailure::Response)));
        assert_eq!(verdict(b"", true), Some(Err(ProbeFailure::Response)));
        assert_eq!(
            verdict(b"HTTP/1.1 403 Forb", true),
            Some(Err(ProbeFailure::Response))
        );
        let mut long = b"HTTP/1.1 200 ".to_vec();
        long.resize(MAX_STATUS_LINE + 1, b'a');
        assert_eq!(verdict(&long, false), Some(Err(ProbeFailure::Response)));
    }

    #[test]
    fn the_failure_shows_what_came_back() {
        let e = judge(b"SSH-2.0-OpenSSH\r\n", Expect::StatusLine, false)
            .unwrap()
            .unwrap_err();
        assert!(e.detail.contains("not HTTP/1.x"), "{e}");
        assert!(e.detail.contains("SSH-2.0"), "{e}");
    }

    #[test]
    fn contains_is_the_receive_string() {
        let r = |a: &[u8], ended| {
            judge(a, Expect::Contains(b"200"), ended).map(|r| r.map_err(|e| e.reason))
        };
        assert_eq!(r(b"HTTP/1.0 200 OK", false), Some(Ok(())));
        assert_eq!(r(b"HTTP/1.0 403 No", false), None);
        assert_eq!(
            r(b"HTTP/1.0 403 No", true),
            Some(Err(ProbeFailure::Response))
        );
    }
}
