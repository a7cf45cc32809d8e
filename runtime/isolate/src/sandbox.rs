//! The sandbox of an isolated plugin: `[sandbox]` turned into kernel rules,
//! applied by the child host after it is set up and before the plugin's
//! library is opened, so that even the library's constructors run confined.
//!
//! Three layers, each from the kernel, none a check ax makes itself:
//! 1. a fresh network namespace (no interface but a downed loopback) for
//!    `network = "none"`, entered by the child first thing
//!    ([`enter_own_network_namespace`]) when unprivileged user namespaces work;
//! 2. Landlock ([`apply`]): the file system beyond `fs_read`/`fs_write` and
//!    the implied paths, TCP bind/connect for `network = "none"` (ABI ≥ 4),
//!    signals and abstract Unix sockets outside the sandbox (ABI ≥ 6);
//! 3. seccomp-bpf: exec, fork (unless `exec = true`), ptrace and process
//!    memory access, mount, bpf, perf events, keyrings, kernel modules,
//!    io_uring, namespace changes, and sockets beyond `network`.
//!
//! A denied system call fails with `EPERM`; on x86_64 and aarch64 it first
//! traps into a `SIGSYS` handler that counts it per capability ([`denials`])
//! and writes `-EPERM` as the call's result (as Chromium's sandbox does),
//! elsewhere it is a plain `SECCOMP_RET_ERRNO`. Not counted: fork and clone
//! (libc blocks all signals around them, and a trap while `SIGSYS` is blocked
//! would kill, so they get a plain `SECCOMP_RET_ERRNO`) and Landlock's denials
//! (`EACCES`; the kernel reports them to audit only).
//!
//! **Invariant:** the plugin's library is never opened before [`apply`] has
//! returned `Ok`; with `best_effort` off, a rule the kernel cannot enforce is
//! an error and the library is not opened at all.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// `[sandbox] network`, on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    None,
    Loopback,
    Any,
}

/// What a sandboxed plugin may do: `[sandbox]` with its paths resolved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sandbox {
    pub network: Network,
    pub fs_read: Vec<PathBuf>,
    pub fs_write: Vec<PathBuf>,
    pub exec: bool,
    /// Run even where some rule cannot be enforced (`[plugin] sandbox = "best-effort"`).
    pub best_effort: bool,
}

impl Sandbox {
    /// The manifest's `[sandbox]` with paths resolved against `dir`.
    pub fn from_manifest(
        section: &ax_runtime::manifest::SandboxSection,
        mode: ax_runtime::manifest::SandboxMode,
        dir: &Path,
    ) -> Sandbox {
        use ax_runtime::manifest::{Network as M, SandboxMode};
        let mut section = section.resolved(dir);
        // The child runs where ax runs, but say where once and for all.
        for path in section.fs_read.iter_mut().chain(section.fs_write.iter_mut()) {
            if let Ok(absolute) = std::path::absolute(&*path) {
                *path = absolute;
            }
        }
        Sandbox {
            network: match section.network {
                M::None => Network::None,
                M::Loopback => Network::Loopback,
                M::Any => Network::Any,
            },
            fs_read: section.fs_read,
            fs_write: section.fs_write,
            exec: section.exec,
            best_effort: mode == SandboxMode::BestEffort,
        }
    }

    /// Prepares the child's command: for `network = "none"`, asks the child
    /// to enter a network namespace of its own ([`enter_own_network_namespace`]).
    /// The child does it itself, first thing: a hook between fork and exec
    /// would make the parent fork (copying its page tables: 7 ms for a
    /// 200 MiB process, measured here) instead of `posix_spawn`.
    pub fn prepare_command(&self, command: &mut std::process::Command) {
        if self.network == Network::None {
            command.env(OWN_NETWORK_NAMESPACE_ENV, "1");
        }
    }

    /// Whether child `pid`, started with [`Sandbox::prepare_command`], should
    /// have a network namespace of its own and has not (the kernel refused:
    /// its sockets are still denied by seccomp).
    pub fn lacks_network_namespace(&self, pid: u32) -> bool {
        self.network == Network::None && !in_own_network_namespace(pid)
    }

    /// Lets a host that hot-reloads `library` read the folder it is in: a
    /// rebuild is a new file there, which a rule on the old file does not
    /// cover. Returns the folder added.
    pub fn allow_rebuilds_of(&mut self, library: &Path) -> Option<PathBuf> {
        let folder = std::path::absolute(library.parent()?).ok()?;
        self.fs_read.push(folder.clone());
        Some(folder)
    }
}

/// Set by the parent when the child must enter a network namespace of its own.
const OWN_NETWORK_NAMESPACE_ENV: &str = "AX_OWN_NETWORK_NAMESPACE";

/// In the child, when the parent asked ([`Sandbox::prepare_command`]): a new
/// network namespace (no interface but a downed loopback), inside a new user
/// namespace unless ax runs as root, with the capabilities that namespace
/// grants dropped again. If the kernel refuses, the child stays in the
/// parent's namespace (sockets are still denied by seccomp); the parent sees
/// which with [`in_own_network_namespace`].
///
/// Must run before the process starts a second thread: the kernel refuses a
/// new user namespace to a multithreaded process, and the variable is
/// removed from the environment here.
#[cfg(target_os = "linux")]
pub fn enter_own_network_namespace() {
    if std::env::var_os(OWN_NETWORK_NAMESPACE_ENV).is_none() {
        return;
    }
    // SAFETY: the process has one thread (this function's precondition).
    unsafe { std::env::remove_var(OWN_NETWORK_NAMESPACE_ENV) };
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    if uid == 0 {
        // SAFETY: a plain flag.
        unsafe { libc::unshare(libc::CLONE_NEWNET) };
        return;
    }
    // SAFETY: plain flags.
    if unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) } != 0 {
        return;
    }
    let _ = std::fs::write("/proc/self/setgroups", "deny");
    let _ = std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1\n"));
    let _ = std::fs::write("/proc/self/gid_map", format!("{gid} {gid} 1\n"));
    drop_capabilities();
}

/// Empties the capability sets: the new user namespace gave this process
/// every capability inside it (an `exec` would have dropped them, as the
/// user is not root there; the child does not exec).
#[cfg(target_os = "linux")]
fn drop_capabilities() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let header = Header { version: VERSION_3, pid: 0 };
    let data = [Data::default(); 2];
    // SAFETY: a version-3 header and the two data words it reads.
    unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
}

/// Whether process `pid` has a network namespace of its own (not ours).
pub fn in_own_network_namespace(pid: u32) -> bool {
    let theirs = std::fs::read_link(format!("/proc/{pid}/ns/net"));
    let ours = std::fs::read_link("/proc/self/ns/net");
    matches!((theirs, ours), (Ok(a), Ok(b)) if a != b)
}

// ---------------------------------------------------------------- counting

/// The capabilities denials are counted by, in [`denials`] order (the
/// runtime's, so that a call's `Usage` can carry them).
pub const CAPABILITIES: [&str; 8] = ax_runtime::SANDBOX_CAPABILITIES;

/// The environment variable with which a front end that cannot confine a
/// plugin runs a sandboxed one anyway, unconfined (for debugging).
pub const NO_SANDBOX_ENV: &str = "AX_NO_SANDBOX";

/// Whether a value of [`NO_SANDBOX_ENV`] asks to run unconfined: `1`, `true`,
/// `yes` or `on`.
pub fn waived(value: Option<&str>) -> bool {
    value.is_some_and(|v| matches!(v, "1" | "true" | "yes" | "on"))
}

static DENIED: [AtomicU64; CAPABILITIES.len()] = [const { AtomicU64::new(0) }; CAPABILITIES.len()];

/// Denials counted so far in this process, per capability (non-zero ones).
pub fn denials() -> Vec<(String, u64)> {
    CAPABILITIES
        .iter()
        .zip(&DENIED)
        .map(|(name, n)| ((*name).to_owned(), n.load(Ordering::Relaxed)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// Which capability a denied system call belongs to, and the call's name.
fn denied(nr: i64) -> (usize, &'static str) {
    let index = |name| CAPABILITIES.iter().position(|c| *c == name).unwrap_or(CAPABILITIES.len() - 1);
    for (cap, calls) in denied_calls() {
        if let Some((_, name)) = calls.iter().find(|(n, _)| *n == nr) {
            return (index(cap), name.trim_start_matches("SYS_"));
        }
    }
    match nr {
        libc::SYS_socket => (index("network"), "socket"),
        _ => (index("kernel"), "a system call"),
    }
}

/// `(number, "SYS_name")` of each `libc::SYS_name` named.
macro_rules! calls {
    ($($name:ident),* $(,)?) => {
        &[$((libc::$name, stringify!($name))),*]
    };
}

/// System calls denied outright, by capability (exec and fork are added
/// unless `exec = true`).
fn denied_calls() -> [(&'static str, &'static [(i64, &'static str)]); 7] {
    [
        ("ptrace", calls![SYS_ptrace, SYS_process_vm_readv, SYS_process_vm_writev, SYS_pidfd_getfd, SYS_kcmp]),
        (
            "mount",
            calls![
                SYS_mount,
                SYS_umount2,
                SYS_pivot_root,
                SYS_chroot,
                SYS_fsopen,
                SYS_fsconfig,
                SYS_fsmount,
                SYS_move_mount,
                SYS_open_tree,
                SYS_mount_setattr
            ],
        ),
        ("namespace", calls![SYS_unshare, SYS_setns]),
        ("keyring", calls![SYS_add_key, SYS_request_key, SYS_keyctl]),
        ("bpf/perf", calls![SYS_bpf, SYS_perf_event_open]),
        (
            "kernel",
            calls![
                SYS_init_module,
                SYS_finit_module,
                SYS_delete_module,
                SYS_kexec_load,
                SYS_kexec_file_load,
                SYS_reboot,
                SYS_swapon,
                SYS_swapoff,
                SYS_userfaultfd,
                SYS_io_uring_setup,
                SYS_open_by_handle_at,
                SYS_acct
            ],
        ),
        ("exec", calls![SYS_execve, SYS_execveat]),
    ]
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
const TRAPS: bool = true;
#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
const TRAPS: bool = true;
#[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
const TRAPS: bool = false;

/// The `SIGSYS` handler: count the denial, tell the runtime (a debugger may
/// stop in it), make the call return `-EPERM`.
#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
extern "C" fn on_sigsys(_signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: the kernel hands a valid siginfo (SIGSYS layout: the call's
    // address at offset 16, its number at 24 on 64-bit Linux) and ucontext.
    unsafe {
        let nr = *(info.cast::<u8>().add(24).cast::<libc::c_int>());
        let (capability, system_call) = denied(i64::from(nr));
        if let Some(counter) = DENIED.get(capability) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        // A debugger with its `sandbox` filter on stops here, inside the call.
        if let Some(&capability) = CAPABILITIES.get(capability) {
            ax_runtime::sandbox_denied(&ax_runtime::SandboxDenial { capability, system_call });
        }
        let context = &mut *context.cast::<libc::ucontext_t>();
        #[cfg(target_arch = "x86_64")]
        {
            context.uc_mcontext.gregs[libc::REG_RAX as usize] = -i64::from(libc::EPERM);
        }
        #[cfg(target_arch = "aarch64")]
        {
            context.uc_mcontext.regs[0] = (-i64::from(libc::EPERM)) as u64;
        }
    }
}

// ---------------------------------------------------------------- applying

/// Confines the calling process: `library` is the plugin's library (the
/// isolated child passes its private link or copy, staged before this, see
/// `Host::stage_library`), `own_dir` the child host's private directory
/// (where it links or copies the library). Returns
/// the rules the kernel could not enforce (empty when all are), or, without
/// `best_effort`, an error naming them.
#[cfg(target_os = "linux")]
pub fn apply(sandbox: &Sandbox, library: &Path, own_dir: &Path) -> Result<Vec<String>, String> {
    let mut unenforced = landlock_rules(sandbox, library, own_dir);
    if let Err(e) = seccomp_rules(sandbox) {
        unenforced.push(format!(
            "system calls (exec, ptrace, namespaces, mount, sockets beyond network = \"{}\"): seccomp refused the filter: {e}",
            network_name(sandbox.network)
        ));
    }
    if !unenforced.is_empty() && !sandbox.best_effort {
        return Err(format!(
            "this kernel cannot enforce the plugin's [sandbox]: {}; refusing to load it (set sandbox = \"best-effort\" under [plugin] to run it with what can be enforced)",
            unenforced.join("; ")
        ));
    }
    Ok(unenforced)
}

/// [`apply`] for rules sent as JSON (a [`Sandbox`] serialised): what the
/// debug host is given to confine itself with (`ax_runtime::debug_host::Confine`).
#[cfg(target_os = "linux")]
pub fn apply_sent(rules: &serde_json::Value, library: &Path, own_dir: &Path) -> Result<Vec<String>, String> {
    let sandbox = Sandbox::deserialize(rules).map_err(|e| format!("bad sandbox rules from the debugger: {e}"))?;
    apply(&sandbox, library, own_dir)
}

fn network_name(network: Network) -> &'static str {
    match network {
        Network::None => "none",
        Network::Loopback => "loopback",
        Network::Any => "any",
    }
}

/// The paths a sandboxed child may always read (and map executable): the
/// system's shared libraries and what the process has mapped already.
fn implied_read(library: &Path, own_dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = [
        "/lib",
        "/lib64",
        "/usr/lib",
        "/usr/lib64",
        "/usr/local/lib",
        "/etc/ld.so.cache",
        "/proc/self",
        "/dev/urandom",
        "/sys/devices/system/cpu",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    paths.push(library.to_owned());
    paths.push(own_dir.to_owned());
    if let Ok(maps) = std::fs::read_to_string("/proc/self/maps") {
        for line in maps.lines() {
            if let Some(path) = line.split_whitespace().nth(5).filter(|p| p.starts_with('/')) {
                paths.push(PathBuf::from(path));
            }
        }
    }
    paths.sort();
    paths.dedup();
    paths.retain(|p| p.exists());
    paths
}

#[cfg(target_os = "linux")]
fn landlock_rules(sandbox: &Sandbox, library: &Path, own_dir: &Path) -> Vec<String> {
    use landlock::{
        ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, LandlockStatus, Ruleset, RulesetAttr,
        RulesetCreatedAttr, RulesetStatus, Scope, path_beneath_rules,
    };
    let abi = ABI::V6;
    let mut read = implied_read(library, own_dir);
    if sandbox.exec {
        read.extend(["/bin", "/sbin", "/usr", "/etc"].iter().map(PathBuf::from));
    }
    read.extend(sandbox.fs_read.iter().cloned());
    let mut write: Vec<PathBuf> = vec![own_dir.to_owned(), PathBuf::from("/dev/null")];
    write.extend(sandbox.fs_write.iter().cloned());
    let result = (|| {
        let mut ruleset =
            Ruleset::default().set_compatibility(CompatLevel::BestEffort).handle_access(AccessFs::from_all(abi))?;
        if sandbox.network == Network::None {
            ruleset = ruleset.handle_access(AccessNet::from_all(abi))?;
        }
        ruleset
            .scope(Scope::AbstractUnixSocket | Scope::Signal)?
            .create()?
            .add_rules(path_beneath_rules(&read, AccessFs::from_read(abi)))?
            .add_rules(path_beneath_rules(&write, AccessFs::from_all(abi)))?
            .restrict_self()
    })();
    let mut unenforced = Vec::new();
    let fs = "the file system (fs_read, fs_write)";
    match result {
        Err(e) => unenforced.push(format!("{fs}: Landlock refused the ruleset: {e}")),
        Ok(status) => {
            let effective = match status.landlock {
                LandlockStatus::Available { effective_abi, .. } => Some(effective_abi),
                _ => None,
            };
            match (status.ruleset, effective) {
                (RulesetStatus::NotEnforced, _) | (_, None) => {
                    unenforced.push(format!("{fs}: Landlock is not available in this kernel"));
                }
                (_, Some(abi)) => {
                    if abi < ABI::V4 && sandbox.network == Network::None {
                        unenforced.push(format!(
                            "TCP bind/connect by port: Landlock ABI {abi} < 4 (sockets are still denied by seccomp)"
                        ));
                    }
                    if abi < ABI::V6 {
                        unenforced.push(format!(
                            "signals and abstract Unix sockets outside the sandbox: Landlock ABI {abi} < 6"
                        ));
                    }
                    if abi < ABI::V3 {
                        unenforced.push(format!("truncating files outside fs_write: Landlock ABI {abi} < 3"));
                    }
                }
            }
        }
    }
    unenforced
}

#[cfg(target_os = "linux")]
fn seccomp_rules(sandbox: &Sandbox) -> Result<(), String> {
    use std::collections::BTreeMap;

    use seccompiler::{
        BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition as Cond,
        SeccompFilter, SeccompRule, TargetArch,
    };

    #[cfg(target_arch = "x86_64")]
    let arch = TargetArch::x86_64;
    #[cfg(target_arch = "aarch64")]
    let arch = TargetArch::aarch64;
    #[cfg(target_arch = "riscv64")]
    let arch = TargetArch::riscv64;

    let cond = |arg, op, value| Cond::new(arg, Len::Qword, op, value).map_err(|e| e.to_string());
    let dword = |arg, op, value| Cond::new(arg, Len::Dword, op, value).map_err(|e| e.to_string());
    let rule = |conds: Vec<Cond>| SeccompRule::new(conds).map_err(|e| e.to_string());

    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for (cap, calls) in denied_calls() {
        if cap == "exec" && sandbox.exec {
            continue;
        }
        for &(nr, _) in calls {
            rules.insert(nr, Vec::new());
        }
    }
    // New processes and namespaces: libc blocks every signal around fork and
    // clone, and a trap while SIGSYS is blocked kills, so these fail with a
    // plain EPERM (not counted).
    let mut process: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    #[cfg(target_arch = "x86_64")]
    if !sandbox.exec {
        process.insert(libc::SYS_fork, Vec::new());
        process.insert(libc::SYS_vfork, Vec::new());
    }
    // clone: namespace flags always; a new process (no CLONE_THREAD) unless exec.
    let mut clone = Vec::new();
    for flag in [
        libc::CLONE_NEWUSER,
        libc::CLONE_NEWNET,
        libc::CLONE_NEWNS,
        libc::CLONE_NEWPID,
        libc::CLONE_NEWIPC,
        libc::CLONE_NEWUTS,
        libc::CLONE_NEWCGROUP,
    ] {
        let flag = flag as u64;
        clone.push(rule(vec![cond(0, Op::MaskedEq(flag), flag)?])?);
    }
    if !sandbox.exec {
        clone.push(rule(vec![cond(0, Op::MaskedEq(libc::CLONE_THREAD as u64), 0)?])?);
    }
    process.insert(libc::SYS_clone, clone);
    // socket: families beyond `network`, and never raw or packet sockets.
    let socket = match sandbox.network {
        Network::None => Vec::new(),
        allowed => {
            let mut families = vec![libc::AF_UNIX, libc::AF_INET, libc::AF_INET6];
            if allowed == Network::Any {
                families.push(libc::AF_NETLINK);
            }
            let others = families.into_iter().map(|f| dword(0, Op::Ne, f as u64)).collect::<Result<Vec<_>, _>>()?;
            vec![rule(others)?, rule(vec![dword(1, Op::MaskedEq(0xf), libc::SOCK_RAW as u64)?])?]
        }
    };
    rules.insert(libc::SYS_socket, socket);

    let deny = if TRAPS { SeccompAction::Trap } else { SeccompAction::Errno(libc::EPERM as u32) };
    let main: BpfProgram = SeccompFilter::new(rules, SeccompAction::Allow, deny, arch)
        .and_then(TryInto::try_into)
        .map_err(|e| e.to_string())?;
    let process: BpfProgram =
        SeccompFilter::new(process, SeccompAction::Allow, SeccompAction::Errno(libc::EPERM as u32), arch)
            .and_then(TryInto::try_into)
            .map_err(|e| e.to_string())?;
    // clone3 takes its flags in memory a filter cannot read: ENOSYS makes libc
    // fall back to clone, whose flags it can.
    let clone3: BpfProgram = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .and_then(TryInto::try_into)
    .map_err(|e| e.to_string())?;

    #[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        // SAFETY: a zeroed sigaction with a valid SA_SIGINFO handler.
        let installed = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_sigsys as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGSYS, &action, std::ptr::null_mut())
        };
        if installed != 0 {
            return Err(format!("cannot handle SIGSYS: {}", std::io::Error::last_os_error()));
        }
    }
    seccompiler::apply_filter_all_threads(&clone3).map_err(|e| e.to_string())?;
    seccompiler::apply_filter_all_threads(&process).map_err(|e| e.to_string())?;
    seccompiler::apply_filter_all_threads(&main).map_err(|e| e.to_string())?;
    Ok(())
}
