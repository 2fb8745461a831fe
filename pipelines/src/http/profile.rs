//! The settings of an `[[http_profile]]`.

use std::time::Duration;

use super::Limits;

/// An HTTP profile: how a `standard` virtual server speaks HTTP/1.1 on both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpProfile {
    /// The profile's name.
    pub name: String,
    /// Limits on request heads (`max_request_line`, `max_header_bytes`,
    /// `max_headers`).
    pub limits: Limits,
    /// How long a client may take to send a complete request head once its first byte
    /// arrived, or a new connection its first request (`408` after it).
    pub header_timeout: Duration,
    /// How long a client's keep-alive connection may wait idle between requests.
    pub keepalive_timeout: Duration,
    /// How long a member may take to start its response after the request was sent
    /// (`504` after it).
    pub response_timeout: Duration,
    /// Add `X-Forwarded-For: <client address>` to requests (off: requests reach the
    /// member byte for byte).
    pub insert_xff: bool,
    /// Continue a GET whose member died mid-response from another member (`Range` and
    /// `If-Match` on the client's request).
    pub s3_resume: bool,
    /// Keep idle server-side connections and reuse them for later requests (F5
    /// OneConnect).
    pub oneconnect: bool,
    /// Most idle server-side connections kept per member on each worker.
    pub max_idle_per_member: usize,
    /// How long an idle server-side connection is kept.
    pub idle_timeout: Duration,
    /// Passive health: a member whose connections fail this many times in a row is
    /// marked down before its monitor notices (0: off).
    pub passive_down_after: u32,
}

impl HttpProfile {
    /// A profile with the defaults: the default [`Limits`], 10 s header timeout, 60 s
    /// keep-alive and response timeouts, no `X-Forwarded-For`, no resume, OneConnect
    /// on with 32 idle connections per member kept 60 s, passive health off.
    pub fn new(name: &str) -> HttpProfile {
        HttpProfile {
            name: name.into(),
            limits: Limits::default(),
            header_timeout: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(60),
            response_timeout: Duration::from_secs(60),
            insert_xff: false,
            s3_resume: false,
            oneconnect: true,
            max_idle_per_member: 32,
            idle_timeout: Duration::from_secs(60),
            passive_down_after: 0,
        }
    }
}
