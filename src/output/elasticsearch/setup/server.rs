//! Which server an endpoint is: Elasticsearch or OpenSearch, and its
//! version, from the node-info API both answer (`GET /_nodes/_local/none`;
//! some clusters forbid or lack `GET /`, such as a node without its
//! `rest-root` module), else from `GET /`.

use std::fmt;

use serde_json::Value;

/// The two servers the output writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Elasticsearch,
    OpenSearch,
}

impl fmt::Display for Flavor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Elasticsearch => "Elasticsearch",
            Self::OpenSearch => "OpenSearch",
        })
    }
}

/// `major.minor.patch`; a suffix (`-SNAPSHOT`, `-rc1`) is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        let core = text.trim().split(['-', '+']).next()?;
        let mut numbers = core.split('.').map(|n| n.parse::<u32>().ok());
        let major = numbers.next()??;
        let minor = numbers.next().unwrap_or(Some(0))?;
        let patch = numbers.next().unwrap_or(Some(0))?;
        Some(Self::new(major, minor, patch))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// A server's flavor and version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Server {
    pub flavor: Flavor,
    pub version: Version,
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.flavor, self.version)
    }
}

/// The header Elasticsearch (7.14 and later) puts on every answer.
pub(super) const PRODUCT_HEADER: &str = "x-elastic-product";

/// The server that answered `GET /_nodes/_local/none`: `product` is its
/// `X-Elastic-Product` header. Elasticsearch sends that header (7.14 on)
/// and a `build_flavor` (`default`, `oss`) in node info; OpenSearch
/// sends neither.
pub(super) fn from_node_info(answer: &Value, product: Option<&str>) -> Result<Server, String> {
    let node = answer
        .get("nodes")
        .and_then(Value::as_object)
        .and_then(|nodes| nodes.values().next())
        .ok_or("the node-info answer lists no node")?;
    let text = node
        .get("version")
        .and_then(Value::as_str)
        .ok_or("the node-info answer has no `version`")?;
    let version = Version::parse(text).ok_or_else(|| format!("unknown version `{text}`"))?;
    let elastic = product.is_some_and(|p| p.eq_ignore_ascii_case("Elasticsearch"))
        || node.get("build_flavor").is_some();
    Ok(Server {
        flavor: if elastic {
            Flavor::Elasticsearch
        } else {
            Flavor::OpenSearch
        },
        version,
    })
}

/// The server that answered `GET /`: OpenSearch says
/// `version.distribution: "opensearch"`.
pub(super) fn from_root(answer: &Value) -> Result<Server, String> {
    let version = answer
        .get("version")
        .ok_or("the answer to `GET /` has no `version`")?;
    let text = version
        .get("number")
        .and_then(Value::as_str)
        .ok_or("the answer to `GET /` has no `version.number`")?;
    let parsed = Version::parse(text).ok_or_else(|| format!("unknown version `{text}`"))?;
    let opensearch = version.get("distribution").and_then(Value::as_str) == Some("opensearch");
    Ok(Server {
        flavor: if opensearch {
            Flavor::OpenSearch
        } else {
            Flavor::Elasticsearch
        },
        version: parsed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions_parse_with_suffixes_and_order_numerically() {
        assert_eq!(Version::parse("8.19.0"), Some(Version::new(8, 19, 0)));
        assert_eq!(Version::parse("2.19.6"), Some(Version::new(2, 19, 6)));
        assert_eq!(
            Version::parse("9.1.0-SNAPSHOT"),
            Some(Version::new(9, 1, 0))
        );
        assert_eq!(Version::parse("7"), Some(Version::new(7, 0, 0)));
        assert_eq!(Version::parse("x.1"), None);
        assert_eq!(Version::parse(""), None);
        assert!(Version::new(2, 10, 0) > Version::new(2, 7, 0));
        assert_eq!(Version::new(7, 17, 28).to_string(), "7.17.28");
    }

    /// Node info as the real Elasticsearch 8.19 and OpenSearch 2.19 test
    /// nodes answer it (trimmed), and as Elasticsearch 7.10 (no header).
    #[test]
    fn node_info_tells_the_flavor_by_header_or_build_flavor() {
        let elastic = json!({"nodes": {"wYpr": {"version": "8.19.0",
            "build_flavor": "default", "build_type": "unknown"}}});
        let server = from_node_info(&elastic, Some("Elasticsearch")).unwrap();
        assert_eq!(server.flavor, Flavor::Elasticsearch);
        assert_eq!(server.version, Version::new(8, 19, 0));
        let old = json!({"nodes": {"a": {"version": "7.10.2", "build_flavor": "oss"}}});
        assert_eq!(
            from_node_info(&old, None).unwrap().flavor,
            Flavor::Elasticsearch
        );
        let open = json!({"nodes": {"7Biw": {"version": "2.19.6", "build_type": "unknown",
            "roles": ["cluster_manager", "data"]}}});
        let server = from_node_info(&open, None).unwrap();
        assert_eq!(server.to_string(), "OpenSearch 2.19.6");
        assert!(from_node_info(&json!({"nodes": {}}), None).is_err());
        assert!(from_node_info(&json!({"nodes": {"a": {"version": "new"}}}), None).is_err());
    }

    #[test]
    fn the_root_answer_tells_opensearch_by_its_distribution() {
        let open = json!({"version": {"distribution": "opensearch", "number": "1.3.20"}});
        assert_eq!(from_root(&open).unwrap().to_string(), "OpenSearch 1.3.20");
        let elastic = json!({"version": {"number": "7.17.28", "build_flavor": "default"}});
        assert_eq!(
            from_root(&elastic).unwrap().to_string(),
            "Elasticsearch 7.17.28"
        );
        assert!(from_root(&json!({"ok": true})).is_err());
    }
}
