//! Archiving a trash entry and restoring it, on real temporary directories and the in-memory
//! archive bucket: byte-identical round trips, hostile archives refused with nothing written
//! outside, an upload that fails half-way aborted.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lifecycle_domain::archive::{archive_key, record_key, RETENTION_TAG};
use lifecycle_domain::layout::{TrashName, TRASH_DIR};
use lifecycle_domain::record::{attr, Attributes, Value};
use lifecycle_domain::retention::RetentionPolicy;
use lifecycle_domain::{TenantId, WorkspaceId};
use lifecycle_fs::archive::extract::extract_tree;
use lifecycle_fs::archive::{
    archive_trash_entry, restore_from_archive, ArchiveError, ArchiveRestoreError, TreeError,
};
use lifecycle_fs::restore::{RestoreError, Supplied};
use lifecycle_fs::WorkspaceFs;
use lifecycle_ports::fakes::archive::MemoryArchive;
use lifecycle_ports::fakes::MemoryTable;
use lifecycle_ports::{ArchiveStore, ObjectSpec};
use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, Timespec, Timestamps};

const NOW: i64 = 1_800_000_000;

fn entry_name() -> TrashName {
    TrashName::new(
        1_700_000_000,
        TenantId::parse("acme").unwrap(),
        WorkspaceId::parse("ws-1").unwrap(),
        "0123456789abcdef".into(),
    )
}

fn record() -> Attributes {
    Attributes::from_iter([
        (attr::WORKSPACE_ID, Value::S("ws-1".into())),
        (attr::TENANT_ID, Value::S("acme".into())),
        (attr::TIER, Value::S("pro".into())),
        (attr::SUBSCRIPTION_STATUS, Value::S("active".into())),
        (attr::LAST_ACTIVITY_AT, Value::N("1600000000".into())),
        ("customAttribute", Value::S("ünïcode kept".into())),
    ])
}

fn set_time(path: &Path, secs: i64, nanos: i64) {
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: nanos,
    };
    rfs::utimensat(
        rfs::CWD,
        path,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

/// A workspace with everything a round trip must keep.
fn build_tree(data: &Path) {
    std::fs::create_dir_all(data.join("src/deep/er")).unwrap();
    std::fs::create_dir(data.join("empty")).unwrap();
    std::fs::write(data.join("src/main.rs"), b"fn main() {}\n").unwrap();
    std::fs::write(data.join("src/deep/er/zero"), b"").unwrap();
    // Larger than several parts, and not compressible to nothing.
    let big: Vec<u8> = (0..700_000u32)
        .flat_map(|i| (i.wrapping_mul(2_654_435_761)).to_le_bytes())
        .collect();
    std::fs::write(data.join("big.bin"), &big).unwrap();
    let script = data.join("run.sh");
    std::fs::write(&script, b"#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o750)).unwrap();
    let secret = data.join("secret");
    std::fs::write(&secret, b"s").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let odd = data.join(OsStr::from_bytes(b"caf\xe9 \\ name"));
    std::fs::write(&odd, b"latin-1 name").unwrap();
    let long = data.join("l".repeat(200)).join("m".repeat(200));
    std::fs::create_dir_all(long.parent().unwrap()).unwrap();
    std::fs::write(&long, b"long names").unwrap();
    symlink("../run.sh", data.join("src/link-up")).unwrap();
    symlink("/etc/passwd", data.join("absolute-link")).unwrap();
    symlink("nowhere/at/all", data.join("dangling")).unwrap();
    symlink("x".repeat(300), data.join("long-target")).unwrap();
    std::fs::set_permissions(
        data.join("src/deep"),
        std::fs::Permissions::from_mode(0o705),
    )
    .unwrap();
    // Times last, deepest first, so creating entries does not move them.
    let mut paths: Vec<PathBuf> = walk(data)
        .into_keys()
        .map(|rel| data.join(OsStr::from_bytes(&rel)))
        .collect();
    paths.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, path) in paths.iter().enumerate() {
        set_time(path, 1_600_000_000 + i as i64, 123_456_789);
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Node {
    kind: &'static str,
    mode: u32,
    mtime: (i64, i64),
    content: Vec<u8>,
}

/// Every entry under `top` (the top itself as ""), never following a link.
fn walk(top: &Path) -> BTreeMap<Vec<u8>, Node> {
    let mut out = BTreeMap::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        let path = top.join(&rel);
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let ft = meta.file_type();
        let (kind, content) = if ft.is_dir() {
            for child in std::fs::read_dir(&path).unwrap() {
                todo.push(rel.join(child.unwrap().file_name()));
            }
            ("dir", Vec::new())
        } else if ft.is_symlink() {
            (
                "link",
                std::fs::read_link(&path)
                    .unwrap()
                    .as_os_str()
                    .as_bytes()
                    .to_vec(),
            )
        } else {
            ("file", std::fs::read(&path).unwrap())
        };
        // A link's mode is always 0777 on Linux; compare it anyway.
        out.insert(
            rel.as_os_str().as_bytes().to_vec(),
            Node {
                kind,
                mode: meta.mode() & 0o7777,
                mtime: (meta.mtime(), meta.mtime_nsec()),
                content,
            },
        );
    }
    out
}

struct World {
    root: tempfile::TempDir,
    fs: WorkspaceFs,
    store: Arc<MemoryArchive>,
    table: MemoryTable,
}

impl World {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        Self {
            fs: WorkspaceFs::new(root.path()),
            root,
            store: Arc::default(),
            table: MemoryTable::default(),
        }
    }

    fn entry_dir(&self) -> PathBuf {
        self.root
            .path()
            .join(TRASH_DIR)
            .join(entry_name().to_string())
    }

    /// A trash entry holding the full tree and its record; returns the tree as it was.
    fn trash_entry(&self) -> BTreeMap<Vec<u8>, Node> {
        let data = self.entry_dir().join("data");
        std::fs::create_dir_all(&data).unwrap();
        build_tree(&data);
        let kept = serde_json::json!({"deletedAt": 1_700_000_000, "item": record()});
        std::fs::write(
            self.entry_dir().join("record.json"),
            serde_json::to_vec(&kept).unwrap(),
        )
        .unwrap();
        walk(&data)
    }

    async fn restore(&self) -> Result<lifecycle_fs::restore::Restored, ArchiveRestoreError> {
        restore_from_archive(
            &self.table,
            &self.fs,
            self.store.clone(),
            &entry_name(),
            &RetentionPolicy::default(),
            &Supplied::default(),
            NOW,
        )
        .await
    }

    /// Every name directly under the root (the trash's own names inside it too).
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = walk(self.root.path())
            .into_keys()
            .map(|k| String::from_utf8_lossy(&k).into_owned())
            .filter(|k| !k.contains("/data/"))
            .collect();
        names.sort();
        names
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_comes_back_byte_identical() {
    let w = World::new();
    let before = w.trash_entry();
    let archived = archive_trash_entry(&w.fs, w.store.clone(), &entry_name(), 90, 64 * 1024, None)
        .await
        .unwrap();
    assert!(archived.parts > 2, "several parts: {archived:?}");
    assert!(archived.with_record);
    assert_eq!(archived.stats.symlinks, 4);
    let object = w.store.object(&archive_key(&entry_name())).unwrap();
    assert_eq!(object.body.len() as u64, archived.size);
    assert_eq!(
        object.tags.get(RETENTION_TAG).map(String::as_str),
        Some("90")
    );
    let kept = w.store.object(&record_key(&entry_name())).unwrap();
    assert_eq!(
        kept.body,
        std::fs::read(w.entry_dir().join("record.json")).unwrap()
    );
    // Archiving changes nothing on the file system.
    assert_eq!(walk(&w.entry_dir().join("data")), before);

    // The EFS copy is purged; the workspace comes back from the archive alone.
    let report =
        w.fs.purge_trash_entry(&entry_name().to_string(), None)
            .unwrap();
    assert!(report.complete);
    let restored = w.restore().await.unwrap();
    assert_eq!(restored.place, w.root.path().join("acme/ws-1"));
    let after = walk(&restored.place);
    assert_eq!(after.len(), before.len());
    for (name, node) in &before {
        assert_eq!(
            after.get(name),
            Some(node),
            "{}",
            String::from_utf8_lossy(name)
        );
    }
    // The record is back, with its unknown attribute and a fresh expiry.
    let item = w.table.items.lock().unwrap().get("ws-1").cloned().unwrap();
    assert_eq!(item.text("customAttribute"), Some("ünïcode kept"));
    assert!(
        matches!(item.get(attr::EXPIRES_AT), Some(Value::N(n)) if n.parse::<i64>().unwrap() > NOW)
    );
    // Nothing is left in the trash.
    assert_eq!(w.fs.list_trash().unwrap(), vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_that_fails_half_way_is_aborted_and_the_entry_stays() {
    let w = World::new();
    let before = w.trash_entry();
    *w.store.fail_parts_after.lock().unwrap() = Some(2);
    let err = archive_trash_entry(&w.fs, w.store.clone(), &entry_name(), 30, 64 * 1024, None)
        .await
        .unwrap_err();
    assert!(matches!(err, ArchiveError::Service(_)), "{err}");
    assert_eq!(w.store.aborted.lock().unwrap().len(), 1);
    assert_eq!(w.store.open_uploads(), 0);
    assert!(w.store.object(&archive_key(&entry_name())).is_none());
    assert_eq!(walk(&w.entry_dir().join("data")), before);
    // The next try (the next run) succeeds.
    *w.store.fail_parts_after.lock().unwrap() = None;
    archive_trash_entry(&w.fs, w.store.clone(), &entry_name(), 30, 64 * 1024, None)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_stops_the_archive_and_aborts_it() {
    let w = World::new();
    w.trash_entry();
    let past = std::time::Instant::now();
    let err = archive_trash_entry(
        &w.fs,
        w.store.clone(),
        &entry_name(),
        30,
        64 * 1024,
        Some(past),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, ArchiveError::Tree(TreeError::Deadline)),
        "{err}"
    );
    assert_eq!(w.store.open_uploads(), 0);
    assert!(w.store.object(&archive_key(&entry_name())).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_whose_record_exists_again_is_not_restored_from_the_archive() {
    let w = World::new();
    w.trash_entry();
    archive_trash_entry(&w.fs, w.store.clone(), &entry_name(), 30, 64 * 1024, None)
        .await
        .unwrap();
    w.fs.purge_trash_entry(&entry_name().to_string(), None)
        .unwrap();
    w.table
        .items
        .lock()
        .unwrap()
        .insert("ws-1".into(), record());
    let err = w.restore().await.unwrap_err();
    assert!(
        matches!(
            err,
            ArchiveRestoreError::Restore(RestoreError::RecordExists(_))
        ),
        "{err}"
    );
    assert!(
        !w.root.path().join("acme").exists(),
        "nothing was extracted"
    );
    assert_eq!(w.fs.list_trash().unwrap(), vec![]);
}

/// A tar + zstd archive of raw entries: `(name bytes, type, link target, content)`, with names
/// written straight into the header (no validation), as a hostile archive would be.
/// One crafted entry: name bytes, type, link target, content.
type Raw<'a> = (&'a [u8], tar::EntryType, &'a [u8], &'a [u8]);

fn crafted(entries: &[Raw]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, kind, link, content) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(*kind);
        header.set_mode(0o644);
        header.set_size(content.len() as u64);
        header.set_mtime(1);
        header.set_uid(0);
        header.set_gid(0);
        header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
        if !link.is_empty() {
            header.as_gnu_mut().unwrap().linkname[..link.len()].copy_from_slice(link);
        }
        header.set_cksum();
        tar.append(&header, *content).unwrap();
    }
    let tar = tar.into_inner().unwrap();
    let mut z = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    z.write_all(&tar).unwrap();
    z.finish().unwrap()
}

fn open_dir(path: &Path) -> OwnedFd {
    rfs::open(path, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap()
}

#[test]
fn hostile_archives_are_refused_with_nothing_written_outside() {
    use tar::EntryType::{Block, Char, Directory, Fifo, Link, Regular, Symlink};
    let base = tempfile::tempdir().unwrap();
    let outside = base.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let out = outside.as_os_str().as_bytes();
    let out_file = [out, b"/planted"].concat();
    let cases: Vec<(&str, Vec<Raw>)> = vec![
        (
            "dot-dot",
            vec![
                (b"ok", Regular, b"", b"1"),
                (b"../outside/evil", Regular, b"", b"x"),
            ],
        ),
        (
            "dot-dot inside",
            vec![
                (b"d", Directory, b"", b""),
                (b"d/../../outside/evil", Regular, b"", b"x"),
            ],
        ),
        ("absolute", vec![(&out_file, Regular, b"", b"x")]),
        (
            "write through a planted link",
            vec![
                (b"link", Symlink, out, b""),
                (b"link/evil", Regular, b"", b"x"),
            ],
        ),
        (
            "directory through a planted link",
            vec![
                (b"link", Symlink, out, b""),
                (b"link/sub", Directory, b"", b""),
            ],
        ),
        (
            "replace a planted link",
            vec![
                (b"link", Symlink, &out_file, b""),
                (b"link", Regular, b"", b"x"),
            ],
        ),
        (
            "link then directory of the same name",
            vec![(b"d", Symlink, out, b""), (b"d", Directory, b"", b"")],
        ),
        ("hard link", vec![(b"hl", Link, &out_file, b"")]),
        (
            "hard link to an earlier entry",
            vec![(b"a", Regular, b"", b"1"), (b"hl", Link, b"a", b"")],
        ),
        ("character device", vec![(b"null", Char, b"", b"")]),
        ("block device", vec![(b"sda", Block, b"", b"")]),
        ("fifo", vec![(b"pipe", Fifo, b"", b"")]),
        (
            "duplicate file",
            vec![(b"f", Regular, b"", b"1"), (b"f", Regular, b"", b"2")],
        ),
        ("parent missing", vec![(b"nodir/f", Regular, b"", b"1")]),
        ("top not a directory", vec![(b".", Regular, b"", b"1")]),
    ];
    std::fs::write(outside.join("planted"), b"original").unwrap();
    for (what, entries) in cases {
        let top_path = base.path().join("top");
        std::fs::create_dir(&top_path).unwrap();
        let top = open_dir(&top_path);
        let err = extract_tree(crafted(&entries).as_slice(), &top, None).unwrap_err();
        assert!(matches!(err, TreeError::Refused { .. }), "{what}: {err}");
        // Outside: exactly what was there.
        let names: Vec<_> = std::fs::read_dir(&outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![OsStr::new("planted").to_os_string()], "{what}");
        assert_eq!(
            std::fs::read(outside.join("planted")).unwrap(),
            b"original",
            "{what}"
        );
        let mut beside: Vec<_> = std::fs::read_dir(base.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        beside.sort();
        assert_eq!(
            beside,
            vec![OsStr::new("outside"), OsStr::new("top")],
            "{what}"
        );
        std::fs::remove_dir_all(&top_path).unwrap();
    }
}

#[test]
fn a_link_pointing_out_is_kept_as_a_link_and_never_followed() {
    use tar::EntryType::{Directory, Symlink};
    let base = tempfile::tempdir().unwrap();
    let top_path = base.path().join("top");
    std::fs::create_dir(&top_path).unwrap();
    let archive = crafted(&[
        (b".", Directory, b"", b""),
        (b"etc", Symlink, b"/etc", b""),
        (b"up", Symlink, b"../..", b""),
    ]);
    extract_tree(archive.as_slice(), &open_dir(&top_path), None).unwrap();
    assert_eq!(
        std::fs::read_link(top_path.join("etc")).unwrap(),
        Path::new("/etc")
    );
    assert_eq!(
        std::fs::read_link(top_path.join("up")).unwrap(),
        Path::new("../..")
    );
}

#[test]
fn a_corrupted_archive_is_refused() {
    use tar::EntryType::{Directory, Regular};
    let base = tempfile::tempdir().unwrap();
    let top_path = base.path().join("top");
    std::fs::create_dir(&top_path).unwrap();
    let mut z = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    z.include_checksum(true).unwrap();
    let plain = {
        let raw = crafted(&[
            (b".", Directory, b"", b""),
            (b"f", Regular, b"", &[7u8; 5000]),
        ]);
        zstd::decode_all(raw.as_slice()).unwrap()
    };
    z.write_all(&plain).unwrap();
    let mut bytes = z.finish().unwrap();
    let n = bytes.len();
    bytes[n - 2] ^= 0xff; // the frame's checksum
    assert!(extract_tree(bytes.as_slice(), &open_dir(&top_path), None).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_archive_in_the_bucket_restores_nothing() {
    use tar::EntryType::{Directory, Regular, Symlink};
    let w = World::new();
    let outside = tempfile::tempdir().unwrap();
    let out = outside.path().as_os_str().as_bytes();
    let archive = crafted(&[
        (b".", Directory, b"", b""),
        (b"ok", Regular, b"", b"fine"),
        (b"link", Symlink, out, b""),
        (b"link/evil", Regular, b"", b"x"),
    ]);
    let spec = |key: String| ObjectSpec {
        key,
        ..ObjectSpec::default()
    };
    w.store
        .put(&spec(archive_key(&entry_name())), archive)
        .await
        .unwrap();
    let kept = serde_json::json!({"item": record()});
    w.store
        .put(
            &spec(record_key(&entry_name())),
            serde_json::to_vec(&kept).unwrap(),
        )
        .await
        .unwrap();
    let err = w.restore().await.unwrap_err();
    assert!(
        matches!(
            err,
            ArchiveRestoreError::Archive(ArchiveError::Tree(TreeError::Refused { .. }))
        ),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    assert!(!w.root.path().join("acme").exists());
    assert!(w.table.items.lock().unwrap().is_empty());
    // The half-extracted entry is gone; only the (empty) trash directory is left.
    assert_eq!(w.names(), vec!["".to_string(), ".trash".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deep_archive_restore_is_started_then_finished_on_a_later_call() {
    let w = World::new();
    let before = w.trash_entry();
    archive_trash_entry(&w.fs, w.store.clone(), &entry_name(), 365, 64 * 1024, None)
        .await
        .unwrap();
    w.fs.purge_trash_entry(&entry_name().to_string(), None)
        .unwrap();
    let key = archive_key(&entry_name());
    w.store.transition(&key, "DEEP_ARCHIVE");
    let not_ready = |e: &ArchiveRestoreError| match e {
        ArchiveRestoreError::NotReadyYet { started, class, .. } => {
            assert_eq!(class, "DEEP_ARCHIVE");
            Some(*started)
        }
        _ => None,
    };
    let err = w.restore().await.unwrap_err();
    assert_eq!(not_ready(&err), Some(true), "{err}");
    let err = w.restore().await.unwrap_err();
    assert_eq!(
        not_ready(&err),
        Some(false),
        "asked once, still restoring: {err}"
    );
    assert!(!w.root.path().join("acme").exists());
    w.store.finish_restore(&key);
    let restored = w.restore().await.unwrap();
    assert_eq!(walk(&restored.place), before);
}

mod property {
    use super::*;
    use lifecycle_fs::archive::tree::write_tree;
    use proptest::prelude::*;

    /// A file name: any bytes but `/` and NUL (not `.` or `..`).
    fn name() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(1u8..=255, 1..120)
            .prop_map(|b| {
                b.into_iter()
                    .map(|c| if c == b'/' { b'_' } else { c })
                    .collect::<Vec<u8>>()
            })
            .prop_filter("not . or ..", |n| n != b"." && n != b"..")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Whatever the names, contents, modes and times: what comes out of an archive is what
        /// went in.
        #[test]
        fn any_tree_round_trips(
            files in proptest::collection::btree_map(name(), (proptest::collection::vec(any::<u8>(), 0..3000), 0o400u32..0o777, 0i64..4_000_000_000, 0i64..1_000_000_000), 1..12),
            nested in proptest::collection::btree_map(name(), name(), 0..4),
        ) {
            let base = tempfile::tempdir().unwrap();
            let src = base.path().join("src");
            std::fs::create_dir(&src).unwrap();
            for (n, (content, mode, secs, nanos)) in &files {
                let path = src.join(OsStr::from_bytes(n));
                std::fs::write(&path, content).unwrap();
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode)).unwrap();
                set_time(&path, *secs, *nanos);
            }
            for (dir, link) in &nested {
                let d = src.join("d").join(OsStr::from_bytes(dir));
                if std::fs::symlink_metadata(&d).is_ok() { continue; }
                std::fs::create_dir_all(&d).unwrap();
                symlink(OsStr::from_bytes(link), d.join(OsStr::from_bytes(link))).unwrap();
            }
            let before = walk(&src);
            let (bytes, stats) = write_tree(open_dir(&src), Vec::new(), None).unwrap();
            prop_assert_eq!(stats.files as usize, files.len());
            let out = base.path().join("out");
            std::fs::create_dir(&out).unwrap();
            extract_tree(bytes.as_slice(), &open_dir(&out), None).unwrap();
            let after = walk(&out);
            prop_assert_eq!(after, before);
        }
    }
}

mod lookahead_property {
    use super::*;
    use lifecycle_fs::archive::tree::{write_tree_with, Lookahead};
    use proptest::prelude::*;
    use std::time::Duration;

    /// A directory's entries: files (content size), subdirectories, links; up to three levels.
    #[derive(Debug, Clone)]
    enum Entry {
        File(usize),
        Dir(Vec<Entry>),
        Link,
    }

    fn entry() -> impl Strategy<Value = Entry> {
        let leaf = prop_oneof![
            6 => (0usize..6000).prop_map(Entry::File),
            1 => Just(Entry::Link),
        ];
        leaf.prop_recursive(3, 200, 30, |inner| {
            proptest::collection::vec(inner, 0..30).prop_map(Entry::Dir)
        })
    }

    fn build(dir: &Path, entries: &[Entry], seed: &mut u32) {
        for (i, e) in entries.iter().enumerate() {
            let path = dir.join(format!("e{i}"));
            match e {
                Entry::File(n) => {
                    let bytes: Vec<u8> = (0..*n)
                        .map(|j| (j as u32).wrapping_mul(*seed) as u8)
                        .collect();
                    std::fs::write(&path, bytes).unwrap();
                    *seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                }
                Entry::Dir(inner) => {
                    std::fs::create_dir(&path).unwrap();
                    build(&path, inner, seed);
                }
                Entry::Link => symlink(format!("../e{i}"), &path).unwrap(),
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// However many workers fetch ahead, and however little they may hold (a few entries, a
        /// few bytes: files then streamed by the writer), the archive is byte for byte the one
        /// the writer makes alone, and extracts to the tree it was made of.
        #[test]
        fn the_archive_does_not_depend_on_the_lookahead(
            top in proptest::collection::vec(entry(), 1..40),
            workers in 0usize..12,
            entries in 1usize..24,
            bytes in 0usize..20_000,
            eager in any::<bool>(),
        ) {
            let base = tempfile::tempdir().unwrap();
            let src = base.path().join("src");
            std::fs::create_dir(&src).unwrap();
            build(&src, &top, &mut 7);
            let before = walk(&src);
            let serial = Lookahead { workers: 0, entries: 1, bytes: 0, ..Lookahead::default() };
            let (alone, alone_stats) = write_tree_with(open_dir(&src), Vec::new(), None, serial).unwrap();
            // Eager: every worker joins at once (on a local disk, most would never start).
            let round_trip = if eager { Duration::ZERO } else { Lookahead::default().round_trip };
            let lookahead = Lookahead { workers, entries, bytes, round_trip };
            let (ahead, stats) = write_tree_with(open_dir(&src), Vec::new(), None, lookahead).unwrap();
            prop_assert_eq!(stats, alone_stats);
            prop_assert!(ahead == alone, "the archives differ");
            let out = base.path().join("out");
            std::fs::create_dir(&out).unwrap();
            extract_tree(ahead.as_slice(), &open_dir(&out), None).unwrap();
            prop_assert_eq!(walk(&out), before);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_is_read_back_before_it_counts_as_one() {
    use lifecycle_fs::archive::{read_back, sha256, Archived, TreeStats};
    use tar::EntryType::{Directory, Regular};
    let store = Arc::new(MemoryArchive::default());
    let good = crafted(&[(b".", Directory, b"", b""), (b"f", Regular, b"", b"12345")]);
    let spec = |key: &str| ObjectSpec {
        key: key.into(),
        ..ObjectSpec::default()
    };
    store.put(&spec("good"), good.clone()).await.unwrap();
    let mut bad = good.clone();
    let n = bad.len();
    bad[n / 2] ^= 0x55;
    store.put(&spec("bad"), bad).await.unwrap();
    let archived = |key: &str, files| Archived {
        key: key.into(),
        size: good.len() as u64,
        sha256: sha256(&good),
        parts: 1,
        stats: TreeStats {
            files,
            directories: 1,
            symlinks: 0,
            bytes: 5,
            skipped: 0,
        },
        with_record: false,
    };
    read_back(store.clone(), &archived("good", 1), None)
        .await
        .unwrap();
    let err = read_back(store.clone(), &archived("good", 2), None)
        .await
        .unwrap_err();
    assert!(matches!(err, ArchiveError::Verify { .. }), "{err}");
    let err = read_back(store.clone(), &archived("bad", 1), None)
        .await
        .unwrap_err();
    assert!(matches!(err, ArchiveError::Tree(_)), "{err}");
}

mod hostile_property {
    use super::*;
    use proptest::prelude::*;
    use tar::EntryType;

    fn component() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            Just("a"),
            Just("b"),
            Just(".."),
            Just("."),
            Just(""),
            Just("c d")
        ]
    }

    fn name() -> impl Strategy<Value = Vec<u8>> {
        (any::<bool>(), proptest::collection::vec(component(), 1..5)).prop_map(
            |(absolute, parts)| {
                let joined = parts.join("/");
                if absolute {
                    format!("/{joined}").into_bytes()
                } else {
                    joined.into_bytes()
                }
            },
        )
    }

    fn kind() -> impl Strategy<Value = EntryType> {
        prop_oneof![
            4 => Just(EntryType::Regular),
            3 => Just(EntryType::Directory),
            3 => Just(EntryType::Symlink),
            1 => Just(EntryType::Link),
            1 => Just(EntryType::Char),
            1 => Just(EntryType::Fifo),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// Whatever an archive holds and whether it is refused or not, nothing outside the
        /// directory it is extracted into is created, changed or followed into.
        #[test]
        fn nothing_lands_outside(entries in proptest::collection::vec((name(), kind(), 0usize..4), 1..8)) {
            let base = tempfile::tempdir().unwrap();
            let outside = base.path().join("outside");
            std::fs::create_dir(&outside).unwrap();
            std::fs::write(outside.join("planted"), b"original").unwrap();
            let top_path = base.path().join("top");
            std::fs::create_dir(&top_path).unwrap();
            let out = outside.as_os_str().as_bytes().to_vec();
            let targets: [&[u8]; 4] = [&out, b"../..", b"a", b"/"];
            let raw: Vec<(Vec<u8>, EntryType, Vec<u8>)> = entries
                .iter()
                .map(|(n, k, t)| (n.clone(), *k, targets[*t].to_vec()))
                .collect();
            let refs: Vec<Raw> = raw
                .iter()
                .map(|(n, k, t)| {
                    let link: &[u8] = if matches!(k, EntryType::Symlink | EntryType::Link) { t } else { b"" };
                    (n.as_slice(), *k, link, &b"x"[..])
                })
                .collect();
            let _ = extract_tree(crafted(&refs).as_slice(), &open_dir(&top_path), None);
            let mut beside: Vec<_> = std::fs::read_dir(base.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
            beside.sort();
            prop_assert_eq!(beside, vec![OsStr::new("outside").to_os_string(), OsStr::new("top").to_os_string()]);
            let inside: Vec<_> = std::fs::read_dir(&outside).unwrap().map(|e| e.unwrap().file_name()).collect();
            prop_assert_eq!(inside, vec![OsStr::new("planted").to_os_string()]);
            prop_assert_eq!(std::fs::read(outside.join("planted")).unwrap(), b"original".to_vec());
            prop_assert!(std::fs::symlink_metadata(base.path().join("top")).unwrap().is_dir());
            // Absolute names would have been the file system's root: nothing appeared there.
            for name in ["/a", "/b", "/c d"] {
                prop_assert!(std::fs::symlink_metadata(name).is_err(), "{} exists", name);
            }
        }
    }
}
