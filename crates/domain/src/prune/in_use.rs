//! What is in use: references from tasks, services, task definitions and functions, resolved to
//! the digests of one repository.

use super::*;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ImageUse {
    /// As written: `registry/repo:tag` or `registry/repo@sha256:…`.
    pub image: String,
    /// The digest it actually runs, when ECS or Lambda reports it.
    pub digest: Option<String>,
    pub kind: InUseKind,
    /// The task, service, task definition or function that uses it.
    pub by: String,
}

/// Uses parsed once and grouped by repository path, for planning many repositories: resolving
/// one reads only the uses that name it (and the few that do not parse), so R repositories
/// against U uses cost O(R + U) parses and lookups instead of [`in_use_in`]'s O(R × U). Resolves
/// exactly as [`in_use_in`] does (a property test holds them equal).
pub struct UseIndex<'a> {
    by_path: std::collections::HashMap<String, Vec<(&'a ImageUse, ImageRef)>>,
    /// Unparseable references (lowercased), matched by substring per repository as
    /// [`in_use_in`] does.
    unparsed: Vec<(String, &'a ImageUse)>,
}

impl<'a> UseIndex<'a> {
    pub fn new(uses: &'a [ImageUse]) -> Self {
        let mut by_path: std::collections::HashMap<String, Vec<(&'a ImageUse, ImageRef)>> =
            std::collections::HashMap::new();
        let mut unparsed = Vec::new();
        for u in uses {
            match ImageRef::parse(&u.image) {
                Ok(r) => by_path.entry(r.path.clone()).or_default().push((u, r)),
                Err(_) => unparsed.push((u.image.to_ascii_lowercase(), u)),
            }
        }
        Self { by_path, unparsed }
    }

    /// The uses that may name `repository`: all [`UseIndex::in_use_in`] reads for it, so an
    /// index of these alone resolves it exactly as the whole index does (what a repository's
    /// unit of work carries).
    pub fn uses_for(&self, repository: &str) -> Vec<ImageUse> {
        let named = self.by_path.get(repository).into_iter().flatten();
        let unparsed = self
            .unparsed
            .iter()
            .filter(|(lower, _)| lower.contains(repository))
            .map(|(_, u)| *u);
        named.map(|(u, _)| *u).chain(unparsed).cloned().collect()
    }

    /// What [`in_use_in`] returns for `repository`.
    pub fn in_use_in(&self, repository: &str, images: &[Image]) -> BTreeMap<String, InUseKind> {
        let mut out: BTreeMap<String, InUseKind> = BTreeMap::new();
        let mut mark = |d: &str, kind: InUseKind| match out.get_mut(d) {
            Some(k) => *k = (*k).min(kind),
            None => {
                out.insert(d.to_string(), kind);
            }
        };
        // Unparseable, yet it may name this repository: then any image may be it.
        if self
            .unparsed
            .iter()
            .any(|(lower, _)| lower.contains(repository))
        {
            for img in images {
                mark(&img.digest, InUseKind::AmbiguousReference);
            }
        }
        let Some(uses) = self.by_path.get(repository) else {
            return out;
        };
        let by_tag: std::collections::HashMap<&str, &str> = images
            .iter()
            .flat_map(|i| i.tags.iter().map(move |t| (t.as_str(), i.digest.as_str())))
            .collect();
        for (u, reference) in uses {
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
}
