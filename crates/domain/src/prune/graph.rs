//! The image graph of one repository (index -> children, subject -> referrers), and how a kept
//! image keeps everything below it.

use super::*;

/// The image graph of one repository: index -> children, subject -> referrers.
pub(crate) struct Graph<'a> {
    /// Index parents of each referenced digest.
    pub(crate) parents: BTreeMap<&'a str, Vec<&'a str>>,
    /// The subject of each referrer whose subject is in the repository.
    pub(crate) subject: BTreeMap<&'a str, &'a str>,
    /// Children and referrers of each digest.
    pub(crate) below: BTreeMap<&'a str, Vec<&'a str>>,
}

impl<'a> Graph<'a> {
    pub(crate) fn new(images: &'a [Image]) -> Self {
        let present: BTreeSet<&str> = images.iter().map(|i| i.digest.as_str()).collect();
        let mut graph = Graph {
            parents: BTreeMap::new(),
            subject: BTreeMap::new(),
            below: BTreeMap::new(),
        };
        for img in images {
            if let Some(Ok(children)) = &img.manifests {
                // A manifest cannot list its own digest (content addressing); a registry answer
                // that does is not an edge, or the index would be its own parent, to be deleted
                // after itself (as a subject naming itself is ignored below).
                for c in children.iter().filter(|c| **c != img.digest) {
                    let parents = graph.parents.entry(c.as_str()).or_default();
                    if !parents.contains(&img.digest.as_str()) {
                        parents.push(img.digest.as_str());
                    }
                    graph
                        .below
                        .entry(img.digest.as_str())
                        .or_default()
                        .push(c.as_str());
                }
            }
            if let Subject::Of(s) = &img.subject {
                if let Some(s) = present.get(s.as_str()).filter(|s| **s != img.digest) {
                    graph.subject.insert(img.digest.as_str(), s);
                    graph.below.entry(s).or_default().push(img.digest.as_str());
                }
            }
        }
        graph
    }

    /// Index parents and subject: everything that must stay if this image stays... reversed.
    pub(crate) fn above(&self, d: &str) -> impl Iterator<Item = &'a str> + '_ {
        self.parents
            .get(d)
            .into_iter()
            .flatten()
            .copied()
            .chain(self.subject.get(d).copied())
    }
}

/// What is kept keeps everything below it (children, referrers), overriding a delete, until
/// nothing changes.
pub(crate) fn propagate_keeps<'a>(
    graph: &Graph<'a>,
    decided: &mut BTreeMap<&'a str, (Verdict, PruneReason)>,
) {
    let mut stack: Vec<&'a str> = decided
        .iter()
        .filter(|(_, (v, _))| *v == Verdict::Keep)
        .map(|(d, _)| *d)
        .collect();
    while let Some(d) = stack.pop() {
        for b in graph.below.get(d).into_iter().flatten() {
            if decided.get(b).is_some_and(|(v, _)| *v == Verdict::Delete) {
                let reason = if graph.subject.get(b) == Some(&d) {
                    PruneReason::ReferrerOfKeptImage
                } else {
                    PruneReason::ChildOfKeptIndex
                };
                decided.insert(b, (Verdict::Keep, reason));
                stack.push(b);
            }
        }
    }
}
