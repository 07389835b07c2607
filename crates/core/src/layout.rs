//! Where a workspace's data lives on EFS, and how trash entries are named.
//!
//! `<EFS_ROOT>/<tenantId>/<workspaceId>/` holds live data. `<EFS_ROOT>/.trash/<entry>/` holds
//! soft-deleted data as `data/` with the record that owned it as `record.json`; `<entry>` is
//! `<deletedAt epoch seconds>+<tenantId>+<workspaceId>`. `+` is outside the id alphabet, so the name
//! always splits back into exactly its three parts.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::ids::{IdError, TenantId, WorkspaceId};

pub const TRASH_DIR: &str = ".trash";
pub const TRASH_DATA: &str = "data";
pub const TRASH_RECORD: &str = "record.json";
const SEP: char = '+';

/// The path of a workspace's data relative to `EFS_ROOT`: always exactly two normal components.
pub fn workspace_rel_path(tenant: &TenantId, workspace: &WorkspaceId) -> PathBuf {
    Path::new(tenant.as_str()).join(workspace.as_str())
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrashName {
    /// Epoch seconds at which the workspace was deleted: the sweeper's grace counts from here.
    pub deleted_at: i64,
    pub tenant: TenantId,
    pub workspace: WorkspaceId,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrashNameError {
    #[error("trash entry {0:?} is not <deletedAt>+<tenantId>+<workspaceId>")]
    Shape(String),
    #[error("trash entry {name:?}: {source}")]
    Id { name: String, source: IdError },
}

impl fmt::Display for TrashName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{SEP}{}{SEP}{}",
            self.deleted_at, self.tenant, self.workspace
        )
    }
}

impl FromStr for TrashName {
    type Err = TrashNameError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let shape = || TrashNameError::Shape(name.chars().take(300).collect());
        let mut parts = name.split(SEP);
        let (Some(at), Some(tenant), Some(workspace), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(shape());
        };
        if at.is_empty() || !at.bytes().all(|b| b.is_ascii_digit()) {
            return Err(shape());
        }
        let deleted_at = at.parse().map_err(|_| shape())?;
        let id_err = |source| TrashNameError::Id {
            name: name.into(),
            source,
        };
        Ok(Self {
            deleted_at,
            tenant: TenantId::parse(tenant).map_err(id_err)?,
            workspace: WorkspaceId::parse(workspace).map_err(id_err)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ID: &str = "[A-Za-z0-9][A-Za-z0-9._-]{0,127}";

    proptest! {
        #[test]
        fn trash_name_round_trips(at in 0i64..i64::MAX, t in ID, w in ID) {
            let name = TrashName { deleted_at: at, tenant: TenantId::parse(t).unwrap(), workspace: WorkspaceId::parse(w).unwrap() };
            let text = name.to_string();
            prop_assert!(!text.contains('/'));
            prop_assert_eq!(text.parse::<TrashName>().unwrap(), name);
        }

        /// No id, however hostile, yields a path that leaves its tenant directory under the root.
        #[test]
        fn workspace_paths_stay_under_the_root(t in "\\PC{0,20}|\\.\\.|/|[./]{1,4}[a-z]?", w in "\\PC{0,20}|\\.\\.|/|[./]{1,4}[a-z]?") {
            if let (Ok(t), Ok(w)) = (TenantId::parse(t), WorkspaceId::parse(w)) {
                let rel = workspace_rel_path(&t, &w);
                let comps: Vec<_> = rel.components().collect();
                prop_assert_eq!(comps.len(), 2);
                prop_assert!(comps.iter().all(|c| matches!(c, std::path::Component::Normal(_))));
                prop_assert!(Path::new("/mnt/workspaces").join(&rel).starts_with("/mnt/workspaces"));
            }
        }
    }

    #[test]
    fn rejects_foreign_names() {
        for bad in [
            "",
            "x+y+z",
            "12+acme",
            "12+acme+ws+extra",
            "12+..+ws",
            "-1+a+b",
            "12+a+b/c",
            "lost+found",
        ] {
            assert!(bad.parse::<TrashName>().is_err(), "{bad}");
        }
    }
}
