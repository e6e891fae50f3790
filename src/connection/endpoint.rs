//! The servers of a connect string: parsing and checking it ([`parse_connect_string`]), and
//! each server as an [`Endpoint`], for the client's TLS checks and `TCP_NODELAY`.

use crate::error::{Error, Result};
use crate::path::validate_path;

/// Splits `host:port,host:port/chroot` and checks every part, so a typo is an
/// [`Error::InvalidArgument`] now rather than an endless reconnect loop later.
pub(crate) fn parse_connect_string(s: &str) -> Result<(String, Option<String>)> {
    let bad = |why: String| Error::InvalidArgument(format!("connect string {s:?}: {why}"));
    let s_trimmed = s.trim();
    if s_trimmed.is_empty() {
        return Err(bad("it is empty".into()));
    }
    // The chroot starts at the first '/' that is not part of a scheme such as tcp://.
    let chroot_start = s_trimmed
        .match_indices('/')
        .map(|(i, _)| i)
        .find(|&i| !s_trimmed[..i].ends_with(':') && !s_trimmed[..i].ends_with(":/"));
    let (hosts, chroot) = match chroot_start {
        Some(i) => (&s_trimmed[..i], Some(&s_trimmed[i..])),
        None => (s_trimmed, None),
    };
    let mut checked = Vec::new();
    for host in hosts.split(',') {
        let host = host.trim();
        let bare = strip_scheme(host);
        if bare.is_empty() {
            return Err(bad("it has an empty host".into()));
        }
        let (name, port) = split_host(bare).map_err(|why| bad(format!("{host:?}: {why}")))?;
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(bad(format!("bad host {host:?}")));
        }
        if let Some(port) = port {
            match port.parse::<u16>() {
                Ok(p) if p > 0 => {}
                _ => return Err(bad(format!("bad port in {host:?}"))),
            }
        }
        checked.push(host.to_string());
    }
    let chroot = match chroot {
        None | Some("/") => None,
        Some(c) => {
            validate_path(c)?;
            Some(c.to_string())
        }
    };
    Ok((checked.join(","), chroot))
}

/// One server of a connect string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub(crate) host: String,
    pub(crate) port: u16,
    /// Reached through `tcp+tls://`.
    pub(crate) tls: bool,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { TLS_SCHEME } else { "" };
        if self.host.contains(':') {
            write!(f, "{scheme}[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}{}:{}", self.host, self.port)
        }
    }
}

/// The servers of a connect string already checked by [`parse_connect_string`], with
/// ZooKeeper's default port where none is given.
pub(crate) fn endpoints(hosts: &str) -> Vec<Endpoint> {
    hosts
        .split(',')
        .filter_map(|host| {
            let host = host.trim();
            let bare = strip_scheme(host);
            let (name, port) = split_host(bare).ok()?;
            let port = match port {
                Some(port) => port.parse().ok()?,
                None => DEFAULT_PORT,
            };
            Some(Endpoint {
                host: name.to_string(),
                port,
                tls: host.starts_with(TLS_SCHEME),
            })
        })
        .collect()
}

/// ZooKeeper's client port, which zookeeper-client assumes when a host has none.
const DEFAULT_PORT: u16 = 2181;

/// The scheme of a server reached through TLS.
const TLS_SCHEME: &str = "tcp+tls://";

fn strip_scheme(host: &str) -> &str {
    host.strip_prefix("tcp://")
        .or_else(|| host.strip_prefix(TLS_SCHEME))
        .unwrap_or(host)
}

/// Splits one host as zookeeper-client reads it: `[v6]` or `[v6]:port`, else `host` or
/// `host:port` split at the last ':'. An IPv6 address needs brackets, or its last group would
/// be taken for a port.
fn split_host(bare: &str) -> std::result::Result<(&str, Option<&str>), &'static str> {
    if let Some(rest) = bare.strip_prefix('[') {
        match rest.split_once(']') {
            Some((name, "")) => Ok((name, None)),
            Some((name, after)) => match after.strip_prefix(':') {
                Some(port) => Ok((name, Some(port))),
                None => Err("bad host"),
            },
            None => Err("unclosed '['"),
        }
    } else {
        match bare.rsplit_once(':') {
            Some((name, _)) if name.contains(':') => {
                Err("an IPv6 address needs brackets, as in [::1]:2181")
            }
            Some((name, port)) => Ok((name, Some(port))),
            None => Ok((bare, None)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_have_names_and_ports_with_the_default_port() {
        let (hosts, _) =
            parse_connect_string("tcp://a:1,b,[::1]:3,[fe80::1],tcp+tls://c:4/x").unwrap();
        let endpoint = |host: &str, port, tls| Endpoint {
            host: host.to_string(),
            port,
            tls,
        };
        assert_eq!(
            endpoints(&hosts),
            [
                endpoint("a", 1, false),
                endpoint("b", 2181, false),
                endpoint("::1", 3, false),
                endpoint("fe80::1", 2181, false),
                endpoint("c", 4, true),
            ]
        );
        assert_eq!(endpoints(&hosts)[2].to_string(), "[::1]:3");
        assert_eq!(endpoints(&hosts)[4].to_string(), "tcp+tls://c:4");
    }

    #[test]
    fn parses_hosts_and_chroot() {
        assert_eq!(
            parse_connect_string("127.0.0.1:2181").unwrap(),
            ("127.0.0.1:2181".into(), None)
        );
        assert_eq!(
            parse_connect_string("a:1,b:2/app/x").unwrap(),
            ("a:1,b:2".into(), Some("/app/x".into()))
        );
        assert_eq!(
            parse_connect_string("localhost").unwrap(),
            ("localhost".into(), None)
        );
        assert_eq!(
            parse_connect_string("tcp://a:1").unwrap(),
            ("tcp://a:1".into(), None)
        );
        assert_eq!(
            parse_connect_string("tcp://a:1,tcp+tls://b/ch").unwrap(),
            ("tcp://a:1,tcp+tls://b".into(), Some("/ch".into()))
        );
        assert_eq!(
            parse_connect_string("[::1]:2181,[fe80::1]/x").unwrap(),
            ("[::1]:2181,[fe80::1]".into(), Some("/x".into()))
        );
    }

    #[test]
    fn rejects_malformed_connect_strings() {
        for s in [
            "",
            "   ",
            ",",
            "a:1,",
            "a:x",
            "a:0",
            "a:70000",
            ":2181",
            "a b:1",
            "a:1//x",
            "a:1/x/",
            "a:1:2:3:x",
            "::1",
            "[::1",
            "[::1]x",
            "[]:1",
            "a:",
        ] {
            assert!(parse_connect_string(s).is_err(), "{s:?} was accepted");
        }
    }
}
