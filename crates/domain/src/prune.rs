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

use graph::{propagate_keeps, Digests, Graph};
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
    /// Archived (by anyone: ECR's own lifecycle rules too) and its rule has no `archiveDays`:
    /// only the archive step deletes archived images.
    ArchivedWithoutArchiveDays,
    /// Archived, but the registry does not say since when: never deleted.
    ArchivedSinceUnknown,
    /// Archived fewer than `archiveDays` days ago.
    ArchivedTooRecently,
    /// Being restored from the archive: neither archived nor deleted.
    Activating,
    /// A storage status this code does not know: left as it is.
    UnknownStatus,
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
    /// Moved to the archive storage class (the archive step), deleted after `archiveDays`.
    Archive,
    /// Kept, and back to standard storage: archived but in use or pinned.
    Restore,
}

impl Verdict {
    /// Whether the image stays in the registry (kept, restored or archived).
    pub fn stays(self) -> bool {
        self != Verdict::Delete
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub digest: String,
    pub tags: Vec<String>,
    pub verdict: Verdict,
    pub reason: PruneReason,
    pub size: u64,
    /// The image's storage status as listed (shown when not active).
    #[serde(skip_serializing_if = "ImageStatus::is_active")]
    pub status: ImageStatus,
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
    /// The digests to archive, in waves like the deletes: an index before the manifests it
    /// references, a subject before its referrers (an index never stays pullable while a child
    /// of it is archived).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub archive_waves: Vec<Vec<String>>,
    /// For each digest to archive, the digests to archive that must be archived first.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub archive_after: BTreeMap<String, Vec<String>>,
    #[serde(skip_serializing_if = "is_zero")]
    pub bytes_archived: u64,
    /// Archived images that are in use or pinned (or below one: a child, a referrer): restored
    /// to standard storage first thing, whatever the caps.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub restores: Vec<String>,
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

    /// How many images the plan archives, over every repository.
    pub fn archives(&self) -> usize {
        self.repositories.iter().map(|r| r.archives().len()).sum()
    }

    /// How many images the plan restores, over every repository.
    pub fn restores(&self) -> usize {
        self.repositories.iter().map(|r| r.restores.len()).sum()
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
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

    pub fn archives(&self) -> BTreeSet<&str> {
        self.archive_waves
            .iter()
            .flatten()
            .map(String::as_str)
            .collect()
    }

    /// The plan within `caps` (counted over the repository's images): over a cap, every delete
    /// and every archive becomes a keep with reason `skipped_cap`, nothing is left to delete or
    /// archive, and `cap_exceeded` says why. Restores are not capped (they only make safe).
    pub fn capped(mut self, caps: &Caps) -> Self {
        let acts: Vec<usize> = (0..self.decisions.len())
            .filter(|i| {
                matches!(
                    self.decisions[*i].verdict,
                    Verdict::Delete | Verdict::Archive
                )
            })
            .collect();
        let what = if self.archive_waves.is_empty() {
            "images to delete"
        } else {
            "images to archive or delete"
        };
        let capped = caps.apply(what, acts, self.decisions.len());
        for i in capped.skipped {
            let decision = &mut self.decisions[i];
            decision.verdict = Verdict::Keep;
            decision.reason = PruneReason::SkippedCap;
        }
        if let Some(why) = capped.exceeded {
            self.delete_waves.clear();
            self.delete_after.clear();
            self.bytes_freed = 0;
            self.archive_waves.clear();
            self.archive_after.clear();
            self.bytes_archived = 0;
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

/// What the first plan removes, which bounds its re-check: the re-check deletes only what the
/// first plan deletes, and archives only what it archives.
#[derive(Debug, Clone, Copy)]
struct Allowed<'a> {
    deletes: &'a BTreeSet<&'a str>,
    archives: &'a BTreeSet<&'a str>,
}

/// The fresh re-check right before deleting or archiving: plans again from freshly read images
/// and in-use set, and deletes only what both this plan and `first` delete (archives only what
/// both archive). What either keeps stays, and so does everything below it (its children and
/// referrers).
pub fn replan_repository(
    first: &RepoPlan,
    images: &[Image],
    in_use: &BTreeMap<String, InUseKind>,
    rules: &Rules,
    now: i64,
) -> RepoPlan {
    let deletes = first.deletes();
    let archives = first.archives();
    plan(
        &first.repository,
        images,
        in_use,
        rules,
        now,
        Some(Allowed {
            deletes: &deletes,
            archives: &archives,
        }),
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

/// An image's subject as the planner takes it: the listing's, or (cosign) the one its tag names.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SubjectIs<'a> {
    Of(&'a str),
    Unreadable,
    /// Not a referrer, or not known to be one (manifest not read: `unread` below).
    NoSubject,
}

// Every step works on digest numbers (`Digests`, in digest order) and vectors indexed by them,
// each digest compared, hashed and copied a few times in all: a plan of a million images takes
// a fraction of a second. It decides exactly what the first, map-based version did (the tests
// hold the two equal on every input they make, listings with repeated digests included).
fn plan(
    repository: &str,
    images: &[Image],
    in_use: &BTreeMap<String, InUseKind>,
    rules: &Rules,
    now: i64,
    allowed: Option<Allowed<'_>>,
) -> RepoPlan {
    use PruneReason::*;
    let keep = |r| Some((Verdict::Keep, r));
    let digests = Digests::new(images);
    let n = digests.len();
    // cosign's default storage names a signature, attestation or SBOM by a tag derived from the
    // digest it is about (`sha256-<hex>.sig`) instead of an OCI `subject`: the same relation.
    let tag_subjects: Vec<Option<String>> = images
        .iter()
        .map(|img| match img.subject {
            Subject::Of(_) => None,
            _ if img.tags.is_empty() => None,
            _ => tag_subject(img),
        })
        .collect();
    let subject_of = |i: usize| -> SubjectIs<'_> {
        match (&images[i].subject, &tag_subjects[i]) {
            (Subject::Of(s), _) => SubjectIs::Of(s),
            (_, Some(s)) => SubjectIs::Of(s),
            (Subject::Unreadable(_), None) => SubjectIs::Unreadable,
            (Subject::Unknown | Subject::None, None) => SubjectIs::NoSubject,
        }
    };
    let subjects: Vec<Option<&str>> = (0..images.len())
        .map(|i| match subject_of(i) {
            SubjectIs::Of(s) => Some(s),
            _ => None,
        })
        .collect();
    let graph = Graph::new(images, &digests, &subjects);
    // Whose manifest was not read is decided as unread whatever its tags say: a tag names a
    // subject, but only the manifest says whether it has another one (or children).
    let mut unread = vec![false; n];
    for (i, img) in images.iter().enumerate() {
        if img.subject == Subject::Unknown {
            unread[digests.of_image[i] as usize] = true;
        }
    }
    let any_unreadable = images.iter().any(|i| matches!(i.manifests, Some(Err(_))));
    let mut decided: Vec<Option<(Verdict, PruneReason)>> = vec![None; n];

    // Digests an in-use image references through index manifests, listed or not: a referrer of
    // one of them (a signature of a platform's child manifest) is about something in use.
    let mut used_below: BTreeSet<&str> = in_use.keys().map(String::as_str).collect();
    let mut stack: Vec<&str> = used_below.iter().copied().collect();
    while let Some(d) = stack.pop() {
        let Some(id) = digests.id(d) else { continue };
        if let Some(Ok(children)) = &images[digests.last[id as usize] as usize].manifests {
            for c in children {
                if used_below.insert(c) {
                    stack.push(c);
                }
            }
        }
    }
    let mut in_use_kind: Vec<Option<InUseKind>> = vec![None; n];
    for (d, kind) in in_use {
        if let Some(id) = digests.id(d) {
            in_use_kind[id as usize] = Some(*kind);
        }
    }
    let mut pinned = vec![false; n];
    for d in &rules.pinned_digests {
        if let Some(id) = digests.id(d) {
            pinned[id as usize] = true;
        }
    }

    // 1. Reasons of the image's own.
    for (i, img) in images.iter().enumerate() {
        let id = digests.of_image[i] as usize;
        let own = if let Some(kind) = in_use_kind[id] {
            Some(PruneReason::of(kind))
        } else if matches!(subject_of(i), SubjectIs::Of(s) if used_below.contains(s)) {
            // About an image in use, even one this listing does not show.
            Some(ReferrerOfKeptImage)
        } else if pinned[id] {
            Some(Pinned)
        } else if img
            .tags
            .iter()
            .any(|t| rules.protect_tags.iter().any(|p| p.matches(t)))
        {
            Some(ProtectedTag)
        } else if matches!(img.manifests, Some(Err(_))) || subject_of(i) == SubjectIs::Unreadable {
            Some(UnreadableManifest)
        } else {
            None
        };
        if let Some(reason) = own {
            decided[id] = keep(reason);
        }
    }

    // 2. Tagged images: the newest N by push time, the newest semver releases, age. A referrer
    //    whose subject is here follows its subject instead (step 3), whatever its tags.
    let mut tagged: Vec<usize> = (0..images.len())
        .filter(|i| {
            !images[*i].tags.is_empty() && graph.subject[digests.of_image[*i] as usize].is_none()
        })
        .collect();
    tagged.sort_by(|a, b| {
        images[*b]
            .pushed_at
            .cmp(&images[*a].pushed_at)
            .then_with(|| digests.of_image[*a].cmp(&digests.of_image[*b]))
    });
    let mut newest = vec![false; n];
    for i in tagged.iter().take(rules.keep_last_tagged) {
        newest[digests.of_image[*i] as usize] = true;
    }
    let mut releases: Vec<(semver::Version, u32)> = tagged
        .iter()
        .flat_map(|i| {
            let id = digests.of_image[*i];
            images[*i]
                .tags
                .iter()
                .filter_map(|t| semver_of(t))
                .map(move |v| (v, id))
        })
        .collect();
    releases.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let mut release_keep = vec![false; n];
    let mut seen_versions = BTreeSet::new();
    for (v, id) in &releases {
        if seen_versions.len() >= rules.keep_semver_releases && !seen_versions.contains(v) {
            break;
        }
        seen_versions.insert(v.clone());
        release_keep[*id as usize] = true;
    }
    for &i in &tagged {
        let id = digests.of_image[i] as usize;
        if decided[id].is_some() {
            continue;
        }
        let age = now - images[i].pushed_at;
        let expired = rules
            .tagged_max_age_days
            .is_some_and(|d| age >= i64::from(d) * SECONDS_PER_DAY);
        decided[id] = if release_keep[id] {
            keep(SemverRelease)
        } else if expired {
            Some((Verdict::Delete, TaggedExpired))
        } else if newest[id] {
            keep(KeepLastN)
        } else {
            Some((Verdict::Delete, TaggedBeyondKeepLast))
        };
    }

    // 3. The rest in graph order (an image is decided once everything above it is): by its
    //    index parents and subject, then by age; what is kept keeps what is below it. Passes in
    //    digest order over what is still undecided, as long as one decides something.
    propagate_keeps(&graph, &mut decided);
    let mut undecided: Vec<u32> = digests
        .sorted
        .iter()
        .copied()
        .filter(|i| decided[digests.of_image[*i as usize] as usize].is_none())
        .collect();
    loop {
        let before = undecided.len();
        undecided.retain(|&i| {
            let id = digests.of_image[i as usize];
            if decided[id as usize].is_some() {
                return false;
            }
            let verdict = if any_unreadable {
                keep(UnreadableManifest)
            } else if graph.above(id).next().is_none() {
                Some(untagged_by_age(&images[i as usize], rules, now))
            } else {
                let verdict_of = |p: u32| decided[p as usize].map(|(v, _)| v);
                let by_subject = graph.subject[id as usize];
                if graph
                    .above(id)
                    .any(|p| verdict_of(p) == Some(Verdict::Keep))
                {
                    let kept_subject =
                        by_subject.is_some_and(|s| verdict_of(s) == Some(Verdict::Keep));
                    keep(if kept_subject {
                        ReferrerOfKeptImage
                    } else {
                        ChildOfKeptIndex
                    })
                } else if graph
                    .above(id)
                    .all(|p| verdict_of(p) == Some(Verdict::Delete))
                {
                    let reason = if by_subject.is_some() {
                        ReferrerOfDeletedImage
                    } else {
                        ChildOfDeletedIndex
                    };
                    Some((Verdict::Delete, reason))
                } else {
                    return true; // something above is not decided yet
                }
            };
            decided[id as usize] = verdict;
            false
        });
        if undecided.len() == before {
            break;
        }
    }
    // Only a reference cycle (impossible for real digests) leaves anything undecided: keep it.
    let mut decided: Vec<(Verdict, PruneReason)> = decided
        .into_iter()
        .map(|d| d.unwrap_or((Verdict::Keep, ChildOfKeptIndex)))
        .collect();

    // 4. Deletes that may not happen yet: not deleted by the first plan (re-check), or possibly
    //    a referrer of something kept (manifest not read).
    for &i in &digests.sorted {
        let id = digests.of_image[i as usize] as usize;
        if decided[id].0 != Verdict::Delete {
            continue;
        }
        if unread[id] {
            decided[id] = (Verdict::Keep, SubjectUnknown);
        } else if allowed.is_some_and(|a| {
            let name = digests.names[id];
            !a.deletes.contains(name) && !a.archives.contains(name)
        }) {
            decided[id] = (Verdict::Keep, ChangedSincePlan);
        }
    }
    let mut wrapped: Vec<Option<(Verdict, PruneReason)>> = decided.into_iter().map(Some).collect();
    propagate_keeps(&graph, &mut wrapped);
    let decided: Vec<(Verdict, PruneReason)> = wrapped.into_iter().flatten().collect();
    // Read: what would be deleted, and untagged images outside any index (a signature or
    // attestation of something deleted goes with it, however young).
    let mut unread_subjects = Vec::new();
    for &i in &digests.sorted {
        let img = &images[i as usize];
        let id = digests.of_image[i as usize];
        if unread[id as usize]
            && (decided[id as usize].1 == SubjectUnknown
                || (img.tags.is_empty() && !img.is_index() && graph.parents.get(id).is_empty()))
        {
            unread_subjects.push(img.digest.clone());
        }
    }

    // 5. Storage: what the rules remove is archived first where the rule has an archive step,
    //    and deleted only once it has been archived long enough; archived images the rules
    //    would not remove but that are in use or pinned go back to standard storage.
    let status = storage_of(images, &digests);
    let decided = settle_storage(&graph, &digests, &status, decided, rules, now, allowed);
    let restores = restores_of(&graph, &digests, &status, in_use, &pinned, &decided);
    let mut decided = decided;
    for &id in &restores {
        decided[id as usize].0 = Verdict::Restore;
    }

    // One decision per digest, by digest: the first image the listing shows with it.
    let decisions: Vec<Decision> = (0..n)
        .map(|id| {
            let img = &images[digests.first[id] as usize];
            let (verdict, reason) = decided[id];
            Decision {
                digest: img.digest.clone(),
                tags: img.tags.clone(),
                verdict,
                reason,
                size: img.size,
                status: status[id].0,
            }
        })
        .collect();

    let deleted: Vec<bool> = decided.iter().map(|d| d.0 == Verdict::Delete).collect();
    let (delete_waves, delete_after, bytes_freed) = waves(&graph, &digests, &deleted, &decisions);
    let archived: Vec<bool> = decided.iter().map(|d| d.0 == Verdict::Archive).collect();
    let (archive_waves, archive_after, bytes_archived) =
        waves(&graph, &digests, &archived, &decisions);
    RepoPlan {
        repository: repository.to_string(),
        bytes_freed,
        delete_waves,
        delete_after,
        unread_subjects,
        archive_waves,
        archive_after,
        bytes_archived,
        restores: restores
            .into_iter()
            .map(|id| digests.names[id as usize].to_string())
            .collect(),
        decisions,
        cap_exceeded: None,
    }
}

/// Each digest's storage status and `lastArchivedAt`. Listings that disagree about one digest
/// (impossible in ECR) make it [`ImageStatus::Unknown`]: left as it is.
fn storage_of(images: &[Image], digests: &Digests<'_>) -> Vec<(ImageStatus, Option<i64>)> {
    let mut status: Vec<Option<(ImageStatus, Option<i64>)>> = vec![None; digests.len()];
    for (i, img) in images.iter().enumerate() {
        let slot = &mut status[digests.of_image[i] as usize];
        *slot = match *slot {
            None => Some((img.status, img.archived_at)),
            Some(seen) if seen == (img.status, img.archived_at) => Some(seen),
            Some(_) => Some((ImageStatus::Unknown, None)),
        };
    }
    status
        .into_iter()
        .map(|s| s.unwrap_or((ImageStatus::Unknown, None)))
        .collect()
}

/// Step 5 of the plan: every delete the rules decided, by the image's storage status.
/// - Active: deleted, or with `archiveDays` archived instead.
/// - Archived: deleted only when the rule has `archiveDays`, `lastArchivedAt` is known and
///   that many days old; otherwise kept (whoever archived it: ECR's own rules too).
/// - Activating or unknown: kept.
///
/// In a re-check, a delete must be one the first plan deletes and an archive one it archives.
/// Then what stays keeps what is below it from going: a kept (active) image keeps its children
/// and referrers as they are, and an archived one keeps them from being deleted (ECR refuses to
/// delete a manifest an index still references, archived or not).
fn settle_storage(
    graph: &Graph,
    digests: &Digests<'_>,
    status: &[(ImageStatus, Option<i64>)],
    mut decided: Vec<(Verdict, PruneReason)>,
    rules: &Rules,
    now: i64,
    allowed: Option<Allowed<'_>>,
) -> Vec<(Verdict, PruneReason)> {
    use PruneReason::*;
    let mut changed = false;
    for (id, decision) in decided.iter_mut().enumerate() {
        let (verdict, reason) = *decision;
        if verdict != Verdict::Delete {
            continue;
        }
        let keep = |r| (Verdict::Keep, r);
        let mut settled = match (status[id], rules.archive_days) {
            ((ImageStatus::Active, _), None) => (Verdict::Delete, reason),
            ((ImageStatus::Active, _), Some(_)) => (Verdict::Archive, reason),
            ((ImageStatus::Archived, _), None) => keep(ArchivedWithoutArchiveDays),
            ((ImageStatus::Archived, None), Some(_)) => keep(ArchivedSinceUnknown),
            ((ImageStatus::Archived, Some(at)), Some(days)) => {
                if now.saturating_sub(at) >= i64::from(days) * SECONDS_PER_DAY {
                    (Verdict::Delete, reason)
                } else {
                    keep(ArchivedTooRecently)
                }
            }
            ((ImageStatus::Activating, _), _) => keep(Activating),
            ((ImageStatus::Unknown, _), _) => keep(UnknownStatus),
        };
        if let Some(a) = allowed {
            let name = digests.names[id];
            let shown = match settled.0 {
                Verdict::Delete => a.deletes.contains(name),
                Verdict::Archive => a.archives.contains(name),
                _ => true,
            };
            if !shown {
                settled = keep(ChangedSincePlan);
            }
        }
        changed |= settled != *decision;
        *decision = settled;
    }
    if changed {
        propagate_stays(graph, &mut decided);
    }
    decided
}

/// What stays above keeps what is below: a kept image keeps its children and referrers (from
/// being deleted or archived), an archived one keeps them from being deleted.
fn propagate_stays(graph: &Graph, decided: &mut [(Verdict, PruneReason)]) {
    let mut stack: Vec<u32> = (0..decided.len() as u32)
        .filter(|d| decided[*d as usize].0 != Verdict::Delete)
        .collect();
    while let Some(d) = stack.pop() {
        let above = decided[d as usize].0;
        for &b in graph.below.get(d) {
            let below = decided[b as usize].0;
            let held = match above {
                Verdict::Keep | Verdict::Restore => {
                    matches!(below, Verdict::Delete | Verdict::Archive)
                }
                Verdict::Archive => below == Verdict::Delete,
                Verdict::Delete => false,
            };
            if held {
                let reason = if graph.subject[b as usize] == Some(d) {
                    PruneReason::ReferrerOfKeptImage
                } else {
                    PruneReason::ChildOfKeptIndex
                };
                decided[b as usize] = (Verdict::Keep, reason);
                stack.push(b);
            }
        }
    }
}

/// Archived images that must be pullable: in use (by a task, service, task definition or
/// function; an unparsable reference names no image that could be pulled), pinned, or below one
/// (a platform image of an index in use, a signature of an image in use). All are kept.
fn restores_of(
    graph: &Graph,
    digests: &Digests<'_>,
    status: &[(ImageStatus, Option<i64>)],
    in_use: &BTreeMap<String, InUseKind>,
    pinned: &[bool],
    decided: &[(Verdict, PruneReason)],
) -> Vec<u32> {
    let mut needed = vec![false; digests.len()];
    let mut stack: Vec<u32> = in_use
        .iter()
        .filter(|(_, kind)| **kind != InUseKind::AmbiguousReference)
        .filter_map(|(d, _)| digests.id(d))
        .chain((0..digests.len() as u32).filter(|id| pinned[*id as usize]))
        .collect();
    while let Some(d) = stack.pop() {
        if std::mem::replace(&mut needed[d as usize], true) {
            continue;
        }
        stack.extend(graph.below.get(d).iter().copied());
    }
    (0..digests.len() as u32)
        .filter(|id| needed[*id as usize] && status[*id as usize].0 == ImageStatus::Archived)
        .inspect(|id| {
            debug_assert_eq!(
                decided[*id as usize].0,
                Verdict::Keep,
                "a needed image is kept"
            )
        })
        .collect()
}

/// The waves of the images `chosen` (deleted, or archived): depth = the longest chain of chosen
/// images above an image, so every index comes before what it references and every subject
/// before its referrers; for each, the chosen images that must be done first; their bytes.
fn waves(
    graph: &Graph,
    digests: &Digests<'_>,
    chosen: &[bool],
    decisions: &[Decision],
) -> (Vec<Vec<String>>, BTreeMap<String, Vec<String>>, u64) {
    fn depth_of(
        d: u32,
        graph: &Graph,
        chosen: &[bool],
        memo: &mut [Option<usize>],
        guard: usize,
    ) -> usize {
        if let Some(n) = memo[d as usize] {
            return n;
        }
        if guard == 0 {
            return 0;
        }
        let n = graph
            .above(d)
            .filter(|p| chosen[*p as usize])
            .map(|p| depth_of(p, graph, chosen, memo, guard - 1) + 1)
            .max()
            .unwrap_or(0);
        memo[d as usize] = Some(n);
        n
    }
    let n = chosen.len();
    let mut depth = vec![None; n];
    let mut out_waves: Vec<Vec<String>> = Vec::new();
    let mut after = Vec::new();
    let mut bytes = 0;
    for id in (0..n as u32).filter(|id| chosen[*id as usize]) {
        let level = depth_of(id, graph, chosen, &mut depth, 64);
        if out_waves.len() <= level {
            out_waves.resize(level + 1, Vec::new());
        }
        let digest = digests.names[id as usize];
        out_waves[level].push(digest.to_string());
        bytes += decisions[id as usize].size;
        let mut first: Vec<u32> = graph.above(id).filter(|p| chosen[*p as usize]).collect();
        if !first.is_empty() {
            first.sort_unstable();
            first.dedup();
            let first = first
                .into_iter()
                .map(|p| digests.names[p as usize].to_string())
                .collect();
            after.push((digest.to_string(), first));
        }
    }
    // In digest order already: built in one pass.
    (out_waves, after.into_iter().collect(), bytes)
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
mod archive_tests;
#[cfg(test)]
mod straightforward;
#[cfg(test)]
mod tests;
