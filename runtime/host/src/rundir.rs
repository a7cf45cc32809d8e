//! The per-user private runtime directory, and exclusive creation inside it.
//!
//! Everything ax creates at run time (library copies, the isolated child's
//! socket, `ax-dap`'s debug-host sockets) lives under one directory that only
//! the user running ax can enter: `$XDG_RUNTIME_DIR/ax` when that variable is
//! set, else `ax-<uid>` in the temp dir. Library copies prefer
//! `/dev/shm/ax-<uid>` when `/dev/shm` is an executable tmpfs (see
//! [`lib_root`]); `AX_LIB_DIR` overrides that root. Each is made with `mkdir`
//! mode 0700 and, when it exists already, adopted only if it is a real
//! directory (not a symlink) owned by the effective uid with no group or world
//! write bit; otherwise [`RunDirError::Unsafe`] names it and says what to do.
//!
//! Inside, names are unpredictable ([`random_hex`]) and everything is created
//! exclusively: [`unique_dir`] with `mkdir`, [`create_new`] with
//! `O_CREAT|O_EXCL|O_NOFOLLOW`. Another local user can neither pre-create a
//! folder for ax to adopt, nor plant a symlink for ax to write through.

use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

/// Why a private directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    /// It exists but another user could change what is in it.
    #[error(
        "{path}: refusing to use it as ax's private runtime directory: it {problem}; expected a directory \
         owned by uid {uid} that no other user can write to. Remove it (or fix its owner and mode), or point \
         XDG_RUNTIME_DIR (AX_LIB_DIR for library copies) at a private directory"
    )]
    Unsafe { path: PathBuf, problem: String, uid: u32 },
    /// It could not be created or inspected.
    #[error("{path}: cannot create ax's private runtime directory: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl From<RunDirError> for std::io::Error {
    fn from(error: RunDirError) -> Self {
        let kind = match &error {
            RunDirError::Unsafe { .. } => std::io::ErrorKind::PermissionDenied,
            RunDirError::Create { source, .. } => source.kind(),
        };
        std::io::Error::new(kind, error)
    }
}

/// The effective uid of this process.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The per-user runtime directory (`$XDG_RUNTIME_DIR/ax`, else
/// `<temp dir>/ax-<uid>`), created or checked.
pub fn runtime_dir() -> Result<PathBuf, RunDirError> {
    let dir = match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(base) => PathBuf::from(base).join("ax"),
        None => std::env::temp_dir().join(format!("ax-{}", euid())),
    };
    private_dir(&dir)?;
    Ok(dir)
}

/// Where library copies go, created or checked: `$AX_LIB_DIR` if set; else,
/// on Linux, `/dev/shm/ax-<uid>` when `/dev/shm` is a tmpfs that allows
/// execution; else [`runtime_dir`].
///
/// Memory beats disk here: every reload writes a whole library, and after a
/// few hundred megabytes of copies the kernel's writeback throttling made
/// each copy to a disk-backed `/tmp` ten times slower (measured by
/// `benches/reload.rs`). On tmpfs the copy's pages are the mapping's pages.
pub fn lib_root() -> Result<PathBuf, RunDirError> {
    if let Some(dir) = std::env::var_os("AX_LIB_DIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        private_dir(&dir)?;
        return Ok(dir);
    }
    if cfg!(target_os = "linux") && shm_allows_exec() {
        let dir = PathBuf::from(format!("/dev/shm/ax-{}", euid()));
        private_dir(&dir)?;
        return Ok(dir);
    }
    runtime_dir()
}

/// Makes `dir` with mode 0700 (its parent must exist), or checks that the
/// existing one is a directory, not a symlink, owned by us, not writable by
/// group or others.
pub fn private_dir(dir: &Path) -> Result<(), RunDirError> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(source) => return Err(RunDirError::Create { path: dir.to_owned(), source }),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(|source| RunDirError::Create { path: dir.to_owned(), source })?;
    let uid = euid();
    let unsafe_because = |problem: String| RunDirError::Unsafe { path: dir.to_owned(), problem, uid };
    if meta.file_type().is_symlink() {
        return Err(unsafe_because("is a symbolic link".to_owned()));
    }
    if !meta.is_dir() {
        return Err(unsafe_because("is not a directory".to_owned()));
    }
    if meta.uid() != uid {
        return Err(unsafe_because(format!("belongs to uid {}", meta.uid())));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(unsafe_because(format!("is writable by group or others (mode {:o})", meta.mode() & 0o7777)));
    }
    Ok(())
}

/// `n` random bytes from the kernel, as hex.
pub fn random_hex(n: usize) -> std::io::Result<String> {
    let mut bytes = vec![0u8; n];
    let mut filled = 0;
    while filled < n {
        // SAFETY: the buffer is valid for `n - filled` bytes from `filled`.
        let got = unsafe { libc::getrandom(bytes[filled..].as_mut_ptr().cast(), n - filled, 0) };
        if got < 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() != std::io::ErrorKind::Interrupted {
                return Err(error);
            }
            continue;
        }
        filled += got as usize;
    }
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Creates a new directory `<parent>/<prefix>-<random>` with mode 0700 (never
/// an existing one) and returns its path.
pub fn unique_dir(parent: &Path, prefix: &str) -> std::io::Result<PathBuf> {
    loop {
        let dir = parent.join(format!("{prefix}-{}", random_hex(8)?));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// A path `<dir>/<prefix>-<random><suffix>` that does not exist yet (for a
/// socket, which `bind` creates exclusively).
pub fn unique_path(dir: &Path, prefix: &str, suffix: &str) -> std::io::Result<PathBuf> {
    Ok(dir.join(format!("{prefix}-{}{suffix}", random_hex(8)?)))
}

/// Creates the file `path` exclusively (`O_CREAT|O_EXCL|O_NOFOLLOW`, so neither
/// an existing file nor a symlink is ever written through) with `mode`, and
/// writes `bytes` to it.
pub fn create_new(path: &Path, mode: u32, bytes: &[u8]) -> std::io::Result<()> {
    create_new_file(path, mode)?.write_all(bytes)
}

/// Creates the file `path` exclusively, as [`create_new`] does, and returns it
/// open for writing.
pub fn create_new_file(path: &Path, mode: u32) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// Whether `/dev/shm` is mounted, writable and without `noexec` (libraries
/// cannot be mapped executable from a `noexec` mount).
fn shm_allows_exec() -> bool {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") else { return false };
    // Fields: id parent major:minor root mount-point options …; the last mount wins.
    let options = mounts.lines().rev().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(4) == Some(&"/dev/shm")).then(|| fields.get(5).copied().unwrap_or_default().to_owned())
    });
    options.is_some_and(|o| o.split(',').all(|opt| opt != "noexec" && opt != "ro"))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn a_new_directory_is_private_and_an_open_one_is_refused() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("ax");
        private_dir(&dir).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        private_dir(&dir).expect("our own private directory is adopted");

        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = private_dir(&dir).unwrap_err().to_string();
        assert!(err.contains("writable by group or others") && err.contains("Remove it"), "{err}");

        let link = base.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        let err = private_dir(&link).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
    }

    #[test]
    fn files_are_created_exclusively_and_never_through_a_symlink() {
        let base = tempfile::tempdir().unwrap();
        let target = base.path().join("victim");
        std::fs::write(&target, "unchanged").unwrap();
        let link = base.path().join("copy.so");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(create_new(&link, 0o700, b"attack").is_err());
        assert!(create_new(&target, 0o700, b"attack").is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "unchanged");
        let a = unique_dir(base.path(), "d").unwrap();
        let b = unique_dir(base.path(), "d").unwrap();
        assert_ne!(a, b);
    }
}
