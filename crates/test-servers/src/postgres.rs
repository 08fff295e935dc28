//! A throwaway PostgreSQL cluster: `initdb` in a temporary directory, `pg_ctl`
//! starting it on a free loopback port, one database per test, and the server stopped by
//! its PID (`postmaster.pid`) when the cluster is dropped, or, for the cluster a whole test
//! binary shares, by a watcher process once the test binary has exited.
//!
//! PostgreSQL refuses to run as root: as root, every command runs as the `postgres` user
//! (made by Debian's package), which owns the cluster's directory.
//!
//! The binaries are found on `PATH`, else in Debian's `/usr/lib/postgresql/<version>/bin`.
//! Without them, [`Cluster::start`] returns `None` and the caller skips, unless the
//! environment says `CI` is set, when it panics: CI installs PostgreSQL (`.ci/run`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A running cluster.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    user: Option<String>,
    /// Whether dropping the value stops the server.
    stop_on_drop: bool,
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`.
fn binaries() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            // Where `initdb` really is (a link on PATH may point into Debian's folder),
            // with PostgreSQL's other programs beside it.
            if let Ok(initdb) = dir.join("initdb").canonicalize() {
                let bin = initdb.parent()?.to_owned();
                if bin.join("pg_ctl").is_file() && bin.join("createdb").is_file() {
                    return Some(bin);
                }
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_string_lossy().parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("no free loopback port")
}

impl Cluster {
    /// Initialises and starts a cluster of its own, or `None` (after saying so on stderr)
    /// when PostgreSQL is not installed and `CI` is not set.
    pub fn start(name: &str) -> Option<Cluster> {
        let Some(bin) = binaries() else {
            if std::env::var_os("CI").is_some() {
                panic!("PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql); .ci/run installs Debian's postgresql");
            }
            eprintln!("skipped: PostgreSQL is not installed (apt-get install postgresql)");
            return None;
        };
        let user = is_root().then(|| "postgres".to_owned());
        let dir = std::env::temp_dir().join(format!("cairn-pg-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("cannot make the cluster's directory");
        let mut cluster = Cluster {
            dir,
            bin,
            port: 0,
            user,
            stop_on_drop: true,
        };
        if let Some(user) = &cluster.user {
            let status = Command::new("chown")
                .arg(format!("{user}:"))
                .arg(&cluster.dir)
                .status()
                .expect("cannot run chown");
            assert!(
                status.success(),
                "cannot give {user} the cluster's directory"
            );
        }
        let data = cluster.data().display().to_string();
        cluster.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "cairn",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        // A port picked free may be taken before the server binds it: try a few.
        for _ in 0..5 {
            cluster.port = free_port();
            if cluster.try_start() {
                return Some(cluster);
            }
        }
        panic!(
            "PostgreSQL did not start; its log is {}",
            cluster.dir.join("server.log").display()
        );
    }

    /// The cluster every test of this binary shares, started on first use; a watcher
    /// process stops it (by its PID) and removes its directory once the binary has exited.
    pub fn shared() -> Option<&'static Cluster> {
        static SHARED: OnceLock<Option<Cluster>> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                let mut cluster = Cluster::start("shared")?;
                cluster.stop_on_drop = false;
                cluster.watch_this_process();
                Some(cluster)
            })
            .as_ref()
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Runs one of PostgreSQL's programs (as the `postgres` user when root), panicking with
    /// its output if it fails.
    fn run(&self, program: &str, args: &[&str]) {
        let output = self
            .command(program, args)
            .output()
            .expect("cannot run PostgreSQL");
        assert!(
            output.status.success(),
            "{program} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        let path = self.bin.join(program);
        let mut command = match &self.user {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(path);
                command
            }
            None => Command::new(path),
        };
        command.args(args).stdin(Stdio::null());
        command
    }

    fn try_start(&self) -> bool {
        let options = format!(
            "-h 127.0.0.1 -p {} -k {} -c fsync=off -c synchronous_commit=on -c max_connections=200",
            self.port,
            self.dir.display()
        );
        let data = self.data().display().to_string();
        let log = self.dir.join("server.log").display().to_string();
        let status = self
            .command(
                "pg_ctl",
                &[
                    "-D", &data, "-l", &log, "-o", &options, "-w", "-t", "30", "start",
                ],
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("cannot run pg_ctl");
        status.success()
    }

    /// The server's PID, from `postmaster.pid`.
    pub fn pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.data().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `name`.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://cairn@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates database `name` (dropping one of that name first) and returns its URL.
    pub fn create_database(&self, name: &str) -> String {
        let port = self.port.to_string();
        let base = ["-h", "127.0.0.1", "-p", &port, "-U", "cairn"];
        self.run("dropdb", &[&base[..], &["--if-exists", name]].concat());
        self.run("createdb", &[&base[..], &[name]].concat());
        self.url(name)
    }

    /// Stops the server at once (`kill -9` of the postmaster), as a crash would.
    pub fn kill(&self) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Starts the server again on the same port (after [`Cluster::kill`]).
    pub fn restart(&self) {
        // A killed postmaster leaves its children and shared memory behind for a moment.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.try_start() {
            assert!(Instant::now() < deadline, "PostgreSQL did not restart");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops the server (fast shutdown) by its PID.
    fn stop(&self) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .args(["-INT", &pid.to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Starts a shell that waits for this process to exit, then stops the server by its
    /// PID and removes the cluster's directory.
    fn watch_this_process(&self) {
        let Some(pid) = self.pid() else { return };
        let script = format!(
            "while kill -0 {me} 2>/dev/null; do sleep 0.5; done; \
             kill -INT {pid} 2>/dev/null; \
             for i in $(seq 1 40); do kill -0 {pid} 2>/dev/null || break; sleep 0.25; done; \
             rm -rf '{dir}'",
            me = std::process::id(),
            dir = self.dir.display()
        );
        let _ = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.stop_on_drop {
            self.stop();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
