//! The management HTTP server (`[management] http`): Prometheus metrics at `/metrics`,
//! the live dashboard at `/`, and a read-only JSON API under `/api/v1/` with the same
//! figures as `rouge show … --json`.
//!
//! A small HTTP/1.1 server on ordinary kernel sockets in management threads, never on
//! the data path: GET (and HEAD) only, a request head of at most [`MAX_HEAD`] bytes,
//! read and write timeouts, at most [`MAX_CONNECTIONS`] connections at once, one
//! request per connection (`Connection: close`). It reads the same single-writer
//! counters and snapshots as the management socket, so the workers never wait for it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::shared::Shared;
use crate::{metrics, mgmt};

/// Largest request head (request line and headers) accepted.
pub const MAX_HEAD: usize = 8192;
/// Connections served at once; more are answered 503 and closed.
pub const MAX_CONNECTIONS: usize = 16;
/// How long a client may take to send its request or read the answer.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The dashboard page.
const DASHBOARD_HTML: &str = include_str!("dashboard/index.html");
/// The dashboard's script: fetches `/api/v1/…` every second and draws SVG charts.
const DASHBOARD_JS: &str = include_str!("dashboard/dashboard.js");

/// What `show` words the JSON API serves (read-only views only).
const API_VIEWS: [&str; 9] = [
    "interfaces",
    "arp",
    "routes",
    "stats",
    "virtual",
    "pool",
    "member",
    "monitor",
    "class",
];

/// An answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Body.
    pub body: String,
}

impl Response {
    fn new(status: u16, content_type: &'static str, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type,
            body: body.into(),
        }
    }

    fn text(status: u16, body: impl Into<String>) -> Response {
        Response::new(status, "text/plain; charset=utf-8", body)
    }

    fn json(status: u16, v: &serde_json::Value) -> Response {
        Response::new(status, "application/json", v.to_string())
    }
}

/// A parsed request line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET` or `HEAD`.
    pub method: String,
    /// The path, without the query string.
    pub path: String,
}

/// Parses a request head (everything up to the blank line). Errors are the status to
/// answer with.
pub fn parse_head(head: &[u8]) -> Result<Request, u16> {
    let text = std::str::from_utf8(head).map_err(|_| 400u16)?;
    let line = text.lines().next().ok_or(400u16)?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(400);
    };
    if !version.starts_with("HTTP/1.") {
        return Err(505);
    }
    if method != "GET" && method != "HEAD" {
        return Err(405);
    }
    if !target.starts_with('/') {
        return Err(400);
    }
    let path = target.split(['?', '#']).next().unwrap_or("/");
    Ok(Request {
        method: method.to_string(),
        path: path.to_string(),
    })
}

/// Answers one request against the running appliance.
pub fn route(
    shared: &Shared,
    registry: &prometheus_client::registry::Registry,
    path: &str,
) -> Response {
    match path {
        "/" | "/index.html" => Response::new(200, "text/html; charset=utf-8", DASHBOARD_HTML),
        "/dashboard.js" => Response::new(200, "text/javascript; charset=utf-8", DASHBOARD_JS),
        "/metrics" => match metrics::render(registry) {
            Ok(body) => Response::new(200, metrics::CONTENT_TYPE, body),
            Err(_) => Response::text(500, "cannot encode the metrics\n"),
        },
        _ => match path.strip_prefix("/api/v1/") {
            Some(rest) => api(shared, rest),
            None => Response::text(404, "not found; try /, /metrics or /api/v1/stats\n"),
        },
    }
}

/// `/api/v1/WHAT[/NAME]`: `rouge show WHAT [NAME] --json`, through the same code.
fn api(shared: &Shared, rest: &str) -> Response {
    let mut parts = rest.trim_end_matches('/').splitn(2, '/');
    let what = parts.next().unwrap_or("");
    if !API_VIEWS.contains(&what) {
        return Response::json(
            404,
            &serde_json::json!({"error": format!("no view `{what}`; one of: {}", API_VIEWS.join(", "))}),
        );
    }
    let mut args = vec!["show".to_string(), what.to_string()];
    if let Some(name) = parts.next().filter(|n| !n.is_empty()) {
        args.push(name.to_string());
    }
    match mgmt::execute(shared, &args) {
        Ok(v) => Response::json(200, &v),
        Err(e) => Response::json(404, &serde_json::json!({"error": e})),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

/// Reads a request head: up to the first blank line, at most [`MAX_HEAD`] bytes.
fn read_head(stream: &mut TcpStream) -> Result<Vec<u8>, u16> {
    let mut buf = vec![0u8; MAX_HEAD];
    let mut len = 0;
    loop {
        if len == buf.len() {
            return Err(431);
        }
        match stream.read(&mut buf[len..]) {
            Ok(0) => return Err(400),
            Ok(n) => len += n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(408)
            }
            Err(_) => return Err(400),
        }
        if let Some(end) = buf[..len].windows(4).position(|w| w == b"\r\n\r\n") {
            buf.truncate(end);
            return Ok(buf);
        }
        if let Some(end) = buf[..len].windows(2).position(|w| w == b"\n\n") {
            buf.truncate(end);
            return Ok(buf);
        }
    }
}

fn write_response(stream: &mut TcpStream, r: &Response, head_only: bool) {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        r.body.len()
    );
    if r.status == 405 {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("\r\n");
    let _ = stream.write_all(out.as_bytes());
    if !head_only {
        let _ = stream.write_all(r.body.as_bytes());
    }
    let _ = stream.flush();
}

/// Serves one connection: one request, one answer.
fn handle(mut stream: TcpStream, answer: &dyn Fn(&str) -> Response) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let req = read_head(&mut stream).and_then(|h| parse_head(&h));
    match req {
        Ok(req) => {
            let r = answer(&req.path);
            write_response(&mut stream, &r, req.method == "HEAD");
        }
        Err(status) => {
            let r = Response::text(status, format!("{}\n", reason(status)));
            write_response(&mut stream, &r, false);
        }
    }
    // Read what the client still sends (up to a bound) before closing, so the close
    // does not reset the connection before the client has read the answer.
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    while drained < 64 * 1024 {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

/// Accepts connections on `listener` until `stop()` is true, answering each request
/// with `answer(path)` on a thread of its own (at most [`MAX_CONNECTIONS`] at once).
pub fn serve_with(
    listener: TcpListener,
    stop: impl Fn() -> bool + Send + 'static,
    answer: impl Fn(&str) -> Response + Send + Sync + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    let answer = Arc::new(answer);
    let active = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("rouge-http".into())
        .spawn(move || {
            while !stop() {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        if active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
                            active.fetch_sub(1, Ordering::AcqRel);
                            let _ = stream.set_nonblocking(false);
                            let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
                            let r = Response::text(503, "too many connections\n");
                            write_response(&mut stream, &r, false);
                            continue;
                        }
                        let answer = answer.clone();
                        let active2 = active.clone();
                        let spawned = std::thread::Builder::new()
                            .name("rouge-http-conn".into())
                            .spawn(move || {
                                handle(stream, &*answer);
                                active2.fetch_sub(1, Ordering::AcqRel);
                            });
                        if spawned.is_err() {
                            active.fetch_sub(1, Ordering::AcqRel);
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "management http accept failed");
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        })
}

/// Binds `addr` and serves metrics, the dashboard and the JSON API until the
/// appliance stops.
pub fn serve(
    addr: SocketAddr,
    shared: Arc<Shared>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let listener = TcpListener::bind(addr)?;
    let registry = metrics::registry(shared.clone());
    let stop = shared.clone();
    serve_with(
        listener,
        move || stop.stopping(),
        move |path| route(&shared, &registry, path),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn parses_request_lines() {
        let r = parse_head(b"GET /api/v1/stats?x=1 HTTP/1.1\r\nHost: a").unwrap();
        assert_eq!(r.path, "/api/v1/stats");
        assert_eq!(r.method, "GET");
        assert_eq!(parse_head(b"HEAD / HTTP/1.0").unwrap().method, "HEAD");
        assert_eq!(parse_head(b"POST / HTTP/1.1"), Err(405));
        assert_eq!(parse_head(b"GET / SPDY/3"), Err(505));
        assert_eq!(parse_head(b"GET http://x/ HTTP/1.1"), Err(400));
        assert_eq!(parse_head(b"GET /"), Err(400));
        assert_eq!(parse_head(b"GET  / HTTP/1.1"), Err(400));
        assert_eq!(parse_head(&[0xff, 0xfe]), Err(400));
    }

    fn ask(addr: SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(request);
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    #[test]
    fn serves_get_refuses_the_rest_and_bounds_the_head() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let h = serve_with(
            listener,
            move || s2.load(Ordering::Relaxed),
            |path| Response::text(200, format!("you asked for {path}")),
        )
        .unwrap();
        let ok = ask(addr, b"GET /x?y HTTP/1.1\r\nHost: t\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.ends_with("\r\n\r\nyou asked for /x"), "{ok}");
        assert!(ok.contains("Content-Length: 16\r\n"), "{ok}");
        let head = ask(addr, b"HEAD /x HTTP/1.1\r\n\r\n");
        assert!(
            head.starts_with("HTTP/1.1 200") && head.ends_with("\r\n\r\n"),
            "{head}"
        );
        let post = ask(addr, b"POST /x HTTP/1.1\r\n\r\n");
        assert!(
            post.starts_with("HTTP/1.1 405") && post.contains("Allow: GET"),
            "{post}"
        );
        let mut huge = b"GET / HTTP/1.1\r\n".to_vec();
        huge.extend(std::iter::repeat_n(b'a', MAX_HEAD * 2));
        let big = ask(addr, &huge);
        assert!(big.starts_with("HTTP/1.1 431"), "{big}");
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap();
    }
}

#[cfg(test)]
mod route_tests {
    use super::*;

    #[test]
    fn the_api_is_show_json_and_the_page_and_metrics_are_served() {
        let shared = crate::metrics::tests::shared();
        let registry = metrics::registry(shared.clone());
        let r = route(&shared, &registry, "/api/v1/pool/web");
        assert_eq!(r.status, 200);
        let api: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        let show = mgmt::execute(&shared, &["show".into(), "pool".into(), "web".into()]).unwrap();
        assert_eq!(api, show);
        let r = route(&shared, &registry, "/api/v1/member/198.18.2.12:80");
        assert_eq!(r.status, 200);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&r.body).unwrap()[0]["address"],
            "198.18.2.12:80"
        );
        let r = route(&shared, &registry, "/api/v1/pool/none");
        assert_eq!(r.status, 404);
        assert!(r.body.contains("no pool named `none`"), "{}", r.body);
        assert_eq!(route(&shared, &registry, "/api/v1/config").status, 404);
        assert_eq!(route(&shared, &registry, "/nothing").status, 404);
        let page = route(&shared, &registry, "/");
        assert!(page.content_type.starts_with("text/html") && page.body.contains("/dashboard.js"));
        let js = route(&shared, &registry, "/dashboard.js");
        assert!(js.body.contains("/api/v1/stats"));
        let m = route(&shared, &registry, "/metrics");
        assert_eq!(m.content_type, "text/plain; version=0.0.4; charset=utf-8");
        assert!(m.body.contains("# TYPE rouge_uptime_seconds gauge"));
    }
}
