//! Which ECR images go (pure): rules from `PRUNE_POLICY`, the in-use set by digest, and the image
//! graph (an index keeps its children; indexes are deleted before their children).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Deserializer, Serialize};

use crate::caps::{Caps, PercentSetting};
use crate::retention::SECONDS_PER_DAY;

mod graph;
mod image;
mod in_use;
mod policy;
mod reference;

use graph::{propagate_keeps, Graph};
pub use image::*;
pub use in_use::*;
pub use policy::*;
pub use reference::{ImageRef, ReferenceError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PruneReason {
    InUseTask,
    InUseService,
    InUseFunction,
    InUseTaskDefinition,
    AmbiguousReference,
    Pinned,
    ProtectedTag,
    UnreadableManifest,
    KeepLastN,
    SemverRelease,
    ChildOfKeptIndex,
    ReferrerOfKeptImage,
    SubjectUnknown,
    ChangedSincePlan,
    /// The repository's deletes are over a cap (`MAX_ACTIONS`, `MAX_ACTION_PERCENT`).
    SkippedCap,
    TooYoung,
    NoAgeLimit,
    TaggedExpired,
    TaggedBeyondKeepLast,
    UntaggedExpired,
    ChildOfDeletedIndex,
    ReferrerOfDeletedImage,
}

impl PruneReason {
    fn of(kind: InUseKind) -> Self {
        match kind {
            InUseKind::InUseTask => PruneReason::InUseTask,
            InUseKind::InUseService => PruneReason::InUseService,
            InUseKind::InUseFunction => PruneReason::InUseFunction,
            InUseKind::InUseTaskDefinition => PruneReason::InUseTaskDefinition,
            InUseKind::AmbiguousReference => PruneReason::AmbiguousReference,
        }
    }
}

crate::serde_codes!(PruneReason);

impl std::fmt::Display for PruneReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Keep,
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub digest: String,
    pub tags: Vec<String>,
    pub verdict: Verdict,
    pub reason: PruneReason,
    pub size: u64,
}

/// One repository, decided: a verdict and a reason for every image, the deletes in their order,
/// and (over a cap) why nothing is deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RepoPlan {
    pub repository: String,
    /// Every image, sorted by digest, with exactly one reason.
    pub decisions: Vec<Decision>,
    /// The digests to delete in waves: every index is in an earlier wave than the manifests it
    /// references (ECR refuses to delete a manifest an index still references), and every image
    /// in an earlier wave than its referrers (a signature never outlives a failed delete).
    pub delete_waves: Vec<Vec<String>>,
    /// For each digest to delete, the digests to delete that must be gone first (its index
    /// parents and its subject): if one of them is not deleted, neither is it.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub delete_after: BTreeMap<String, Vec<String>>,
    /// Images that would be deleted but whose manifest must be read first (they may be referrers
    /// of a kept image): kept as `subject_unknown` until it is.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unread_subjects: Vec<String>,
    pub bytes_freed: u64,
    /// Set when the repository's deletes are over a cap: then every one of them is kept as
    /// `skipped_cap` (there is nothing to delete) and this says which cap and by how much.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cap_exceeded: Option<String>,
}

/// Every selected repository, decided: the value `lifecycle plan prune` shows and the pruner
/// then carries out (re-checked right before each repository's deletes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct PrunePlan {
    /// By repository name.
    pub repositories: Vec<RepoPlan>,
}

impl PrunePlan {
    /// How many images the plan deletes, over every repository.
    pub fn deletes(&self) -> usize {
        self.repositories.iter().map(|r| r.deletes().len()).sum()
    }

    pub fn bytes_freed(&self) -> u64 {
        self.repositories.iter().map(|r| r.bytes_freed).sum()
    }
}

/// The caps of one repository: `MAX_ACTIONS` deletes, and `MAX_ACTION_PERCENT` of its images
/// (however few it has).
pub fn repository_caps(max_actions: usize, max_action_percent: u32) -> Caps {
    Caps {
        max_actions,
        max_percent: max_action_percent,
        percent_setting: PercentSetting::MaxActionPercent,
        min_population: 0,
    }
}

impl RepoPlan {
    pub fn deletes(&self) -> BTreeSet<&str> {
        self.delete_waves
            .iter()
            .flatten()
            .map(String::as_str)
            .collect()
    }

    /// The plan within `caps` (counted over the repository's images): over a cap, every delete
    /// becomes a keep with reason `skipped_cap`, nothing is left to delete, and `cap_exceeded`
    /// says why.
    pub fn capped(mut self, caps: &Caps) -> Self {
        let deletes: Vec<usize> = (0..self.decisions.len())
            .filter(|i| self.decisions[*i].verdict == Verdict::Delete)
            .collect();
        let capped = caps.apply("images to delete", deletes, self.decisions.len());
        for i in capped.skipped {
            let decision = &mut self.decisions[i];
            decision.verdict = Verdict::Keep;
            decision.reason = PruneReason::SkippedCap;
        }
        if let Some(why) = capped.exceeded {
            self.delete_waves.clear();
            self.delete_after.clear();
            self.bytes_freed = 0;
            self.cap_exceeded = Some(why.to_string());
        }
        self
    }
}

fn semver_of(tag: &str) -> Option<semver::Version> {
    let v = semver::Version::parse(tag.strip_prefix('v').unwrap_or(tag)).ok()?;
    v.pre.is_empty().then_some(v)
}

/// Plans one repository: every image gets exactly one verdict and reason.
pub fn plan_repository(
    repository: &str,
    images: &[Image],
    in_use: &BTreeMap<String, InUseKind>,
    rules: &Rules,
    now: i64,
) -> RepoPlan {
    plan(repository, images, in_use, rules, now, None)
}

/// The fresh re-check right before deleting: plans again from freshly read images and in-use
/// set, and deletes only what both this plan and `first` delete. What either keeps stays, and so
/// does everything below it (its children and referrers).
pub fn replan_repository(
    first: &RepoPlan,
    images: &[Image],
    in_use: &BTreeMap<String, InUseKind>,
    rules: &Rules,
    now: i64,
) -> RepoPlan {
    plan(
        &first.repository,
        images,
        in_use,
        rules,
        now,
        Some(&first.deletes()),
    )
}

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

fn plan(
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
    }
}

fn untagged_by_age(img: &Image, rules: &Rules, now: i64) -> (Verdict, PruneReason) {
    match rules.untagged_max_age_days {
        None => (Verdict::Keep, PruneReason::NoAgeLimit),
        Some(days) if now - img.pushed_at >= i64::from(days) * SECONDS_PER_DAY => {
            (Verdict::Delete, PruneReason::UntaggedExpired)
        }
        Some(_) => (Verdict::Keep, PruneReason::TooYoung),
    }
}

#[cfg(test)]
mod tests;
