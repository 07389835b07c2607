//! What is in use: references from tasks, services, task definitions and functions, resolved to
//! the digests of one repository.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InUseKind {
    InUseTask,
    InUseService,
    InUseFunction,
    InUseTaskDefinition,
    /// A reference that cannot be parsed names this repository somewhere: any image may be it.
    AmbiguousReference,
}

impl InUseKind {
    pub fn as_str(self) -> &'static str {
        PruneReason::of(self).as_str()
    }
}

/// The digests of `repository` that `uses` depend on, each with its strongest reason. A
/// reference is matched by its repository path (any registry: keeping too much is the safe side).
pub fn in_use_in(
    repository: &str,
    images: &[Image],
    uses: &[crate::prune::ImageUse],
) -> BTreeMap<String, InUseKind> {
    let by_tag: BTreeMap<&str, &str> = images
        .iter()
        .flat_map(|i| i.tags.iter().map(move |t| (t.as_str(), i.digest.as_str())))
        .collect();
    let mut out: BTreeMap<String, InUseKind> = BTreeMap::new();
    let mut mark = |d: &str, kind: InUseKind| {
        let k = out.entry(d.to_string()).or_insert(kind);
        *k = (*k).min(kind);
    };
    for u in uses {
        let reference = match ImageRef::parse(&u.image) {
            Ok(r) => r,
            Err(_) => {
                // Unparseable, yet it may name this repository: then any image may be it.
                if u.image.to_ascii_lowercase().contains(repository) {
                    for img in images {
                        mark(&img.digest, InUseKind::AmbiguousReference);
                    }
                }
                continue;
            }
        };
        if reference.path != repository {
            continue;
        }
        // The digest it really runs (as ECS or Lambda resolved it) and what its reference names:
        // both stay. A reference with a digest names that digest, whatever its tag says now.
        if let Some(d) = &u.digest {
            mark(d, u.kind);
        }
        match (&reference.digest, &reference.tag) {
            (Some(d), _) => mark(d, u.kind),
            (None, tag) => {
                if let Some(d) = by_tag.get(tag.as_deref().unwrap_or("latest")) {
                    mark(d, u.kind);
                }
            }
        }
    }
    out
}

/// An image reference something (ECS, Lambda) depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUse {
    /// As written: `registry/repo:tag` or `registry/repo@sha256:…`.
    pub image: String,
    /// The digest it actually runs, when ECS or Lambda reports it.
    pub digest: Option<String>,
    pub kind: InUseKind,
    /// The task, service, task definition or function that uses it.
    pub by: String,
}
