//! Which ECR images go (pure): rules from `PRUNE_POLICY`, the in-use set by digest, and the image
//! graph (an index keeps its children; indexes are deleted before their children).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Deserializer, Serialize};

use crate::caps::{Caps, PercentSetting};
use crate::retention::SECONDS_PER_DAY;

pub const INDEX_MEDIA_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

mod reference;
pub use reference::{ImageRef, ReferenceError};

/// One image (manifest) of a repository, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub digest: String,
    pub tags: Vec<String>,
    pub pushed_at: i64,
    pub size: u64,
    /// The manifest's media type; empty when the registry did not say (then the manifest itself
    /// must be read before anything can be decided about what it references).
    pub media_type: String,
    /// For an index: the manifests it references, or why it could not be read.
    pub manifests: Option<Result<Vec<String>, String>>,
    /// For a referrer (signature, attestation, SBOM): the image it is about.
    pub subject: Subject,
}

/// What is known about an image's OCI `subject` (the image a referrer is about).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// Not reported by the registry and the manifest not read yet: the image may be a referrer,
    /// so the planner never deletes it (it asks for the manifest instead).
    Unknown,
    /// Known not to be a referrer.
    None,
    /// A referrer of this digest.
    Of(String),
    /// The manifest could not be read.
    Unreadable(String),
}

impl Image {
    pub fn is_index(&self) -> bool {
        INDEX_MEDIA_TYPES.contains(&self.media_type.as_str())
    }

    /// Whether the manifest must be read before planning: an index (its children), or an image
    /// whose media type the registry did not report (it may be an index).
    pub fn needs_manifest(&self) -> bool {
        self.manifests.is_none() && (self.is_index() || self.media_type.is_empty())
    }

    /// Records what the manifest says (or why it could not be read). Manifests are addressed by
    /// their digest, so what they say never changes.
    pub fn learn(&mut self, manifest: Result<&ManifestFacts, &str>) {
        match manifest {
            Ok(facts) => {
                if self.media_type.is_empty() {
                    self.media_type = facts.media_type.clone().unwrap_or_default();
                }
                if self.is_index() || facts.children.is_some() {
                    self.manifests = Some(Ok(facts.children.clone().unwrap_or_default()));
                }
                self.subject = match &facts.subject {
                    Some(d) => Subject::Of(d.clone()),
                    None => Subject::None,
                };
            }
            Err(e) => {
                // An index (or what may be one) that cannot be read hides its children.
                if self.is_index() || self.media_type.is_empty() {
                    self.manifests = Some(Err(e.to_string()));
                }
                if !matches!(self.subject, Subject::Of(_)) {
                    self.subject = Subject::Unreadable(e.to_string());
                }
            }
        }
    }
}

/// What a manifest says about the image graph.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManifestFacts {
    pub media_type: Option<String>,
    /// For an index: every manifest it references (platform images and attestations alike).
    pub children: Option<Vec<String>>,
    /// The `subject` of a referrer.
    pub subject: Option<String>,
}

/// Reads a manifest document (image manifest or index, OCI or Docker).
pub fn manifest_facts(manifest_json: &str) -> Result<ManifestFacts, String> {
    let v: serde_json::Value = serde_json::from_str(manifest_json).map_err(|e| e.to_string())?;
    let digest_of = |m: &serde_json::Value, what: &str| {
        m.get("digest")
            .and_then(|d| d.as_str())
            .map(str::to_string)
            .ok_or_else(|| format!("{what} without digest"))
    };
    let children = match v.get("manifests") {
        None => None,
        Some(list) => Some(
            list.as_array()
                .ok_or("\"manifests\" is not a list")?
                .iter()
                .map(|m| digest_of(m, "manifest"))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let subject = match v.get("subject") {
        None | Some(serde_json::Value::Null) => None,
        Some(s) => Some(digest_of(s, "subject")?),
    };
    Ok(ManifestFacts {
        media_type: v
            .get("mediaType")
            .and_then(|m| m.as_str())
            .map(str::to_string),
        children,
        subject,
    })
}

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
                // Registries write digests in lower case; a pin in upper case means the same image.
                rules.pinned_digests = pins.iter().map(|p| p.to_ascii_lowercase()).collect();
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
                for c in children {
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
        if img.subject == Subject::Unknown {
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
        if img.subject == Subject::Unknown
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

fn untagged_by_age(img: &Image, rules: &Rules, now: i64) -> (Verdict, PruneReason) {
    match rules.untagged_max_age_days {
        None => (Verdict::Keep, PruneReason::NoAgeLimit),
        Some(days) if now - img.pushed_at >= i64::from(days) * SECONDS_PER_DAY => {
            (Verdict::Delete, PruneReason::UntaggedExpired)
        }
        Some(_) => (Verdict::Keep, PruneReason::TooYoung),
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

/// An image as the registry lists it (manifests are read separately).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageDetail {
    pub digest: String,
    pub tags: Vec<String>,
    pub pushed_at: i64,
    pub size: u64,
    /// The manifest's media type; empty when the registry does not say.
    pub media_type: String,
    /// For a referrer (signature, attestation): the digest it is about, when the registry says.
    pub subject: Option<String>,
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

#[cfg(test)]
mod tests;
