//! Routing rules (F5's LTM policies): an ordered list of rules, each matching the
//! request's `Host`, path prefix, method, a header or an S3 bucket, and naming the pool
//! that takes the request. Evaluated per request: one keep-alive connection may reach
//! several pools. No rule matching means the virtual server's default pool.

use super::Method;

/// How a rule matches the `Host` (port removed, compared without case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    /// Exactly this name (lower case).
    Exact(String),
    /// Any name ending in this suffix, the dot included (`*.s3.rouge.test` is stored
    /// as `.s3.rouge.test`; it does not match `s3.rouge.test` itself).
    Suffix(String),
}

/// One rule: every condition given must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The rule's name (for `show` and errors).
    pub name: String,
    /// The `Host` condition.
    pub host: Option<HostMatch>,
    /// The path (target before `?`) starts with this.
    pub path_prefix: Option<String>,
    /// The method is one of these (empty: any).
    pub methods: Vec<Method>,
    /// A header (name lower case) has exactly this value.
    pub header: Option<(String, String)>,
    /// The request is for this S3 bucket, addressed either way: virtual-hosted
    /// (`BUCKET.<s3_domain>`) or path style (`<s3_domain>` and path `/BUCKET` or
    /// `/BUCKET/...`). Needs the policy's `s3_domain`.
    pub bucket: Option<String>,
    /// Index of the pool taking matching requests in the virtual server's
    /// [`crate::proxy::HttpVs::pools`].
    pub pool: usize,
}

/// An ordered list of rules; the first that matches routes the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The policy's name.
    pub name: String,
    /// The S3 service name (`s3.rouge.test`) that `bucket` conditions use.
    pub s3_domain: Option<String>,
    /// The rules, in order.
    pub rules: Vec<Rule>,
}

/// What a policy looks at of a request.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// The method.
    pub method: Method,
    /// The `Host` field's value as sent (may carry a port), empty when absent.
    pub host: &'a [u8],
    /// The request target (path and query) as sent.
    pub target: &'a [u8],
    /// The whole request head (for header conditions).
    pub head: &'a [u8],
}

impl Policy {
    /// The index of the rule that matches `req` first, and its pool; `None` when no
    /// rule matches (the default pool takes it).
    pub fn route(&self, req: &RequestView<'_>) -> Option<(usize, usize)> {
        todo!()
    }
}
