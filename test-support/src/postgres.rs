//! PostgreSQL for the tests: a cluster of the distribution's PostgreSQL, made with
//! `initdb` on a temp dir and served on a free loopback port, for as long as the
//! test needs it. PostgreSQL refuses to run as root, so as root it runs as the
//! `postgres` user the package creates.
//!
//! With `CODEX_JOBS_TEST_POSTGRES` set, every test server keeps its jobs in a
//! database of one cluster shared by the test process (`shared`): the whole suite
//! then runs against PostgreSQL.

use std::{
    path::PathBuf,
    process::{Child, ChildStdin, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use tempfile::TempDir;

/// The switch that runs the suite against PostgreSQL.
pub const SWITCH: &str = "CODEX_JOBS_TEST_POSTGRES";

/// Whether this run keeps the test servers' jobs in PostgreSQL.
pub fn switched_on() -> bool {
    std::env::var_os(SWITCH).is_some()
}

/// A PostgreSQL cluster of the test's own. Shut down on drop, or, for one that is
/// never dropped, when the test process exits: a small shell holds the server and
/// stops it when its stdin, a pipe from this process, closes.
pub struct Postgres {
    dir: TempDir,
    pub port: u16,
    server: Option<(Child, ChildStdin)>,
}

impl Postgres {
    /// A new cluster, started. `None` where PostgreSQL is not installed, except in
    /// CI, which must have it.
    pub fn start() -> Option<Postgres> {
        let Some(bin) = bin_dir() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must have PostgreSQL (/usr/lib/postgresql/*/bin)"
            );
            eprintln!("SKIPPED: PostgreSQL is not installed");
            return None;
        };
        let dir = tempfile::tempdir().expect("a temp dir");
        if as_root() {
            // The cluster's files are the postgres user's.
            let status = Command::new("chown")
                .arg("postgres")
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success(), "chown of the cluster's dir");
        }
        let data = dir.path().join("data");
        let output = as_postgres(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .output()
            .expect("initdb runs");
        assert!(
            output.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cluster = Postgres {
            dir,
            port,
            server: None,
        };
        cluster.start_again();
        Some(cluster)
    }

    /// Starts the server on the cluster's files and port (after `stop`), and waits
    /// until it answers.
    pub fn start_again(&mut self) {
        assert!(self.server.is_none(), "the cluster is running");
        let bin = bin_dir().expect("PostgreSQL is installed");
        // fsync off: a test cluster need not survive a crash of the machine.
        let mut server = as_postgres(&PathBuf::from("sh"))
            .arg("-c")
            .arg(r#""$0" "$@" & server=$!; read -r _; kill -INT $server; wait $server"#)
            .arg(bin.join("postgres"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .arg("-k")
            .arg(self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.path().join("server.log")).unwrap())
            .spawn()
            .expect("postgres starts");
        let stdin = server.stdin.take().unwrap();
        self.server = Some((server, stdin));
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.psql("SELECT 1").status.success() {
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not start: {}",
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (a fast shutdown: sessions are cut) and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some((mut server, stdin)) = self.server.take() {
            drop(stdin);
            let _ = server.wait();
        }
    }

    /// Serves TLS from now on, with the certificate `cert` and its key `key` (PEM),
    /// restarting the server.
    pub fn serve_tls(&mut self, cert: &std::path::Path, key: &std::path::Path) {
        self.stop();
        let data = self.dir.path().join("data");
        std::fs::copy(cert, data.join("server.crt")).unwrap();
        std::fs::copy(key, data.join("server.key")).unwrap();
        // PostgreSQL reads a key only its own user can read.
        let private = std::os::unix::fs::PermissionsExt::from_mode(0o600);
        std::fs::set_permissions(data.join("server.key"), private).unwrap();
        if as_root() {
            let status = Command::new("chown")
                .arg("postgres")
                .arg(data.join("server.crt"))
                .arg(data.join("server.key"))
                .status()
                .unwrap();
            assert!(status.success(), "chown of the cluster's certificate");
        }
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .unwrap();
        std::io::Write::write_all(&mut conf, b"\nssl = on\n").unwrap();
        self.start_again();
    }

    /// The URL of `database` in this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates `database` unless it exists.
    pub fn create_database(&self, database: &str) {
        let exists = self.psql(&format!(
            "SELECT 1 FROM pg_database WHERE datname = '{database}'"
        ));
        if String::from_utf8_lossy(&exists.stdout).trim() == "1" {
            return;
        }
        let created = self.psql(&format!("CREATE DATABASE \"{database}\""));
        assert!(
            created.status.success(),
            "CREATE DATABASE {database}: {}",
            String::from_utf8_lossy(&created.stderr)
        );
    }

    /// Runs one statement in the `postgres` database with psql.
    pub fn psql(&self, sql: &str) -> std::process::Output {
        Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "postgres", "-d", "postgres", "-X", "-q", "-t", "-A"])
            .args(["-v", "ON_ERROR_STOP=1", "-c", sql])
            .stdin(Stdio::null())
            .output()
            .expect("psql runs")
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The cluster the test servers of this process share (see `SWITCH`).
pub fn shared() -> &'static Postgres {
    // A static is never dropped: the cluster's shell stops it when this process exits.
    static SHARED: OnceLock<Postgres> = OnceLock::new();
    SHARED.get_or_init(|| Postgres::start().expect("PostgreSQL for CODEX_JOBS_TEST_POSTGRES"))
}

/// The database a test server with `state_dir` keeps its jobs in: one per state
/// dir, so a server started again on the same state dir finds its jobs.
pub fn database_for(state_dir: &std::path::Path) -> String {
    let database = format!(
        "jobs_{:016x}",
        crate::checksum(state_dir.as_os_str().as_encoded_bytes())
    );
    shared().create_database(&database);
    shared().url(&database)
}

/// The newest PostgreSQL the distribution installed.
fn bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| Some(entry.ok()?.path().join("bin")))
        .filter(|bin| bin.join("postgres").is_file())
        .collect();
    dirs.sort_by_key(|bin| {
        bin.parent()
            .and_then(|version| version.file_name()?.to_str()?.parse::<u32>().ok())
    });
    dirs.pop()
}

fn as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `program`, run as the postgres user where this process is root.
fn as_postgres(program: &std::path::Path) -> Command {
    if as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}
