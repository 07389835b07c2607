//! The file system misbehaving, on real directories: files appearing in a workspace while it is
//! moved or purged, a full or read-only mount during the move into the trash, a subtree even root
//! cannot remove, names that are not UTF-8. Each case ends in a consistent state (data either
//! live or in the trash, never half of it; an entry either whole, staged or `.purging+`), and the
//! next run finishes it.
//!
//! The mount cases need root and permission to mount (a tmpfs of 64 KiB, `remount,ro`, a
//! read-only bind mount); without them they print why and pass, so CI on an unprivileged machine
//! stays green.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use lifecycle_domain::ids::{TenantId, WorkspaceId};
use lifecycle_domain::layout::{TrashName, PURGING_PREFIX, TRASH_DATA, TRASH_DIR, TRASH_RECORD};
use lifecycle_fs::{MoveOutcome, WorkspaceFs};

const RECORD: &[u8] = br#"{"workspaceId":{"S":"ws-1"},"tenantId":{"S":"acme"}}"#;

fn ids() -> (TenantId, WorkspaceId) {
    (
        TenantId::parse("acme").unwrap(),
        WorkspaceId::parse("ws-1").unwrap(),
    )
}

fn trash_name() -> TrashName {
    let (tenant, ws) = ids();
    TrashName::new(1_795_000_000, tenant, ws, "0123456789abcdef".into())
}

/// A workspace with a few files under `root`.
fn workspace(root: &Path) -> PathBuf {
    let dir = root.join("acme/ws-1");
    fs::create_dir_all(dir.join("src")).unwrap();
    fs::write(dir.join("src/main.rs"), b"fn main() {}").unwrap();
    fs::write(dir.join("notes.txt"), b"keep me").unwrap();
    dir
}

/// Names in `dir`, sorted (empty when it does not exist).
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The data is in exactly one place: live, or published in the trash with its record.
fn assert_one_place(root: &Path, name: &TrashName) -> &'static str {
    let live = root.join("acme/ws-1");
    let entry = root.join(TRASH_DIR).join(name.to_string());
    let staged = root.join(TRASH_DIR).join(name.staging());
    match (
        live.exists(),
        entry.exists(),
        staged.join(TRASH_DATA).exists(),
    ) {
        (true, false, false) => {
            assert_eq!(
                fs::read(live.join("notes.txt")).unwrap(),
                b"keep me",
                "live data intact"
            );
            "live"
        }
        (false, true, false) => {
            assert_eq!(
                fs::read(entry.join(TRASH_DATA).join("notes.txt")).unwrap(),
                b"keep me"
            );
            assert_eq!(fs::read(entry.join(TRASH_RECORD)).unwrap(), RECORD);
            "trash"
        }
        state => panic!("data neither live nor in the trash, or in two places: {state:?}"),
    }
}

// ---------------------------------------------------------------- files appearing

/// A process still in the workspace (its directory open) writes while the move happens and
/// after it: what it writes goes with the data into the trash (one rename moves the directory,
/// not its files one by one); a new directory created at the live path afterwards is a new
/// generation and stays live; running the move again moves nothing else.
#[test]
fn files_written_into_a_workspace_while_it_moves_go_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let dir = workspace(root);
    let held = fs::File::open(&dir).unwrap();
    let fs_ = WorkspaceFs::new(root);
    let (tenant, ws) = ids();
    let name = trash_name();

    let outcome = fs_.move_to_trash(&tenant, &ws, &name, RECORD).unwrap();
    assert!(matches!(outcome, MoveOutcome::Moved { .. }), "{outcome:?}");
    // The writer's next file, through the handle it holds.
    let late = rustix::fs::openat(
        &held,
        "written-after-move",
        rustix::fs::OFlags::CREATE | rustix::fs::OFlags::WRONLY,
        rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
    )
    .unwrap();
    drop(late);
    let data = root.join(TRASH_DIR).join(name.to_string()).join(TRASH_DATA);
    assert_eq!(
        names(&data),
        ["notes.txt", "src", "written-after-move"],
        "the late file is in the trash with the rest"
    );
    assert!(!dir.exists());

    // Someone re-creates the directory by name, data and all: a retry of the move is refused
    // (the entry is not known to be this move's while data is live), and nothing moves.
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("new"), b"new").unwrap();
    let again = fs_.move_to_trash(&tenant, &ws, &name, RECORD).unwrap_err();
    assert!(again.is_refused_entry(), "{again}");
    assert_eq!(names(&dir), ["new"], "the new generation stays live");
    // An empty directory (what EFS makes for a mounted access point) is no data: moved already.
    fs::remove_file(dir.join("new")).unwrap();
    let again = fs_.move_to_trash(&tenant, &ws, &name, RECORD).unwrap();
    assert!(
        matches!(again, MoveOutcome::AlreadyInTrash { .. }),
        "{again:?}"
    );
}

/// A purge stopped at its deadline leaves `.purging+<entry>`; a writer that still holds a
/// directory of it adds files; the next purge resumes under that name and removes everything.
#[test]
fn files_appearing_in_an_entry_between_purges_are_purged_by_the_next_run() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    workspace(root);
    let fs_ = WorkspaceFs::new(root);
    let (tenant, ws) = ids();
    let name = trash_name();
    fs_.move_to_trash(&tenant, &ws, &name, RECORD).unwrap();
    let src = root
        .join(TRASH_DIR)
        .join(name.to_string())
        .join(TRASH_DATA)
        .join("src");
    let held = fs::File::open(&src).unwrap();

    let first = fs_
        .purge_trash_entry(&name.to_string(), Some(Instant::now()))
        .unwrap();
    assert!(first.stopped_at_deadline && !first.complete, "{first:?}");
    let purging = format!("{PURGING_PREFIX}{name}");
    assert_eq!(names(&root.join(TRASH_DIR)), [purging.as_str()]);

    for i in 0..50 {
        let fd = rustix::fs::openat(
            &held,
            format!("late-{i}").as_str(),
            rustix::fs::OFlags::CREATE | rustix::fs::OFlags::WRONLY,
            rustix::fs::Mode::RUSR,
        )
        .unwrap();
        drop(fd);
    }
    rustix::fs::mkdirat(&held, "late-dir", rustix::fs::Mode::RWXU).unwrap();

    let second = fs_.purge_trash_entry(&purging, None).unwrap();
    assert!(second.complete, "{second:?}");
    assert!(second.files >= 52, "{second:?}");
    assert!(names(&root.join(TRASH_DIR)).is_empty());
}

// ---------------------------------------------------------------- names that are not UTF-8

/// Files whose names are not UTF-8 move with the workspace and are purged with it; a trash entry
/// whose own name is not UTF-8 is listed lossily, never taken for an entry, and left alone.
#[test]
fn names_that_are_not_utf8_move_and_purge_and_a_foreign_entry_is_left() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let dir = workspace(root);
    let odd = dir.join(OsStr::from_bytes(b"caf\xe9"));
    fs::create_dir(&odd).unwrap();
    fs::write(odd.join(OsStr::from_bytes(b"\xff\xfe")), b"latin-1").unwrap();
    let foreign = root
        .join(TRASH_DIR)
        .join(OsStr::from_bytes(b"1795000000+acme+ws-\xe9"));
    fs::create_dir_all(&foreign).unwrap();
    fs::write(foreign.join("f"), b"not ours").unwrap();

    let fs_ = WorkspaceFs::new(root);
    let (tenant, ws) = ids();
    let name = trash_name();
    fs_.move_to_trash(&tenant, &ws, &name, RECORD).unwrap();
    assert_eq!(assert_one_place(root, &name), "trash");
    let moved = root
        .join(TRASH_DIR)
        .join(name.to_string())
        .join(TRASH_DATA)
        .join(OsStr::from_bytes(b"caf\xe9"));
    assert_eq!(
        fs::read(moved.join(OsStr::from_bytes(b"\xff\xfe"))).unwrap(),
        b"latin-1"
    );

    let listed: Vec<String> = fs_
        .list_trash()
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    let lossy: Vec<&String> = listed
        .iter()
        .filter(|n| n.contains(char::REPLACEMENT_CHARACTER))
        .collect();
    assert_eq!(lossy.len(), 1, "{listed:?}");
    assert!(lossy[0].parse::<TrashName>().is_err(), "never an entry");

    let report = fs_.purge_trash_entry(&name.to_string(), None).unwrap();
    assert!(report.complete, "{report:?}");
    // notes.txt, src/main.rs, the latin-1 file and record.json.
    assert_eq!(report.files, 4, "{report:?}");
    // Addressed by its lossy name, the foreign entry is not found: nothing of it is touched.
    let _ = fs_.purge_trash_entry(lossy[0], None);
    assert_eq!(fs::read(foreign.join("f")).unwrap(), b"not ours");
}

// ---------------------------------------------------------------- mounts (root only)

/// A tmpfs mounted for one test, unmounted when dropped.
struct Mount {
    dir: tempfile::TempDir,
    /// Extra mounts on top (bind mounts), unmounted first.
    inner: Vec<PathBuf>,
}

impl Mount {
    /// A tmpfs of `size` at a fresh directory; `None` (and why, printed) where mounting is not
    /// permitted.
    fn tmpfs(test: &str, options: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        if fs::metadata("/proc/self").unwrap().uid() != 0 {
            eprintln!("{test}: needs root to mount a tmpfs; not run");
            return None;
        }
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Self { dir, inner: vec![] }),
            Ok(o) => {
                eprintln!(
                    "{test}: mount -t tmpfs not permitted here ({}); not run",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("{test}: no mount command ({e}); not run");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount(&self, options: &str) {
        run_mount(&["-o", &format!("remount,{options}")], self.path());
    }

    /// Binds `path` onto itself read-only: even root cannot change what is below it.
    fn bind_read_only(&mut self, path: &Path) {
        run_mount(&["--bind"], path);
        self.inner.push(path.to_path_buf());
        run_mount(&["-o", "remount,bind,ro"], path);
    }

    fn unbind(&mut self, path: &Path) {
        run_umount(path);
        self.inner.retain(|p| p != path);
    }
}

fn run_mount(args: &[&str], target: &Path) {
    let out = Command::new("mount")
        .args(args)
        .arg(target)
        .arg(target)
        .output()
        .unwrap();
    // `mount -o remount,… <dir> <dir>` and `mount --bind <dir> <dir>` both take source and target.
    assert!(
        out.status.success(),
        "mount {args:?} {}: {}",
        target.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run_umount(target: &Path) {
    let out = Command::new("umount").arg(target).output().unwrap();
    assert!(
        out.status.success(),
        "umount {}: {}",
        target.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Drop for Mount {
    fn drop(&mut self) {
        let quiet = |p: &Path| {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(p)
                .stderr(std::process::Stdio::null())
                .status();
        };
        for p in self.inner.drain(..).rev() {
            quiet(&p);
        }
        quiet(self.dir.path());
    }
}

/// Fills the file system at `dir` until a write fails with ENOSPC; returns the filler's path.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let filler = dir.join("filler");
    let mut f = fs::File::create(&filler).unwrap();
    let block = vec![0u8; 4096];
    loop {
        match f.write_all(&block) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error()) => break,
            Err(e) => panic!("filling: {e}"),
        }
    }
    let _ = f.sync_all();
    filler
}

/// The mount is full when the move writes the record into the staging entry: the move fails
/// with ENOSPC, the data stays live, the half-made staging entry holds no data; once space is
/// free, the next run publishes the entry whole.
#[test]
fn a_full_mount_during_the_move_leaves_the_data_live_and_the_next_run_finishes() {
    let test = "a_full_mount_during_the_move_leaves_the_data_live_and_the_next_run_finishes";
    let Some(mount) = Mount::tmpfs(test, "size=64k") else {
        return;
    };
    let root = mount.path();
    workspace(root);
    let filler = fill(root);
    let fs_ = WorkspaceFs::new(root);
    let (tenant, ws) = ids();
    let name = trash_name();

    let err = fs_.move_to_trash(&tenant, &ws, &name, RECORD).unwrap_err();
    assert_eq!(
        err.source.raw_os_error(),
        Some(rustix::io::Errno::NOSPC.raw_os_error()),
        "{err}"
    );
    assert!(!err.is_retryable(), "reported for the failure queue: {err}");
    assert_eq!(assert_one_place(root, &name), "live");
    // What was left: at most the staging directory with a partial record, never data.
    let staged = root.join(TRASH_DIR).join(name.staging());
    assert!(!staged.join(TRASH_DATA).exists());
    eprintln!(
        "{test}: left after ENOSPC: .trash = {:?}, staging = {:?}",
        names(&root.join(TRASH_DIR)),
        names(&staged)
    );

    fs::remove_file(filler).unwrap();
    let outcome = fs_.move_to_trash(&tenant, &ws, &name, RECORD).unwrap();
    assert!(matches!(outcome, MoveOutcome::Moved { .. }), "{outcome:?}");
    assert_eq!(assert_one_place(root, &name), "trash");
    assert_eq!(names(&root.join(TRASH_DIR)), [name.to_string()]);
    assert_eq!(
        names(&root.join(TRASH_DIR).join(name.to_string())),
        [TRASH_DATA, TRASH_RECORD],
        "no temporary file left in the entry"
    );
}

/// The mount turns read-only before the move (no trash yet) and again half-way (the staging
/// entry exists): each attempt fails with EROFS and changes nothing; once writable, the next
/// run finishes the same entry. A purge on a read-only mount fails the same way and is finished
/// by the next run.
#[test]
fn a_read_only_mount_during_the_move_and_the_purge_changes_nothing_until_writable() {
    let test = "a_read_only_mount_during_the_move_and_the_purge_changes_nothing_until_writable";
    let Some(mount) = Mount::tmpfs(test, "size=1m") else {
        return;
    };
    let root = mount.path();
    workspace(root);
    let fs_ = WorkspaceFs::new(root);
    let (tenant, ws) = ids();
    let name = trash_name();
    let erofs = Some(rustix::io::Errno::ROFS.raw_os_error());

    mount.remount("ro");
    let err = fs_.move_to_trash(&tenant, &ws, &name, RECORD).unwrap_err();
    assert_eq!(err.source.raw_os_error(), erofs, "{err}");
    assert_eq!(assert_one_place(root, &name), "live");
    assert!(!root.join(TRASH_DIR).exists(), "nothing created");

    // An earlier attempt got as far as the staging entry; then the mount went read-only.
    mount.remount("rw");
    fs::create_dir_all(root.join(TRASH_DIR).join(name.staging())).unwrap();
    mount.remount("ro");
    let err = fs_.move_to_trash(&tenant, &ws, &name, RECORD).unwrap_err();
    assert_eq!(err.source.raw_os_error(), erofs, "{err}");
    assert_eq!(assert_one_place(root, &name), "live");

    mount.remount("rw");
    let outcome = fs_.move_to_trash(&tenant, &ws, &name, RECORD).unwrap();
    assert!(matches!(outcome, MoveOutcome::Moved { .. }), "{outcome:?}");
    assert_eq!(assert_one_place(root, &name), "trash");

    mount.remount("ro");
    let err = fs_.purge_trash_entry(&name.to_string(), None).unwrap_err();
    assert_eq!(err.source.raw_os_error(), erofs, "{err}");
    assert_eq!(assert_one_place(root, &name), "trash", "nothing purged");
    mount.remount("rw");
    let report = fs_.purge_trash_entry(&name.to_string(), None).unwrap();
    assert!(report.complete, "{report:?}");
    assert!(names(&root.join(TRASH_DIR)).is_empty());
}

/// A subtree of a trash entry that even root cannot change (a read-only bind mount: unlike a
/// mode, it binds root too; same device, so the deleter enters it): the purge removes everything
/// else, reports each entry it could not remove, and leaves `.purging+<entry>` with only that
/// subtree; the next run, once the subtree is writable, finishes.
#[test]
fn a_subtree_root_cannot_remove_is_reported_and_the_next_purge_finishes() {
    let test = "a_subtree_root_cannot_remove_is_reported_and_the_next_purge_finishes";
    let Some(mut mount) = Mount::tmpfs(test, "size=1m") else {
        return;
    };
    let root = mount.path().to_path_buf();
    workspace(&root);
    let locked = root.join("acme/ws-1/locked");
    fs::create_dir_all(locked.join("deeper")).unwrap();
    fs::write(locked.join("deeper/f"), b"1").unwrap();
    fs::write(locked.join("g"), b"2").unwrap();
    let fs_ = WorkspaceFs::new(&root);
    let (tenant, ws) = ids();
    let name = trash_name();
    fs_.move_to_trash(&tenant, &ws, &name, RECORD).unwrap();
    let locked = root
        .join(TRASH_DIR)
        .join(name.to_string())
        .join(TRASH_DATA)
        .join("locked");
    let dev_before = fs::metadata(&locked).unwrap().dev();
    mount.bind_read_only(&locked);
    assert_eq!(
        fs::metadata(&locked).unwrap().dev(),
        dev_before,
        "same device"
    );
    assert!(
        fs::write(locked.join("probe"), b"x").is_err(),
        "root is refused"
    );

    let first = fs_.purge_trash_entry(&name.to_string(), None).unwrap();
    assert!(!first.complete && first.error_count() > 0, "{first:?}");
    assert!(
        first.errors.iter().any(|e| e.error.contains("Read-only")),
        "{first:?}"
    );
    let purging = root.join(TRASH_DIR).join(format!("{PURGING_PREFIX}{name}"));
    // Everything but the locked subtree is gone; the entry is committed to deletion.
    assert_eq!(
        names(&root.join(TRASH_DIR)),
        [format!("{PURGING_PREFIX}{name}")]
    );
    assert_eq!(names(&purging), [TRASH_DATA]);
    assert_eq!(names(&purging.join(TRASH_DATA)), ["locked"]);
    assert_eq!(
        names(&purging.join(TRASH_DATA).join("locked")),
        ["deeper", "g"]
    );
    eprintln!(
        "{test}: left after the first purge: {} ({} errors: {:?})",
        purging.display(),
        first.error_count(),
        first.errors.first()
    );

    mount.unbind(&purging.join(TRASH_DATA).join("locked"));
    let second = fs_
        .purge_trash_entry(&format!("{PURGING_PREFIX}{name}"), None)
        .unwrap();
    assert!(second.complete, "{second:?}");
    assert!(names(&root.join(TRASH_DIR)).is_empty());
}
