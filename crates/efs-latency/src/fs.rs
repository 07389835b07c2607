//! The passthrough: every inode the kernel knows is an `O_PATH` handle on the backing entry.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    KernelConfig, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, Stat};

use crate::delays::{Delays, Op};
use crate::timer::Timer;

const PATH_FLAGS: OFlags = OFlags::PATH.union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);

struct Node {
    fd: Arc<OwnedFd>,
    /// Lookups the kernel holds; at zero (forget) the handle is closed.
    nlookup: u64,
    key: (u64, u64),
}

#[derive(Default)]
struct Table {
    nodes: HashMap<u64, Node>,
    /// Backing (device, inode) to our inode number. The handle a node holds keeps its backing
    /// inode alive, so its number cannot be reused under us.
    by_key: HashMap<(u64, u64), u64>,
    next: u64,
}

/// An open directory's entries, and whether any was served yet.
type Listing = (Arc<Vec<DirEnt>>, bool);

struct DirEnt {
    ino: u64,
    kind: FileType,
    name: Vec<u8>,
}

pub struct LatencyFs {
    table: Mutex<Table>,
    /// Open directories: their listing, and whether any of it was served (a read from offset 0
    /// after that is a rewind, which lists the directory again, as a real file system does).
    dirs: Mutex<HashMap<u64, Listing>>,
    files: Mutex<HashMap<u64, Arc<OwnedFd>>>,
    next_fh: AtomicU64,
    delays: Delays,
    timer: Timer,
    ttl: Duration,
    stats: Option<PathBuf>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn errno(e: rustix::io::Errno) -> Errno {
    Errno::from_i32(e.raw_os_error())
}

fn time(sec: i64, nsec: i64) -> SystemTime {
    if sec >= 0 {
        UNIX_EPOCH + Duration::new(sec as u64, nsec as u32)
    } else {
        UNIX_EPOCH
    }
}

fn kind_of(mode: u32) -> FileType {
    match rfs::FileType::from_raw_mode(mode) {
        rfs::FileType::Directory => FileType::Directory,
        rfs::FileType::Symlink => FileType::Symlink,
        rfs::FileType::Fifo => FileType::NamedPipe,
        rfs::FileType::Socket => FileType::Socket,
        rfs::FileType::CharacterDevice => FileType::CharDevice,
        rfs::FileType::BlockDevice => FileType::BlockDevice,
        _ => FileType::RegularFile,
    }
}

fn attr(ino: u64, st: &Stat) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: st.st_size as u64,
        blocks: st.st_blocks as u64,
        atime: time(st.st_atime, st.st_atime_nsec),
        mtime: time(st.st_mtime, st.st_mtime_nsec),
        ctime: time(st.st_ctime, st.st_ctime_nsec),
        crtime: UNIX_EPOCH,
        kind: kind_of(st.st_mode),
        perm: (st.st_mode & 0o7777) as u16,
        nlink: st.st_nlink as u32,
        uid: st.st_uid,
        gid: st.st_gid,
        rdev: st.st_rdev as u32,
        blksize: st.st_blksize as u32,
        flags: 0,
    }
}

/// `/proc/self/fd/N`: reaches the inode of an `O_PATH` handle for the calls that take no handle.
fn proc_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// The entries of the directory `fd` (an `O_PATH` handle), listed whole: offsets into a listing
/// stay valid while the directory is emptied.
fn list(fd: &OwnedFd) -> Result<Vec<DirEnt>, Errno> {
    let dir = rfs::openat(
        fd,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno)?;
    let mut entries = Vec::new();
    let mut dir = rfs::Dir::new(dir).map_err(errno)?;
    while let Some(e) = dir.read() {
        let e = e.map_err(errno)?;
        let name = e.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        entries.push(DirEnt {
            ino: e.ino().max(1),
            kind: match e.file_type() {
                rfs::FileType::Directory => FileType::Directory,
                rfs::FileType::Symlink => FileType::Symlink,
                rfs::FileType::Fifo => FileType::NamedPipe,
                rfs::FileType::Socket => FileType::Socket,
                rfs::FileType::CharacterDevice => FileType::CharDevice,
                rfs::FileType::BlockDevice => FileType::BlockDevice,
                _ => FileType::RegularFile,
            },
            name: name.to_vec(),
        });
    }
    Ok(entries)
}

impl LatencyFs {
    pub fn new(
        backing: &Path,
        delays: Delays,
        ttl: Duration,
        stats: Option<PathBuf>,
    ) -> std::io::Result<Self> {
        let root = rfs::open(backing, PATH_FLAGS | OFlags::DIRECTORY, Mode::empty())?;
        let st = rfs::fstat(&root)?;
        let mut table = Table {
            next: 2,
            ..Default::default()
        };
        let key = (st.st_dev, st.st_ino);
        table.by_key.insert(key, 1);
        table.nodes.insert(
            1,
            Node {
                fd: Arc::new(root),
                nlookup: 1,
                key,
            },
        );
        Ok(Self {
            table: Mutex::new(table),
            dirs: Default::default(),
            files: Default::default(),
            next_fh: AtomicU64::new(1),
            delays,
            timer: Timer::start(),
            ttl,
            stats,
        })
    }

    fn fd(&self, ino: INodeNo) -> Result<Arc<OwnedFd>, Errno> {
        lock(&self.table)
            .nodes
            .get(&ino.0)
            .map(|n| n.fd.clone())
            .ok_or(Errno::ESTALE)
    }

    /// Counts `op` and sends its reply once its delay has passed.
    fn answer(&self, op: Op, send: impl FnOnce() + Send + 'static) {
        self.timer.after(self.delays.serve(op), send);
    }

    /// The kernel learns `name` of `parent`: one more lookup of its node.
    fn learn(&self, parent: &OwnedFd, name: &OsStr) -> Result<FileAttr, Errno> {
        let fd = rfs::openat(parent, name, PATH_FLAGS, Mode::empty()).map_err(errno)?;
        let st = rfs::fstat(&fd).map_err(errno)?;
        let key = (st.st_dev, st.st_ino);
        let mut t = lock(&self.table);
        let ino = match t.by_key.get(&key).copied() {
            Some(ino) => {
                t.nodes.get_mut(&ino).expect("indexed").nlookup += 1;
                ino
            }
            None => {
                let ino = t.next;
                t.next += 1;
                t.by_key.insert(key, ino);
                t.nodes.insert(
                    ino,
                    Node {
                        fd: Arc::new(fd),
                        nlookup: 1,
                        key,
                    },
                );
                ino
            }
        };
        Ok(attr(ino, &st))
    }

    fn entry(&self, op: Op, result: Result<FileAttr, Errno>, reply: ReplyEntry) {
        let ttl = self.ttl;
        self.answer(op, move || match result {
            Ok(a) => reply.entry(&ttl, &a, Generation(0)),
            Err(e) => reply.error(e),
        });
    }

    fn empty(&self, op: Op, result: Result<(), Errno>, reply: ReplyEmpty) {
        self.answer(op, move || match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        });
    }

    fn attr_reply(&self, op: Op, ino: INodeNo, result: Result<Stat, Errno>, reply: ReplyAttr) {
        let ttl = self.ttl;
        self.answer(op, move || match result {
            Ok(st) => reply.attr(&ttl, &attr(ino.0, &st)),
            Err(e) => reply.error(e),
        });
    }

    fn fh(&self) -> u64 {
        self.next_fh.fetch_add(1, Relaxed)
    }
}

impl Filesystem for LatencyFs {
    fn init(&mut self, _req: &Request, _config: &mut KernelConfig) -> std::io::Result<()> {
        Ok(())
    }

    fn destroy(&mut self) {
        let served = serde_json::to_string(&self.delays.served()).expect("serializes");
        match &self.stats {
            Some(path) => {
                if let Err(e) = std::fs::write(path, served + "\n") {
                    eprintln!("efs-latency: {}: {e}", path.display());
                }
            }
            None => println!("{served}"),
        }
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let result = self.fd(parent).and_then(|p| self.learn(&p, name));
        self.entry(Op::Lookup, result, reply);
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        if ino.0 == 1 {
            return;
        }
        let mut t = lock(&self.table);
        let Some(node) = t.nodes.get_mut(&ino.0) else {
            return;
        };
        node.nlookup = node.nlookup.saturating_sub(nlookup);
        if node.nlookup == 0 {
            let key = node.key;
            t.nodes.remove(&ino.0);
            if t.by_key.get(&key) == Some(&ino.0) {
                t.by_key.remove(&key);
            }
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let result = self.fd(ino).and_then(|fd| rfs::fstat(&*fd).map_err(errno));
        self.attr_reply(Op::Getattr, ino, result, reply);
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let result = self.fd(ino).and_then(|fd| {
            let path = proc_path(&fd);
            if let Some(mode) = mode {
                rfs::chmod(&path, Mode::from_raw_mode(mode & 0o7777)).map_err(errno)?;
            }
            if uid.is_some() || gid.is_some() {
                rfs::chownat(
                    &*fd,
                    "",
                    uid.map(rustix::process::Uid::from_raw),
                    gid.map(rustix::process::Gid::from_raw),
                    AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(errno)?;
            }
            if let Some(size) = size {
                let f = rfs::open(&path, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())
                    .map_err(errno)?;
                rfs::ftruncate(&f, size).map_err(errno)?;
            }
            rfs::fstat(&*fd).map_err(errno)
        });
        self.attr_reply(Op::Setattr, ino, result, reply);
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let result = self
            .fd(ino)
            .and_then(|fd| rfs::readlinkat(&*fd, "", Vec::new()).map_err(errno));
        self.answer(Op::Getattr, move || match result {
            Ok(target) => reply.data(target.as_bytes()),
            Err(e) => reply.error(e),
        });
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let result = self.fd(parent).and_then(|p| {
            rfs::mkdirat(&*p, name, Mode::from_raw_mode(mode & !umask & 0o7777)).map_err(errno)?;
            self.learn(&p, name)
        });
        self.entry(Op::Mkdir, result, reply);
    }

    fn symlink(
        &self,
        _req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let result = self.fd(parent).and_then(|p| {
            rfs::symlinkat(target, &*p, link_name).map_err(errno)?;
            self.learn(&p, link_name)
        });
        self.entry(Op::Symlink, result, reply);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let result = self
            .fd(parent)
            .and_then(|p| rfs::unlinkat(&*p, name, AtFlags::empty()).map_err(errno));
        self.empty(Op::Unlink, result, reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let result = self
            .fd(parent)
            .and_then(|p| rfs::unlinkat(&*p, name, AtFlags::REMOVEDIR).map_err(errno));
        self.empty(Op::Rmdir, result, reply);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let result = self.fd(parent).and_then(|p| {
            let np = self.fd(newparent)?;
            let flags = rfs::RenameFlags::from_bits_retain(flags.bits());
            rfs::renameat_with(&*p, name, &*np, newname, flags).map_err(errno)
        });
        self.empty(Op::Rename, result, reply);
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let keep = OFlags::from_bits_retain(flags.0 as u32)
            & (OFlags::RWMODE | OFlags::APPEND | OFlags::TRUNC);
        let result = self.fd(ino).and_then(|fd| {
            rfs::open(proc_path(&fd), keep | OFlags::CLOEXEC, Mode::empty()).map_err(errno)
        });
        let result = result.map(|f| {
            let fh = self.fh();
            lock(&self.files).insert(fh, Arc::new(f));
            fh
        });
        self.answer(Op::Open, move || match result {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        });
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        let file = lock(&self.files).get(&fh.0).cloned();
        let result = file.ok_or(Errno::EBADF).and_then(|f| {
            let mut buf = vec![0; size as usize];
            let n = rustix::io::pread(&*f, &mut buf, offset).map_err(errno)?;
            buf.truncate(n);
            Ok(buf)
        });
        self.answer(Op::Read, move || match result {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        });
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyWrite,
    ) {
        let file = lock(&self.files).get(&fh.0).cloned();
        let result = file
            .ok_or(Errno::EBADF)
            .and_then(|f| rustix::io::pwrite(&*f, data, offset).map_err(errno));
        self.answer(Op::Write, move || match result {
            Ok(n) => reply.written(n as u32),
            Err(e) => reply.error(e),
        });
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: fuser::LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        lock(&self.files).remove(&fh.0);
        reply.ok();
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let keep = OFlags::from_bits_retain(flags as u32)
            & (OFlags::RWMODE | OFlags::APPEND | OFlags::TRUNC | OFlags::EXCL);
        let result = self.fd(parent).and_then(|p| {
            let f = rfs::openat(
                &*p,
                name,
                keep | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(mode & !umask & 0o7777),
            )
            .map_err(errno)?;
            let a = self.learn(&p, name)?;
            let fh = self.fh();
            lock(&self.files).insert(fh, Arc::new(f));
            Ok((a, fh))
        });
        let ttl = self.ttl;
        self.answer(Op::Create, move || match result {
            Ok((a, fh)) => {
                reply.created(&ttl, &a, Generation(0), FileHandle(fh), FopenFlags::empty())
            }
            Err(e) => reply.error(e),
        });
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let result = self.fd(ino).and_then(|fd| list(&fd)).map(|entries| {
            let fh = self.fh();
            lock(&self.dirs).insert(fh, (Arc::new(entries), false));
            fh
        });
        self.answer(Op::Opendir, move || match result {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        });
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let entries = {
            let mut dirs = lock(&self.dirs);
            let Some((entries, served)) = dirs.get_mut(&fh.0) else {
                drop(dirs);
                self.answer(Op::Readdir, move || reply.error(Errno::EBADF));
                return;
            };
            if offset == 0 && *served {
                match self.fd(ino).and_then(|fd| list(&fd)) {
                    Ok(fresh) => *entries = Arc::new(fresh),
                    Err(e) => {
                        drop(dirs);
                        self.answer(Op::Readdir, move || reply.error(e));
                        return;
                    }
                }
            }
            *served = true;
            entries.clone()
        };
        for (i, e) in entries.iter().enumerate().skip(offset as usize) {
            let name = <OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&e.name);
            if reply.add(INodeNo(e.ino), i as u64 + 1, e.kind, name) {
                break;
            }
        }
        self.answer(Op::Readdir, move || reply.ok());
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        lock(&self.dirs).remove(&fh.0);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let result = self
            .fd(INodeNo(1))
            .and_then(|fd| rfs::fstatvfs(fd.as_fd()).map_err(errno));
        self.answer(Op::Statfs, move || match result {
            Ok(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                s.f_namemax as u32,
                s.f_frsize as u32,
            ),
            Err(e) => reply.error(e),
        });
    }
}
