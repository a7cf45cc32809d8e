//! Opening a plugin library: copy, `dlopen`, entry symbol, ABI checks.
//!
//! The library is first copied to a unique path, because `dlopen` of a path
//! already loaded returns the stale image (which would defeat hot reload), and
//! so that a rebuild can overwrite the original while the copy serves. Copies
//! live in a per-process directory (random name, mode 0700, inside the
//! per-user root of [`crate::rundir`]) removed when the [`LibDir`] is dropped;
//! directories of processes that died are swept at the next start. Copies are
//! created exclusively (`O_EXCL|O_NOFOLLOW`).
//!
//! **Invariant:** images are never unmapped. `dlclose` with live TLS destructors
//! or plugin-spawned threads is a crash on common platforms, and the host keeps
//! `'static` pointers into the image (callsite names, probe sites).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use ax_abi::{ABI_VERSION, CANARY_MAGIC, Canary, ENTRY_SYMBOL, EntryFn, PluginVTable, VTableHeader};

use crate::error::LoadError;
use crate::rundir;

/// The per-process directory holding library copies.
#[derive(Debug)]
pub(crate) struct LibDir {
    dir: PathBuf,
    next: AtomicU64,
}

impl LibDir {
    /// Creates `<root>/<pid>-<random>` (one per host in the process), sweeping
    /// directories of dead processes in `root` first. `root` must be private
    /// ([`rundir::private_dir`]): it is created so or refused.
    pub(crate) fn new(root: &Path) -> std::io::Result<LibDir> {
        rundir::private_dir(root)?;
        sweep_dead(root);
        let dir = rundir::unique_dir(root, &std::process::id().to_string())?;
        Ok(LibDir { dir, next: AtomicU64::new(0) })
    }

    /// The default root ([`rundir::lib_root`]): `$AX_LIB_DIR`, else
    /// `/dev/shm/ax-<uid>` on an executable tmpfs, else the per-user runtime
    /// directory; created private or refused.
    pub(crate) fn default_root() -> std::io::Result<PathBuf> {
        Ok(rundir::lib_root()?)
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn unique_copy_path(&self, original: &Path) -> PathBuf {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let stem = original.file_stem().and_then(|s| s.to_str()).unwrap_or("plugin");
        let ext = original.extension().and_then(|s| s.to_str()).unwrap_or(std::env::consts::DLL_EXTENSION);
        self.dir.join(format!("{stem}-{n}.{ext}"))
    }
}

impl Drop for LibDir {
    fn drop(&mut self) {
        // The images stay mapped; removing their files does not unmap them.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

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
        if pid != std::process::id() && !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn sweep_dead(_root: &Path) {}

/// A plugin library mapped into the process, its ABI checked.
#[derive(Debug)]
pub(crate) struct OpenedLibrary {
    pub(crate) vtable: &'static PluginVTable,
    /// Set when the plugin was built by a different compiler than the host.
    pub(crate) compiler_differs: Option<String>,
}

/// A library file read into memory and checked to be a whole shared library.
#[derive(Debug)]
pub(crate) struct Image {
    bytes: Vec<u8>,
    /// xxh3 of the contents: tells a changed library from a touched one.
    pub(crate) hash: u64,
}

/// Reads the library at `path` and checks its structure.
pub(crate) fn read(path: &Path) -> Result<Image, LoadError> {
    let bytes = std::fs::read(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => LoadError::NotFound { path: path.to_owned() },
        _ => LoadError::Read { path: path.to_owned(), source },
    })?;
    check_image(&bytes).map_err(|problem| match problem {
        ImageProblem::NotALibrary(message) => LoadError::Open { path: path.to_owned(), message },
        ImageProblem::Incomplete(message) => LoadError::Incomplete { path: path.to_owned(), message },
    })?;
    let hash = xxhash_rust::xxh3::xxh3_64(&bytes);
    Ok(Image { bytes, hash })
}

/// Copies `image` (read from `path`) to a unique path, opens it and checks its ABI.
pub(crate) fn open(path: &Path, image: &Image, libs: &LibDir) -> Result<OpenedLibrary, LoadError> {
    let copy = copy(path, image, libs)?;
    let library = dlopen(path, &copy)?;
    resolve(path, library)
}

/// Writes `image` (read from `path`) to a unique path in `libs`; returns the copy.
pub(crate) fn copy(path: &Path, image: &Image, libs: &LibDir) -> Result<PathBuf, LoadError> {
    let copy = libs.unique_copy_path(path);
    // Exclusively and never through a symlink, in a directory only we can enter.
    rundir::create_new(&copy, 0o700, &image.bytes).map_err(|source| LoadError::Copy {
        path: path.to_owned(),
        copy: copy.clone(),
        source,
    })?;
    Ok(copy)
}

/// Maps the copy of `path`, running its initialisers.
pub(crate) fn dlopen(path: &Path, copy: &Path) -> Result<libloading::Library, LoadError> {
    // SAFETY: loading a library runs its initialisers. Native plugins are trusted
    // code (see ARCHITECTURE.md); this is the point where that trust is exercised.
    unsafe { libloading::Library::new(copy) }
        .map_err(|e| LoadError::Open { path: path.to_owned(), message: clean_dl_message(&error_chain(&e), copy) })
}

/// Finds the entry symbol of the mapped `library` (of `path`) and checks its
/// header and canary. The library is never unmapped from here on.
pub(crate) fn resolve(path: &Path, library: libloading::Library) -> Result<OpenedLibrary, LoadError> {
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
    Ok(OpenedLibrary { vtable, compiler_differs })
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

/// Checks that `bytes` is a whole shared library before `dlopen` maps it: the
/// dynamic loader trusts the headers, and a segment that extends past the end
/// of a truncated file is mapped anyway and faults (SIGBUS) when touched.
fn check_image(bytes: &[u8]) -> Result<(), ImageProblem> {
    use object::{Object, ObjectKind, ObjectSection, ObjectSegment};
    let file = match object::File::parse(bytes) {
        Ok(file) => file,
        // A known magic number that does not parse is a cut-off file.
        Err(e) if object::FileKind::parse(bytes).is_ok() => {
            return Err(ImageProblem::Incomplete(e.to_string().to_lowercase()));
        }
        Err(e) => return Err(ImageProblem::NotALibrary(e.to_string().to_lowercase())),
    };
    if file.kind() != ObjectKind::Dynamic {
        return Err(ImageProblem::NotALibrary(
            format!("{:?} object file, not a shared library", file.kind()).to_lowercase(),
        ));
    }
    let len = bytes.len() as u64;
    let ranges = file.segments().map(|s| Some(s.file_range())).chain(file.sections().map(|s| s.file_range()));
    for (offset, size) in ranges.flatten() {
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
        let err = check_image(b"plain text, not a library").unwrap_err();
        assert!(matches!(&err, ImageProblem::NotALibrary(m) if m.contains("unknown file magic")), "{err:?}");
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        // A test binary is an executable (PIE executables count as dynamic objects on Linux).
        if let Err(err) = check_image(&me) {
            assert!(matches!(&err, ImageProblem::NotALibrary(m) if m.contains("not a shared library")), "{err:?}");
        }
        for keep in [64, me.len() / 2, me.len() - 1] {
            let err = check_image(&me[..keep]).unwrap_err();
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
        let a = libs.unique_copy_path(Path::new("/x/libfoo.so"));
        let b = libs.unique_copy_path(Path::new("/x/libfoo.so"));
        let c = other.unique_copy_path(Path::new("/x/libfoo.so"));
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
