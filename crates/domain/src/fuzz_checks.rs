//! Property checks over hostile input, one per fuzz target (`fuzz/fuzz_targets/`). The same
//! functions replay the committed corpus (`fuzz/corpus/<target>/`) in `tests/fuzz_corpus.rs` on
//! the stable toolchain, so a regression cannot land without nightly in CI. Each check takes the
//! raw bytes a fuzzer produces, runs the parser or planner on them and asserts what must hold for
//! any input; a failed assertion is a finding, exactly like a panic inside the code under test.
//!
//! The oracles here are written independently of the code they check (the id alphabet, the image
//! graph's reachability), so a bug in one is not mirrored in the other.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path};

use serde_json::Value as Json;

use crate::activity::{parse_input, plan_touch, HeartbeatInput, RecomputeScope, TouchPlan};
use crate::ids::{TenantId, WorkspaceId, MAX_ID_LEN};
use crate::layout::{
    nonce_for, workspace_rel_path, TrashName, PURGING_PREFIX, STAGING_PREFIX, TRASH_DIR,
};
use crate::prune::{
    in_use_in, manifest_facts, plan_repository, replan_repository, Image, ImageRef, ImageStatus,
    ImageUse, InUseKind, PrunePolicy, Rules, Subject, Verdict,
};
use crate::record::{Attributes, Lifetime, Observed, StoredRecord, EPOCH_SECONDS_RANGE};
use crate::retention::{RetentionPolicy, MAX_RETENTION_DAYS};
use crate::stream::{classify, StreamRecordKind, TTL_IDENTITY_TYPE, TTL_PRINCIPAL};

/// A check: runs the code under test on raw fuzzer bytes and panics on a violated property.
pub type Check = fn(&[u8]);

/// Every target's name and check, as `fuzz/fuzz_targets/<name>.rs` and the corpus directories
/// name them.
pub const TARGETS: &[(&str, Check)] = &[
    ("stream_record", stream_record),
    ("ids_layout", ids_layout),
    ("trash_name", trash_name),
    ("prune_graph", prune_graph),
    ("policy", policy),
    ("heartbeat_event", heartbeat_event),
];

/// Where the checks put workspace paths: any absolute root will do.
const ROOT: &str = "/mnt/workspaces";
/// A plausible "now" for planners (2026-11-29).
const NOW: i64 = 1_795_910_400;

/// The id alphabet, written out again as the oracle: `^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`.
fn is_valid_id(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_ID_LEN
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// A workspace's path is exactly `<ROOT>/<tenant>/<workspace>`: two normal components under the
/// root, neither of them `.`/`..`, and nothing else.
fn assert_under_root(tenant: &TenantId, workspace: &WorkspaceId) {
    let rel = workspace_rel_path(tenant, workspace);
    let comps: Vec<Component<'_>> = rel.components().collect();
    assert_eq!(comps.len(), 2, "{rel:?} is not two components");
    assert!(
        comps.iter().all(|c| matches!(c, Component::Normal(_))),
        "{rel:?} has a component that is not a plain name"
    );
    assert_eq!(
        comps[0].as_os_str(),
        tenant.as_str(),
        "tenant component changed"
    );
    assert_eq!(
        comps[1].as_os_str(),
        workspace.as_str(),
        "workspace component changed"
    );
    let full = Path::new(ROOT).join(&rel);
    assert!(full.starts_with(ROOT), "{full:?} left the root");
    assert!(
        !full.starts_with(Path::new(ROOT).join(TRASH_DIR)),
        "{full:?} is inside the trash"
    );
}

/// A trash name prints to one plain path component under `.trash` that parses back to itself, and
/// its staging and purging names are never taken for an entry.
fn assert_trash_name_sound(name: &TrashName) {
    let text = name.to_string();
    assert!(!text.contains('/') && !text.contains('\0'), "{text:?}");
    let reparsed: TrashName = text
        .parse()
        .unwrap_or_else(|e| panic!("{text:?} does not parse back: {e}"));
    assert_eq!(&reparsed, name, "print -> parse changed the name");
    assert_eq!(reparsed.to_string(), text, "parse -> print is not stable");
    let entry = Path::new(ROOT).join(TRASH_DIR).join(&text);
    let comps: Vec<_> = entry
        .strip_prefix(Path::new(ROOT).join(TRASH_DIR))
        .expect("under the trash")
        .components()
        .collect();
    assert_eq!(comps.len(), 1, "{text:?} is not one component");
    assert!(matches!(comps[0], Component::Normal(_)), "{text:?}");
    assert!(text.len() <= 255, "{text:?} is longer than one file name");
    for hidden in [name.staging(), name.purging()] {
        assert!(
            hidden.len() <= 255,
            "{hidden:?} is longer than one file name"
        );
        assert!(hidden.starts_with('.'), "{hidden:?} is not hidden");
        assert!(
            hidden.parse::<TrashName>().is_err(),
            "{hidden:?} is taken for an entry"
        );
    }
}

/// Stream event JSON (a Lambda DynamoDB stream batch) -> classification of each record, its old
/// image as attributes, the typed record and the trash name it would get.
pub fn stream_record(data: &[u8]) {
    let Ok(event) = serde_json::from_slice::<Json>(data) else {
        return;
    };
    let records = match event.get("Records").and_then(Json::as_array) {
        Some(records) => records.clone(),
        // A single record on its own is fuzzed too.
        None => vec![event],
    };
    for raw in &records {
        let event_name = raw.get("eventName").and_then(Json::as_str).unwrap_or("");
        let identity = raw
            .get("userIdentity")
            .and_then(|u| Some((u.get("type")?.as_str()?, u.get("principalId")?.as_str()?)));
        let kind = classify(event_name, identity);
        let is_ttl = event_name == "REMOVE" && identity == Some((TTL_IDENTITY_TYPE, TTL_PRINCIPAL));
        assert_eq!(kind == StreamRecordKind::TtlDelete, is_ttl, "{raw}");
        assert_eq!(kind == StreamRecordKind::NotARemove, event_name != "REMOVE");

        let Some(image) = raw.pointer("/dynamodb/OldImage") else {
            continue;
        };
        let Ok(item) = serde_json::from_value::<Attributes>(image.clone()) else {
            continue;
        };
        check_attributes(&item);
        let sequence = raw
            .pointer("/dynamodb/SequenceNumber")
            .and_then(Json::as_str)
            .unwrap_or("");
        let created = raw
            .pointer("/dynamodb/ApproximateCreationDateTime")
            .and_then(Json::as_i64)
            .unwrap_or(NOW);
        if let Some((workspace, tenant)) = item.location() {
            assert_under_root(&tenant, &workspace);
            // The entry the record's data would be moved to (a deletion time is never negative:
            // ttl-expiry falls back to now for an implausible one).
            let name = TrashName::new(
                created.max(0),
                tenant,
                workspace,
                nonce_for(&format!("{sequence}:{created}")),
            );
            assert_trash_name_sound(&name);
        }
    }
}

/// What must hold of any stored record: the attributes survive their own print and parse, a
/// record that parses is located where its ids say and prints back to itself, and a condition
/// built on what was read matches the record it was read from.
fn check_attributes(item: &Attributes) {
    let text = serde_json::to_string(item).expect("attributes serialize");
    let back: Attributes = serde_json::from_str(&text).expect("printed attributes parse");
    assert_eq!(&back, item, "attributes print -> parse changed them");
    for observed in [
        Observed::plan_inputs(item),
        Observed::notice_inputs(item),
        Observed::known(item),
    ] {
        assert!(
            observed.matches(item),
            "a record does not match its own read"
        );
    }
    // `expiresAt` replaced, every other attribute kept.
    let moved = item.with_expiry(Some(NOW));
    assert_eq!(
        moved.iter().count(),
        item.iter().count() + usize::from(item.get("expiresAt").is_none())
    );
    for (k, v) in item.iter().filter(|(k, _)| k.as_str() != "expiresAt") {
        assert_eq!(moved.get(k), Some(v), "{k} was not kept");
    }
    if let Some(lifetime) = Lifetime::read(item) {
        assert!(EPOCH_SECONDS_RANGE.contains(&lifetime.expires_at));
        assert!(EPOCH_SECONDS_RANGE.contains(&lifetime.last_activity_at));
        if lifetime.hold {
            assert!(item.may_be_held());
        }
    }
    let location = item.location();
    if let Some(id) = item.workspace_id() {
        assert_eq!(item.record_id().is_ok(), is_valid_id(id), "{id:?}");
    }
    let Ok(stored) = StoredRecord::parse(item.clone()) else {
        return;
    };
    let record = &stored.record;
    assert_eq!(
        location,
        Some((record.workspace_id.clone(), record.tenant_id.clone())),
        "a parsed record is not located by its own ids"
    );
    assert!(EPOCH_SECONDS_RANGE.contains(&record.last_activity_at));
    assert!(record
        .expires_at
        .is_none_or(|t| EPOCH_SECONDS_RANGE.contains(&t)));
    assert!(record
        .retention_days
        .is_none_or(|d| (1..=MAX_RETENTION_DAYS).contains(&d)));
    assert_eq!(record.hold, item.may_be_held(), "hold read two ways");
    // A parsed record prints as attributes that parse back to the same record.
    let printed = Attributes::from(record);
    let again = StoredRecord::parse(printed).expect("a printed record parses");
    assert_eq!(&again.record, record, "record print -> parse is not stable");
    // No heartbeat ever shortens it, whatever the activity time.
    let policy = RetentionPolicy::default();
    for at in [0, record.last_activity_at, NOW, *EPOCH_SECONDS_RANGE.end()] {
        check_touch_never_shortens(record, at, &policy);
    }
}

fn check_touch_never_shortens(record: &crate::WorkspaceRecord, at: i64, policy: &RetentionPolicy) {
    if let TouchPlan::Extend {
        last_activity_at,
        expires_at,
    } = plan_touch(record, at, policy, 60)
    {
        assert!(
            last_activity_at >= record.last_activity_at,
            "activity moved back"
        );
        assert!(
            record.expires_at.is_none_or(|stored| expires_at >= stored),
            "a heartbeat shortened the expiry"
        );
    }
}

/// Ids -> workspace paths and trash names: an id is accepted exactly when it is in the alphabet;
/// an accepted pair's path never leaves the root; its trash name round-trips.
///
/// Input: `<8 bytes deletion time><tenant>\n<workspace>\n<nonce seed>`.
pub fn ids_layout(data: &[u8]) {
    let (at, rest) = data.split_at(data.len().min(8));
    let mut at_bytes = [0u8; 8];
    at_bytes[..at.len()].copy_from_slice(at);
    let deleted_at = i64::from_le_bytes(at_bytes);
    let mut parts = rest.splitn(3, |b| *b == b'\n');
    let tenant = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let workspace = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let seed = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();

    let t = TenantId::parse(tenant.clone());
    let w = WorkspaceId::parse(workspace.clone());
    assert_eq!(t.is_ok(), is_valid_id(&tenant), "tenant {tenant:?}");
    assert_eq!(
        w.is_ok(),
        is_valid_id(&workspace),
        "workspace {workspace:?}"
    );
    // serde agrees with `parse` (records are read through serde).
    let via_serde = serde_json::from_value::<WorkspaceId>(Json::String(workspace.clone()));
    assert_eq!(via_serde.is_ok(), w.is_ok());
    let (Ok(tenant), Ok(workspace)) = (t, w) else {
        return;
    };
    assert_eq!(
        serde_json::to_value(&workspace).unwrap(),
        Json::String(workspace.as_str().into())
    );
    assert_under_root(&tenant, &workspace);
    let nonce = nonce_for(&seed);
    assert_eq!(nonce, nonce_for(&seed), "the nonce is not stable");
    let name = TrashName::new(deleted_at, tenant.clone(), workspace.clone(), nonce);
    if deleted_at >= 0 {
        assert_trash_name_sound(&name);
    } else {
        // Never written (ttl-expiry and the sweeper name entries by a plausible time), and never
        // taken for an entry: a name that does not parse is not ours.
        assert!(name.to_string().parse::<TrashName>().is_err());
    }
    let legacy = TrashName {
        nonce: None,
        ..name
    };
    if deleted_at >= 0 {
        assert_trash_name_sound(&legacy);
    }
}

/// Trash-entry names (as listed from `.trash`) -> the parser: a name is taken for an entry only
/// when it is exactly what the layout writes, so the entry a purge or restore acts on by the
/// parsed name is the entry that was listed.
pub fn trash_name(data: &[u8]) {
    // A directory name may be any bytes; the lister hands the parser only UTF-8 names.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(name) = text.parse::<TrashName>() else {
        return;
    };
    assert_eq!(
        name.to_string(),
        text,
        "{text:?} parses as an entry that prints differently: a purge would act on another name"
    );
    assert!(name.deleted_at >= 0);
    assert!(
        !text.starts_with(STAGING_PREFIX)
            && !text.starts_with(PURGING_PREFIX)
            && !text.starts_with('.'),
        "{text:?}"
    );
    assert!(is_valid_id(name.tenant.as_str()) && is_valid_id(name.workspace.as_str()));
    assert_under_root(&name.tenant, &name.workspace);
    assert_trash_name_sound(&name);
}

/// The digest an image at position `n` of the fuzzed repository has.
fn digest(n: usize) -> String {
    format!("sha256:{n:064x}")
}

/// Every digest reachable from `roots` through what is known of the graph (index -> children,
/// subject -> referrers, cosign tags -> their subject): the oracle, independent of the planner's.
fn reachable(images: &[Image], roots: &BTreeSet<String>) -> BTreeSet<String> {
    let mut below: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for image in images {
        if let Some(Ok(children)) = &image.manifests {
            below
                .entry(image.digest.clone())
                .or_default()
                .extend(children.iter().cloned());
        }
        if let Subject::Of(s) = &image.subject {
            below
                .entry(s.clone())
                .or_default()
                .push(image.digest.clone());
        }
        for tag in &image.tags {
            let subject = tag
                .strip_prefix("sha256-")
                .and_then(|rest| rest.split_once('.'))
                .filter(|(hex, kind)| {
                    hex.len() == 64
                        && hex.bytes().all(|b| b.is_ascii_hexdigit())
                        && matches!(*kind, "sig" | "att" | "sbom")
                })
                .map(|(hex, _)| format!("sha256:{}", hex.to_ascii_lowercase()));
            if let Some(s) = subject {
                below.entry(s).or_default().push(image.digest.clone());
            }
        }
    }
    let mut seen = BTreeSet::new();
    let mut stack: Vec<String> = roots.iter().cloned().collect();
    while let Some(d) = stack.pop() {
        if seen.insert(d.clone()) {
            stack.extend(below.get(&d).into_iter().flatten().cloned());
        }
    }
    seen
}

/// ECR manifests and image references -> the image graph, in-use resolution and the plan: nothing
/// reachable from an in-use digest is in a delete set, before or after the re-check.
///
/// Input: lines separated by NUL, each starting with a kind byte:
/// - `m<manifest JSON>`: the next image (digest `sha256:<its position, 64 hex>`), with this manifest;
/// - `i<media type>`: the next image, listed with this media type and its manifest not read;
/// - `t<tag>`: a tag of the last image;
/// - `r<reference>`: a task runs this reference; `d<reference>`: a service runs it and ECS
///   resolved it to the last image's digest;
/// - `a<days>`: images were pushed this many days before now.
pub fn prune_graph(data: &[u8]) {
    let mut images: Vec<Image> = Vec::new();
    let mut uses: Vec<ImageUse> = Vec::new();
    let mut pushed_days_ago = 30i64;
    for line in data.split(|b| *b == 0) {
        let Some((&kind, rest)) = line.split_first() else {
            continue;
        };
        let text = String::from_utf8_lossy(rest).into_owned();
        let new_image = |media_type: String, n: usize| Image {
            digest: digest(n),
            tags: vec![],
            pushed_at: NOW - pushed_days_ago * 86_400,
            size: 1_000,
            media_type,
            manifests: None,
            subject: Subject::Unknown,
            status: ImageStatus::Active,
            archived_at: None,
        };
        match kind {
            b'm' if images.len() < 64 => {
                let mut image = new_image(String::new(), images.len());
                let facts = manifest_facts(&text);
                image.learn(facts.as_ref().map_err(String::as_str));
                images.push(image);
            }
            b'i' if images.len() < 64 => {
                let image = new_image(text, images.len());
                images.push(image);
            }
            b't' => {
                if let Some(last) = images.last_mut() {
                    if !last.tags.contains(&text) {
                        last.tags.push(text);
                    }
                }
            }
            b'r' | b'd' => {
                check_reference(&text);
                uses.push(ImageUse {
                    image: text,
                    digest: (kind == b'd')
                        .then(|| images.last().map(|i| i.digest.clone()))
                        .flatten(),
                    kind: if kind == b'd' {
                        InUseKind::InUseService
                    } else {
                        InUseKind::InUseTask
                    },
                    by: "fuzz".into(),
                });
            }
            b'a' => pushed_days_ago = text.trim().parse::<i64>().unwrap_or(30).clamp(0, 10_000),
            _ => {}
        }
    }
    // A tag names one image in a repository.
    let mut seen_tags = BTreeSet::new();
    for image in images.iter_mut() {
        image.tags.retain(|t| seen_tags.insert(t.clone()));
    }
    let in_use = in_use_in("team/app", &images, &uses);
    // An unparsable reference that names the repository makes every image possibly in use.
    if uses.iter().any(|u| {
        ImageRef::parse(&u.image).is_err() && u.image.to_ascii_lowercase().contains("team/app")
    }) {
        assert!(images.iter().all(|i| in_use.contains_key(&i.digest)));
    }
    // The most aggressive rules: everything not kept for a reason of its own goes.
    let rules = Rules {
        keep_last_tagged: 0,
        untagged_max_age_days: Some(0),
        tagged_max_age_days: Some(0),
        protect_tags: vec![glob::Pattern::new("release-*").expect("a valid glob")],
        keep_semver_releases: 0,
        pinned_digests: BTreeSet::new(),
        archive_days: None,
    };
    let first = plan_repository("team/app", &images, &in_use, &rules, NOW);
    check_plan(&images, &in_use, &rules, &first);
    // The re-check, with the same facts, never deletes more.
    let second = replan_repository(&first, &images, &in_use, &rules, NOW);
    check_plan(&images, &in_use, &rules, &second);
    assert!(second.deletes().is_subset(&first.deletes()));
}

fn check_plan(
    images: &[Image],
    in_use: &BTreeMap<String, InUseKind>,
    rules: &Rules,
    plan: &crate::prune::RepoPlan,
) {
    let deleted = plan.deletes();
    let digests: BTreeSet<&str> = images.iter().map(|i| i.digest.as_str()).collect();
    assert_eq!(plan.decisions.len(), images.len(), "one decision per image");
    assert!(
        deleted.is_subset(&digests),
        "a delete of an image not listed"
    );
    for decision in &plan.decisions {
        assert_eq!(
            decision.verdict == Verdict::Delete,
            deleted.contains(decision.digest.as_str()),
            "{} verdict and waves disagree",
            decision.digest
        );
    }
    let roots: BTreeSet<String> = in_use.keys().cloned().collect();
    for d in reachable(images, &roots) {
        assert!(
            !deleted.contains(d.as_str()),
            "{d} is reachable from an in-use digest and in the delete set"
        );
    }
    // What cannot be read, or was not read, hides what it references (children, a subject): it
    // is never deleted. (A manifest that was read and names no media type is no index: it may go.)
    for image in images {
        let unreadable = matches!(image.manifests, Some(Err(_)))
            || matches!(image.subject, Subject::Unreadable(_) | Subject::Unknown);
        if unreadable {
            assert!(
                !deleted.contains(image.digest.as_str()),
                "{} was deleted without its manifest read",
                image.digest
            );
        }
        let protected = image
            .tags
            .iter()
            .any(|t| rules.protect_tags.iter().any(|p| p.matches(t)));
        assert!(!(protected && deleted.contains(image.digest.as_str())));
    }
    // Every index and subject goes in an earlier wave than what is below it.
    let wave_of = |x: &str| {
        plan.delete_waves
            .iter()
            .position(|w| w.iter().any(|y| y == x))
    };
    for (x, firsts) in &plan.delete_after {
        for f in firsts {
            assert!(wave_of(f) < wave_of(x), "{f} not deleted before {x}");
        }
    }
}

/// An image reference that parses prints back exactly as written and parses to itself again.
fn check_reference(text: &str) {
    if let Ok(reference) = ImageRef::parse(text) {
        let printed = reference.to_string();
        assert_eq!(printed, text, "a reference prints differently");
        assert_eq!(ImageRef::parse(&printed).as_ref(), Ok(&reference));
        assert!(!reference.path.is_empty());
    }
}

/// `RETENTION_POLICY` and `PRUNE_POLICY` JSON -> validation: what is accepted is within bounds,
/// prints and parses back to itself, and answers for every record and repository.
pub fn policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(policy) = RetentionPolicy::from_json(text) {
        let printed = serde_json::to_string(&policy).expect("a policy serializes");
        let again = RetentionPolicy::from_json(&printed).expect("a printed policy is valid");
        assert_eq!(again, policy, "retention print -> parse is not stable");
        assert_eq!(policy.tier_days.len(), 3, "every tier has a retention");
        for days in policy
            .tier_days
            .values()
            .chain(policy.status_cap_days.values())
        {
            assert!((1..=MAX_RETENTION_DAYS).contains(days));
        }
        let longest = policy.longest_days();
        assert!(policy.tier_days.values().all(|d| *d <= longest));
        use crate::record::{SubscriptionStatus as S, Tier as T};
        for tier in [T::Free, T::Pro, T::Enterprise] {
            for status in [S::Active, S::Suspended, S::Cancelled] {
                let record = crate::WorkspaceRecord {
                    workspace_id: WorkspaceId::parse("ws").unwrap(),
                    tenant_id: TenantId::parse("t").unwrap(),
                    user_id: None,
                    tier,
                    subscription_status: status,
                    last_activity_at: NOW,
                    expires_at: Some(NOW),
                    retention_days: None,
                    access_point_id: None,
                    hold: false,
                    notice_sent_for: None,
                };
                let days = policy.retention_days(&record).expect("not held");
                assert!(days >= 1 && days <= longest, "{days} outside 1..={longest}");
                check_touch_never_shortens(&record, NOW, &policy);
            }
        }
    }
    if let Ok(policy) = PrunePolicy::from_json(text) {
        let sets = std::iter::once(&policy.default).chain(policy.repositories.values());
        for set in sets {
            for d in set.pinned_digests.iter().flatten() {
                assert!(crate::prune::is_digest(d), "{d:?} accepted as a digest");
            }
        }
        let names = policy
            .repositories
            .keys()
            .map(String::as_str)
            .chain(["team/app", "", "x"]);
        for name in names {
            let rules = policy.rules_for(name);
            assert!(rules
                .pinned_digests
                .iter()
                .all(|d| crate::prune::is_digest(d)));
        }
    }
}

/// Heartbeat event shapes -> `activity::parse_input`: each shape is told apart by what it says, a
/// recompute (the one input that may shorten) is never read out of another event, and a touch
/// never shortens an expiry.
pub fn heartbeat_event(data: &[u8]) {
    let Ok(event) = serde_json::from_slice::<Json>(data) else {
        return;
    };
    let Ok(input) = parse_input(&event) else {
        return;
    };
    let obj = event.as_object().expect("only an object is an event");
    let detail_type = obj.get("detail-type").and_then(Json::as_str);
    match input {
        HeartbeatInput::Recompute(scope) => {
            assert_eq!(obj.len(), 1, "a recompute read out of another event");
            match scope {
                RecomputeScope::All => assert_eq!(obj["recompute"], Json::from("all")),
                RecomputeScope::Ids(ids) => {
                    assert_eq!(Some(ids.len()), obj["recompute"].as_array().map(Vec::len))
                }
            }
        }
        HeartbeatInput::Touch { ids, at } => {
            assert!(detail_type.is_none() && !obj.contains_key("recompute"));
            assert!(!ids.is_empty() || obj.contains_key("workspaceIds"));
            assert!(at.is_none_or(|t| t >= 0));
            let record = crate::WorkspaceRecord {
                workspace_id: WorkspaceId::parse("ws").unwrap(),
                tenant_id: TenantId::parse("t").unwrap(),
                user_id: None,
                tier: crate::Tier::Pro,
                subscription_status: crate::SubscriptionStatus::Active,
                last_activity_at: NOW - 86_400,
                expires_at: Some(NOW + 29 * 86_400),
                retention_days: None,
                access_point_id: None,
                hold: false,
                notice_sent_for: None,
            };
            // The handler clamps a time later than now to now.
            let activity = at.map_or(NOW, |t| t.min(NOW));
            check_touch_never_shortens(&record, activity, &RetentionPolicy::default());
            for id in ids {
                if let Ok(id) = WorkspaceId::parse(id) {
                    assert_under_root(&TenantId::parse("t").unwrap(), &id);
                }
            }
        }
        HeartbeatInput::TaskStateChange { task, .. } => {
            assert_eq!(detail_type, Some("ECS Task State Change"));
            assert_eq!(obj.get("source").and_then(Json::as_str), Some("aws.ecs"));
            assert!(task.efs_mounts.is_empty());
            for ws in task.workspaces() {
                let named = task.override_env.iter().chain(task.tags.iter());
                assert!(named.map(|(_, v)| v).any(|v| v == ws));
            }
        }
        HeartbeatInput::Scheduled { .. } => {
            assert_eq!(detail_type, Some("Scheduled Event"));
            assert_eq!(obj.get("source").and_then(Json::as_str), Some("aws.events"));
        }
    }
}
