//! Arbitrary bytes into the HTTP/1.1 engine: parsed as a request head and as a response
//! head (under the default limits or small ones), and the body behind a head, or the
//! bytes themselves, through a body framer split at an arbitrary point. It must never
//! panic; heads stay within the buffer and the limits; a head parses the same from
//! any longer buffer and is incomplete in any shorter one; `advance` never takes more
//! than it is given; splitting the input changes nothing.
//!
//! Input: a mode byte (limits, the request's method, the framer's kind), a byte
//! choosing the split point (a fraction of the rest), then the message bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rouge_pipelines::http::head::header_value;
use rouge_pipelines::http::{
    parse_request, parse_response, BodyFramer, BodyKind, HttpError, Limits, Method,
};

/// (bytes taken, done, payload), or the error, of `data` fed in one call or cut at `cut`.
fn frame(kind: BodyKind, data: &[u8], cut: Option<usize>) -> Result<(usize, bool, u64), HttpError> {
    let mut f = BodyFramer::new(kind);
    let pieces: [&[u8]; 2] = match cut {
        Some(c) => [&data[..c], &data[c..]],
        None => [data, &[]],
    };
    let mut taken = 0;
    for piece in pieces {
        let n = f.advance(piece)?;
        assert!(n <= piece.len(), "advance took more than it was given");
        taken += n;
        if n < piece.len() {
            assert!(f.is_done(), "stopped short of the data without being done");
            break;
        }
    }
    if f.is_done() {
        assert_eq!(
            f.advance(&data[taken..])?,
            0,
            "a done body takes nothing more"
        );
    }
    assert!(f.payload_bytes() <= taken as u64);
    Ok((taken, f.is_done(), f.payload_bytes()))
}

/// The framer over `data` gives the same result in one call and cut at `cut`.
fn check_framer(kind: BodyKind, data: &[u8], cut: usize) {
    let whole = frame(kind, data, None);
    let split = frame(kind, data, Some(cut.min(data.len())));
    assert_eq!(whole, split, "splitting changed the body framing");
    match (kind, whole) {
        (BodyKind::None, r) => assert_eq!(r, Ok((0, true, 0))),
        (BodyKind::UntilClose, r) => assert_eq!(r, Ok((data.len(), false, data.len() as u64))),
        (BodyKind::Length(n), r) => {
            let t = (n as usize).min(data.len());
            assert_eq!(r, Ok((t, t as u64 == n, t as u64)));
        }
        (BodyKind::Chunked, _) => {}
    }
}

fn check_request(buf: &[u8], limits: &Limits, cut: usize) {
    let whole = parse_request(buf, limits);
    let Ok(Some(h)) = &whole else {
        return;
    };
    assert!(h.head_len <= buf.len() && h.head_len <= limits.max_header_bytes);
    for r in [Some(&h.target), h.host.as_ref(), h.range.as_ref()]
        .into_iter()
        .flatten()
    {
        assert!(r.start <= r.end && r.end <= h.head_len);
    }
    assert_ne!(h.body, BodyKind::UntilClose);
    assert!(h.version <= 1);
    let head = &buf[..h.head_len];
    assert_eq!(parse_request(head, limits).as_ref(), Ok(&Some(h.clone())));
    assert_eq!(
        parse_request(&buf[..cut.min(h.head_len - 1)], limits),
        Ok(None)
    );
    assert_eq!(header_value(head, "host"), h.host.clone().map(|r| &buf[r]));
    check_framer(h.body, &buf[h.head_len..], cut);
}

fn check_response(buf: &[u8], method: Method, limits: &Limits, cut: usize) {
    let whole = parse_response(buf, method, limits);
    if let Err(e) = whole {
        assert_eq!(e, HttpError::BadResponse);
    }
    let Ok(Some(h)) = &whole else {
        return;
    };
    assert!(h.head_len <= buf.len() && h.head_len <= limits.max_header_bytes);
    if let Some(r) = &h.etag {
        assert!(r.start <= r.end && r.end <= h.head_len);
    }
    if let Some(cr) = h.content_range {
        assert!(cr.first <= cr.last && cr.complete.is_none_or(|c| cr.last < c));
    }
    assert!(h.status >= 100 && h.version <= 1);
    if method == Method::Head || h.status < 200 || h.status == 204 || h.status == 304 {
        assert_eq!(h.body, BodyKind::None);
    }
    if h.body == BodyKind::UntilClose {
        assert!(!h.keep_alive);
    }
    let head = &buf[..h.head_len];
    assert_eq!(
        parse_response(head, method, limits).as_ref(),
        Ok(&Some(h.clone()))
    );
    assert_eq!(
        parse_response(&buf[..cut.min(h.head_len - 1)], method, limits),
        Ok(None)
    );
    check_framer(h.body, &buf[h.head_len..], cut);
}

fuzz_target!(|data: &[u8]| {
    let Some((&[mode, cut], buf)) = data.split_first_chunk::<2>() else {
        return;
    };
    let limits = if mode & 1 == 0 {
        Limits::default()
    } else {
        Limits {
            max_request_line: 40,
            max_header_bytes: 160,
            max_headers: 4,
        }
    };
    let cut = usize::from(cut) * buf.len() / 255;
    check_request(buf, &limits, cut);
    let method = [Method::Get, Method::Head, Method::Put, Method::Post][usize::from(mode >> 1) & 3];
    check_response(buf, method, &limits, cut);
    // The framer on the raw bytes, so chunked framing is fuzzed without a valid head.
    let kind = match (mode >> 3) & 3 {
        0 | 1 => BodyKind::Chunked,
        2 => BodyKind::Length(u64::from(mode >> 5) * 16),
        _ => BodyKind::UntilClose,
    };
    check_framer(kind, buf, cut);
    check_framer(BodyKind::None, buf, cut);
});
