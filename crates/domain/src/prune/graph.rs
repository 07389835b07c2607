//! The images of one repository by digest, and their graph (index -> children, subject ->
//! referrers), with every distinct digest an index into plain vectors: a plan of a million images
//! compares and hashes each digest a few times, not at every step.

use std::collections::HashMap;

use super::*;

/// Distinct digests of one repository, numbered in digest order (so an order by number is the
/// order by digest), and which images carry each.
pub(crate) struct Digests<'a> {
    /// The digest of each number.
    pub(crate) names: Vec<&'a str>,
    /// The number of each image (by its position in the listing).
    pub(crate) of_image: Vec<u32>,
    /// Every image, by digest and then by position in the listing (stable).
    pub(crate) sorted: Vec<u32>,
    /// For each number, its first image in the listing.
    pub(crate) first: Vec<u32>,
    /// For each number, its last image in the listing.
    pub(crate) last: Vec<u32>,
    index: HashMap<&'a str, u32>,
}

impl<'a> Digests<'a> {
    pub(crate) fn new(images: &'a [Image]) -> Self {
        let mut sorted: Vec<u32> = (0..images.len() as u32).collect();
        sorted.sort_by(|a, b| images[*a as usize].digest.cmp(&images[*b as usize].digest));
        let mut names: Vec<&str> = Vec::with_capacity(images.len());
        let mut of_image = vec![0u32; images.len()];
        let mut first = Vec::with_capacity(images.len());
        let mut last = Vec::with_capacity(images.len());
        for &i in &sorted {
            let digest = images[i as usize].digest.as_str();
            if names.last() != Some(&digest) {
                names.push(digest);
                first.push(i);
                last.push(i);
            }
            let id = names.len() as u32 - 1;
            of_image[i as usize] = id;
            // Sorted stably: images of one digest come in listing order.
            last[id as usize] = i;
        }
        let mut index = HashMap::with_capacity(names.len());
        for (id, name) in names.iter().enumerate() {
            index.insert(*name, id as u32);
        }
        Self {
            names,
            of_image,
            sorted,
            first,
            last,
            index,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }

    pub(crate) fn id(&self, digest: &str) -> Option<u32> {
        self.index.get(digest).copied()
    }
}

/// Lists of numbers by number, in one allocation: `items[start[k]..start[k + 1]]` is list `k`.
pub(crate) struct Lists {
    start: Vec<u32>,
    items: Vec<u32>,
}

impl Lists {
    /// From `(list, item)` pairs: each list keeps its items in the order given.
    fn new(lists: usize, pairs: &[(u32, u32)]) -> Self {
        let mut start = vec![0u32; lists + 1];
        for (k, _) in pairs {
            start[*k as usize + 1] += 1;
        }
        for k in 0..lists {
            start[k + 1] += start[k];
        }
        let mut fill = start.clone();
        let mut items = vec![0u32; pairs.len()];
        for (k, item) in pairs {
            items[fill[*k as usize] as usize] = *item;
            fill[*k as usize] += 1;
        }
        Self { start, items }
    }

    pub(crate) fn get(&self, k: u32) -> &[u32] {
        &self.items[self.start[k as usize] as usize..self.start[k as usize + 1] as usize]
    }
}

/// The image graph of one repository, over digest numbers: index -> children, subject ->
/// referrers. Only digests the listing shows are in it.
pub(crate) struct Graph {
    /// Index parents of each digest, each once, in the order the listing names them.
    pub(crate) parents: Lists,
    /// The subject of each referrer whose subject is in the repository.
    pub(crate) subject: Vec<Option<u32>>,
    /// Children and referrers of each digest.
    pub(crate) below: Lists,
}

impl Graph {
    /// `subjects`: each image's subject (the listing's, or the one a cosign-style tag names).
    pub(crate) fn new(images: &[Image], digests: &Digests<'_>, subjects: &[Option<&str>]) -> Self {
        let mut parent_pairs: Vec<(u32, u32)> = Vec::new();
        let mut below_pairs: Vec<(u32, u32)> = Vec::new();
        let mut subject = vec![None; digests.len()];
        for (i, img) in images.iter().enumerate() {
            let id = digests.of_image[i];
            if let Some(Ok(children)) = &img.manifests {
                // A manifest cannot list its own digest (content addressing); a registry answer
                // that does is not an edge, or the index would be its own parent, to be deleted
                // after itself (as a subject naming itself is ignored below).
                for c in children.iter().filter(|c| **c != img.digest) {
                    if let Some(child) = digests.id(c) {
                        parent_pairs.push((child, id));
                        below_pairs.push((id, child));
                    }
                }
            }
            if let Some(s) = subjects[i] {
                if let Some(s) = digests.id(s).filter(|s| *s != id) {
                    subject[id as usize] = Some(s);
                    below_pairs.push((s, id));
                }
            }
        }
        let mut parents = Lists::new(digests.len(), &parent_pairs);
        parents.dedup();
        Graph {
            parents,
            subject,
            below: Lists::new(digests.len(), &below_pairs),
        }
    }

    /// Index parents and subject: what keeps this image if it stays.
    pub(crate) fn above(&self, d: u32) -> impl Iterator<Item = u32> + '_ {
        self.parents
            .get(d)
            .iter()
            .copied()
            .chain(self.subject[d as usize])
    }
}

impl Lists {
    /// Each item once per list, the first time it is listed.
    fn dedup(&mut self) {
        let mut items = Vec::with_capacity(self.items.len());
        let mut start = Vec::with_capacity(self.start.len());
        start.push(0);
        for k in 0..self.start.len() - 1 {
            let from = items.len();
            for item in self.get(k as u32) {
                if !items[from..].contains(item) {
                    items.push(*item);
                }
            }
            start.push(items.len() as u32);
        }
        self.items = items;
        self.start = start;
    }
}

/// What is kept keeps everything below it (children, referrers), overriding a delete, until
/// nothing changes.
pub(crate) fn propagate_keeps(graph: &Graph, decided: &mut [Option<(Verdict, PruneReason)>]) {
    let mut stack: Vec<u32> = (0..decided.len() as u32)
        .filter(|d| matches!(decided[*d as usize], Some((Verdict::Keep, _))))
        .collect();
    while let Some(d) = stack.pop() {
        for &b in graph.below.get(d) {
            if matches!(decided[b as usize], Some((Verdict::Delete, _))) {
                let reason = if graph.subject[b as usize] == Some(d) {
                    PruneReason::ReferrerOfKeptImage
                } else {
                    PruneReason::ChildOfKeptIndex
                };
                decided[b as usize] = Some((Verdict::Keep, reason));
                stack.push(b);
            }
        }
    }
}
