//! Another local user is an attacker: these tests create real users (as root,
//! with `useradd`, removed at the end even on failure) and run the attacks as
//! them through `setpriv`: planting the runtime directories with symlinks,
//! planting the folder where a cargo output's link would go beside it,
//! connecting to a child host's socket, driving `ax-dap --port`, stalling and
//! flooding the attach listener. Pass = the victim's files unchanged, the
//! attacker's library (`fixture-attacker`, whose constructor writes a marker)
//! never loaded, the legitimate client served within 1 s. Two users also run
//! `ax run` one after the other. Not root (or no `useradd`/`setpriv`): each
//! test prints why it is skipped and returns.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ax_e2e::{binary, library};

/// `useradd` and `userdel` lock /etc/passwd: one at a time.
static USERS: Mutex<()> = Mutex::new(());

/// A local user made for one test, deleted when dropped.
struct User {
    name: String,
    uid: u32,
    gid: u32,
}

impl User {
    /// Creates a user without a home; `None` (with the reason printed) when
    /// this process cannot.
    fn create(test: &str, role: &str) -> Option<User> {
        if ax_runtime::rundir::euid() != 0 {
            eprintln!("skipped {test}: creating a second local user needs root");
            return None;
        }
        for tool in ["useradd", "userdel", "setpriv"] {
            if Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .map_or(true, |o| !o.status.success())
            {
                eprintln!("skipped {test}: `{tool}` is not installed");
                return None;
            }
        }
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("ax{role}{}x{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let _lock = USERS.lock().unwrap_or_else(|e| e.into_inner());
        let out =
            Command::new("useradd").args(["-M", "-s", "/usr/sbin/nologin", &name]).output().expect("useradd runs");
        assert!(out.status.success(), "useradd {name}: {}", String::from_utf8_lossy(&out.stderr));
        let id = |flag: &str| -> u32 {
            let out = Command::new("id").args([flag, &name]).output().expect("id runs");
            String::from_utf8_lossy(&out.stdout).trim().parse().expect("a numeric id")
        };
        Some(User { uid: id("-u"), gid: id("-g"), name })
    }

    /// `program` run as this user, with a clean environment (no
    /// XDG_RUNTIME_DIR, no TMPDIR: the defaults are what is attacked).
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.args([format!("--reuid={}", self.uid), format!("--regid={}", self.gid), "--clear-groups".to_owned()])
            .arg(program)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .current_dir("/")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `script` in `sh` as this user; returns its output.
    fn sh(&self, script: &str) -> std::process::Output {
        self.command("sh").args(["-c", script]).output().expect("sh runs")
    }
}

impl Drop for User {
    fn drop(&mut self) {
        let _lock = USERS.lock().unwrap_or_else(|e| e.into_inner());
        let _ = Command::new("userdel").args(["-f", &self.name]).output();
        for dir in [format!("/dev/shm/ax-{}", self.uid), format!("/tmp/ax-{}", self.uid)] {
            let _ = std::fs::remove_dir_all(&dir).or_else(|_| std::fs::remove_file(&dir));
        }
    }
}

/// Whether every user can reach `path` (each ancestor searchable).
fn reachable_by_all(path: &Path) -> bool {
    path.ancestors().skip(1).all(|dir| std::fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

/// The built binaries and libraries, if another user can run and read them.
fn artifacts_reachable(test: &str) -> bool {
    let paths = [binary("ax"), binary("ax-dap"), library("word-count"), library("fixture-attacker")];
    let ok = paths.iter().all(|p| reachable_by_all(p));
    if !ok {
        eprintln!("skipped {test}: the build directory is not readable by other users");
    }
    ok
}

/// A folder any user can write in (like /tmp), removed when dropped.
fn shared_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    dir
}

/// A marker path the attacker's constructor would write (not there yet).
fn marker(dir: &Path) -> PathBuf {
    dir.join("attacker-library-was-loaded")
}

fn ax_run_word_count(user: &User, text: &str) -> std::process::Output {
    user.command(binary("ax"))
        .args(["run"])
        .arg(library("word-count"))
        .args(["count", &format!("{{\"text\":\"{text}\"}}")])
        .output()
        .expect("ax runs")
}

#[test]
fn two_users_run_ax_one_after_the_other() {
    let test = "two_users_run_ax_one_after_the_other";
    let (Some(first), Some(second)) = (User::create(test, "v"), User::create(test, "a")) else { return };
    if !artifacts_reachable(test) {
        return;
    }
    for user in [&first, &second, &first] {
        let out = ax_run_word_count(user, "a b");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{} could not run ax: {stderr}", user.name);
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), r#"{"total":2,"words":2}"#);
    }
}

#[test]
fn planted_runtime_directories_are_refused_and_nothing_is_written_through_them() {
    let test = "planted_runtime_directories_are_refused_and_nothing_is_written_through_them";
    let (Some(victim), Some(attacker)) = (User::create(test, "v"), User::create(test, "a")) else { return };
    if !artifacts_reachable(test) {
        return;
    }
    // The victim's own folder and file, which the plants point at.
    let home = tempfile::tempdir().expect("a temp dir");
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(home.path(), Some(victim.uid), Some(victim.gid)).unwrap();
    let precious = home.path().join("precious.txt");
    std::fs::write(&precious, "the victim's data\n").unwrap();
    std::os::unix::fs::chown(&precious, Some(victim.uid), Some(victim.gid)).unwrap();
    let spot = shared_dir();
    let marker = marker(spot.path());
    let attack = library("fixture-attacker").display().to_string();
    // The victim's environment is clean: the temp dir is /tmp.
    let roots = [format!("/dev/shm/ax-{}", victim.uid), format!("/tmp/ax-{}", victim.uid)];

    // 1. The runtime directories are symlinks to a folder of the victim's.
    // 2. They are the attacker's own folders, open to all, full of symlinks
    //    to the victim's file and to the attacker's library.
    let plants = [
        ("symbolic link", format!("ln -s {} ROOT", home.path().display())),
        (
            "belongs to uid",
            format!(
                "mkdir -m 777 ROOT && for n in 0 1 2 3; do ln -s {} ROOT/libword_count-$n.so; ln -s {attack} ROOT/x-$n.so; done",
                precious.display()
            ),
        ),
    ];
    for (problem, plant) in plants {
        for root in &roots {
            let out = attacker.sh(&plant.replace("ROOT", root));
            assert!(out.status.success(), "planting {root}: {}", String::from_utf8_lossy(&out.stderr));
        }
        let out = victim
            .command("env")
            .arg(format!("AX_ATTACK_MARKER={}", marker.display()))
            .arg(binary("ax"))
            .arg("run")
            .arg(library("word-count"))
            .args(["count", r#"{"text":"x"}"#])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "ax used a planted directory: {stderr}");
        let named = roots.iter().any(|root| stderr.contains(root.as_str()));
        assert!(named && stderr.contains(problem) && stderr.contains("Remove it"), "{stderr}");
        assert_eq!(std::fs::read_to_string(&precious).unwrap(), "the victim's data\n");
        assert_eq!(std::fs::read_dir(home.path()).unwrap().count(), 1, "nothing was written in the victim's folder");
        assert!(!marker.exists(), "the attacker's library was loaded");
        for root in &roots {
            attacker.sh(&format!("rm -rf {root}"));
        }
    }
    // Once the plants are gone the victim's ax runs, in a private folder.
    let out = ax_run_word_count(&victim, "x");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let made = roots.iter().filter_map(|root| std::fs::symlink_metadata(root).ok()).collect::<Vec<_>>();
    assert!(!made.is_empty() && made.iter().all(|m| m.uid() == victim.uid && m.permissions().mode() & 0o777 == 0o700));
}

#[test]
fn no_link_is_made_beside_a_cargo_output_that_another_user_can_reach() {
    let test = "no_link_is_made_beside_a_cargo_output_that_another_user_can_reach";
    let (Some(victim), Some(attacker)) = (User::create(test, "v"), User::create(test, "a")) else { return };
    if !artifacts_reachable(test) {
        return;
    }
    // As on a desktop: the victim's runtime directory is memory, their cargo
    // output on disk, so ax would link it beside the output, in `.ax-links`.
    let Ok(runtime) = tempfile::tempdir_in("/dev/shm") else {
        eprintln!("skipped {test}: no /dev/shm");
        return;
    };
    std::fs::set_permissions(runtime.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(runtime.path(), Some(victim.uid), Some(victim.gid)).unwrap();
    let spot = shared_dir();
    if std::fs::metadata(spot.path()).unwrap().dev() == std::fs::metadata(runtime.path()).unwrap().dev() {
        eprintln!("skipped {test}: /dev/shm and the temp dir are one file system here");
        return;
    }
    // The victim's profile directory, careless: writable by everyone.
    let profile = spot.path().join("debug");
    std::fs::create_dir(&profile).unwrap();
    let lib = profile.join("libword_count.so");
    std::fs::write(profile.join(".cargo-lock"), "").unwrap();
    std::fs::copy(library("word-count"), &lib).unwrap();
    for path in [&profile, &lib] {
        std::os::unix::fs::chown(path, Some(victim.uid), Some(victim.gid)).unwrap();
    }
    std::fs::set_permissions(&profile, std::fs::Permissions::from_mode(0o777)).unwrap();
    let run = || {
        let out = victim
            .command("env")
            .arg(format!("XDG_RUNTIME_DIR={}", runtime.path().display()))
            .arg(binary("ax"))
            .arg("run")
            .arg(&lib)
            .args(["count", r#"{"text":"x y"}"#])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), r#"{"total":2,"words":2}"#);
    };
    let links = profile.join(".ax-links");
    run();
    assert!(std::fs::symlink_metadata(&links).is_err(), "a link directory in a folder anyone can write");

    // The attacker plants `.ax-links` (theirs, open to all, where they could
    // swap a link for their library between its making and its loading).
    let planted = attacker.sh(&format!("mkdir -m 777 {}", links.display()));
    assert!(planted.status.success(), "{}", String::from_utf8_lossy(&planted.stderr));
    run();
    assert_eq!(std::fs::read_dir(&links).unwrap().count(), 0, "the victim's ax wrote in the attacker's folder");
}

#[test]
fn a_child_host_socket_refuses_another_users_connection() {
    let test = "a_child_host_socket_refuses_another_users_connection";
    let Some(attacker) = User::create(test, "a") else { return };
    if !artifacts_reachable(test) {
        return;
    }
    // The socket sits where the attacker can reach it (ax's own directory
    // would keep them out before any check): the peer check is what refuses.
    let spot = shared_dir();
    let socket = spot.path().join("child.sock");
    // The child is the attacker's `ax` (the same pid: `sh` execs it), given
    // time for the socket to be opened to everyone.
    let mut child = attacker.command("sh");
    child.args(["-c", "sleep 0.5; exec \"$0\" \"$@\""]).arg(binary("ax"));
    let opener = {
        let socket = socket.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o777)).is_err() {
                assert!(Instant::now() < deadline, "the socket never appeared");
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let started = Instant::now();
    let result = ax_isolate::child_host::start_child_host_with(child, "__isolated-host", &socket);
    opener.join().unwrap();
    let Err(message) = result else { panic!("a child running as another user was accepted") };
    assert!(message.contains("exited before connecting") || message.contains("did not connect"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// One DAP message, framed.
fn dap_frame(body: &serde_json::Value) -> Vec<u8> {
    let body = body.to_string();
    format!("Content-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
}

/// A free loopback port (bound, read, released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until something listens on 127.0.0.1:`port` (without connecting:
/// a server of one session would take the probe for its client).
fn wait_listening(port: u16) {
    let needle = format!("0100007F:{port:04X} 00000000:0000 0A");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string("/proc/net/tcp").unwrap_or_default().contains(&needle) {
        assert!(Instant::now() < deadline, "nothing listens on 127.0.0.1:{port}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Kills and reaps a child when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn ax_dap_port_refuses_another_user_and_serves_its_own() {
    let test = "ax_dap_port_refuses_another_user_and_serves_its_own";
    let Some(attacker) = User::create(test, "a") else { return };
    if !artifacts_reachable(test) {
        return;
    }
    let spot = shared_dir();
    let marker = marker(spot.path());
    let port = free_port();
    let dap = Command::new(binary("ax-dap"))
        .args(["--port", &port.to_string()])
        .env("AX_BIN", binary("ax"))
        .env("AX_ATTACK_MARKER", &marker)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut dap = Reaped(dap);
    wait_listening(port);

    // The attacker: initialize, then launch their own library.
    let mut frames = dap_frame(
        &serde_json::json!({"seq": 1, "type": "request", "command": "initialize", "arguments": {"adapterID": "ax"}}),
    );
    frames.extend(dap_frame(&serde_json::json!({"seq": 2, "type": "request", "command": "launch",
        "arguments": {"plugin": library("fixture-attacker"), "build": false, "calls": [{"method": "x"}]}})));
    let mut client = attacker
        .command("bash")
        .args(["-c", &format!("exec 3<>/dev/tcp/127.0.0.1/{port} && cat >&3 && timeout 3 cat <&3")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    client.stdin.take().unwrap().write_all(&frames).unwrap();
    let answered = client.wait_with_output().unwrap();

    // Our own client is served.
    let mut ours = TcpStream::connect(("127.0.0.1", port)).unwrap();
    ours.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    ours.write_all(&dap_frame(
        &serde_json::json!({"seq": 1, "type": "request", "command": "initialize", "arguments": {"adapterID": "ax"}}),
    ))
    .unwrap();
    let mut reply = [0u8; 256];
    let n = ours.read(&mut reply).expect("our initialize answered within 1 s");
    assert!(String::from_utf8_lossy(&reply[..n]).starts_with("Content-Length:"));
    drop(ours);
    let _ = dap.0.kill();
    let _ = dap.0.wait();
    let mut log = String::new();
    dap.0.stderr.take().unwrap().read_to_string(&mut log).unwrap();

    std::thread::sleep(Duration::from_millis(200));
    assert!(!marker.exists(), "the attacker's library was loaded by ax-dap");
    assert!(answered.stdout.is_empty(), "the attacker was answered: {}", String::from_utf8_lossy(&answered.stdout));
    assert!(log.contains("refused a connection") && log.contains(&format!("uid {}", attacker.uid)), "{log}");
}

#[test]
fn a_stalled_and_a_flooding_connection_do_not_keep_the_debugger_out() {
    let test = "a_stalled_and_a_flooding_connection_do_not_keep_the_debugger_out";
    let Some(attacker) = User::create(test, "a") else { return };
    if !artifacts_reachable(test) {
        return;
    }
    let token = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";
    let host = Command::new(binary("ax"))
        .arg("run")
        .arg(library("word-count"))
        .args(["count", r#"{"text":"served anyway"}"#, "--debug-listen", "127.0.0.1:0"])
        .env("AX_DEBUG_TOKEN", token)
        .env_remove("AX_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut host = Reaped(host);
    let mut stderr = BufReader::new(host.0.stderr.take().unwrap());
    let mut line = String::new();
    let port: u16 = loop {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "ax run ended before listening");
        if let Some(rest) = line.split("attach to 127.0.0.1:").nth(1) {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    // One connection that sends nothing, one that sends 64 MiB with no newline.
    let stall = attacker
        .command("bash")
        .args(["-c", &format!("exec 3<>/dev/tcp/127.0.0.1/{port} && exec sleep 30")])
        .spawn()
        .unwrap();
    let _stall = Reaped(stall);
    let flood = attacker
        .command("bash")
        .args(["-c", &format!("exec 3<>/dev/tcp/127.0.0.1/{port} && exec head -c 67108864 /dev/zero >&3")])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _flood = Reaped(flood);
    std::thread::sleep(Duration::from_millis(300));

    let mut ours = TcpStream::connect(("127.0.0.1", port)).unwrap();
    ours.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    ours.write_all(format!("{{\"token\":\"{token}\"}}\n{{\"id\":1,\"op\":\"hello\"}}\n").as_bytes()).unwrap();
    let mut replies = BufReader::new(ours.try_clone().unwrap());
    let mut reply = String::new();
    replies.read_line(&mut reply).expect("the debugger is answered within 1 s");
    assert!(reply.contains("\"attached\""), "{reply}");
    ours.write_all(b"{\"id\":2,\"op\":\"start\"}\n{\"id\":3,\"op\":\"detach\"}\n").unwrap();
    let mut stdout = String::new();
    host.0.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    assert_eq!(stdout.trim(), r#"{"total":2,"words":2}"#, "the host kept serving its own call");
}

#[test]
fn short_tokens_and_tokens_in_argv_are_refused() {
    let run = |args: &[&str], env: Option<&str>| {
        let mut cmd = ax_e2e::ax();
        cmd.arg("run").arg(library("word-count")).args(["count", "{}", "--debug-listen", "127.0.0.1:0"]).args(args);
        match env {
            Some(token) => cmd.env("AX_DEBUG_TOKEN", token),
            None => cmd.env_remove("AX_DEBUG_TOKEN"),
        };
        ax_e2e::run(&mut cmd)
    };
    ax_e2e::assert_one_error(&run(&[], Some("s3cret")), &["AX_DEBUG_TOKEN", "too short", "128 bits"]);
    let long = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";
    ax_e2e::assert_one_error(&run(&["--debug-token", long], None), &["--debug-token", "visible to every local user"]);
    let spot = tempfile::tempdir().unwrap();
    let file = spot.path().join("token");
    std::fs::write(&file, long).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let file_arg = file.display().to_string();
    ax_e2e::assert_one_error(&run(&["--debug-token-file", &file_arg], None), &[&file_arg, "mode 0600"]);
}

#[test]
fn ax_dap_socket_is_private_to_its_user() {
    let test = "ax_dap_socket_is_private_to_its_user";
    let Some(attacker) = User::create(test, "a") else { return };
    if !artifacts_reachable(test) {
        return;
    }
    let spot = shared_dir();
    let socket = spot.path().join("dap.sock");
    let dap = Command::new(binary("ax-dap"))
        .arg("--socket")
        .arg(&socket)
        .env("AX_BIN", binary("ax"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _dap = Reaped(dap);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "ax-dap never made its socket");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(std::fs::symlink_metadata(&socket).unwrap().permissions().mode() & 0o777, 0o600);

    // Another user cannot even connect.
    if !attacker.sh("command -v python3").status.success() {
        eprintln!("skipped {test}: python3 (the other user's client) is not installed");
        return;
    }
    let out = attacker
        .command("python3")
        .args(["-c", "import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])"])
        .arg(&socket)
        .output()
        .unwrap();
    assert!(!out.status.success(), "another user connected to ax-dap's socket");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied"), "{out:?}");

    // We are served.
    let mut ours = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    ours.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let body = r#"{"seq":1,"type":"request","command":"initialize","arguments":{"adapterID":"ax"}}"#;
    ours.write_all(format!("Content-Length: {}\r\n\r\n{body}", body.len()).as_bytes()).unwrap();
    let mut reply = [0u8; 256];
    let n = ours.read(&mut reply).expect("our initialize answered within 1 s");
    assert!(String::from_utf8_lossy(&reply[..n]).starts_with("Content-Length:"));

    // A path that exists is not replaced.
    let taken = spot.path().join("taken");
    std::fs::write(&taken, "not a socket").unwrap();
    let out = ax_e2e::run(Command::new(binary("ax-dap")).arg("--socket").arg(&taken));
    assert_eq!(std::fs::read_to_string(&taken).unwrap(), "not a socket");
    assert!(out.code == Some(1) && out.stderr.contains("the path exists"), "{out:?}");
}

#[test]
fn another_user_cannot_reach_an_isolated_childs_socket_while_it_runs() {
    let test = "another_user_cannot_reach_an_isolated_childs_socket_while_it_runs";
    let (Some(victim), Some(attacker)) = (User::create(test, "v"), User::create(test, "a")) else { return };
    if !artifacts_reachable(test) {
        return;
    }
    // The victim's first run makes the directories; then the attacker watches
    // them for a socket to hijack while the victim runs isolated plugins.
    assert!(ax_run_word_count(&victim, "x").status.success());
    let roots = format!("/dev/shm/ax-{uid} /tmp/ax-{uid}", uid = victim.uid);
    let watcher = attacker
        .command("sh")
        .args([
            "-c",
            &format!("for i in $(seq 400); do for r in {roots}; do ls -A \"$r\"/* 2>&1; done; done | sort -u"),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..3 {
        let out = victim
            .command(binary("ax"))
            .args(["run", "--isolate"])
            .arg(library("word-count"))
            .args(["count", r#"{"text":"a b"}"#])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let seen = String::from_utf8_lossy(&watcher.wait_with_output().unwrap().stdout).into_owned();
    assert!(!seen.contains(".sock") && !seen.contains(".so"), "the attacker saw inside: {seen}");
    assert!(seen.contains("Permission denied"), "{seen}");
}

/// What `ax run DIR read_file {"path": PATH}` of the hostile fixture read, as
/// `user`, where DIR's manifest declares `[sandbox]`.
fn sandboxed_read(user: &User, dir: &Path, path: &str) -> String {
    let input = serde_json::json!({ "path": path }).to_string();
    let out = user.command(binary("ax")).arg("run").arg(dir).args(["read_file", &input]).output().expect("ax runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{} could not run the sandboxed plugin: {stderr}", user.name);
    let read: serde_json::Value = serde_json::from_slice(&out.stdout).expect("the call's JSON");
    read["text"].as_str().unwrap_or_else(|| panic!("reading {path} failed: {read}")).to_owned()
}

#[test]
fn a_sandboxed_plugin_of_an_unprivileged_user_has_its_own_network_and_no_capabilities() {
    let test = "a_sandboxed_plugin_of_an_unprivileged_user_has_its_own_network_and_no_capabilities";
    let Some(user) = User::create(test, "s") else { return };
    if !artifacts_reachable(test) || !reachable_by_all(library("fixture-hostile")) {
        return;
    }
    let shared = shared_dir();
    let manifest = format!(
        "[plugin]\nname = \"hostile\"\nversion = \"0.1.0\"\nlibrary = {:?}\n[sandbox]\nnetwork = \"none\"\n",
        library("fixture-hostile").display().to_string()
    );
    std::fs::write(shared.path().join("ax-plugin.toml"), manifest).unwrap();

    // The child enters a user namespace to get its network namespace, without
    // an exec after it: the capabilities that namespace grants must be gone.
    let status = sandboxed_read(&user, shared.path(), "/proc/self/status");
    let caps: Vec<&str> = status.lines().filter(|l| l.starts_with("CapPrm:") || l.starts_with("CapEff:")).collect();
    assert_eq!(caps.len(), 2, "{status}");
    for line in caps {
        assert!(line.ends_with("0000000000000000"), "the sandboxed child holds capabilities: {line}");
    }
    let uid_map = sandboxed_read(&user, shared.path(), "/proc/self/uid_map");
    assert_eq!(
        uid_map.split_whitespace().collect::<Vec<_>>(),
        [user.uid.to_string(), user.uid.to_string(), "1".into()]
    );
    let devices = sandboxed_read(&user, shared.path(), "/proc/self/net/dev");
    let interfaces: Vec<&str> = devices.lines().skip(2).filter_map(|l| l.split(':').next()).map(str::trim).collect();
    assert_eq!(interfaces, ["lo"], "network = \"none\" still sees the machine's interfaces");
}
