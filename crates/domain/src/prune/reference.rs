//! Image references by the grammar of the Docker/OCI distribution `reference` package:
//!
//! ```text
//! reference  := name [ ":" tag ] [ "@" digest ]
//! name       := [ domain "/" ] path
//! domain     := host [ ":" port ]          host: DNS name, IPv4 or [IPv6]
//! path       := component ( "/" component )*
//! component  := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
//! tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
//! digest     := algorithm ":" hex            algorithm: [A-Za-z][A-Za-z0-9]* ( [+._-] [A-Za-z][A-Za-z0-9]* )*
//! ```
//!
//! The first `/`-separated part is a domain only when it contains `.` or `:`, is `localhost`,
//! or has an upper-case letter (as `docker` decides). Nothing is normalized (`nginx` stays
//! `nginx`, not `docker.io/library/nginx`): ECR names repositories by their path alone, and what is
//! parsed prints back exactly as written.

use std::fmt;

/// The longest name (domain and path) the grammar accepts.
pub const NAME_MAX: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// `host[:port]` when the reference names a registry.
    pub domain: Option<String>,
    /// The repository path (`team/app`): ECR's repository name.
    pub path: String,
    pub tag: Option<String>,
    /// `algorithm:hex`. When present it is what a runtime pulls, whatever the tag says.
    pub digest: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference {reference:?}: {problem}")]
pub struct ReferenceError {
    pub reference: String,
    pub problem: &'static str,
}

impl ImageRef {
    pub fn parse(text: &str) -> Result<Self, ReferenceError> {
        let err = |problem| ReferenceError {
            reference: text.chars().take(300).collect(),
            problem,
        };
        if text.is_empty() {
            return Err(err("empty"));
        }
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => {
                if !is_digest_text(digest) {
                    return Err(err("digest is not algorithm:hex (at least 32 hex digits)"));
                }
                (rest, Some(digest.to_string()))
            }
            None => (text, None),
        };
        // A tag follows the last ':' after the last '/' (a ':' before it belongs to a port).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let tag = &rest[last_slash + i + 1..];
                if !is_tag(tag) {
                    return Err(err("tag is not [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"));
                }
                (&rest[..last_slash + i], Some(tag.to_string()))
            }
            None => (rest, None),
        };
        if name.is_empty() {
            return Err(err("no repository name"));
        }
        if name.len() > NAME_MAX {
            return Err(err("name longer than 255 characters"));
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, path)) if looks_like_domain(first) => {
                if !is_domain(first) {
                    return Err(err("registry is not host[:port]"));
                }
                (Some(first.to_string()), path)
            }
            _ => (None, name),
        };
        if !path.split('/').all(is_path_component) {
            return Err(err(
                "repository path is not lower-case components separated by '/'",
            ));
        }
        Ok(Self {
            domain,
            path: path.to_string(),
            tag,
            digest,
        })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(domain) = &self.domain {
            write!(f, "{domain}/")?;
        }
        f.write_str(&self.path)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

fn looks_like_domain(first: &str) -> bool {
    first.contains(['.', ':'])
        || first == "localhost"
        || first.bytes().any(|b| b.is_ascii_uppercase())
}

fn is_domain(text: &str) -> bool {
    let (host, port) = if text.starts_with('[') {
        match text.find(']') {
            Some(i) => (&text[..=i], &text[i + 1..]),
            None => return false,
        }
    } else {
        match text.rfind(':') {
            Some(i) => (&text[..i], &text[i..]),
            None => (text, ""),
        }
    };
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => {
            v6.contains(':')
                && v6
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        }
        None => host.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        }),
    };
    host_ok && port_ok
}

fn is_path_component(text: &str) -> bool {
    // alnum+ ( separator alnum+ )*, separator = "." | "_" | "__" | "-"+
    let b = text.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => i += if b.get(i + 1) == Some(&b'_') { 2 } else { 1 },
            b'-' => {
                while b.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return false,
        }
        // A separator is followed by a letter or digit (never by another separator).
        if i == start || !b.get(i).is_some_and(|c| alnum(*c)) {
            return false;
        }
    }
    true
}

fn is_tag(text: &str) -> bool {
    let b = text.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b[1..].iter().all(|c| word(*c) || *c == b'.' || *c == b'-')
}

fn is_digest_text(text: &str) -> bool {
    let Some((algorithm, hex)) = text.split_once(':') else {
        return false;
    };
    let algorithm_ok = !algorithm.is_empty()
        && algorithm.split(['+', '.', '_', '-']).all(|c| {
            let b = c.as_bytes();
            !b.is_empty() && b[0].is_ascii_alphabetic() && b.iter().all(u8::is_ascii_alphanumeric)
        });
    algorithm_ok && hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}
