//! The process backend: ZooKeeper in a local JVM, in a temporary directory.
//!
//! The JVM is started by a small `sh` supervisor that holds a pipe from the test process on its
//! standard input. The test process sends `term` or `kill` lines through it to stop the server;
//! when the pipe closes (the server was dropped, or the test process died without running
//! destructors, as statics never are) the supervisor kills the JVM and removes the server's
//! temporary directory. No signal handling or `unsafe` code is needed in the test process.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::config::{
    NodeConfig, NodeTls, FOUR_LETTER_WORDS, INIT_LIMIT_TICKS, MAX_SESSION_TIMEOUT_MS,
    MIN_SESSION_TIMEOUT_MS, STOP_TIMEOUT, SYNC_LIMIT_TICKS, TICK_TIME_MS,
};
use super::TestingError;

const DEBIAN_JAR_DIR: &str = "/usr/share/java";
const MAIN_CLASS: &str = "org.apache.zookeeper.server.quorum.QuorumPeerMain";
const LOG_FILE: &str = "zookeeper.log";
/// ZooKeeper's PEM key store, in the server's directory, when it serves TLS.
const KEY_STORE_FILE: &str = "key-store.pem";
/// The server's JAAS file (SASL users), in its directory.
const JAAS_FILE: &str = "jaas.conf";
const EXIT_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// `sh -c` supervisor: `$1` is the server directory, the rest is the java command line.
const SUPERVISOR_SCRIPT: &str = r#"
dir=$1; shift
exec 3<&0 </dev/null
"$@" >>"$dir/zookeeper.log" 2>&1 3<&- &
server=$!
(
    while IFS= read -r command <&3; do
        case $command in
            term) kill -TERM "$server" 2>/dev/null ;;
            kill) kill -KILL "$server" 2>/dev/null ;;
        esac
    done
    : >"$dir/.orphaned"
    kill -KILL "$server" 2>/dev/null
) &
watcher=$!
wait "$server"
status=$?
kill "$watcher" 2>/dev/null
if [ -e "$dir/.orphaned" ]; then rm -rf "$dir"; fi
exit "$status"
"#;

/// Java and the class path that runs ZooKeeper on this machine.
#[derive(Debug, Clone)]
pub(crate) struct Runtime {
    java: PathBuf,
    class_path: String,
}

impl Runtime {
    /// Finds java (`$JAVA_HOME/bin/java`, else `java` on `PATH`) and ZooKeeper's jars
    /// (`$ZOOKEEPER_HOME`, else Debian's `/usr/share/java/zookeeper.jar`).
    ///
    /// The error is a sentence saying what is missing.
    pub(crate) fn discover() -> Result<Runtime, String> {
        let java = find_java().ok_or_else(|| {
            "java not found (set JAVA_HOME or put java on PATH; apt-get install \
             default-jre-headless)"
                .to_owned()
        })?;
        let class_path = match std::env::var_os("ZOOKEEPER_HOME") {
            Some(home) if !home.is_empty() => zookeeper_home_class_path(Path::new(&home))?,
            _ => debian_class_path()?,
        };
        Ok(Runtime { java, class_path })
    }
}

fn find_java() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("JAVA_HOME").filter(|home| !home.is_empty()) {
        let java = Path::new(&home).join("bin").join("java");
        if java.is_file() {
            return Some(java);
        }
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("java"))
        .find(|java| java.is_file())
}

/// An Apache binary release: `lib/*.jar` (ZooKeeper and its dependencies), older releases'
/// `zookeeper-*.jar` at the top, and `conf/` for the logging configuration.
fn zookeeper_home_class_path(home: &Path) -> Result<String, String> {
    let mut entries = Vec::new();
    let conf = home.join("conf");
    if conf.is_dir() {
        entries.push(conf);
    }
    for dir in [home.to_path_buf(), home.join("lib")] {
        let Ok(listing) = fs::read_dir(&dir) else {
            continue;
        };
        let mut jars: Vec<PathBuf> = listing
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "jar"))
            .collect();
        jars.sort();
        entries.extend(jars);
    }
    let has_zookeeper = entries.iter().any(|path| {
        path.file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with("zookeeper-") && !name.contains("jute"))
    });
    if !has_zookeeper {
        return Err(format!(
            "ZOOKEEPER_HOME={} holds no zookeeper-*.jar (in it or in its lib/)",
            home.display()
        ));
    }
    Ok(join_class_path(&entries))
}

/// Jars the server needs beyond those its Debian manifest lists: `slf4j-simple` (from
/// `libslf4j-java`) makes the server log to its log file; Netty's codec and resolver, which the
/// manifest omits, serve the TLS client port (`NettyServerCnxnFactory`).
const DEBIAN_EXTRA_JARS: [&str; 3] = ["slf4j-simple.jar", "netty-codec.jar", "netty-resolver.jar"];

/// Debian's `libzookeeper-java` (pulled in by the `zookeeper` package): its jar's manifest
/// lists its dependencies in /usr/share/java, like `/usr/share/zookeeper/bin/zkEnv.sh` relies
/// on, and [`DEBIAN_EXTRA_JARS`] adds what it lacks.
fn debian_class_path() -> Result<String, String> {
    let jar_dir = Path::new(DEBIAN_JAR_DIR);
    let zookeeper_jar = jar_dir.join("zookeeper.jar");
    if !zookeeper_jar.is_file() {
        return Err(format!(
            "no ZooKeeper jars: ZOOKEEPER_HOME is unset and {} is missing (apt-get install \
             zookeeper)",
            zookeeper_jar.display()
        ));
    }
    let mut entries = vec![zookeeper_jar];
    for jar in DEBIAN_EXTRA_JARS {
        let jar = jar_dir.join(jar);
        if jar.is_file() {
            entries.push(jar);
        }
    }
    Ok(join_class_path(&entries))
}

fn join_class_path(entries: &[PathBuf]) -> String {
    entries
        .iter()
        .map(|path| path.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

/// A ZooKeeper JVM under its supervisor, or the directory it runs in while stopped.
pub(crate) struct ProcessNode {
    config: NodeConfig,
    runtime: Runtime,
    running: Option<Supervisor>,
    /// Holds zoo.cfg, the data directory and the log; removed on drop, after the JVM is gone.
    dir: TempDir,
}

struct Supervisor {
    child: Child,
    /// Commands to the supervisor; closing it kills the JVM.
    control: ChildStdin,
}

impl ProcessNode {
    /// Writes the server's configuration into a new temporary directory.
    pub(crate) fn create(config: NodeConfig) -> Result<ProcessNode, TestingError> {
        let runtime = Runtime::discover().map_err(TestingError::NoBackend)?;
        let dir = tempfile::Builder::new()
            .prefix("zk-recipes-server-")
            .tempdir()
            .map_err(|err| TestingError::io("creating a server directory", err))?;
        let data_dir = dir.path().join("data");
        fs::create_dir_all(&data_dir)
            .map_err(|err| TestingError::io("creating the data directory", err))?;
        fs::write(data_dir.join("myid"), format!("{}\n", config.id))
            .map_err(|err| TestingError::io("writing myid", err))?;
        fs::write(dir.path().join("zoo.cfg"), zoo_cfg(&config, &data_dir))
            .map_err(|err| TestingError::io("writing zoo.cfg", err))?;
        if let Some(tls) = &config.tls {
            fs::write(dir.path().join(KEY_STORE_FILE), &tls.key_store_pem)
                .map_err(|err| TestingError::io("writing the TLS key store", err))?;
            if let Some(trust) = &tls.trust_store_pem {
                let key_store = dir.path().join(KEY_STORE_FILE).display().to_string();
                fs::write(NodeTls::trust_store_path(&key_store), trust)
                    .map_err(|err| TestingError::io("writing the TLS trust store", err))?;
            }
        }
        if let Some(sasl) = &config.sasl {
            fs::write(dir.path().join(JAAS_FILE), sasl.jaas())
                .map_err(|err| TestingError::io("writing the JAAS file", err))?;
        }
        tracing::debug!(server = %config.label, dir = %dir.path().display(), "created server directory");
        Ok(ProcessNode {
            config,
            runtime,
            running: None,
            dir,
        })
    }

    pub(crate) fn config(&self) -> &NodeConfig {
        &self.config
    }

    pub(crate) fn launch(&mut self) -> Result<(), TestingError> {
        if self.running.is_some() {
            return Ok(());
        }
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(SUPERVISOR_SCRIPT)
            .arg("zk-recipes-server")
            .arg(self.dir.path())
            .arg(&self.runtime.java)
            .args(
                self.config
                    .jvm_flags(
                        &self.dir.path().join(KEY_STORE_FILE).display().to_string(),
                        &self.dir.path().join(JAAS_FILE).display().to_string(),
                    )
                    .split_whitespace(),
            )
            .arg(format!("-Dzookeeper.log.dir={}", self.dir.path().display()))
            .arg("-cp")
            .arg(&self.runtime.class_path)
            .arg(MAIN_CLASS)
            .arg(self.dir.path().join("zoo.cfg"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|err| TestingError::io("starting sh to run ZooKeeper", err))?;
        let Some(control) = child.stdin.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(TestingError::io(
                "starting ZooKeeper",
                std::io::Error::other("no pipe to the supervisor"),
            ));
        };
        tracing::info!(server = %self.config.label, pid = child.id(), "started ZooKeeper process");
        self.running = Some(Supervisor { child, control });
        Ok(())
    }

    pub(crate) async fn stop(&mut self) -> Result<(), TestingError> {
        self.signal_and_wait("term", STOP_TIMEOUT).await
    }

    pub(crate) async fn kill(&mut self) -> Result<(), TestingError> {
        self.signal_and_wait("kill", STOP_TIMEOUT).await
    }

    async fn signal_and_wait(
        &mut self,
        command: &str,
        timeout: Duration,
    ) -> Result<(), TestingError> {
        let Some(supervisor) = self.running.as_mut() else {
            return Ok(());
        };
        // A failed write means the supervisor is gone already; waiting tells how it ended.
        let _ = writeln!(supervisor.control, "{command}");
        let started = Instant::now();
        loop {
            let status = supervisor
                .child
                .try_wait()
                .map_err(|err| TestingError::io("waiting for ZooKeeper to exit", err))?;
            if let Some(status) = status {
                tracing::info!(server = %self.config.label, %command, %status, elapsed = ?started.elapsed(), "ZooKeeper process exited");
                self.running = None;
                return Ok(());
            }
            if started.elapsed() >= timeout {
                if command == "kill" {
                    return Err(TestingError::Timeout {
                        what: format!("{} to exit after SIGKILL", self.config.label),
                        waited: timeout,
                        detail: self.log_tail(),
                    });
                }
                tracing::warn!(server = %self.config.label, "ZooKeeper ignored SIGTERM; killing it");
                return Box::pin(self.signal_and_wait("kill", timeout)).await;
            }
            tokio::time::sleep(EXIT_POLL_INTERVAL).await;
        }
    }

    pub(crate) fn check_alive(&mut self) -> Result<(), TestingError> {
        let Some(supervisor) = self.running.as_mut() else {
            return Err(TestingError::ServerExited {
                what: self.config.label.clone(),
                status: "stopped".to_owned(),
                log_tail: self.log_tail(),
            });
        };
        match supervisor.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => {
                self.running = None;
                Err(TestingError::ServerExited {
                    what: self.config.label.clone(),
                    status: status.to_string(),
                    log_tail: self.log_tail(),
                })
            }
            Err(err) => Err(TestingError::io("checking the ZooKeeper process", err)),
        }
    }

    pub(crate) fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.dir.path().join(LOG_FILE)).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for ProcessNode {
    fn drop(&mut self) {
        if let Some(mut supervisor) = self.running.take() {
            let _ = writeln!(supervisor.control, "kill");
            drop(supervisor.control);
            // SIGKILL takes effect at once; wait briefly so the directory is removed after the
            // JVM stopped writing to it, and so no zombie is left behind.
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(5) {
                match supervisor.child.try_wait() {
                    Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                    _ => break,
                }
            }
        }
        // `TempDir` removes the directory now that the JVM no longer writes to it.
    }
}

fn zoo_cfg(config: &NodeConfig, data_dir: &Path) -> String {
    let mut cfg = format!(
        "# Generated by zk_recipes::testing for {label}\n\
         tickTime={TICK_TIME_MS}\n\
         initLimit={INIT_LIMIT_TICKS}\n\
         syncLimit={SYNC_LIMIT_TICKS}\n\
         dataDir={data}\n\
         clientPort={port}\n\
         clientPortAddress=127.0.0.1\n\
         minSessionTimeout={MIN_SESSION_TIMEOUT_MS}\n\
         maxSessionTimeout={MAX_SESSION_TIMEOUT_MS}\n\
         maxClientCnxns=0\n\
         admin.enableServer=false\n\
         4lw.commands.whitelist={FOUR_LETTER_WORDS}\n",
        label = config.label,
        data = data_dir.display(),
        port = config.host_client_port,
    );
    if let Some(tls) = &config.tls {
        cfg.push_str(&format!(
            "secureClientPort={}\nsecureClientPortAddress=127.0.0.1\n",
            tls.host_port
        ));
    }
    if !config.is_standalone() {
        cfg.push_str("standaloneEnabled=false\nreconfigEnabled=false\n");
        for member in &config.members {
            cfg.push_str(&member.server_line());
            cfg.push('\n');
        }
    }
    cfg
}
