//! Where a workspace's data lives on EFS, and how trash entries are named.
//!
//! `<EFS_ROOT>/<tenantId>/<workspaceId>/` holds live data. `<EFS_ROOT>/.trash/<entry>/` holds
//! soft-deleted data as `data/` with the record that owned it as `record.json`; `<entry>` is
//! `<deletedAt epoch seconds>+<tenantId>+<workspaceId>+<nonce>`. `+` is outside the id alphabet, so
//! the name always splits back into exactly its parts. The nonce (16 hex digits) keeps two
//! generations of one workspace deleted in the same second apart; names written before it existed
//! (three parts) still parse.
//!
//! An entry is built under `.staging+<entry>` and renamed into place in one step, so the data and
//! its record enter the trash together; a purge first renames `<entry>` to `.purging+<entry>`, so
//! a restore never picks up an entry that is being deleted. Names that start with `.` are never
//! restored.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::ids::{IdError, TenantId, WorkspaceId};

pub const TRASH_DIR: &str = ".trash";
pub const TRASH_DATA: &str = "data";
pub const TRASH_RECORD: &str = "record.json";
const SEP: char = '+';
/// Where an entry is assembled before the one rename that publishes it.
pub const STAGING_PREFIX: &str = ".staging+";
/// What a purge renames an entry to before it deletes anything.
pub const PURGING_PREFIX: &str = ".purging+";
/// What taking data back out of the trash renames an entry to for the moment it takes: a purge
/// renames the same name to `.purging+`, so whichever rename comes first has the entry and the
/// other finds none. Renamed back at once; no sweep ever touches it.
pub const TAKING_PREFIX: &str = ".taking+";
/// Where a restore from the archive extracts an entry before publishing it under its own name:
/// not a trash entry's name, so no sweep ever touches it.
pub const RESTORING_PREFIX: &str = ".restoring+";
const NONCE_LEN: usize = 16;

/// A stable 16-hex-digit nonce for a seed (a stream record's sequence number, so a retried record
/// finds the entry its first attempt made). FNV-1a: tiny, and collisions need 2^32 entries of one
/// workspace in one second.
pub fn nonce_for(seed: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// A nonce no other entry has: time, process and a counter.
pub fn fresh_nonce() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    nonce_for(&format!(
        "{nanos}:{}:{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

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
    /// 16 lowercase hex digits; `None` only for entries named before nonces existed.
    pub nonce: Option<String>,
}

impl TrashName {
    pub fn new(deleted_at: i64, tenant: TenantId, workspace: WorkspaceId, nonce: String) -> Self {
        Self {
            deleted_at,
            tenant,
            workspace,
            nonce: Some(nonce),
        }
    }

    /// The name the entry is assembled under.
    pub fn staging(&self) -> String {
        format!("{STAGING_PREFIX}{self}")
    }

    /// The name the entry has while it is purged.
    pub fn purging(&self) -> String {
        format!("{PURGING_PREFIX}{self}")
    }
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
        )?;
        match &self.nonce {
            Some(nonce) => write!(f, "{SEP}{nonce}"),
            None => Ok(()),
        }
    }
}

impl FromStr for TrashName {
    type Err = TrashNameError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let shape = || TrashNameError::Shape(name.chars().take(300).collect());
        let mut parts = name.split(SEP);
        let (Some(at), Some(tenant), Some(workspace), nonce, None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(shape());
        };
        if let Some(n) = nonce {
            let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
            if n.len() != NONCE_LEN || !n.bytes().all(hex) {
                return Err(shape());
            }
        }
        // Only the canonical decimal the layout writes: `0012+a+b` would parse as `12+a+b`, and
        // the entry a purge or restore then opens by the parsed name is another one.
        let canonical = at == "0" || !at.starts_with('0');
        if at.is_empty() || !at.bytes().all(|b| b.is_ascii_digit()) || !canonical {
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
            nonce: nonce.map(str::to_string),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ID: &str = "[A-Za-z0-9][A-Za-z0-9._-]{0,99}";

    proptest! {
        #[test]
        fn trash_name_round_trips(at in 0i64..i64::MAX, t in ID, w in ID, seed in ".*", legacy: bool) {
            let nonce = (!legacy).then(|| nonce_for(&seed));
            let name = TrashName { deleted_at: at, tenant: TenantId::parse(t).unwrap(), workspace: WorkspaceId::parse(w).unwrap(), nonce };
            let text = name.to_string();
            prop_assert!(!text.contains('/'));
            prop_assert_eq!(text.parse::<TrashName>().unwrap(), name.clone());
            prop_assert!(name.staging().starts_with('.') && name.purging().starts_with('.'));
            prop_assert!(name.staging().parse::<TrashName>().is_err());
            prop_assert!(name.purging().parse::<TrashName>().is_err());
        }

        /// Every name the trash uses fits one file name (NAME_MAX, 255 bytes), whatever the
        /// deletion time and however long the ids: a name that did not would make the move fail
        /// for good (`ENAMETOOLONG`).
        #[test]
        fn trash_names_fit_one_file_name(at: i64, t in "[a-z]{100}|[A-Za-z0-9][A-Za-z0-9._-]{0,99}", w in "[a-z]{100}|[A-Za-z0-9][A-Za-z0-9._-]{0,99}") {
            let name = TrashName::new(at, TenantId::parse(t).unwrap(), WorkspaceId::parse(w).unwrap(), nonce_for("x"));
            for text in [name.to_string(), name.staging(), name.purging()] {
                prop_assert!(text.len() <= 255, "{} bytes: {}", text.len(), text);
            }
        }

        /// Two generations of a workspace deleted in the same second never share an entry name.
        #[test]
        fn trash_names_never_collide(at in 0i64..i64::MAX, seqs in proptest::collection::btree_set("[0-9]{1,40}", 2..50)) {
            let names: std::collections::BTreeSet<String> = seqs.iter().map(|s| TrashName::new(at, TenantId::parse("acme").unwrap(), WorkspaceId::parse("ws").unwrap(), nonce_for(s)).to_string()).collect();
            prop_assert_eq!(names.len(), seqs.len());
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

    /// Found by the `trash_name` fuzz target: a name with a leading zero parsed, and printed as
    /// another entry's name.
    #[test]
    fn a_name_is_taken_only_as_the_layout_writes_it() {
        for name in [
            "0+acme+ws",
            "12+acme+ws",
            "1795494162+acme+ws+0123456789abcdef",
        ] {
            let parsed: TrashName = name.parse().unwrap();
            assert_eq!(parsed.to_string(), name);
        }
        assert!("0012+acme+ws".parse::<TrashName>().is_err());
    }

    #[test]
    fn rejects_foreign_names() {
        for bad in [
            "",
            "x+y+z",
            "12+acme",
            "12+acme+ws+extra",
            "12+acme+ws+0123456789ABCDEF",
            "12+acme+ws+0123456789abcdef+x",
            ".staging+12+acme+ws+0123456789abcdef",
            ".purging+12+acme+ws",
            "12+..+ws",
            "-1+a+b",
            "12+a+b/c",
            "lost+found",
            "0012+acme+ws",
            "00+acme+ws",
        ] {
            assert!(bad.parse::<TrashName>().is_err(), "{bad}");
        }
    }
}
