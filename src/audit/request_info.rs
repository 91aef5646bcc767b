//! Request-info resolution: HTTP method + request URI → the attributes kube-apiserver's
//! `RequestInfoFactory` derives (resource or not, verb, group/version, namespace,
//! resource, subresource, name). Never panics; unresolvable requests are errors.

use super::policy::{RequestAttributes, UserAttributes};
use super::selector::{field_selector_exact_match, label_selector_parses};

/// Why a request URI cannot be resolved. kube-apiserver answers such requests before
/// auditing them, so they produce no events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestInfoError {
    /// The path has a `%` not followed by two hex digits (Go's URL parser refuses it).
    #[error("invalid percent-escape in request path `{0}`")]
    BadEscape(String),
    /// The URI contains an ASCII control character.
    #[error("request URI `{0}` contains a control character")]
    ControlCharacter(String),
    /// A legacy `/watch/` or `/proxy/` path with nothing after the verb.
    #[error("unable to determine kind and namespace from url `{0}`")]
    MissingResource(String),
}

/// The resolved attributes of one request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestInfo {
    pub is_resource_request: bool,
    /// The decoded URL path (query removed, trailing slash kept).
    pub path: String,
    pub verb: String,
    pub api_prefix: String,
    pub api_group: String,
    pub api_version: String,
    pub namespace: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    /// Segments after prefix, group, version, legacy verb and `namespaces/<ns>`.
    pub parts: Vec<String>,
    /// First raw `fieldSelector` of list/watch/deletecollection (authorizer input only).
    pub field_selector: String,
    /// First raw `labelSelector` of list/watch/deletecollection (authorizer input only).
    pub label_selector: String,
}

impl RequestInfo {
    /// Resolves `method` (case-sensitive, as sent) and `uri` (path plus optional raw
    /// query, or an absolute `http(s)://` URL).
    pub fn resolve(method: &str, uri: &str) -> Result<RequestInfo, RequestInfoError> {
        resolve(method, uri)
    }

    /// The policy's view of this request for `user` (`None`: nobody authenticated).
    pub fn attributes<'a>(&'a self, user: Option<UserAttributes<'a>>) -> RequestAttributes<'a> {
        RequestAttributes {
            user,
            verb: &self.verb,
            is_resource_request: self.is_resource_request,
            path: &self.path,
            namespace: &self.namespace,
            api_group: &self.api_group,
            api_version: &self.api_version,
            resource: &self.resource,
            subresource: &self.subresource,
            name: &self.name,
        }
    }

    /// kube-apiserver's long-running predicate: these requests get a ResponseStarted event.
    pub fn is_long_running(&self) -> bool {
        if self.verb == "watch" || self.verb == "proxy" {
            return true;
        }
        if self.is_resource_request {
            matches!(
                self.subresource.as_str(),
                "attach" | "exec" | "proxy" | "log" | "portforward"
            )
        } else {
            self.path.starts_with("/debug/pprof/")
        }
    }
}

/// Splits a request URI into its raw path and raw query (`None` without `?`).
pub fn split_uri(uri: &str) -> (&str, Option<&str>) {
    let rest = strip_scheme_and_authority(uri);
    match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    }
}

fn strip_scheme_and_authority(uri: &str) -> &str {
    for scheme in ["http://", "https://"] {
        if uri.len() >= scheme.len()
            && uri.is_char_boundary(scheme.len())
            && uri[..scheme.len()].eq_ignore_ascii_case(scheme)
        {
            let after = &uri[scheme.len()..];
            let end = after.find(['/', '?']).unwrap_or(after.len());
            return &after[end..];
        }
    }
    uri
}

fn resolve(method: &str, uri: &str) -> Result<RequestInfo, RequestInfoError> {
    if uri.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(RequestInfoError::ControlCharacter(uri.to_owned()));
    }
    let (raw_path, raw_query) = split_uri(uri);
    let path = percent_decode(raw_path, false)
        .ok_or_else(|| RequestInfoError::BadEscape(raw_path.to_owned()))?;
    let query = Query::parse(raw_query.unwrap_or(""));
    // Until proven otherwise, a non-resource request whose verb is the method.
    let non_resource = |api_prefix: &str| RequestInfo {
        path: path.clone(),
        verb: method.to_lowercase(),
        api_prefix: api_prefix.to_owned(),
        ..RequestInfo::default()
    };
    let trimmed = path.trim_matches('/');
    let segments: Vec<&str> = if trimmed.is_empty() {
        Vec::new()
    } else {
        trimmed.split('/').collect()
    };
    if segments.len() < 3 || !matches!(segments[0], "api" | "apis") {
        return Ok(non_resource(""));
    }
    let mut parts = &segments[1..];
    let prefix = segments[0];
    let mut api_group = "";
    if prefix == "apis" {
        // Prefix already consumed: this asks for group, version and one more segment.
        if parts.len() < 3 {
            return Ok(non_resource(prefix));
        }
        api_group = parts[0];
        parts = &parts[1..];
    }
    let api_version = parts[0];
    parts = &parts[1..];

    let verb_via_path = matches!(parts[0], "watch" | "proxy");
    let verb = if verb_via_path {
        if parts.len() < 2 {
            return Err(RequestInfoError::MissingResource(uri.to_owned()));
        }
        let verb = parts[0];
        parts = &parts[1..];
        verb
    } else {
        match method {
            "POST" => "create",
            "GET" | "HEAD" => "get",
            "PUT" => "update",
            "PATCH" => "patch",
            "DELETE" => "delete",
            _ => "",
        }
    };

    let mut namespace = "";
    if parts[0] == "namespaces" && parts.len() > 1 {
        namespace = parts[1];
        // `namespaces/<ns>/status|finalize` are subresources of the Namespace itself.
        if parts.len() > 2 && !matches!(parts[2], "status" | "finalize") {
            parts = &parts[2..];
        }
    }
    let resource = parts[0];
    let name = parts.get(1).copied().unwrap_or("");
    let subresource = if verb == "proxy" {
        ""
    } else {
        parts.get(2).copied().unwrap_or("")
    };

    let mut info = RequestInfo {
        is_resource_request: true,
        path: path.clone(),
        verb: verb.to_owned(),
        api_prefix: prefix.to_owned(),
        api_group: api_group.to_owned(),
        api_version: api_version.to_owned(),
        namespace: namespace.to_owned(),
        resource: resource.to_owned(),
        subresource: subresource.to_owned(),
        name: name.to_owned(),
        parts: parts.iter().map(|s| (*s).to_owned()).collect(),
        field_selector: String::new(),
        label_selector: String::new(),
    };

    if info.name.is_empty() && info.verb == "get" {
        let (watch, pinned_name) = match decode_list_options(&query) {
            Some(options) => options,
            // Undecodable list options: only the raw `watch` value still counts.
            None => (query.first("watch").is_some_and(watch_flag), None),
        };
        info.verb = if watch { "watch" } else { "list" }.to_owned();
        if let Some(name) = pinned_name
            && is_valid_path_segment_name(&name)
        {
            info.name = name;
        }
    }
    if info.name.is_empty() && info.verb == "delete" {
        info.verb = "deletecollection".to_owned();
    }
    if !verb_via_path && matches!(info.verb.as_str(), "list" | "watch" | "deletecollection") {
        info.field_selector = query.first("fieldSelector").unwrap_or("").to_owned();
        info.label_selector = query.first("labelSelector").unwrap_or("").to_owned();
    }
    Ok(info)
}

/// The first decoded value of query parameter `key` in `uri`, as Go's
/// `URL.Query().Get` sees it.
pub(crate) fn first_query_value(uri: &str, key: &str) -> Option<String> {
    let (_, query) = split_uri(uri);
    Query::parse(query?).first(key).map(str::to_owned)
}

/// Go's bool-from-query rule: anything but `0` or (any case) `false` is true.
fn watch_flag(value: &str) -> bool {
    !(value == "0" || value.eq_ignore_ascii_case("false"))
}

/// Decodes the list options that can fail (`limit`, `timeoutSeconds`, selectors) and
/// returns `(watch, metadata.name pinned by the field selector)`, or `None` on failure.
fn decode_list_options(query: &Query) -> Option<(bool, Option<String>)> {
    for key in ["limit", "timeoutSeconds"] {
        if let Some(value) = query.first(key)
            && value.parse::<i64>().is_err()
        {
            return None;
        }
    }
    if let Some(selector) = query.first("labelSelector")
        && !label_selector_parses(selector)
    {
        return None;
    }
    let name = match query.first("fieldSelector") {
        Some(selector) => field_selector_exact_match(selector, "metadata.name").ok()?,
        None => None,
    };
    Some((query.first("watch").is_some_and(watch_flag), name))
}

/// `IsValidPathSegmentName`: not `.`/`..`, no `/` or `%`.
fn is_valid_path_segment_name(name: &str) -> bool {
    name != "." && name != ".." && !name.contains(['/', '%'])
}

/// Decoded query pairs in order, parsed like Go's `url.ParseQuery` (pairs with a `;` or
/// a bad escape are dropped).
struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    fn parse(raw: &str) -> Query {
        let pairs = raw
            .split('&')
            .filter(|pair| !pair.is_empty() && !pair.contains(';'))
            .filter_map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                Some((percent_decode(key, true)?, percent_decode(value, true)?))
            })
            .collect();
        Query { pairs }
    }

    fn first(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Percent-decoding; `plus_is_space` for query components. `None` on a bad escape.
/// Invalid UTF-8 after decoding is replaced (Go keeps raw bytes; names with such bytes
/// cannot be Kubernetes objects anyway).
pub(crate) fn percent_decode(input: &str, plus_is_space: bool) -> Option<String> {
    if !input.contains(['%', '+']) {
        return Some(input.to_owned());
    }
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|b| (*b as char).to_digit(16))?;
                let lo = bytes.get(i + 2).and_then(|b| (*b as char).to_digit(16))?;
                // Two hex digits always fit a byte.
                out.push(u8::try_from(hi * 16 + lo).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_object_has_its_own_namespace() {
        let info = RequestInfo::resolve("GET", "/api/v1/namespaces/foo").expect("resolves");
        assert_eq!(
            (info.namespace.as_str(), info.name.as_str()),
            ("foo", "foo")
        );
    }

    #[test]
    fn bad_list_options_fall_back_to_raw_watch() {
        let info = RequestInfo::resolve(
            "GET",
            "/api/v1/pods?limit=x&watch=1&fieldSelector=metadata.name%3Dp",
        )
        .expect("resolves");
        assert_eq!(info.verb, "watch");
        assert_eq!(info.name, "");
    }

    #[test]
    fn absolute_urls_and_bad_escapes() {
        let info = RequestInfo::resolve("GET", "https://h:6443/api/v1/pods?watch").expect("ok");
        assert_eq!(info.verb, "watch");
        assert!(RequestInfo::resolve("GET", "/api/v1/pods/%zz").is_err());
        assert!(RequestInfo::resolve("GET", "/api/v1/watch").is_err());
    }

    #[test]
    fn long_running_predicate() {
        let lr = |m, u| RequestInfo::resolve(m, u).expect("ok").is_long_running();
        assert!(lr("GET", "/api/v1/pods?watch=1"));
        assert!(lr("GET", "/api/v1/namespaces/a/pods/p/log"));
        assert!(lr("POST", "/api/v1/namespaces/a/pods/p/exec"));
        assert!(lr("GET", "/debug/pprof/profile"));
        assert!(!lr("GET", "/api/v1/pods"));
    }
}
