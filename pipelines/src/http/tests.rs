//! Tests of the HTTP/1.1 engine's heads and body framing: the smuggling cases of the
//! issue, the limits, pipelining, chunked bodies split at every byte boundary, the
//! response framing rules and the S3 details (`Range` signed, `Content-Range`).

use super::body::{MAX_CHUNK_LINE, MAX_TRAILERS};
use super::head::{header_value, ContentRange, MAX_HEADERS};
use super::{
    parse_request, parse_response, BodyFramer, BodyKind, HttpError, Limits, Method, RequestHead,
    ResponseHead,
};

fn req(buf: &[u8]) -> Result<Option<RequestHead>, HttpError> {
    parse_request(buf, &Limits::default())
}

fn req_ok(buf: &[u8]) -> RequestHead {
    match req(buf) {
        Ok(Some(h)) => h,
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(buf)),
    }
}

fn req_err(buf: &[u8]) -> HttpError {
    match req(buf) {
        Err(e) => e,
        other => panic!("{:?} accepted: {other:?}", String::from_utf8_lossy(buf)),
    }
}

fn resp(buf: &[u8], method: Method) -> Result<Option<ResponseHead>, HttpError> {
    parse_response(buf, method, &Limits::default())
}

fn resp_ok(buf: &[u8], method: Method) -> ResponseHead {
    match resp(buf, method) {
        Ok(Some(h)) => h,
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(buf)),
    }
}

/// Whole body in one call: (bytes taken, done, payload), or the error.
fn frame(kind: BodyKind, data: &[u8]) -> Result<(usize, bool, u64), HttpError> {
    let mut f = BodyFramer::new(kind);
    let n = f.advance(data)?;
    Ok((n, f.is_done(), f.payload_bytes()))
}

/// The same, fed in the pieces `data` is cut into at `cuts` (ascending).
fn frame_split(
    kind: BodyKind,
    data: &[u8],
    cuts: &[usize],
) -> Result<(usize, bool, u64), HttpError> {
    let mut f = BodyFramer::new(kind);
    let mut taken = 0;
    let mut from = 0;
    for &to in cuts.iter().chain(std::iter::once(&data.len())) {
        let piece = &data[from..to];
        let n = f.advance(piece)?;
        assert!(n <= piece.len());
        taken += n;
        if n < piece.len() {
            // The body ended inside this piece: nothing later belongs to it.
            assert!(f.is_done());
            assert_eq!(f.advance(&data[to..])?, 0);
            break;
        }
        from = to;
    }
    Ok((taken, f.is_done(), f.payload_bytes()))
}

// ---- methods ----

#[test]
fn method_tokens_are_exact_and_round_trip() {
    for m in [
        Method::Get,
        Method::Head,
        Method::Put,
        Method::Post,
        Method::Delete,
        Method::Options,
        Method::Patch,
        Method::Connect,
        Method::Trace,
    ] {
        assert_eq!(Method::from_token(m.as_str().as_bytes()), m);
    }
    assert_eq!(Method::from_token(b"get"), Method::Other);
    assert_eq!(Method::from_token(b"GETX"), Method::Other);
    assert_eq!(Method::from_token(b""), Method::Other);
    assert_eq!(Method::Other.as_str(), "OTHER");
    let idempotent: Vec<_> = [
        Method::Get,
        Method::Head,
        Method::Put,
        Method::Post,
        Method::Delete,
        Method::Options,
        Method::Patch,
        Method::Connect,
        Method::Trace,
        Method::Other,
    ]
    .into_iter()
    .filter(|m| m.is_idempotent())
    .collect();
    assert_eq!(
        idempotent,
        [
            Method::Get,
            Method::Head,
            Method::Put,
            Method::Delete,
            Method::Options,
            Method::Trace
        ]
    );
}

// ---- request heads ----

#[test]
fn request_fields_point_into_the_buffer() {
    let buf =
        b"GET /bucket/key?x=1 HTTP/1.1\r\nHost:  s3.rouge.test \r\nRange: bytes=0-99\r\n\r\nrest";
    let h = req_ok(buf);
    assert_eq!(h.method, Method::Get);
    assert_eq!(h.version, 1);
    assert_eq!(h.head_len, buf.len() - 4);
    assert_eq!(&buf[h.target.clone()], b"/bucket/key?x=1");
    assert_eq!(&buf[h.host.clone().unwrap()], b"s3.rouge.test");
    assert_eq!(&buf[h.range.clone().unwrap()], b"bytes=0-99");
    assert_eq!(h.body, BodyKind::None);
    assert!(h.keep_alive);
    assert!(!h.expect_continue && !h.upgrade && !h.range_signed);
}

#[test]
fn request_body_framing() {
    let h = req_ok(b"PUT /k HTTP/1.1\r\nHost: a\r\nContent-Length: 1234\r\n\r\n");
    assert_eq!(h.body, BodyKind::Length(1234));
    let h = req_ok(b"PUT /k HTTP/1.1\r\nHost: a\r\ncontent-length: 0\r\n\r\n");
    assert_eq!(h.body, BodyKind::Length(0));
    let h = req_ok(b"PUT /k HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(h.body, BodyKind::Chunked);
    let h = req_ok(b"PUT /k HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, CHUNKED\r\n\r\n");
    assert_eq!(h.body, BodyKind::Chunked);
    let h = req_ok(b"PUT /k HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(h.body, BodyKind::Chunked);
    let h = req_ok(b"PUT /k HTTP/1.0\r\nContent-Length: 5\r\n\r\n");
    assert_eq!(h.body, BodyKind::Length(5));
    assert_eq!(h.version, 0);
    assert_eq!(h.host, None);
}

#[test]
fn smuggling_is_refused() {
    let cases: &[&[u8]] = &[
        // CL and TE, either order, any case.
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n",
        // Duplicate (equal) and conflicting CL.
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nCONTENT-LENGTH: 6\r\n\r\n",
        // A list, a sign, not digits, empty, overflowing.
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n",
        // TE whose last coding is not chunked, chunked twice, empty, with parameters.
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n",
        // TE in HTTP/1.0.
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        // Obsolete line folding, of any field and before the first one.
        b"POST / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n  continued\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\t6\r\n\r\n",
        b"POST / HTTP/1.1\r\n Host: a\r\n\r\n",
        // Bare LF anywhere in the head.
        b"GET / HTTP/1.1\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n\n",
        b"GET / HTTP/1.1\nHost: a\n\n",
        b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        // Whitespace between a field name and its colon.
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding\t: chunked\r\n\r\n",
    ];
    for case in cases {
        assert_eq!(
            req_err(case),
            HttpError::Smuggling,
            "{:?}",
            String::from_utf8_lossy(case)
        );
    }
    assert_eq!(HttpError::Smuggling.status(), 400);
}

#[test]
fn smuggling_is_refused_before_the_head_is_complete() {
    // Folding, bare LF and a space before the colon are seen as soon as they arrive.
    assert_eq!(
        req_err(b"GET / HTTP/1.1\r\nHost: a\r\n X"),
        HttpError::Smuggling
    );
    assert_eq!(req_err(b"GET / HTTP/1.1\nHo"), HttpError::Smuggling);
    assert_eq!(req_err(b"GET / HTTP/1.1\r\nHost :"), HttpError::Smuggling);
}

#[test]
fn malformed_requests_are_refused() {
    let cases: &[&[u8]] = &[
        b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.2\r\nHost: a\r\n\r\n",
        b"GET / http/1.1\r\nHost: a\r\n\r\n",
        b"GET /  HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    ];
    for case in cases {
        assert_eq!(
            req_err(case),
            HttpError::Malformed,
            "{:?}",
            String::from_utf8_lossy(case)
        );
    }
    // HTTP/1.0 needs no Host.
    assert_eq!(req_ok(b"GET / HTTP/1.0\r\n\r\n").version, 0);
}

#[test]
fn an_incomplete_head_is_not_an_error() {
    let buf = b"POST /upload?uploadId=7 HTTP/1.1\r\nHost: s3.rouge.test\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n";
    for end in 0..buf.len() {
        assert_eq!(req(&buf[..end]), Ok(None), "prefix of {end} bytes");
    }
    let h = req_ok(buf);
    assert_eq!(h.head_len, buf.len());
    assert!(h.expect_continue);
}

#[test]
fn empty_lines_before_a_request_are_skipped() {
    let buf = b"\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n";
    let h = req_ok(buf);
    assert_eq!(h.head_len, buf.len());
    assert_eq!(&buf[h.target], b"/x");
}

#[test]
fn request_line_limit_complete_and_incomplete() {
    let limits = Limits {
        max_request_line: 64,
        ..Limits::default()
    };
    let line = |target_len: usize| {
        let mut v = b"GET /".to_vec();
        v.extend(std::iter::repeat_n(b'a', target_len));
        v.extend_from_slice(b" HTTP/1.1");
        v
    };
    // Exactly at the limit: accepted.
    let mut ok = line(64 - 14);
    assert_eq!(ok.len(), 64);
    ok.extend_from_slice(b"\r\nHost: a\r\n\r\n");
    assert!(parse_request(&ok, &limits).unwrap().is_some());
    // One more byte: refused when complete...
    let mut long = line(64 - 13);
    long.extend_from_slice(b"\r\nHost: a\r\n\r\n");
    assert_eq!(
        parse_request(&long, &limits),
        Err(HttpError::RequestLineTooLong)
    );
    // ...and as soon as the line exceeds the limit without its CRLF.
    let partial = [b'a'; 65];
    let mut get = b"GET /".to_vec();
    get.extend_from_slice(&partial[..60]);
    assert_eq!(get.len(), 65);
    assert_eq!(
        parse_request(&get, &limits),
        Err(HttpError::RequestLineTooLong)
    );
    assert_eq!(parse_request(&get[..64], &limits), Ok(None));
    // A whole line of 64 bytes and its CR: the line is still within the limit.
    let mut at = line(64 - 14);
    at.push(b'\r');
    assert_eq!(parse_request(&at, &limits), Ok(None));
    assert_eq!(HttpError::RequestLineTooLong.status(), 400);
    // The default limit, 8 KiB, with a request line of 9000 bytes, incomplete.
    let mut big = b"GET /".to_vec();
    big.extend(std::iter::repeat_n(b'x', 9000));
    assert_eq!(req_err(&big), HttpError::RequestLineTooLong);
}

#[test]
fn header_count_limit() {
    let limits = Limits {
        max_headers: 5,
        ..Limits::default()
    };
    let head = |fields: usize, complete: bool| {
        let mut v = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for i in 1..fields {
            v.extend_from_slice(format!("X-F{i}: v\r\n").as_bytes());
        }
        if complete {
            v.extend_from_slice(b"\r\n");
        }
        v
    };
    assert!(parse_request(&head(5, true), &limits).unwrap().is_some());
    assert_eq!(parse_request(&head(5, false), &limits), Ok(None));
    assert_eq!(
        parse_request(&head(6, true), &limits),
        Err(HttpError::HeadersTooLarge)
    );
    assert_eq!(
        parse_request(&head(6, false), &limits),
        Err(HttpError::HeadersTooLarge)
    );
    assert_eq!(HttpError::HeadersTooLarge.status(), 431);
    // The stack array caps a larger limit.
    let many = Limits {
        max_headers: 10_000,
        ..Limits::default()
    };
    assert!(parse_request(&head(MAX_HEADERS, true), &many)
        .unwrap()
        .is_some());
    assert_eq!(
        parse_request(&head(MAX_HEADERS + 1, true), &many),
        Err(HttpError::HeadersTooLarge)
    );
}

#[test]
fn header_bytes_limit() {
    let limits = Limits {
        max_header_bytes: 100,
        ..Limits::default()
    };
    let head = |len: usize| {
        let mut v = b"GET / HTTP/1.1\r\nHost: a\r\nX: ".to_vec();
        let pad = len - v.len() - 4;
        v.extend(std::iter::repeat_n(b'v', pad));
        v.extend_from_slice(b"\r\n\r\n");
        assert_eq!(v.len(), len);
        v
    };
    // Exactly 100 bytes, blank line included: accepted, even with more bytes behind.
    let mut ok = head(100);
    assert_eq!(parse_request(&ok, &limits).unwrap().unwrap().head_len, 100);
    ok.extend_from_slice(b"GET / HTTP/1.1\r\n");
    assert_eq!(parse_request(&ok, &limits).unwrap().unwrap().head_len, 100);
    // 101: refused complete, and incomplete as soon as 100 bytes came without its end.
    let big = head(101);
    assert_eq!(
        parse_request(&big, &limits),
        Err(HttpError::HeadersTooLarge)
    );
    assert_eq!(
        parse_request(&big[..100], &limits),
        Err(HttpError::HeadersTooLarge)
    );
    assert_eq!(parse_request(&big[..99], &limits), Ok(None));
    // The default limit (32 KiB): one big field, never complete.
    let mut huge = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ".to_vec();
    huge.extend(std::iter::repeat_n(b'b', 40_000));
    assert_eq!(req_err(&huge), HttpError::HeadersTooLarge);
}

#[test]
fn pipelined_requests_parse_one_after_another() {
    let buf = b"PUT /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello\
POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
GET /c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    let mut at = 0;
    let mut seen = Vec::new();
    while at < buf.len() {
        let h = req_ok(&buf[at..]);
        let target = buf[at..][h.target.clone()].to_vec();
        at += h.head_len;
        let mut body = BodyFramer::new(h.body);
        let n = body.advance(&buf[at..]).unwrap();
        assert!(body.is_done());
        at += n;
        seen.push((
            String::from_utf8(target).unwrap(),
            body.payload_bytes(),
            h.keep_alive,
        ));
    }
    assert_eq!(at, buf.len());
    assert_eq!(
        seen,
        [
            ("/a".into(), 5, true),
            ("/b".into(), 3, true),
            ("/c".into(), 0, false)
        ]
    );
}

#[test]
fn keep_alive_rules() {
    let ka = |head: &[u8]| req_ok(head).keep_alive;
    assert!(ka(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
    assert!(!ka(
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    ));
    assert!(!ka(
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, CLOSE\r\n\r\n"
    ));
    assert!(!ka(
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: te\r\nConnection: Close\r\n\r\n"
    ));
    assert!(ka(
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n"
    ));
    assert!(!ka(b"GET / HTTP/1.0\r\n\r\n"));
    assert!(ka(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
    assert!(ka(b"GET / HTTP/1.0\r\nConnection: foo ,keep-alive\r\n\r\n"));
    assert!(!ka(
        b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"
    ));
}

#[test]
fn expect_and_upgrade() {
    let h =
        req_ok(b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n");
    assert!(h.expect_continue);
    let h = req_ok(b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\n");
    assert!(!h.expect_continue);
    let h = req_ok(b"PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n");
    assert!(!h.expect_continue, "ignored in HTTP/1.0");
    let h = req_ok(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n");
    assert!(h.upgrade);
    let h = req_ok(b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n");
    assert!(!h.upgrade, "no Connection: upgrade");
    let h = req_ok(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n");
    assert!(!h.upgrade, "no Upgrade field");
}

#[test]
fn range_signed_from_the_authorization_header() {
    let signed = |auth: &str| {
        let buf = format!(
            "GET /b/k HTTP/1.1\r\nHost: a\r\nRange: bytes=0-9\r\nAuthorization: {auth}\r\n\r\n"
        );
        req_ok(buf.as_bytes()).range_signed
    };
    let cred = "AWS4-HMAC-SHA256 Credential=rouge-test/20260101/us-east-1/s3/aws4_request";
    assert!(signed(&format!(
        "{cred}, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=ab12"
    )));
    assert!(signed(&format!(
        "{cred},SignedHeaders=host;x-amz-date;Range,Signature=ab12"
    )));
    assert!(signed(&format!(
        "{cred}, signedheaders=range, Signature=ab12"
    )));
    assert!(!signed(&format!(
        "{cred}, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=ab12"
    )));
    assert!(!signed(&format!(
        "{cred}, SignedHeaders=host;x-range;ranges, Signature=ab12"
    )));
    assert!(!signed(&format!(
        "{cred}, XSignedHeaders=range, SignedHeaders=host, Signature=ab12"
    )));
    assert!(!signed("Basic cmFuZ2U6cmFuZ2U="));
}

#[test]
fn range_signed_from_a_presigned_query() {
    let signed = |query: &str| {
        let buf = format!("GET /b/k?{query} HTTP/1.1\r\nHost: a\r\nRange: bytes=0-9\r\n\r\n");
        req_ok(buf.as_bytes()).range_signed
    };
    assert!(signed(
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-SignedHeaders=host%3Brange&X-Amz-Signature=ab"
    ));
    assert!(signed("x-amz-signedheaders=range%3bhost"));
    assert!(signed("X-Amz-SignedHeaders=host;RANGE"));
    assert!(!signed("X-Amz-SignedHeaders=host&X-Amz-Signature=range"));
    assert!(!signed("X-Amz-SignedHeaders=host%3Brangex"));
    assert!(!signed("range=1&X-Amz-SignedHeaders=host%3Bx-amz-date"));
    // No query at all.
    assert!(!req_ok(b"GET /range HTTP/1.1\r\nHost: a\r\n\r\n").range_signed);
}

#[test]
fn header_value_finds_the_first_field_of_a_name() {
    let head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Tenant:  blue \r\nx-tenant: red\r\n\r\nX-After: no";
    assert_eq!(header_value(head, "x-tenant"), Some(&b"blue"[..]));
    assert_eq!(header_value(head, "HOST"), Some(&b"a"[..]));
    assert_eq!(header_value(head, "x-after"), None);
    assert_eq!(header_value(head, "x-ten"), None);
    // The start line is not a field, even with a colon in it.
    assert_eq!(
        header_value(b"GET http://x/ HTTP/1.1\r\n\r\n", "GET http"),
        None
    );
    assert_eq!(header_value(b"", "host"), None);
}

// ---- response heads ----

#[test]
fn response_framing() {
    let h = resp_ok(
        b"HTTP/1.1 200 OK\r\nContent-Length: 42\r\nETag: \"abc\" \r\n\r\n",
        Method::Get,
    );
    assert_eq!(
        (h.status, h.version, h.body, h.keep_alive),
        (200, 1, BodyKind::Length(42), true)
    );
    assert_eq!(h.content_length, Some(42));
    let h = resp_ok(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        Method::Get,
    );
    assert_eq!(
        (h.body, h.keep_alive, h.content_length),
        (BodyKind::Chunked, true, None)
    );
    // No length: until close, so not keep-alive.
    let h = resp_ok(b"HTTP/1.1 200 OK\r\n\r\n", Method::Get);
    assert_eq!((h.body, h.keep_alive), (BodyKind::UntilClose, false));
    // A last coding other than chunked: until close too.
    let h = resp_ok(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        Method::Get,
    );
    assert_eq!((h.body, h.keep_alive), (BodyKind::UntilClose, false));
    let h = resp_ok(
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        Method::Get,
    );
    assert_eq!((h.body, h.keep_alive), (BodyKind::Length(0), false));
    let h = resp_ok(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", Method::Get);
    assert!(!h.keep_alive);
    let h = resp_ok(
        b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\n",
        Method::Get,
    );
    assert!(h.keep_alive);
    // No reason phrase is fine.
    assert_eq!(
        resp_ok(b"HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n", Method::Get).status,
        404
    );
}

#[test]
fn responses_without_a_body() {
    let h = resp_ok(
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
        Method::Head,
    );
    assert_eq!(
        (h.body, h.content_length, h.keep_alive),
        (BodyKind::None, Some(1000), true)
    );
    let h = resp_ok(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        Method::Head,
    );
    assert_eq!(h.body, BodyKind::None);
    for status in [
        "100 Continue",
        "101 Switching Protocols",
        "103 Early Hints",
        "204 No Content",
        "304 Not Modified",
    ] {
        let buf = format!("HTTP/1.1 {status}\r\n\r\n");
        let h = resp_ok(buf.as_bytes(), Method::Get);
        assert_eq!(h.body, BodyKind::None, "{status}");
        assert!(h.keep_alive, "{status}");
    }
    let h = resp_ok(
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n",
        Method::Get,
    );
    assert_eq!((h.body, h.content_length), (BodyKind::None, Some(7)));
}

#[test]
fn continue_then_final_response_from_one_buffer() {
    let buf = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\nETag: \"e1\"\r\n\r\nokHTTP/1.1";
    let first = resp_ok(buf, Method::Put);
    assert_eq!((first.status, first.body), (100, BodyKind::None));
    let rest = &buf[first.head_len..];
    let second = resp_ok(rest, Method::Put);
    assert_eq!((second.status, second.body), (200, BodyKind::Length(2)));
    assert_eq!(&rest[second.etag.unwrap()], b"\"e1\"");
    let mut body = BodyFramer::new(second.body);
    assert_eq!(body.advance(&rest[second.head_len..]).unwrap(), 2);
    assert!(body.is_done());
}

#[test]
fn bad_responses_are_refused() {
    let cases: &[&[u8]] = &[
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n",
        b"HTTP/2 200 OK\r\n\r\n",
        b"HTTP/1.1 099 Low\r\n\r\n",
        b"HTTP/1.1 20 OK\r\n\r\n",
        b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
    ];
    for case in cases {
        assert_eq!(
            resp(case, Method::Get),
            Err(HttpError::BadResponse),
            "{:?}",
            String::from_utf8_lossy(case)
        );
    }
    assert_eq!(HttpError::BadResponse.status(), 502);
}

#[test]
fn response_limits_and_incomplete_heads() {
    let buf = b"HTTP/1.1 206 Partial Content\r\nContent-Length: 10\r\nContent-Range: bytes 0-9/100\r\n\r\n";
    for end in 0..buf.len() {
        assert_eq!(
            resp(&buf[..end], Method::Get),
            Ok(None),
            "prefix of {end} bytes"
        );
    }
    let few = Limits {
        max_headers: 1,
        ..Limits::default()
    };
    assert_eq!(
        parse_response(buf, Method::Get, &few),
        Err(HttpError::BadResponse)
    );
    let small = Limits {
        max_header_bytes: buf.len() - 1,
        ..Limits::default()
    };
    assert_eq!(
        parse_response(buf, Method::Get, &small),
        Err(HttpError::BadResponse)
    );
    assert_eq!(
        parse_response(&buf[..buf.len() - 1], Method::Get, &small),
        Err(HttpError::BadResponse)
    );
    let exact = Limits {
        max_header_bytes: buf.len(),
        ..Limits::default()
    };
    assert!(parse_response(buf, Method::Get, &exact).unwrap().is_some());
}

#[test]
fn content_range_parsing() {
    let cr = |value: &str| {
        let buf = format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Length: 1\r\nContent-Range: {value}\r\n\r\n"
        );
        resp_ok(buf.as_bytes(), Method::Get).content_range
    };
    assert_eq!(
        cr("bytes 0-9/100"),
        Some(ContentRange {
            first: 0,
            last: 9,
            complete: Some(100)
        })
    );
    assert_eq!(
        cr("Bytes 100-199/*"),
        Some(ContentRange {
            first: 100,
            last: 199,
            complete: None
        })
    );
    assert_eq!(
        cr("bytes 5-5/6"),
        Some(ContentRange {
            first: 5,
            last: 5,
            complete: Some(6)
        })
    );
    assert_eq!(
        cr("bytes 1073741824-2147483647/2147483648"),
        Some(ContentRange {
            first: 1 << 30,
            last: (1 << 31) - 1,
            complete: Some(1 << 31)
        })
    );
    for bad in [
        "bytes */100",
        "bytes 9-0/100",
        "bytes 0-100/100",
        "bytes 0-9",
        "bytes=0-9/100",
        "items 0-9/100",
        "bytes -9/100",
        "bytes 0-/100",
        "bytes 0-9/",
        "bytes 0-9/1x",
        "bytes 0 - 9/100",
        "bytes",
    ] {
        assert_eq!(cr(bad), None, "{bad}");
    }
    let h = resp_ok(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n", Method::Get);
    assert_eq!(h.content_range, None);
}

// ---- bodies ----

const CHUNKED: &[u8] = b"5;name=value\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0 ;last\r\nX-Checksum: abc\r\nX-Empty:\r\n\r\n";

#[test]
fn length_body_stops_at_its_end() {
    let mut f = BodyFramer::new(BodyKind::Length(7));
    assert!(!f.is_done());
    assert_eq!(f.advance(b"abc").unwrap(), 3);
    assert_eq!(f.advance(b"defgGET / HTTP/1.1\r\n").unwrap(), 4);
    assert!(f.is_done());
    assert_eq!(f.payload_bytes(), 7);
    assert_eq!(f.advance(b"more").unwrap(), 0);
    assert!(BodyFramer::new(BodyKind::Length(0)).is_done());
}

#[test]
fn none_and_until_close() {
    let mut none = BodyFramer::new(BodyKind::None);
    assert!(none.is_done());
    assert_eq!(none.advance(b"GET").unwrap(), 0);
    assert_eq!(none.kind(), BodyKind::None);
    let mut all = BodyFramer::new(BodyKind::UntilClose);
    assert_eq!(all.advance(b"0\r\n\r\n").unwrap(), 5);
    assert_eq!(all.advance(b"").unwrap(), 0);
    assert_eq!(all.advance(b"xyz").unwrap(), 3);
    assert!(!all.is_done());
    assert_eq!(all.payload_bytes(), 8);
}

#[test]
fn chunked_body_with_extensions_and_trailers() {
    let mut data = CHUNKED.to_vec();
    data.extend_from_slice(b"GET /next HTTP/1.1\r\n");
    assert_eq!(
        frame(BodyKind::Chunked, &data),
        Ok((CHUNKED.len(), true, 31))
    );
    // Without its final CRLF, not done.
    let cut = &CHUNKED[..CHUNKED.len() - 1];
    assert_eq!(frame(BodyKind::Chunked, cut), Ok((cut.len(), false, 31)));
    // The smallest chunked body, and sizes in either case.
    assert_eq!(frame(BodyKind::Chunked, b"0\r\n\r\n"), Ok((5, true, 0)));
    let mixed = b"a\r\n0123456789\r\nA\r\n0123456789\r\n000\r\n\r\n";
    assert_eq!(frame(BodyKind::Chunked, mixed), Ok((mixed.len(), true, 20)));
    // 16 hex digits are allowed.
    assert_eq!(
        frame(BodyKind::Chunked, b"0000000000000000\r\n\r\n"),
        Ok((20, true, 0))
    );
    let huge = b"FFFFFFFFFFFFFFFF\r\nabc";
    assert_eq!(frame(BodyKind::Chunked, huge), Ok((huge.len(), false, 3)));
}

#[test]
fn chunked_split_at_every_boundary_gives_the_same_result() {
    let mut data = CHUNKED.to_vec();
    data.extend_from_slice(b"PUT /next HTTP/1.1\r\n\r\n");
    let whole = frame(BodyKind::Chunked, &data);
    assert_eq!(whole, Ok((CHUNKED.len(), true, 31)));
    for a in 0..=data.len() {
        assert_eq!(
            frame_split(BodyKind::Chunked, &data, &[a]),
            whole,
            "cut at {a}"
        );
        for b in (a..=data.len()).step_by(7) {
            assert_eq!(
                frame_split(BodyKind::Chunked, &data, &[a, b]),
                whole,
                "cuts at {a}, {b}"
            );
        }
    }
    let every: Vec<usize> = (1..data.len()).collect();
    assert_eq!(frame_split(BodyKind::Chunked, &data, &every), whole);
    // A malformed body fails the same way wherever it is cut.
    let bad = b"5\r\nhello\r\n3\nabc\r\n0\r\n\r\n";
    for a in 0..=bad.len() {
        assert_eq!(
            frame_split(BodyKind::Chunked, bad, &[a]),
            Err(HttpError::BadChunk),
            "cut at {a}"
        );
    }
}

#[test]
fn length_split_at_every_boundary_gives_the_same_result() {
    let data = b"0123456789GET / HTTP/1.1\r\n";
    let whole = frame(BodyKind::Length(10), data);
    assert_eq!(whole, Ok((10, true, 10)));
    for a in 0..=data.len() {
        assert_eq!(
            frame_split(BodyKind::Length(10), data, &[a]),
            whole,
            "cut at {a}"
        );
    }
}

#[test]
fn malformed_chunks_are_refused() {
    let cases: &[&[u8]] = &[
        b"\r\n",
        b"g\r\n",
        b";ext\r\n",
        b" 5\r\nhello\r\n0\r\n\r\n",
        b"-5\r\n",
        b"0x5\r\n",
        b"5\n",
        b"5\r\r\n",
        b"5\rhello",
        b"5 x\r\n",
        b"5;a\x00b\r\n",
        b"5;a\nb\r\n",
        b"00000000000000001\r\nx\r\n0\r\n\r\n",
        b"5\r\nhelloX\r\n",
        b"5\r\nhello\n0\r\n\r\n",
        b"5\r\nhello\r\r\n",
        b"5\r\nhello\r\n\r\n",
        b"0\r\n\n",
        b"0\r\nX: 1\n\r\n",
        b"0\r\nBad line\r\n\r\n",
        b"0\r\nX : 1\r\n\r\n",
        b"0\r\n: 1\r\n\r\n",
        b"0\r\nX: 1\r\n  folded\r\n\r\n",
        b"0\r\nX: a\x01b\r\n\r\n",
        b"0\r\n\rX",
    ];
    for case in cases {
        assert_eq!(
            frame(BodyKind::Chunked, case),
            Err(HttpError::BadChunk),
            "{:?}",
            String::from_utf8_lossy(case)
        );
    }
}

#[test]
fn chunk_errors_are_final() {
    let mut f = BodyFramer::new(BodyKind::Chunked);
    assert_eq!(f.advance(b"z"), Err(HttpError::BadChunk));
    assert_eq!(f.advance(b"0\r\n\r\n"), Err(HttpError::BadChunk));
    assert!(!f.is_done());
}

#[test]
fn chunk_line_and_trailer_limits() {
    // A size line of exactly MAX_CHUNK_LINE bytes (CRLF included) passes; one more fails.
    let line = |len: usize| {
        let mut v = b"1;".to_vec();
        v.extend(std::iter::repeat_n(b'e', len - 4));
        v.extend_from_slice(b"\r\n");
        assert_eq!(v.len(), len);
        v.extend_from_slice(b"x\r\n0\r\n\r\n");
        v
    };
    let ok = line(MAX_CHUNK_LINE);
    assert_eq!(frame(BodyKind::Chunked, &ok), Ok((ok.len(), true, 1)));
    assert_eq!(
        frame(BodyKind::Chunked, &line(MAX_CHUNK_LINE + 1)),
        Err(HttpError::BadChunk)
    );
    // The limit is per line: many long lines are fine.
    let mut many = Vec::new();
    for _ in 0..4 {
        many.extend_from_slice(&line(MAX_CHUNK_LINE)[..MAX_CHUNK_LINE + 3]);
    }
    many.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(frame(BodyKind::Chunked, &many), Ok((many.len(), true, 4)));
    // Trailers: MAX_TRAILERS bytes in all (final CRLF included) pass; one more fails.
    let trailers = |len: usize| {
        let mut v = b"0\r\n".to_vec();
        let mut left = len - 2;
        while left > 0 {
            let field = left.min(1000);
            assert!(field >= 5);
            let mut f = b"X:".to_vec();
            f.extend(std::iter::repeat_n(b't', field - 4));
            f.extend_from_slice(b"\r\n");
            v.extend_from_slice(&f);
            left -= field;
        }
        v.extend_from_slice(b"\r\n");
        v
    };
    let ok = trailers(MAX_TRAILERS);
    assert_eq!(frame(BodyKind::Chunked, &ok), Ok((ok.len(), true, 0)));
    assert_eq!(
        frame(BodyKind::Chunked, &trailers(MAX_TRAILERS + 1)),
        Err(HttpError::BadChunk)
    );
}

#[test]
fn payload_counts_content_only() {
    let mut f = BodyFramer::new(BodyKind::Chunked);
    assert_eq!(f.advance(b"3\r\nab").unwrap(), 5);
    assert_eq!(f.payload_bytes(), 2);
    assert_eq!(f.advance(b"c\r\n").unwrap(), 3);
    assert_eq!(f.payload_bytes(), 3);
    assert_eq!(f.advance(b"0\r\n\r\nHTTP").unwrap(), 5);
    assert!(f.is_done());
    assert_eq!(f.payload_bytes(), 3);
    assert_eq!(f.kind(), BodyKind::Chunked);
}

#[test]
fn close_line_is_the_sole_unsigned_connection_close_field() {
    let lim = Limits::default();
    let head = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX: y\r\n\r\n";
    let r = parse_request(head, &lim).unwrap().unwrap();
    let line = r.close_line.clone().expect("a close line");
    assert_eq!(&head[line], b"Connection: close\r\n");
    assert!(!r.keep_alive);
    for other in [
        // Another value, or two fields.
        &b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close, te\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n",
        // Signed, in the header or in a presigned query.
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nAuthorization: AWS4-HMAC-SHA256 Credential=x, SignedHeaders=connection;host, Signature=0\r\n\r\n",
        b"GET /k?X-Amz-SignedHeaders=host%3Bconnection HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    ] {
        let r = parse_request(other, &lim).unwrap().unwrap();
        assert_eq!(r.close_line, None, "{}", String::from_utf8_lossy(other));
    }
}
