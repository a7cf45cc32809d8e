//! Opening a plugin library: a private path for it (hard link or copy),
//! `dlopen`, entry symbol, ABI checks.
//!
//! The library is given a unique private path first, because `dlopen` of a
//! path already loaded returns the stale image (which would defeat hot
//! reload), and so that a rebuild can replace the original while the private
//! one serves. Private paths live in a per-process directory (random name,
//! mode 0700, inside a per-user root of [`crate::rundir`], or for a link of a
//! cargo output on another file system, inside a private `.ax-links` beside
//! it) removed when the [`LibDir`] is dropped; directories of processes that
//! died (their `.lock` no longer held) are swept at the next start. Names
//! are fresh and random; files and links are created exclusively
//! (`O_EXCL|O_NOFOLLOW`, `linkat` never replaces).
//!
//! **A link where it is safe, a copy elsewhere.** A library in a cargo profile
//! directory (one holding cargo's `.cargo-lock`) is hard-linked into a
//! private directory on its file system: cargo replaces its outputs, never
//! rewrites them (the linkers write a new file, which cargo links into place
//! after removing the old name), so the inode ax maps is never written again.
//! Any other file is copied: `cp` onto an existing file truncates and rewrites
//! that inode, and a mapped image changed under the process is a crash. So is
//! a file of another user (who could rewrite it at any time). A link
//! that fails (another file system, `protected_hardlinks`) falls back to a
//! copy. A file linked once in this process is copied when loaded again:
//! `dlopen` recognises an image by its inode and would return the one already
//! mapped. The link is made from the open file (`/proc/self/fd`), so what is
//! linked is what was checked.
//!
//! **Reading only what must be read.** [`read`] opens the file and checks its
//! headers (a few kilobytes), not its contents. Whether a library changed is
//! decided by its [`FileId`] (device, inode, size, mtime) first; only two
//! files of the same size and different identities are compared, byte by byte
//! until they differ ([`same_contents`]). An identity taken within
//! `RACY_WITHIN` of the file's mtime is not trusted alone (a same-size write
//! in the same timestamp tick would keep it): such a file is compared too.
//!
//! **Invariant:** images are never unmapped. `dlclose` with live TLS destructors
//! or plugin-spawned threads is a crash on common platforms, and the host keeps
//! `'static` pointers into the image (callsite names, probe sites).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read as _, Seek as _};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{FileExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::os::unix::io::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use ax_abi::{ABI_VERSION, CANARY_MAGIC, Canary, ENTRY_SYMBOL, EntryFn, PluginVTable, VTableHeader};

use crate::error::LoadError;
use crate::rundir;

/// The per-process directories holding the private paths of libraries.
#[derive(Debug)]
pub(crate) struct LibDir {
    /// `<root>/<pid>-<random>`: copies, and links from its file system.
    dir: PathBuf,
    dev: u64,
    /// When the root was the default one, where libraries on other file
    /// systems are linked.
    links: Option<LinkDirs>,
    /// The locks that say this process's directories are in use ([`own_dir`]).
    locks: Mutex<Vec<File>>,
    next: AtomicU64,
    linked: AtomicU64,
    copied: AtomicU64,
    compared: AtomicU64,
}

/// Per-process link directories besides the root, each made on first use
/// (`None` inside once it proved unusable).
#[derive(Debug, Default)]
struct LinkDirs {
    /// `<runtime dir>/libs/<pid>-<random>`, for libraries on the per-user
    /// runtime directory's file system.
    runtime: OnceLock<Option<(u64, PathBuf)>>,
    /// `<profile dir>/.ax-links/<pid>-<random>` by cargo profile directory,
    /// for cargo outputs on a file system neither the root nor the runtime
    /// directory is on: a desktop's runtime directory and `/dev/shm` are
    /// memory, its projects on disk.
    beside: Mutex<BTreeMap<PathBuf, Option<PathBuf>>>,
}

/// What the host did to give libraries their private paths (see
/// [`crate::Host::load_stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadStats {
    /// Libraries hard-linked.
    pub linked: u64,
    /// Libraries copied.
    pub copied: u64,
    /// Bytes of library contents read to tell a changed library from a
    /// touched one (headers checked at load are not counted).
    pub bytes_compared: u64,
}

impl LibDir {
    /// Creates `<root>/<pid>-<random>` (one per host in the process), sweeping
    /// directories of dead processes in `root` first. `root` must be private
    /// ([`rundir::private_dir`]): it is created so or refused. Libraries are
    /// linked only when they are on `root`'s file system.
    pub(crate) fn new(root: &Path) -> std::io::Result<LibDir> {
        LibDir::with_runtime_links(root, false)
    }

    /// The default root ([`rundir::lib_root`]): `$AX_LIB_DIR`, else
    /// `/dev/shm/ax-<uid>` on an executable tmpfs, else the per-user runtime
    /// directory; created private or refused. Unless `AX_LIB_DIR` names the
    /// root, libraries on the runtime directory's file system are linked there,
    /// and cargo outputs on another file system beside them ([`LinkDirs`]).
    pub(crate) fn default_dirs() -> std::io::Result<LibDir> {
        let explicit = std::env::var_os("AX_LIB_DIR").is_some_and(|d| !d.is_empty());
        LibDir::with_runtime_links(&rundir::lib_root()?, !explicit)
    }

    fn with_runtime_links(root: &Path, runtime_links: bool) -> std::io::Result<LibDir> {
        rundir::private_dir(root)?;
        let (dir, lock) = own_dir(root)?;
        let dev = std::fs::metadata(&dir)?.dev();
        Ok(LibDir {
            dir,
            dev,
            links: runtime_links.then(LinkDirs::default),
            locks: Mutex::new(vec![lock]),
            next: AtomicU64::new(0),
            linked: AtomicU64::new(0),
            copied: AtomicU64::new(0),
            compared: AtomicU64::new(0),
        })
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn stats(&self) -> LoadStats {
        LoadStats {
            linked: self.linked.load(Ordering::Relaxed),
            copied: self.copied.load(Ordering::Relaxed),
            bytes_compared: self.compared.load(Ordering::Relaxed),
        }
    }

    /// A private directory on the file system `dev` of the library at `path`
    /// (a cargo output), if this host has or can make one.
    fn link_dir(&self, path: &Path, dev: u64) -> Option<PathBuf> {
        if dev == self.dev {
            return Some(self.dir.clone());
        }
        let links = self.links.as_ref()?;
        let runtime = links.runtime.get_or_init(|| {
            let root = rundir::runtime_dir().ok()?.join("libs");
            rundir::private_dir(&root).ok()?;
            if std::fs::metadata(&root).ok()?.dev() == self.dev {
                return None;
            }
            let dir = self.own_dir(&root)?;
            Some((std::fs::metadata(&dir).ok()?.dev(), dir))
        });
        if let Some((made_dev, dir)) = runtime
            && *made_dev == dev
        {
            return Some(dir.clone());
        }
        let profile = path.parent()?;
        let mut beside = links.beside.lock().unwrap_or_else(|e| e.into_inner());
        beside.entry(profile.to_owned()).or_insert_with(|| self.own_dir(&link_root_beside(profile, dev)?)).clone()
    }

    /// [`own_dir`] in `root`, its lock kept for as long as this `LibDir`.
    fn own_dir(&self, root: &Path) -> Option<PathBuf> {
        let (dir, lock) = own_dir(root).ok()?;
        self.locks.lock().unwrap_or_else(|e| e.into_inner()).push(lock);
        Some(dir)
    }

    /// A fresh name in `dir` for a private path of `original`.
    fn unique_path_in(&self, dir: &Path, original: &Path) -> std::io::Result<PathBuf> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let stem = original.file_stem().and_then(|s| s.to_str()).unwrap_or("plugin");
        let ext = original.extension().and_then(|s| s.to_str()).unwrap_or(std::env::consts::DLL_EXTENSION);
        Ok(dir.join(format!("{stem}-{n}-{}.{ext}", rundir::random_hex(6)?)))
    }
}

impl Drop for LibDir {
    fn drop(&mut self) {
        // The images stay mapped; removing their files does not unmap them.
        let _ = std::fs::remove_dir_all(&self.dir);
        let Some(links) = &self.links else { return };
        if let Some(Some((_, dir))) = links.runtime.get() {
            let _ = std::fs::remove_dir_all(dir);
        }
        for dir in links.beside.lock().unwrap_or_else(|e| e.into_inner()).values().flatten() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// `<profile>/.ax-links`, made private, if `profile` (a cargo profile
/// directory) is on the file system `dev`, ours, and writable by no one else
/// (who could otherwise swap `.ax-links` between its check and its use).
fn link_root_beside(profile: &Path, dev: u64) -> Option<PathBuf> {
    let meta = std::fs::metadata(profile).ok()?;
    if meta.dev() != dev || meta.uid() != rundir::euid() || meta.mode() & 0o022 != 0 {
        return None;
    }
    let root = profile.join(".ax-links");
    rundir::private_dir(&root).ok()?;
    Some(root)
}

/// The name of the lock file in each per-process directory.
const LOCK: &str = ".lock";

/// Makes `<root>/<pid>-<random>` for this process, after sweeping the
/// directories of processes that are gone; returns it with its lock, held
/// (`flock`) until the file is closed, by this process's exit at the latest.
fn own_dir(root: &Path) -> std::io::Result<(PathBuf, File)> {
    sweep_dead(root);
    let mut attempts = 3;
    loop {
        let dir = rundir::unique_dir(root, &std::process::id().to_string())?;
        let lock = match rundir::create_new_file(&dir.join(LOCK), 0o600) {
            Ok(lock) => lock,
            // Swept before it had its lock, by a process in another PID
            // namespace, to which this one's pid is not running.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempts > 1 => {
                attempts -= 1;
                continue;
            }
            Err(e) => return Err(e),
        };
        if let Err(e) = try_lock(&lock) {
            tracing::debug!("{}: not locked ({e})", dir.display());
        }
        return Ok((dir, lock));
    }
}

/// Removes the per-process directories in `root` whose process is gone: its
/// lock is free. A directory of another PID namespace (a container sharing a
/// project with its host) has a pid this one cannot see, so the lock decides,
/// not `/proc`; without a lock file (or where locks do not work), its pid
/// not running here does.
#[cfg(target_os = "linux")]
fn sweep_dead(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name.to_str().and_then(|n| n.split('-').next()).and_then(|n| n.parse::<u32>().ok());
        let Some(pid) = pid else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let lock = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(entry.path().join(LOCK));
        let gone = match lock.map(|lock| try_lock(&lock)) {
            Ok(Ok(())) => true,
            Ok(Err(e)) if e == rustix::io::Errno::WOULDBLOCK => false,
            Ok(Err(_)) | Err(_) => !alive(pid),
        };
        if gone {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Takes the exclusive `flock` of `file` without waiting (it goes with the
/// file's last descriptor).
fn try_lock(file: &File) -> rustix::io::Result<()> {
    rustix::fs::flock(file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
}

/// Whether a process `pid` runs in this PID namespace.
#[cfg(target_os = "linux")]
fn alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

#[cfg(not(target_os = "linux"))]
fn sweep_dead(_root: &Path) {}

/// A plugin library mapped into the process, its ABI checked.
#[derive(Debug)]
pub(crate) struct OpenedLibrary {
    pub(crate) vtable: &'static PluginVTable,
    /// Set when the plugin was built by a different compiler than the host.
    pub(crate) compiler_differs: Option<String>,
    /// The private path it was mapped from (a link or a copy; never rewritten).
    pub(crate) private: PathBuf,
}

/// What tells one version of a library file from another without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileId {
    dev: u64,
    ino: u64,
    pub(crate) len: u64,
    mtime_ns: i128,
}

impl FileId {
    /// The identity of the file at `path` now, if there is one.
    pub(crate) fn at(path: &Path) -> Option<FileId> {
        std::fs::metadata(path).ok().map(|meta| FileId::of(&meta))
    }

    fn of(meta: &std::fs::Metadata) -> FileId {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        }
    }
}

/// A library file opened and checked to be a whole shared library (its
/// headers read, not its contents).
#[derive(Debug)]
pub(crate) struct Image {
    file: File,
    pub(crate) id: FileId,
    /// Its owner: only the owner of a file can rewrite it (root aside).
    uid: u32,
    /// Modified so shortly before it was opened that a write within the file
    /// system's timestamp granularity could follow with the same mtime: its
    /// [`FileId`] alone cannot vouch for its contents (git's "racily clean").
    pub(crate) racy: bool,
}

/// How recent an mtime makes a file racy: above the coarsest timestamp
/// granularity of common file systems (a jiffy, 10 ms at HZ=100).
const RACY_WITHIN: std::time::Duration = std::time::Duration::from_millis(50);

/// Opens the library at `path` and checks its structure from its headers.
pub(crate) fn read(path: &Path) -> Result<Image, LoadError> {
    let read_error = |source: std::io::Error| match source.kind() {
        std::io::ErrorKind::NotFound => LoadError::NotFound { path: path.to_owned() },
        _ => LoadError::Read { path: path.to_owned(), source },
    };
    let file = File::open(path).map_err(read_error)?;
    let meta = file.metadata().map_err(read_error)?;
    if meta.is_dir() {
        return Err(read_error(std::io::Error::from_raw_os_error(libc::EISDIR)));
    }
    let checked = {
        let cache = object::read::ReadCache::new(&file);
        check_image(&cache, meta.len())
    };
    checked.map_err(|problem| match problem {
        ImageProblem::NotALibrary(message) => LoadError::Open { path: path.to_owned(), message },
        ImageProblem::Incomplete(message) => LoadError::Incomplete { path: path.to_owned(), message },
    })?;
    let racy = meta.modified().ok().is_none_or(|m| m.elapsed().map_or(true, |age| age < RACY_WITHIN));
    Ok(Image { file, id: FileId::of(&meta), uid: meta.uid(), racy })
}

/// Gives `image` (opened from `path`) a private path, opens it and checks its ABI.
pub(crate) fn open(path: &Path, image: &Image, libs: &LibDir) -> Result<OpenedLibrary, LoadError> {
    open_placed(path, &place(path, image, libs)?)
}

/// Opens `private`, the private path [`place`] gave the library at `path`,
/// and checks its ABI.
pub(crate) fn open_placed(path: &Path, private: &Path) -> Result<OpenedLibrary, LoadError> {
    let library = dlopen(path, private)?;
    resolve(path, private, library)
}

/// Hard-links `image` (opened from `path`) into a private directory when that
/// is safe and possible, else copies it there (see the module docs); returns
/// the private path.
pub(crate) fn place(path: &Path, image: &Image, libs: &LibDir) -> Result<PathBuf, LoadError> {
    let file = (image.id.dev, image.id.ino);
    let mut linked_files = LINKED_FILES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(dir) = link_dir(path, image, libs, &linked_files) {
        let link = libs.unique_path_in(&dir, path).map_err(|source| LoadError::Copy {
            path: path.to_owned(),
            copy: dir.clone(),
            source,
        })?;
        match link_open_file(&image.file, &link) {
            Ok(()) => {
                linked_files.insert(file);
                libs.linked.fetch_add(1, Ordering::Relaxed);
                return Ok(link);
            }
            Err(e) => tracing::debug!("{}: not linked ({e}); copying it", path.display()),
        }
    }
    drop(linked_files);
    let copy = libs.unique_path_in(&libs.dir, path).map_err(|source| LoadError::Copy {
        path: path.to_owned(),
        copy: libs.dir.clone(),
        source,
    })?;
    copy_open_file(path, image, &copy)?;
    libs.copied.fetch_add(1, Ordering::Relaxed);
    Ok(copy)
}

/// Where `image` (opened from `path`) would be linked by [`place`], or `None`
/// if it would be copied.
fn link_dir(path: &Path, image: &Image, libs: &LibDir, linked_files: &BTreeSet<(u64, u64)>) -> Option<PathBuf> {
    let linkable = image.uid == rundir::euid()
        && !linked_files.contains(&(image.id.dev, image.id.ino))
        && replaced_by_rename(path);
    if linkable { libs.link_dir(path, image.id.dev) } else { None }
}

/// Whether [`place`] would link `image` (opened from `path`) rather than copy
/// it; makes the private directory it would link into if there is none yet.
pub(crate) fn would_link(path: &Path, image: &Image, libs: &LibDir) -> bool {
    link_dir(path, image, libs, &LINKED_FILES.lock().unwrap_or_else(|e| e.into_inner())).is_some()
}

/// The files (device, inode) linked in this process: `dlopen` finds a loaded
/// image by its inode, whatever the path, so a file mapped once must be copied
/// to be loaded again (a reconfigure, a build loaded back, another host).
static LINKED_FILES: Mutex<BTreeSet<(u64, u64)>> = Mutex::new(BTreeSet::new());

/// Whether `path` is an output of cargo, which replaces its outputs and never
/// rewrites them in place: its directory is a cargo profile directory.
fn replaced_by_rename(path: &Path) -> bool {
    path.parent().is_some_and(|dir| dir.join(".cargo-lock").is_file())
}

/// `linkat` of the open `file` (its inode, not whatever its path names now) to
/// the new name `link`; fails if `link` exists.
fn link_open_file(file: &File, link: &Path) -> std::io::Result<()> {
    let from = std::ffi::CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
    let to = std::ffi::CString::new(link.as_os_str().as_bytes())?;
    // SAFETY: both are NUL-terminated paths that outlive the call.
    let done =
        unsafe { libc::linkat(libc::AT_FDCWD, from.as_ptr(), libc::AT_FDCWD, to.as_ptr(), libc::AT_SYMLINK_FOLLOW) };
    if done == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// Copies the open file of `image` to the new file `copy` (in the kernel,
/// without passing through this process's memory), and checks that the
/// original did not change meanwhile.
fn copy_open_file(path: &Path, image: &Image, copy: &Path) -> Result<(), LoadError> {
    let copy_error = |source: std::io::Error| LoadError::Copy { path: path.to_owned(), copy: copy.to_owned(), source };
    // Exclusively and never through a symlink, in a directory only we can enter.
    let mut out = rundir::create_new_file(copy, 0o700).map_err(copy_error)?;
    let mut from = &image.file;
    from.seek(std::io::SeekFrom::Start(0)).map_err(copy_error)?;
    let copied = std::io::copy(&mut from.take(image.id.len), &mut out).map_err(copy_error)?;
    let now = image.file.metadata().map(|m| FileId::of(&m)).map_err(copy_error)?;
    if copied != image.id.len || now != image.id {
        let _ = std::fs::remove_file(copy);
        return Err(LoadError::Incomplete {
            path: path.to_owned(),
            message: "it changed while being copied".to_owned(),
        });
    }
    Ok(())
}

/// Whether the file of `image` holds the same bytes as `other` (a private path
/// this host made), read side by side until they differ; the bytes read count
/// in [`LoadStats::bytes_compared`].
///
/// The first chunks are small and then double: two builds of a crate differ
/// in their first kilobyte (the ELF build id), so a rebuild of the same size
/// is told apart after 4 KiB of each instead of 256 KiB (reading those took
/// about 0.1 ms of every reload).
pub(crate) fn same_contents(image: &Image, other: &Path, libs: &LibDir) -> bool {
    let Ok(other) = File::open(other) else { return false };
    if other.metadata().map(|m| m.len()).ok() != Some(image.id.len) {
        return false;
    }
    const CHUNKS: (usize, usize) = (4 << 10, 256 << 10);
    let (mut a, mut b, mut chunk) = (Vec::new(), Vec::new(), CHUNKS.0);
    let mut offset = 0u64;
    while offset < image.id.len {
        let want = chunk.min((image.id.len - offset) as usize);
        a.resize(want, 0);
        b.resize(want, 0);
        let read = image.file.read_exact_at(&mut a, offset).and_then(|()| other.read_exact_at(&mut b, offset));
        libs.compared.fetch_add(2 * want as u64, Ordering::Relaxed);
        if read.is_err() || a != b {
            return false;
        }
        offset += want as u64;
        chunk = (chunk * 2).min(CHUNKS.1);
    }
    true
}

/// Maps the private path of `path`, running its initialisers.
pub(crate) fn dlopen(path: &Path, copy: &Path) -> Result<libloading::Library, LoadError> {
    // SAFETY: loading a library runs its initialisers. Native plugins are trusted
    // code (see ARCHITECTURE.md); this is the point where that trust is exercised.
    unsafe { libloading::Library::new(copy) }
        .map_err(|e| LoadError::Open { path: path.to_owned(), message: clean_dl_message(&error_chain(&e), copy) })
}

/// Finds the entry symbol of the mapped `library` (of `path`) and checks its
/// header and canary. The library is never unmapped from here on.
pub(crate) fn resolve(path: &Path, private: &Path, library: libloading::Library) -> Result<OpenedLibrary, LoadError> {
    let symbol = std::str::from_utf8(&ENTRY_SYMBOL[..ENTRY_SYMBOL.len() - 1]).unwrap_or("ax_plugin_entry_v1");
    // SAFETY: the symbol's type is fixed by the ABI; a mismatch is caught by the header checks below.
    let entry: EntryFn = match unsafe { library.get::<EntryFn>(ENTRY_SYMBOL) } {
        Ok(f) => *f,
        Err(_) => {
            return Err(LoadError::MissingEntry { path: path.to_owned(), symbol });
        }
    };
    // Never unmapped: see the module docs.
    std::mem::forget(library);

    // SAFETY: the entry function takes nothing and returns a pointer to a static.
    let raw = unsafe { entry() };
    if raw.is_null() {
        return Err(LoadError::Open { path: path.to_owned(), message: format!("`{symbol}` returned null") });
    }
    // SAFETY: every ABI version starts with this header.
    let header = unsafe { *raw.cast::<VTableHeader>() };
    if header.abi_version != ABI_VERSION {
        return Err(LoadError::AbiMismatch { path: path.to_owned(), expected: ABI_VERSION, found: header.abi_version });
    }
    let expected_size = size_of::<PluginVTable>() as u32;
    if header.struct_size != expected_size {
        return Err(LoadError::SizeMismatch {
            path: path.to_owned(),
            abi: ABI_VERSION,
            expected: expected_size,
            found: header.struct_size,
        });
    }
    // SAFETY: version and size match, so the whole vtable has our layout; it is a static.
    let vtable: &'static PluginVTable = unsafe { &*raw };
    let compiler_differs = check_canary(path, &vtable.canary)?;
    Ok(OpenedLibrary { vtable, compiler_differs, private: private.to_owned() })
}

/// Why a file cannot be mapped.
#[derive(Debug, PartialEq)]
enum ImageProblem {
    /// Not an object file, or not a shared library.
    NotALibrary(String),
    /// An object file whose headers describe more than the file holds: truncated,
    /// or still being written.
    Incomplete(String),
}

/// Checks that `data` (of `len` bytes) is a whole shared library before
/// `dlopen` maps it: the dynamic loader trusts the headers, and a segment that
/// extends past the end of a truncated file is mapped anyway and faults
/// (SIGBUS) when touched. For ELF only the headers are read (file, program
/// and section headers); other formats are parsed whole.
fn check_image<'d, R: object::ReadRef<'d>>(data: R, len: u64) -> Result<(), ImageProblem> {
    use object::read::elf::{FileHeader, ProgramHeader as _, SectionHeader as _};
    use object::{FileKind, Object, ObjectKind, ObjectSection, ObjectSegment};
    match FileKind::parse(data) {
        Ok(FileKind::Elf64) => return check_elf::<object::elf::FileHeader64<object::Endianness>, R>(data, len),
        Ok(FileKind::Elf32) => return check_elf::<object::elf::FileHeader32<object::Endianness>, R>(data, len),
        _ => {}
    }
    let file = match object::File::parse(data) {
        Ok(file) => file,
        // A known magic number that does not parse is a cut-off file.
        Err(e) if FileKind::parse(data).is_ok() => {
            return Err(ImageProblem::Incomplete(e.to_string().to_lowercase()));
        }
        Err(e) => return Err(ImageProblem::NotALibrary(e.to_string().to_lowercase())),
    };
    if file.kind() != ObjectKind::Dynamic {
        return Err(ImageProblem::NotALibrary(
            format!("{:?} object file, not a shared library", file.kind()).to_lowercase(),
        ));
    }
    let ranges = file.segments().map(|s| Some(s.file_range())).chain(file.sections().map(|s| s.file_range()));
    return within(ranges.flatten(), len);

    fn check_elf<'d, Elf: FileHeader, R: object::ReadRef<'d>>(data: R, len: u64) -> Result<(), ImageProblem> {
        // Headers that do not parse after a known magic number: a cut-off file.
        let cut = |e: object::Error| ImageProblem::Incomplete(e.to_string().to_lowercase());
        let header = Elf::parse(data).map_err(cut)?;
        let endian = header.endian().map_err(cut)?;
        let kind = match header.e_type(endian) {
            object::elf::ET_DYN => None,
            object::elf::ET_EXEC => Some("executable"),
            object::elf::ET_REL => Some("relocatable"),
            object::elf::ET_CORE => Some("core"),
            _ => Some("unknown"),
        };
        if let Some(kind) = kind {
            return Err(ImageProblem::NotALibrary(format!("{kind} object file, not a shared library")));
        }
        let segments = header.program_headers(endian, data).map_err(cut)?;
        let sections = header.section_headers(endian, data).map_err(cut)?;
        let segment_ranges = segments.iter().map(|p| (p.p_offset(endian).into(), p.p_filesz(endian).into()));
        let section_ranges = sections
            .iter()
            .filter(|s| s.sh_type(endian) != object::elf::SHT_NOBITS)
            .map(|s| (s.sh_offset(endian).into(), s.sh_size(endian).into()));
        within(segment_ranges.chain(section_ranges), len)
    }
}

/// Every `(offset, size)` ends within `len` bytes.
fn within(ranges: impl Iterator<Item = (u64, u64)>, len: u64) -> Result<(), ImageProblem> {
    for (offset, size) in ranges {
        let end = offset.saturating_add(size);
        if end > len {
            return Err(ImageProblem::Incomplete(format!("its headers describe {end} bytes, the file has {len}")));
        }
    }
    Ok(())
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text = format!("{text}: {inner}");
        source = inner.source();
    }
    text
}

/// dlerror messages name the copy; users know the original.
fn clean_dl_message(message: &str, copy: &Path) -> String {
    let copy = copy.display().to_string();
    message.replace(&format!("{copy}: "), "").replace(&copy, "the library").trim().to_owned()
}

fn check_canary(path: &Path, found: &Canary) -> Result<Option<String>, LoadError> {
    let host = Canary::current();
    let mismatch = |what: &'static str, expected: String, found: String| LoadError::CanaryMismatch {
        path: path.to_owned(),
        what,
        expected,
        found,
    };
    if found.magic != CANARY_MAGIC {
        return Err(mismatch("canary", format!("{CANARY_MAGIC:#x}"), format!("{:#x}", found.magic)));
    }
    if found.pointer_width != host.pointer_width || found.canary_size != host.canary_size {
        return Err(mismatch(
            "pointer width",
            format!("{} bytes", host.pointer_width),
            format!("{} bytes", found.pointer_width),
        ));
    }
    // SAFETY: canary strings are literals in their images; the plugin's is mapped.
    let (host_target, plugin_target) = unsafe { (host.target.get(), found.target.get()) };
    if host_target != plugin_target {
        return Err(mismatch("target", host_target.to_owned(), plugin_target.to_owned()));
    }
    // SAFETY: as above.
    let (host_rustc, plugin_rustc) = unsafe { (host.rustc.get(), found.rustc.get()) };
    Ok((host_rustc != plugin_rustc).then(|| format!("plugin built by {plugin_rustc}, host by {host_rustc}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn a_directory_is_swept_when_its_lock_is_free_whatever_its_pid() {
        let root = tempfile::tempdir().unwrap();
        let dir = |name: &str, lock: bool| {
            let dir = root.path().join(name);
            std::fs::create_dir(&dir).unwrap();
            if lock {
                File::create(dir.join(LOCK)).unwrap();
            }
            dir
        };
        // Pids above any pid_max: as processes of another PID namespace look from here.
        let in_use = dir("4194305-aa", true);
        let held = File::open(in_use.join(LOCK)).unwrap();
        try_lock(&held).unwrap();
        let exited = dir("4194306-bb", true);
        let older = dir("4194307-cc", false);
        sweep_dead(root.path());
        assert!(in_use.exists(), "its owner holds its lock");
        assert!(!exited.exists() && !older.exists());
        drop(held);
        sweep_dead(root.path());
        assert!(!in_use.exists());
    }

    fn canary_error(c: &Canary) -> String {
        check_canary(Path::new("lib.so"), c).unwrap_err().to_string()
    }

    #[test]
    fn own_canary_passes() {
        assert_eq!(check_canary(Path::new("lib.so"), &Canary::current()).unwrap(), None);
    }

    #[test]
    fn canary_mismatches_say_what_differs() {
        let mut c = Canary::current();
        c.magic = 0x07f6_e5d4_c3b2_a100;
        assert_eq!(
            canary_error(&c),
            "lib.so: plugin was built for canary 0x7f6e5d4c3b2a100, this host is 0xa1b2c3d4e5f607"
        );

        let mut c = Canary::current();
        c.pointer_width = 4;
        assert!(canary_error(&c).contains("pointer width 4 bytes, this host is 8 bytes"));

        let mut c = Canary::current();
        c.target = ax_abi::StaticStr::new("riscv64gc-unknown-none-elf");
        assert!(canary_error(&c).contains("target riscv64gc-unknown-none-elf, this host is"));

        let mut c = Canary::current();
        c.rustc = ax_abi::StaticStr::new("rustc 0.1.0");
        let note = check_canary(Path::new("lib.so"), &c).unwrap().unwrap();
        assert!(note.starts_with("plugin built by rustc 0.1.0, host by rustc "), "{note}");
    }

    #[test]
    fn image_checks() {
        let check = |bytes: &[u8]| check_image(bytes, bytes.len() as u64);
        let err = check(b"plain text, not a library").unwrap_err();
        assert!(matches!(&err, ImageProblem::NotALibrary(m) if m.contains("unknown file magic")), "{err:?}");
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        // A test binary is an executable (PIE executables count as dynamic objects on Linux).
        if let Err(err) = check(&me) {
            assert!(matches!(&err, ImageProblem::NotALibrary(m) if m.contains("not a shared library")), "{err:?}");
        }
        for keep in [64, me.len() / 2, me.len() - 1] {
            let err = check(&me[..keep]).unwrap_err();
            assert!(matches!(err, ImageProblem::Incomplete(_)), "{keep}: {err:?}");
        }
    }

    #[test]
    fn dl_messages_name_the_original() {
        let copy = Path::new("/tmp/ax-libs/1/libx-0.so");
        assert_eq!(clean_dl_message("/tmp/ax-libs/1/libx-0.so: invalid ELF header", copy), "invalid ELF header");
    }

    #[test]
    fn copies_get_unique_names_and_are_removed() {
        let root = tempfile::tempdir().unwrap();
        let libs = LibDir::new(root.path()).unwrap();
        let other = LibDir::new(root.path()).unwrap();
        let a = libs.unique_path_in(&libs.dir, Path::new("/x/libfoo.so")).unwrap();
        let b = libs.unique_path_in(&libs.dir, Path::new("/x/libfoo.so")).unwrap();
        let c = other.unique_path_in(&other.dir, Path::new("/x/libfoo.so")).unwrap();
        assert!(a != b && a != c && b != c, "{a:?} {b:?} {c:?}");
        drop(other);
        assert!(libs.dir.is_dir(), "hosts do not remove each other's copies");
        assert!(a.to_str().unwrap().ends_with(".so"));
        let dir = libs.dir.clone();
        assert!(dir.is_dir());
        drop(libs);
        assert!(!dir.exists());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn dead_process_directories_are_swept() {
        let root = tempfile::tempdir().unwrap();
        // PIDs are at most 2^22 on Linux; this one cannot be alive.
        let dead = root.path().join("4294967-0");
        std::fs::create_dir_all(&dead).unwrap();
        let _libs = LibDir::new(root.path()).unwrap();
        assert!(!dead.exists());
    }
}
