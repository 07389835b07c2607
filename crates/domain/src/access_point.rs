//! Which EFS access points are workspace access points (pure). One rule, used by the sweeper
//! before it marks or deletes an orphan and by ttl-expiry before it deletes a record's access
//! point: whatever the rule does not positively recognise is never touched.

use crate::ids::{TenantId, WorkspaceId};
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How ownership is decided (`ACCESS_POINT_OWNERSHIP`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Ownership {
    /// A valid `workspaceId` tag, or a root that is exactly `<prefix>/<tenantId>/<workspaceId>`.
    #[default]
    TagOrRoot,
    /// Only a valid `workspaceId` tag: matches an IAM policy that allows deleting (and tagging)
    /// only access points carrying that tag.
    Tag,
}

/// What the configuration says about access points.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessPointRules {
    /// Where workspace directories live on the file system, without a trailing `/`: `""` for
    /// the file system's root, `/workspaces` when the functions mount `/workspaces`.
    pub root_prefix: String,
    /// The access point the functions themselves mount: never a candidate, whatever its tags.
    pub own_id: Option<String>,
    pub ownership: Ownership,
}

/// A workspace access point: the workspace it serves, and its tenant when its root names one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceAccessPoint {
    pub workspace: WorkspaceId,
    pub tenant: Option<TenantId>,
}

/// The workspace an access point serves, or why it is not a workspace access point.
///
/// A valid `workspaceId` tag says so, unless the root disagrees: a root in the layout naming
/// another workspace, or any root whose last component is not the tagged id (the root is the
/// directory the access point exposes, and a workspace's directory ends in its id). Without a
/// tag, only a root of exactly `<prefix>/<tenantId>/<workspaceId>` (valid ids) says so.
pub fn identify(
    ap: &AccessPointInfo,
    rules: &AccessPointRules,
) -> Result<WorkspaceAccessPoint, String> {
    if rules.own_id.as_deref() == Some(ap.id.as_str()) {
        return Err("the functions' own access point".into());
    }
    let root = ap.root_path.as_deref().unwrap_or("/");
    let by_root = layout_root(root, &rules.root_prefix);
    match ap.tags.get(crate::tasks::WORKSPACE_TAG) {
        Some(tag) => {
            let workspace = WorkspaceId::parse(tag.as_str())
                .map_err(|_| format!("workspaceId tag {tag:?} is not a valid id"))?;
            match by_root {
                Some((tenant, ws)) if ws == workspace => Ok(WorkspaceAccessPoint {
                    workspace,
                    tenant: Some(tenant),
                }),
                // A tag alone is not proof: another application may use the same tag key. The
                // root must be this workspace's place in the layout too.
                _ => Err(format!(
                    "tagged {workspace} but its root {root} is not {}/<tenantId>/{workspace}",
                    rules.root_prefix
                )),
            }
        }
        None if rules.ownership == Ownership::Tag => {
            Err("no workspaceId tag (ACCESS_POINT_OWNERSHIP=tag)".into())
        }
        None => by_root
            .map(|(tenant, workspace)| WorkspaceAccessPoint {
                workspace,
                tenant: Some(tenant),
            })
            .ok_or_else(|| {
                format!(
                    "no workspaceId tag, and root {root} is not {}/<tenantId>/<workspaceId>",
                    rules.root_prefix
                )
            }),
    }
}

/// `(tenant, workspace)` when `root` is exactly `<prefix>/<tenant>/<workspace>` with valid ids.
fn layout_root(root: &str, prefix: &str) -> Option<(TenantId, WorkspaceId)> {
    let rest = root.strip_prefix(prefix)?.strip_prefix('/')?;
    let (tenant, workspace) = rest.split_once('/')?;
    Some((
        TenantId::parse(tenant).ok()?,
        WorkspaceId::parse(workspace).ok()?,
    ))
}

/// Checks an `ACCESS_POINT_ROOT_PREFIX` value and returns it without a trailing `/` (`/` → `""`).
pub fn parse_root_prefix(text: &str) -> Result<String, String> {
    if !text.starts_with('/') {
        return Err(format!("{text:?} is not an absolute path"));
    }
    let trimmed = text.trim_end_matches('/');
    if trimmed
        .split('/')
        .skip(1)
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(format!("{text:?} has an empty, '.' or '..' component"));
    }
    Ok(trimmed.to_string())
}

/// Whether `id` is an access point id as EFS writes them (`fsap-` and up to 40 hex digits).
pub fn is_access_point_id(id: &str) -> bool {
    let hex = id.strip_prefix("fsap-").unwrap_or("");
    !hex.is_empty() && hex.len() <= 40 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// An access point as EFS describes it. Which workspace (if any) it serves is decided by
/// [`identify`], never inferred here.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessPointInfo {
    pub id: String,
    pub file_system_id: String,
    pub root_path: Option<String>,
    pub tags: BTreeMap<String, String>,
}

/// Tag an access point may carry with its creation time (epoch seconds or RFC 3339): EFS itself
/// reports none, and the sweeper needs an age before it deletes one.
pub const CREATED_AT_TAG: &str = "createdAt";

/// Tag the sweeper puts on an orphan access point of unknown age (epoch seconds of the run that
/// found it), so a later run knows how long it has been an orphan.
pub const ORPHAN_SINCE_TAG: &str = "lifecycle:orphanSince";

impl AccessPointInfo {
    pub fn created_at(&self) -> Option<i64> {
        crate::time::epoch_or_rfc3339(self.tags.get(CREATED_AT_TAG)?)
    }

    /// When a sweep first found it orphaned; `None` when unmarked (or the mark is unreadable).
    pub fn orphan_since(&self) -> Option<i64> {
        crate::time::epoch_or_rfc3339(self.tags.get(ORPHAN_SINCE_TAG)?)
    }
}

/// An access point to create for a workspace (restoring one re-creates its access point): rooted
/// at the workspace's place in the layout and tagged with its id and creation time, so that
/// [`identify`] recognises it as this workspace's under either ownership rule and the sweeper
/// knows its age.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessPointSpec {
    pub file_system_id: String,
    pub root_path: String,
    pub tags: BTreeMap<String, String>,
}

impl AccessPointSpec {
    pub fn for_workspace(
        file_system_id: &str,
        rules: &AccessPointRules,
        tenant: &TenantId,
        workspace: &WorkspaceId,
        now: i64,
    ) -> Self {
        Self {
            file_system_id: file_system_id.to_string(),
            root_path: format!("{}/{tenant}/{workspace}", rules.root_prefix),
            tags: BTreeMap::from([
                (
                    crate::tasks::WORKSPACE_TAG.to_string(),
                    workspace.to_string(),
                ),
                (CREATED_AT_TAG.to_string(), now.to_string()),
            ]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn ap(id: &str, root: Option<&str>, tags: &[(&str, &str)]) -> AccessPointInfo {
        AccessPointInfo {
            id: id.into(),
            file_system_id: "fs-1".into(),
            root_path: root.map(Into::into),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    fn rules(prefix: &str) -> AccessPointRules {
        AccessPointRules {
            root_prefix: prefix.into(),
            own_id: Some("fsap-own".into()),
            ownership: Ownership::TagOrRoot,
        }
    }

    /// `(tenant, workspace)` of a workspace access point.
    type Who<'a> = Option<(Option<&'a str>, &'a str)>;
    /// Root, tags, and what the rule should say.
    type Case<'a> = (Option<&'a str>, &'a [(&'a str, &'a str)], Who<'a>);

    fn who(r: &Result<WorkspaceAccessPoint, String>) -> Who<'_> {
        r.as_ref()
            .ok()
            .map(|w| (w.tenant.as_ref().map(|t| t.as_str()), w.workspace.as_str()))
    }

    #[test]
    fn the_layout_root_or_a_consistent_tag() {
        let r = rules("/workspaces");
        let cases: &[Case] = &[
            (
                Some("/workspaces/acme/ws-1"),
                &[],
                Some((Some("acme"), "ws-1")),
            ),
            (
                Some("/workspaces/acme/ws-1"),
                &[("workspaceId", "ws-1")],
                Some((Some("acme"), "ws-1")),
            ),
            // Tagged but rooted outside the layout: another application may use the tag key.
            (Some("/old/acme/ws-1"), &[("workspaceId", "ws-1")], None),
            (Some("/analytics/ws-1"), &[("workspaceId", "ws-1")], None),
            (Some("/"), &[("workspaceId", "ws-1")], None),
            (None, &[("workspaceId", "ws-1")], None),
            // Not workspace access points.
            (Some("/workspaces"), &[], None),
            (Some("/workspaces/acme"), &[], None),
            (Some("/acme/ws-1"), &[], None),
            (Some("/workspaces/acme/ws-1/"), &[], None),
            (Some("/workspaces/acme/ws-1/x"), &[], None),
            (Some("/workspaces/acme/.."), &[], None),
            (Some("/workspacesx/acme/ws-1"), &[], None),
            (Some("/"), &[], None),
            (None, &[], None),
            (
                Some("/workspaces/acme/ws-2"),
                &[("workspaceId", "ws-1")],
                None,
            ),
            (Some("/workspaces"), &[("workspaceId", "ws-1")], None),
            (Some("/srv/ws-2"), &[("workspaceId", "ws-1")], None),
            (Some("/acme/ws-2/"), &[("workspaceId", "ws-1")], None),
            (
                Some("/workspaces/acme/ws-1"),
                &[("workspaceId", "../ws-1")],
                None,
            ),
            (Some("/workspaces/acme/ws-1"), &[("workspaceId", "")], None),
        ];
        for (root, tags, expected) in cases {
            let got = identify(&ap("fsap-1", *root, tags), &r);
            assert_eq!(who(&got), *expected, "{root:?} {tags:?}: {got:?}");
        }
    }

    #[test]
    fn the_default_prefix_is_the_file_system_root() {
        let r = rules("");
        assert_eq!(
            who(&identify(&ap("fsap-1", Some("/acme/ws-1"), &[]), &r)),
            Some((Some("acme"), "ws-1"))
        );
        assert!(identify(&ap("fsap-1", Some("/acme"), &[]), &r).is_err());
        assert!(identify(&ap("fsap-1", Some("/workspaces/acme/ws-1"), &[]), &r).is_err());
    }

    #[test]
    fn the_own_access_point_and_untagged_ones_under_tag_ownership() {
        let r = rules("");
        let own = ap("fsap-own", Some("/acme/ws-1"), &[("workspaceId", "ws-1")]);
        assert!(identify(&own, &r).is_err());
        let strict = AccessPointRules {
            ownership: Ownership::Tag,
            ..rules("")
        };
        assert!(identify(&ap("fsap-1", Some("/acme/ws-1"), &[]), &strict).is_err());
        assert!(identify(
            &ap("fsap-1", Some("/acme/ws-1"), &[("workspaceId", "ws-1")]),
            &strict
        )
        .is_ok());
    }

    #[test]
    fn an_access_point_made_for_a_workspace_is_recognised_as_its_own() {
        let (tenant, ws) = (
            TenantId::parse("acme").unwrap(),
            WorkspaceId::parse("ws-1").unwrap(),
        );
        for prefix in ["", "/workspaces"] {
            for ownership in [Ownership::TagOrRoot, Ownership::Tag] {
                let r = AccessPointRules {
                    ownership,
                    ..rules(prefix)
                };
                let spec = AccessPointSpec::for_workspace("fs-1", &r, &tenant, &ws, 1_700_000_000);
                let made = AccessPointInfo {
                    id: "fsap-new".into(),
                    file_system_id: spec.file_system_id.clone(),
                    root_path: Some(spec.root_path.clone()),
                    tags: spec.tags.clone(),
                };
                assert_eq!(
                    who(&identify(&made, &r)),
                    Some((Some("acme"), "ws-1")),
                    "{spec:?}"
                );
                assert_eq!(made.created_at(), Some(1_700_000_000));
            }
        }
    }

    #[test]
    fn root_prefixes() {
        assert_eq!(parse_root_prefix("/").unwrap(), "");
        assert_eq!(parse_root_prefix("/workspaces/").unwrap(), "/workspaces");
        assert_eq!(parse_root_prefix("/a/b").unwrap(), "/a/b");
        for bad in ["workspaces", "/a//b", "/a/../b", "/./a", ""] {
            assert!(parse_root_prefix(bad).is_err(), "{bad}");
        }
    }
}
