//! Znode path checks, done before anything is sent, so bad input is a typed error and never a
//! server round trip (or a panic deep in the client).

use crate::error::{Error, Result};

/// Checks `path` against ZooKeeper's rules for an absolute znode path
/// (`org.apache.zookeeper.common.PathUtils.validatePath`).
///
/// The root `/` is valid here; recipes that need a parent path use [`validate_recipe_path`].
pub fn validate_path(path: &str) -> Result<()> {
    if path.is_empty() {
        return Err(Error::invalid_path(path, "path is empty"));
    }
    if !path.starts_with('/') {
        return Err(Error::invalid_path(path, "path must start with '/'"));
    }
    if path == "/" {
        return Ok(());
    }
    if path.ends_with('/') {
        return Err(Error::invalid_path(path, "path must not end with '/'"));
    }
    for segment in path[1..].split('/') {
        if segment.is_empty() {
            return Err(Error::invalid_path(path, "empty segment ('//')"));
        }
        if segment == "." || segment == ".." {
            return Err(Error::invalid_path(path, "relative segment ('.' or '..')"));
        }
        if segment.chars().any(is_forbidden_char) {
            return Err(Error::invalid_path(
                path,
                "character ZooKeeper does not allow",
            ));
        }
    }
    Ok(())
}

/// Like [`validate_path`], but also refuses `/`: a recipe needs a node of its own to put its
/// children (or itself) under, and `/zookeeper` is the server's reserved tree.
pub fn validate_recipe_path(path: &str) -> Result<()> {
    validate_path(path)?;
    if path == "/" {
        return Err(Error::invalid_path(
            path,
            "a recipe cannot use the root node",
        ));
    }
    if path == "/zookeeper" || path.starts_with("/zookeeper/") {
        return Err(Error::invalid_path(
            path,
            "/zookeeper is reserved by the server",
        ));
    }
    Ok(())
}

/// The characters ZooKeeper's `PathUtils` rejects: NUL, control characters, surrogates and
/// private-use and non-characters.
fn is_forbidden_char(c: char) -> bool {
    matches!(c,
        '\u{0000}'..='\u{001f}'
        | '\u{007f}'..='\u{009f}'
        | '\u{e000}'..='\u{f8ff}'
        | '\u{fff0}'..='\u{ffff}')
}

/// `parent/child`, for a validated `parent` and a single-segment `child`.
pub(crate) fn join(parent: &str, child: &str) -> String {
    if parent == "/" {
        format!("/{child}")
    } else {
        format!("{parent}/{child}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_paths() {
        for p in ["/", "/a", "/a/b-c_d.e", "/locks/orders", "/a/...", "/ü"] {
            validate_path(p).unwrap_or_else(|e| panic!("{p}: {e}"));
        }
    }

    #[test]
    fn rejects_what_zookeeper_rejects() {
        for p in [
            "",
            "a",
            "a/b",
            "/a/",
            "//",
            "/a//b",
            "/.",
            "/a/..",
            "/a/./b",
            "/a\0b",
            "/a\u{1}",
            "/\u{fff5}",
        ] {
            assert!(
                matches!(validate_path(p), Err(Error::InvalidPath { .. })),
                "{p:?} was accepted"
            );
        }
    }

    #[test]
    fn recipes_refuse_root_and_reserved_tree() {
        assert!(validate_recipe_path("/").is_err());
        assert!(validate_recipe_path("/zookeeper/quota").is_err());
        assert!(validate_recipe_path("/zookeeperish").is_ok());
    }

    #[test]
    fn join_handles_the_root() {
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
    }
}
