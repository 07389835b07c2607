//! The planner as it was first written: maps keyed by digest, every step over every image. Kept
//! for the tests only, which hold the planner to the same plan as this on every input they make
//! with no archive step and only active images (this one knows nothing of storage classes: the
//! plans of today).

use std::collections::{BTreeMap, BTreeSet};

use super::*;

/// The digest a cosign-style tag (`sha256-<64 hex>.sig`, `.att`, `.sbom`) names, if any.
fn tag_subject(img: &Image) -> Option<String> {
    img.tags.iter().find_map(|tag| {
        let rest = tag.strip_prefix("sha256-")?;
        let (hex, kind) = rest.split_once('.')?;
        let is_hex = hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit());
        (is_hex && matches!(kind, "sig" | "att" | "sbom"))
            .then(|| format!("sha256:{}", hex.to_ascii_lowercase()))
    })
}

pub(super) fn plan(
    repository: &str,
    images: &[Image],
    in_use: &BTreeMap<String, InUseKind>,
    rules: &Rules,
    now: i64,
    allowed: Option<&BTreeSet<&str>>,
) -> RepoPlan {
    use PruneReason::*;
    // cosign's default storage names a signature, attestation or SBOM by a tag derived from the
    // digest it is about (`sha256-<hex>.sig`) instead of an OCI `subject`: the same relation.
    // Whose manifest was not read is decided as unread whatever its tags say: a tag names a
    // subject, but only the manifest says whether it has another one (or children).
    let unread: BTreeSet<&str> = images
        .iter()
        .filter(|i| i.subject == Subject::Unknown)
        .map(|i| i.digest.as_str())
        .collect();
    let normalized: Vec<Image> = images
        .iter()
        .map(|img| match (&img.subject, tag_subject(img)) {
            (Subject::Of(_), _) | (_, None) => img.clone(),
            (_, Some(subject)) => Image {
                subject: Subject::Of(subject),
                ..img.clone()
            },
        })
        .collect();
    let images = normalized.as_slice();
    let mut decided: BTreeMap<&str, (Verdict, PruneReason)> = BTreeMap::new();
    let keep = |r| (Verdict::Keep, r);
    let any_unreadable = images.iter().any(|i| matches!(i.manifests, Some(Err(_))));
    let graph = Graph::new(images);

    // Digests an in-use image references through index manifests, listed or not: a referrer of
    // one of them (a signature of a platform's child manifest) is about something in use.
    let by_digest: BTreeMap<&str, &Image> = images.iter().map(|i| (i.digest.as_str(), i)).collect();
    let mut used_below: BTreeSet<String> = in_use.keys().cloned().collect();
    let mut stack: Vec<String> = used_below.iter().cloned().collect();
    while let Some(d) = stack.pop() {
        if let Some(Image {
            manifests: Some(Ok(children)),
            ..
        }) = by_digest.get(d.as_str()).copied()
        {
            for c in children {
                if used_below.insert(c.clone()) {
                    stack.push(c.clone());
                }
            }
        }
    }

    // 1. Reasons of the image's own.
    for img in images {
        let own = if let Some(kind) = in_use.get(&img.digest) {
            Some(PruneReason::of(*kind))
        } else if matches!(&img.subject, Subject::Of(s) if used_below.contains(s)) {
            // About an image in use, even one this listing does not show.
            Some(ReferrerOfKeptImage)
        } else if rules.pinned_digests.contains(&img.digest) {
            Some(Pinned)
        } else if img
            .tags
            .iter()
            .any(|t| rules.protect_tags.iter().any(|p| p.matches(t)))
        {
            Some(ProtectedTag)
        } else if matches!(img.manifests, Some(Err(_)))
            || matches!(img.subject, Subject::Unreadable(_))
        {
            Some(UnreadableManifest)
        } else {
            None
        };
        if let Some(reason) = own {
            decided.insert(&img.digest, keep(reason));
        }
    }

    // 2. Tagged images: the newest N by push time, the newest semver releases, age. A referrer
    //    whose subject is here follows its subject instead (step 3), whatever its tags.
    let mut tagged: Vec<&Image> = images
        .iter()
        .filter(|i| !i.tags.is_empty() && !graph.subject.contains_key(i.digest.as_str()))
        .collect();
    tagged.sort_by(|a, b| {
        b.pushed_at
            .cmp(&a.pushed_at)
            .then_with(|| a.digest.cmp(&b.digest))
    });
    let newest: BTreeSet<&str> = tagged
        .iter()
        .take(rules.keep_last_tagged)
        .map(|i| i.digest.as_str())
        .collect();
    let mut releases: Vec<(semver::Version, &str)> = tagged
        .iter()
        .flat_map(|i| {
            i.tags
                .iter()
                .filter_map(|t| semver_of(t))
                .map(|v| (v, i.digest.as_str()))
        })
        .collect();
    releases.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    let mut release_keep: BTreeSet<&str> = BTreeSet::new();
    let mut seen_versions = BTreeSet::new();
    for (v, d) in &releases {
        if seen_versions.len() >= rules.keep_semver_releases && !seen_versions.contains(v) {
            break;
        }
        seen_versions.insert(v.clone());
        release_keep.insert(d);
    }
    for img in &tagged {
        if decided.contains_key(img.digest.as_str()) {
            continue;
        }
        let age = now - img.pushed_at;
        let expired = rules
            .tagged_max_age_days
            .is_some_and(|d| age >= i64::from(d) * SECONDS_PER_DAY);
        let d = img.digest.as_str();
        let verdict = if release_keep.contains(d) {
            keep(SemverRelease)
        } else if expired {
            (Verdict::Delete, TaggedExpired)
        } else if newest.contains(d) {
            keep(KeepLastN)
        } else {
            (Verdict::Delete, TaggedBeyondKeepLast)
        };
        decided.insert(d, verdict);
    }

    // 3. The rest in graph order (an image is decided once everything above it is): by its
    //    index parents and subject, then by age; what is kept keeps what is below it.
    let mut sorted: Vec<&Image> = images.iter().collect();
    sorted.sort_by(|a, b| a.digest.cmp(&b.digest));
    propagate_keeps(&graph, &mut decided);
    loop {
        let mut progressed = false;
        for img in &sorted {
            let d = img.digest.as_str();
            if decided.contains_key(d) {
                continue;
            }
            let above: Vec<&str> = graph.above(d).collect();
            let verdict = if any_unreadable {
                keep(UnreadableManifest)
            } else if above.is_empty() {
                untagged_by_age(img, rules, now)
            } else {
                let verdicts: Vec<_> = above
                    .iter()
                    .map(|p| decided.get(p).map(|(v, _)| *v))
                    .collect();
                let by_subject = graph.subject.contains_key(d);
                if verdicts.contains(&Some(Verdict::Keep)) {
                    let kept_subject = graph
                        .subject
                        .get(d)
                        .is_some_and(|s| decided.get(s).is_some_and(|(v, _)| *v == Verdict::Keep));
                    keep(if kept_subject {
                        ReferrerOfKeptImage
                    } else {
                        ChildOfKeptIndex
                    })
                } else if verdicts.iter().all(|v| *v == Some(Verdict::Delete)) {
                    let reason = if by_subject {
                        ReferrerOfDeletedImage
                    } else {
                        ChildOfDeletedIndex
                    };
                    (Verdict::Delete, reason)
                } else {
                    continue; // something above is not decided yet
                }
            };
            decided.insert(d, verdict);
            progressed = true;
        }
        if !progressed {
            break;
        }
    }
    // Only a reference cycle (impossible for real digests) leaves anything undecided: keep it.
    for img in &sorted {
        decided.entry(&img.digest).or_insert(keep(ChildOfKeptIndex));
    }

    // 4. Deletes that may not happen yet: not deleted by the first plan (re-check), or possibly
    //    a referrer of something kept (manifest not read).
    let mut unread_subjects = Vec::new();
    for img in &sorted {
        let d = img.digest.as_str();
        if decided[d].0 != Verdict::Delete {
            continue;
        }
        if unread.contains(d) {
            decided.insert(d, keep(SubjectUnknown));
        } else if allowed.is_some_and(|a| !a.contains(d)) {
            decided.insert(d, keep(ChangedSincePlan));
        }
    }
    propagate_keeps(&graph, &mut decided);
    // Read: what would be deleted, and untagged images outside any index (a signature or
    // attestation of something deleted goes with it, however young).
    for img in &sorted {
        let d = img.digest.as_str();
        if unread.contains(d)
            && (decided[d].1 == SubjectUnknown
                || (img.tags.is_empty() && !img.is_index() && !graph.parents.contains_key(d)))
        {
            unread_subjects.push(d.to_string());
        }
    }

    let mut decisions: Vec<Decision> = images
        .iter()
        .map(|img| {
            let (verdict, reason) = decided[img.digest.as_str()];
            Decision {
                digest: img.digest.clone(),
                tags: img.tags.clone(),
                verdict,
                reason,
                size: img.size,
                status: ImageStatus::Active,
            }
        })
        .collect();
    decisions.sort_by(|a, b| a.digest.cmp(&b.digest));
    decisions.dedup_by(|a, b| a.digest == b.digest);

    // Above before below: depth = longest chain of deleted images above an image.
    let deleted: BTreeSet<&str> = decisions
        .iter()
        .filter(|d| d.verdict == Verdict::Delete)
        .map(|d| d.digest.as_str())
        .collect();
    let mut depth: BTreeMap<&str, usize> = BTreeMap::new();
    fn depth_of<'a>(
        d: &'a str,
        graph: &Graph<'a>,
        deleted: &BTreeSet<&str>,
        memo: &mut BTreeMap<&'a str, usize>,
        guard: usize,
    ) -> usize {
        if let Some(n) = memo.get(d) {
            return *n;
        }
        if guard == 0 {
            return 0;
        }
        let above: Vec<&'a str> = graph.above(d).filter(|p| deleted.contains(p)).collect();
        let n = above
            .into_iter()
            .map(|p| depth_of(p, graph, deleted, memo, guard - 1) + 1)
            .max()
            .unwrap_or(0);
        memo.insert(d, n);
        n
    }
    let mut delete_waves: Vec<Vec<String>> = Vec::new();
    let mut delete_after = BTreeMap::new();
    for d in &deleted {
        let level = depth_of(d, &graph, &deleted, &mut depth, 64);
        if delete_waves.len() <= level {
            delete_waves.resize(level + 1, Vec::new());
        }
        delete_waves[level].push(d.to_string());
        let first: BTreeSet<String> = graph
            .above(d)
            .filter(|p| deleted.contains(p))
            .map(str::to_string)
            .collect();
        if !first.is_empty() {
            delete_after.insert(d.to_string(), first.into_iter().collect());
        }
    }
    RepoPlan {
        repository: repository.to_string(),
        bytes_freed: decisions
            .iter()
            .filter(|d| d.verdict == Verdict::Delete)
            .map(|d| d.size)
            .sum(),
        delete_waves,
        delete_after,
        unread_subjects,
        decisions,
        cap_exceeded: None,
        ..RepoPlan::default()
    }
}

/// The image graph of one repository: index -> children, subject -> referrers.
struct Graph<'a> {
    /// Index parents of each referenced digest.
    parents: BTreeMap<&'a str, Vec<&'a str>>,
    /// The subject of each referrer whose subject is in the repository.
    subject: BTreeMap<&'a str, &'a str>,
    /// Children and referrers of each digest.
    below: BTreeMap<&'a str, Vec<&'a str>>,
}

impl<'a> Graph<'a> {
    fn new(images: &'a [Image]) -> Self {
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
    fn above(&self, d: &str) -> impl Iterator<Item = &'a str> + '_ {
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
fn propagate_keeps<'a>(graph: &Graph<'a>, decided: &mut BTreeMap<&'a str, (Verdict, PruneReason)>) {
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
