//! Which ECR images go (pure): rules from `PRUNE_POLICY`, the in-use set by digest, and the image
//! graph (an index keeps its children; indexes are deleted before their children).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Deserializer, Serialize};

use crate::retention::SECONDS_PER_DAY;

pub const INDEX_MEDIA_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// One image (manifest) of a repository, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub digest: String,
    pub tags: Vec<String>,
    pub pushed_at: i64,
    pub size: u64,
    pub media_type: String,
    /// For an index: the manifests it references, or why it could not be read.
    pub manifests: Option<Result<Vec<String>, String>>,
}

impl Image {
    pub fn is_index(&self) -> bool {
        INDEX_MEDIA_TYPES.contains(&self.media_type.as_str())
    }
}

/// The digests an image index references (platform images and attestations alike).
pub fn index_children(manifest_json: &str) -> Result<Vec<String>, String> {
    let v: serde_json::Value = serde_json::from_str(manifest_json).map_err(|e| e.to_string())?;
    let list = v
        .get("manifests")
        .and_then(|m| m.as_array())
        .ok_or("index without \"manifests\"")?;
    list.iter()
        .map(|m| {
            m.get("digest")
                .and_then(|d| d.as_str())
                .map(str::to_string)
                .ok_or_else(|| "manifest without digest".to_string())
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InUseKind {
    InUseTask,
    InUseService,
    InUseTaskDefinition,
}

impl InUseKind {
    pub fn as_str(self) -> &'static str {
        PruneReason::of(self).as_str()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PruneReason {
    InUseTask,
    InUseService,
    InUseTaskDefinition,
    Pinned,
    ProtectedTag,
    UnreadableManifest,
    KeepLastN,
    SemverRelease,
    ChildOfKeptIndex,
    TooYoung,
    NoAgeLimit,
    TaggedExpired,
    TaggedBeyondKeepLast,
    UntaggedExpired,
    ChildOfDeletedIndex,
}

impl PruneReason {
    pub fn as_str(self) -> &'static str {
        match self {
            PruneReason::InUseTask => "in_use_task",
            PruneReason::InUseService => "in_use_service",
            PruneReason::InUseTaskDefinition => "in_use_task_definition",
            PruneReason::Pinned => "pinned",
            PruneReason::ProtectedTag => "protected_tag",
            PruneReason::UnreadableManifest => "unreadable_manifest",
            PruneReason::KeepLastN => "keep_last_n",
            PruneReason::SemverRelease => "semver_release",
            PruneReason::ChildOfKeptIndex => "child_of_kept_index",
            PruneReason::TooYoung => "too_young",
            PruneReason::NoAgeLimit => "no_age_limit",
            PruneReason::TaggedExpired => "tagged_expired",
            PruneReason::TaggedBeyondKeepLast => "tagged_beyond_keep_last",
            PruneReason::UntaggedExpired => "untagged_expired",
            PruneReason::ChildOfDeletedIndex => "child_of_deleted_index",
        }
    }

    fn of(kind: InUseKind) -> Self {
        match kind {
            InUseKind::InUseTask => PruneReason::InUseTask,
            InUseKind::InUseService => PruneReason::InUseService,
            InUseKind::InUseTaskDefinition => PruneReason::InUseTaskDefinition,
        }
    }
}

fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// One set of rules as written in `PRUNE_POLICY`; absent keys inherit, `null` means "no limit".
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleSet {
    pub keep_last_tagged: Option<usize>,
    #[serde(default, deserialize_with = "present")]
    pub untagged_max_age_days: Option<Option<u32>>,
    #[serde(default, deserialize_with = "present")]
    pub tagged_max_age_days: Option<Option<u32>>,
    pub protect_tags: Option<Vec<String>>,
    pub keep_semver_releases: Option<usize>,
    pub pinned_digests: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrunePolicy {
    #[serde(default)]
    pub default: RuleSet,
    /// Repository name or glob -> overrides. An exact name wins over globs; globs apply in order.
    #[serde(default)]
    pub repositories: BTreeMap<String, RuleSet>,
}

/// Rules resolved for one repository.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub keep_last_tagged: usize,
    pub untagged_max_age_days: Option<u32>,
    pub tagged_max_age_days: Option<u32>,
    pub protect_tags: Vec<glob::Pattern>,
    pub keep_semver_releases: usize,
    pub pinned_digests: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PrunePolicyError(String);

impl PrunePolicy {
    pub fn from_json(text: &str) -> Result<Self, PrunePolicyError> {
        let policy: Self =
            serde_json::from_str(text).map_err(|e| PrunePolicyError(e.to_string()))?;
        let sets = std::iter::once(("default".to_string(), &policy.default)).chain(
            policy
                .repositories
                .iter()
                .map(|(k, v)| (format!("repositories.{k:?}"), v)),
        );
        for (at, set) in sets {
            for tag in set.protect_tags.iter().flatten() {
                glob::Pattern::new(tag)
                    .map_err(|e| PrunePolicyError(format!("{at}.protectTags: {tag:?}: {e}")))?;
            }
            for digest in set.pinned_digests.iter().flatten() {
                if !is_digest(digest) {
                    return Err(PrunePolicyError(format!(
                        "{at}.pinnedDigests: {digest:?} is not sha256:<64 hex>"
                    )));
                }
            }
        }
        for key in policy.repositories.keys() {
            glob::Pattern::new(key)
                .map_err(|e| PrunePolicyError(format!("repositories: {key:?}: {e}")))?;
        }
        Ok(policy)
    }

    pub fn rules_for(&self, repository: &str) -> Rules {
        let mut rules = Rules {
            keep_last_tagged: 10,
            untagged_max_age_days: Some(7),
            tagged_max_age_days: None,
            protect_tags: vec![glob::Pattern::new("latest").expect("valid")],
            keep_semver_releases: 5,
            pinned_digests: BTreeSet::new(),
        };
        let mut apply = |set: &RuleSet| {
            if let Some(n) = set.keep_last_tagged {
                rules.keep_last_tagged = n;
            }
            if let Some(d) = set.untagged_max_age_days {
                rules.untagged_max_age_days = d;
            }
            if let Some(d) = set.tagged_max_age_days {
                rules.tagged_max_age_days = d;
            }
            if let Some(tags) = &set.protect_tags {
                rules.protect_tags = tags
                    .iter()
                    .filter_map(|t| glob::Pattern::new(t).ok())
                    .collect();
            }
            if let Some(n) = set.keep_semver_releases {
                rules.keep_semver_releases = n;
            }
            if let Some(pins) = &set.pinned_digests {
                rules.pinned_digests = pins.iter().cloned().collect();
            }
        };
        apply(&self.default);
        for (pattern, set) in &self.repositories {
            let is_glob = pattern.contains(['*', '?', '[']);
            if is_glob && glob::Pattern::new(pattern).is_ok_and(|p| p.matches(repository)) {
                apply(set);
            }
        }
        if let Some(exact) = self.repositories.get(repository) {
            apply(exact);
        }
        rules
    }
}

pub fn is_digest(s: &str) -> bool {
    s.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
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

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RepoPlan {
    pub repository: String,
    /// Every image, sorted by digest, with exactly one reason.
    pub decisions: Vec<Decision>,
    /// The digests to delete in waves: every index is in an earlier wave than the manifests it
    /// references (ECR refuses to delete a manifest an index still references).
    pub delete_waves: Vec<Vec<String>>,
    pub bytes_freed: u64,
}

fn semver_of(tag: &str) -> Option<semver::Version> {
    let v = semver::Version::parse(tag.strip_prefix('v').unwrap_or(tag)).ok()?;
    v.pre.is_empty().then_some(v)
}

pub fn plan_repository(
    repository: &str,
    images: &[Image],
    in_use: &BTreeMap<String, InUseKind>,
    rules: &Rules,
    now: i64,
) -> RepoPlan {
    use PruneReason::*;
    let mut decided: BTreeMap<&str, (Verdict, PruneReason)> = BTreeMap::new();
    let keep = |r| (Verdict::Keep, r);
    let any_unreadable = images.iter().any(|i| matches!(i.manifests, Some(Err(_))));
    let mut parents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for img in images {
        if let Some(Ok(children)) = &img.manifests {
            for c in children {
                parents
                    .entry(c.as_str())
                    .or_default()
                    .push(img.digest.as_str());
            }
        }
    }

    // 1. Reasons of the image's own.
    for img in images {
        let own = if let Some(kind) = in_use.get(&img.digest) {
            Some(PruneReason::of(*kind))
        } else if rules.pinned_digests.contains(&img.digest) {
            Some(Pinned)
        } else if img
            .tags
            .iter()
            .any(|t| rules.protect_tags.iter().any(|p| p.matches(t)))
        {
            Some(ProtectedTag)
        } else if matches!(img.manifests, Some(Err(_))) {
            Some(UnreadableManifest)
        } else {
            None
        };
        if let Some(reason) = own {
            decided.insert(&img.digest, keep(reason));
        }
    }

    // 2. Tagged images: the newest N by push time, the newest semver releases, age.
    let mut tagged: Vec<&Image> = images.iter().filter(|i| !i.tags.is_empty()).collect();
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

    // 3. Untagged images in graph order (an image is decided once all its parents are): by
    //    their parents, then by age; a kept index keeps what it references, transitively.
    let mut sorted: Vec<&Image> = images.iter().collect();
    sorted.sort_by(|a, b| a.digest.cmp(&b.digest));
    propagate_keeps(&sorted, &mut decided);
    loop {
        let mut progressed = false;
        for img in &sorted {
            if decided.contains_key(img.digest.as_str()) {
                continue;
            }
            let verdict = match parents.get(img.digest.as_str()) {
                _ if any_unreadable => keep(UnreadableManifest),
                None => untagged_by_age(img, rules, now),
                Some(ps) => {
                    let verdicts: Vec<_> =
                        ps.iter().map(|p| decided.get(p).map(|(v, _)| *v)).collect();
                    if verdicts.contains(&Some(Verdict::Keep)) {
                        keep(ChildOfKeptIndex)
                    } else if verdicts.iter().all(|v| *v == Some(Verdict::Delete)) {
                        (Verdict::Delete, ChildOfDeletedIndex)
                    } else {
                        continue; // a parent is not decided yet
                    }
                }
            };
            decided.insert(&img.digest, verdict);
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
    propagate_keeps(&sorted, &mut decided);

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

    // Parents before children: depth = longest chain of deleted parents above an image.
    let deleted: BTreeSet<&str> = decisions
        .iter()
        .filter(|d| d.verdict == Verdict::Delete)
        .map(|d| d.digest.as_str())
        .collect();
    fn depth<'a>(
        d: &'a str,
        parents: &BTreeMap<&'a str, Vec<&'a str>>,
        deleted: &BTreeSet<&str>,
        guard: usize,
    ) -> usize {
        if guard == 0 {
            return 0;
        }
        parents
            .get(d)
            .into_iter()
            .flatten()
            .filter(|p| deleted.contains(**p))
            .map(|p| depth(p, parents, deleted, guard - 1) + 1)
            .max()
            .unwrap_or(0)
    }
    let mut delete_waves: Vec<Vec<String>> = Vec::new();
    for d in &deleted {
        let level = depth(d, &parents, &deleted, 16);
        if delete_waves.len() <= level {
            delete_waves.resize(level + 1, Vec::new());
        }
        delete_waves[level].push(d.to_string());
    }
    RepoPlan {
        repository: repository.to_string(),
        bytes_freed: decisions
            .iter()
            .filter(|d| d.verdict == Verdict::Delete)
            .map(|d| d.size)
            .sum(),
        delete_waves,
        decisions,
    }
}

/// A kept index keeps every image it references, overriding a delete, until nothing changes.
fn propagate_keeps<'a>(
    images: &[&'a Image],
    decided: &mut BTreeMap<&'a str, (Verdict, PruneReason)>,
) {
    let present: BTreeSet<&str> = images.iter().map(|i| i.digest.as_str()).collect();
    loop {
        let mut changed = false;
        for img in images {
            let Some(Ok(children)) = &img.manifests else {
                continue;
            };
            if decided
                .get(img.digest.as_str())
                .is_none_or(|(v, _)| *v != Verdict::Keep)
            {
                continue;
            }
            for c in children {
                let Some(c) = present.get(c.as_str()) else {
                    continue;
                };
                if decided.get(c).is_some_and(|(v, _)| *v == Verdict::Delete) {
                    decided.insert(c, (Verdict::Keep, PruneReason::ChildOfKeptIndex));
                    changed = true;
                }
            }
        }
        if !changed {
            return;
        }
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

/// `registry/repo:tag`, `registry/repo@sha256:…` or `repo:tag` -> (repository, tag or digest).
pub fn parse_image_ref(image: &str) -> Option<(String, ImageRefTarget)> {
    let (name, target) = if let Some((name, digest)) = image.split_once('@') {
        (name, ImageRefTarget::Digest(digest.to_string()))
    } else {
        let slash = image.rfind('/').map_or(0, |i| i + 1);
        match image[slash..].rfind(':') {
            Some(colon) => (
                &image[..slash + colon],
                ImageRefTarget::Tag(image[slash + colon + 1..].to_string()),
            ),
            None => (image, ImageRefTarget::Tag("latest".into())),
        }
    };
    // The repository is the path after an ECR registry host (`<account>.dkr.ecr.<region>.amazonaws.com/`).
    let repo = match name.split_once('/') {
        Some((host, rest)) if host.contains('.') || host.contains(':') => rest,
        _ => name,
    };
    Some((repo.to_string(), target))
}

/// The digests of `repository` that `uses` depend on, each with its strongest reason.
pub fn in_use_in(
    repository: &str,
    images: &[Image],
    uses: &[crate::ports::ImageUse],
) -> BTreeMap<String, InUseKind> {
    let by_tag: BTreeMap<&str, &str> = images
        .iter()
        .flat_map(|i| i.tags.iter().map(move |t| (t.as_str(), i.digest.as_str())))
        .collect();
    let mut out: BTreeMap<String, InUseKind> = BTreeMap::new();
    for u in uses {
        let Some((repo, target)) = parse_image_ref(&u.image) else {
            continue;
        };
        if repo != repository {
            continue;
        }
        let mut digests = Vec::new();
        // The digest a task really runs, and what its reference names today: both stay.
        if let Some(d) = &u.digest {
            digests.push(d.clone());
        }
        match target {
            ImageRefTarget::Digest(d) => digests.push(d),
            ImageRefTarget::Tag(t) => digests.extend(by_tag.get(t.as_str()).map(|d| d.to_string())),
        }
        for d in digests {
            let kind = out.entry(d).or_insert(u.kind);
            *kind = (*kind).min(u.kind);
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRefTarget {
    Tag(String),
    Digest(String),
}

#[cfg(test)]
mod tests;
