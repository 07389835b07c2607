//! `PRUNE_POLICY`: rule sets as written (absent keys inherit, `null` means no limit) and the rules
//! resolved for one repository.

use super::*;

pub(crate) fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
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
    /// The archive step: an image planned for deletion is archived instead, and deleted once it
    /// has been in the archive this many days (absent or `null`: deleted at once, as before).
    #[serde(default, deserialize_with = "present")]
    pub archive_days: Option<Option<u32>>,
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

/// The longest archive step `archiveDays` may say (ten years).
pub const MAX_ARCHIVE_DAYS: u32 = 3650;

/// Rules resolved for one repository.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub keep_last_tagged: usize,
    pub untagged_max_age_days: Option<u32>,
    pub tagged_max_age_days: Option<u32>,
    pub protect_tags: Vec<glob::Pattern>,
    pub keep_semver_releases: usize,
    pub pinned_digests: BTreeSet<String>,
    /// Days an image spends in the archive before it is deleted (`None`: no archive step).
    pub archive_days: Option<u32>,
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
            if let Some(Some(days)) = set.archive_days {
                if !(1..=MAX_ARCHIVE_DAYS).contains(&days) {
                    return Err(PrunePolicyError(format!(
                        "{at}.archiveDays: {days} is not within 1..={MAX_ARCHIVE_DAYS} (null: no archive step)"
                    )));
                }
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
            archive_days: None,
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
            if let Some(days) = set.archive_days {
                rules.archive_days = days;
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
