//! Compiling and running small Java programs against Debian's Apache Curator jars, for
//! interoperability tests (`libcurator-recipes-java`, Java 17 `javac` and `java`).
//!
//! * [`compile`]: compiles one `.java` file (once per content) into a directory under the
//!   test target directory and returns that directory, to put on the class path.
//! * [`spawn`]: runs a class with the Curator class path, stdin and stdout piped.
//! * [`JavaProcess`]: a line protocol on top: [`send`](JavaProcess::send) a command,
//!   [`expect`](JavaProcess::expect) a line starting with a prefix, under a deadline.
//!
//! The class path is [`curator_classpath`]: the jars `libcurator-recipes-java` depends on
//! (curator-recipes, -framework, -client; zookeeper, zookeeper-jute; guava, slf4j-api, and
//! what ZooKeeper's manifest names), those present under [`JAVA_DIR`], plus `slf4j-simple` so
//! Curator's logs go to stderr (the test's output).
#![allow(dead_code)] // Each test binary uses a different subset.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// Where Debian installs Java libraries.
pub const JAVA_DIR: &str = "/usr/share/java";

/// The jars of the Curator class path, by their version-less Debian names: curator-recipes
/// and what its manifest `Class-Path` pulls in (transitively), then an SLF4J binding. Jars
/// that are not installed are left out; the three Curator jars and ZooKeeper's are required.
pub const CURATOR_JARS: &[&str] = &[
    "curator-recipes.jar",
    "curator-x-discovery.jar",
    "curator-framework.jar",
    "curator-client.jar",
    "zookeeper.jar",
    "zookeeper-jute.jar",
    "guava.jar",
    "slf4j-api.jar",
    "jackson-databind.jar",
    "jackson-core.jar",
    "jackson-annotations.jar",
    "commons-cli.jar",
    "commons-io.jar",
    "metrics-core.jar",
    "snappy-java.jar",
    "netty-buffer.jar",
    "netty-codec.jar",
    "netty-common.jar",
    "netty-handler.jar",
    "netty-resolver.jar",
    "netty-transport.jar",
    "netty-transport-native-epoll.jar",
    "netty-transport-native-unix-common.jar",
    "slf4j-simple.jar",
];

const REQUIRED_JARS: &[&str] = &[
    "curator-recipes.jar",
    "curator-framework.jar",
    "curator-client.jar",
    "zookeeper.jar",
    "zookeeper-jute.jar",
];

/// Set to skip Java interop tests (they pass vacuously) where Java or Curator is missing.
pub const SKIP_VAR: &str = "ZK_SKIP_JAVA_INTEROP";

/// True when [`SKIP_VAR`] is set: the caller should return at once.
pub fn skip_requested() -> bool {
    std::env::var(SKIP_VAR).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The Curator class path, `:`-separated.
///
/// # Panics
///
/// If a required jar is missing, with the package to install.
pub fn curator_classpath() -> String {
    for jar in REQUIRED_JARS {
        let path = Path::new(JAVA_DIR).join(jar);
        assert!(
            path.exists(),
            "{} is missing: install libcurator-recipes-java (or set {SKIP_VAR}=1 to skip Java interop tests)",
            path.display()
        );
    }
    CURATOR_JARS
        .iter()
        .map(|jar| Path::new(JAVA_DIR).join(jar))
        .filter(|path| path.exists())
        .map(|path| path.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

/// The directory compiled classes go to: under the test target directory.
fn classes_root() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("java-classes")
}

static COMPILE_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What the workers share (`CuratorWorker`), compiled beside every Java file.
const WORKER_SUPPORT: &str = "tests/java/CuratorWorker.java";

/// Compiles `java_file` (a path relative to the crate root, or absolute), with the workers'
/// shared [`WORKER_SUPPORT`] beside it, with `javac` against the Curator class path, and
/// returns the directory holding their classes.
///
/// The output directory is named after the file and a hash of both files' content, so
/// unchanged files are compiled once per target directory, and concurrent tests (and test binaries)
/// never see a half-written directory (classes are written to a temporary directory first,
/// then renamed).
///
/// # Panics
///
/// If a file cannot be read, `javac` cannot be run, or the compilation fails (with
/// `javac`'s output).
pub async fn compile(java_file: impl AsRef<Path>) -> PathBuf {
    let source = resolve(java_file.as_ref());
    let support = resolve(Path::new(WORKER_SUPPORT));
    let mut content = Vec::new();
    for file in [&source, &support] {
        let bytes =
            std::fs::read(file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        content.extend(bytes);
    }
    let stem = source
        .file_stem()
        .and_then(|s| s.to_str())
        .expect("a .java file name");
    let out = classes_root().join(format!("{stem}-{:016x}", fnv1a(&content)));
    let _serialized = COMPILE_LOCK.lock().await;
    if out.exists() {
        return out;
    }
    std::fs::create_dir_all(classes_root()).expect("create the classes directory");
    let staging = tempfile_dir(&classes_root(), stem);
    let output = Command::new("javac")
        .arg("-nowarn")
        .arg("-encoding")
        .arg("UTF-8")
        .arg("-cp")
        .arg(curator_classpath())
        .arg("-d")
        .arg(&staging)
        .arg(&source)
        .arg(&support)
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!("cannot run javac (install openjdk-17-jdk-headless, or set {SKIP_VAR}=1): {e}")
        });
    if !output.status.success() {
        let _ = std::fs::remove_dir_all(&staging);
        panic!(
            "javac {} failed ({}):\n{}{}",
            source.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    if std::fs::rename(&staging, &out).is_err() {
        // Another test binary won the race with the same content: use its classes.
        let _ = std::fs::remove_dir_all(&staging);
        assert!(
            out.exists(),
            "cannot move compiled classes to {}",
            out.display()
        );
    }
    out
}

fn resolve(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
    }
}

fn tempfile_dir(parent: &Path, stem: &str) -> PathBuf {
    let dir = parent.join(format!(
        ".{stem}-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).expect("create a staging directory");
    dir
}

/// FNV-1a, 64 bits: a stable content hash (std's hasher may change between releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Starts `java -cp <classes>:<curator class path> <class> <args…>` with stdin and stdout
/// piped and stderr inherited (it shows in the test output). The process is killed when the
/// `Child` is dropped.
///
/// # Panics
///
/// If `java` cannot be started.
pub fn spawn<S: AsRef<std::ffi::OsStr>>(classes: &Path, class: &str, args: &[S]) -> Child {
    let classpath = format!("{}:{}", classes.display(), curator_classpath());
    Command::new("java")
        // Fast start for short-lived test programs.
        .arg("-XX:+UseSerialGC")
        .arg("-XX:TieredStopAtLevel=1")
        .arg("-Xshare:auto")
        .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
        .arg("-cp")
        .arg(classpath)
        .arg(class)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run java (install openjdk-17-jre-headless, or set {SKIP_VAR}=1): {e}")
        })
}

/// Word `n` (from 0) of a worker's line, e.g. the node in `ACQUIRED <slot> <node>`.
///
/// # Panics
///
/// If the line has no such word.
pub fn word(line: &str, n: usize) -> String {
    line.split_whitespace()
        .nth(n)
        .unwrap_or_else(|| panic!("no word {n} in {line:?}"))
        .to_owned()
}

/// The numbers after the first word of a worker's line (`CHURNED 300 3 0 41`), if there are
/// exactly `N` of them.
pub fn numbers<const N: usize>(line: &str) -> Option<[u64; N]> {
    let parsed: Option<Vec<u64>> = line
        .split_whitespace()
        .skip(1)
        .map(|n| n.parse().ok())
        .collect();
    parsed?.try_into().ok()
}

/// A Java program spoken to in lines: commands on its stdin, answers on its stdout.
///
/// Killed when dropped (call [`quit`](Self::quit) for a clean end).
pub struct JavaProcess {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    /// Every line read so far, for failure messages.
    transcript: Vec<String>,
}

impl JavaProcess {
    /// Spawns `class` as [`spawn`] does and waits for a line starting with `ready` (say
    /// `"READY"`) for at most `deadline`.
    ///
    /// # Panics
    ///
    /// As [`spawn`], and as [`expect`](Self::expect).
    pub async fn start<S: AsRef<std::ffi::OsStr>>(
        classes: &Path,
        class: &str,
        args: &[S],
        ready: &str,
        deadline: Duration,
    ) -> JavaProcess {
        let mut child = spawn(classes, class, args);
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut process = JavaProcess {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
            transcript: Vec::new(),
        };
        process.expect(ready, deadline).await;
        process
    }

    /// Starts the test worker `class` (`tests/java/<class>.java`, compiled on first use) with
    /// `args`, and waits for its `READY` line.
    ///
    /// # Panics
    ///
    /// If it cannot be compiled or started, or is not ready within a minute.
    pub async fn worker<S: AsRef<std::ffi::OsStr>>(class: &str, args: &[S]) -> JavaProcess {
        let classes = compile(format!("tests/java/{class}.java")).await;
        JavaProcess::start(&classes, class, args, "READY", Duration::from_secs(60)).await
    }

    /// Sends one command line.
    ///
    /// # Panics
    ///
    /// If the process's stdin is closed (it died).
    pub async fn send(&mut self, line: &str) {
        tracing::debug!(%line, "to java");
        let mut bytes = line.as_bytes().to_vec();
        bytes.push(b'\n');
        if let Err(e) = self.stdin.write_all(&bytes).await {
            panic!(
                "cannot write {line:?} to the Java process: {e}; it said {:?}",
                self.transcript
            );
        }
        self.stdin
            .flush()
            .await
            .expect("flush the Java process's stdin");
    }

    /// The next line, or `None` at end of output; at most `deadline`.
    ///
    /// # Panics
    ///
    /// If no line comes within `deadline`.
    pub async fn next_line(&mut self, deadline: Duration) -> Option<String> {
        match tokio::time::timeout(deadline, self.lines.next_line()).await {
            Ok(Ok(Some(line))) => {
                tracing::debug!(%line, "from java");
                self.transcript.push(line.clone());
                Some(line)
            }
            Ok(Ok(None)) => None,
            Ok(Err(e)) => panic!("reading the Java process's output: {e}"),
            Err(_) => panic!(
                "no line from the Java process within {deadline:?}; it said {:?}",
                self.transcript
            ),
        }
    }

    /// Reads lines until one starts with `prefix`, and returns it; at most `deadline` in all.
    ///
    /// # Panics
    ///
    /// If a line starting with `ERROR` comes first, the output ends, or `deadline` passes.
    pub async fn expect(&mut self, prefix: &str, deadline: Duration) -> String {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            match self.next_line(left).await {
                Some(line) if line.starts_with(prefix) => return line,
                Some(line) if line.starts_with("ERROR") => {
                    panic!("the Java process failed while we waited for {prefix:?}: {line}")
                }
                Some(_) => {}
                None => panic!(
                    "the Java process ended while we waited for {prefix:?}; it said {:?}",
                    self.transcript
                ),
            }
        }
    }

    /// Every line read so far.
    pub fn transcript(&self) -> &[String] {
        &self.transcript
    }

    /// The lines read so far that start with `prefix` (say the workers' `VIOLATION`s).
    pub fn lines_starting_with(&self, prefix: &str) -> Vec<&String> {
        self.transcript
            .iter()
            .filter(|line| line.starts_with(prefix))
            .collect()
    }

    /// Sends `command` and returns the rest of the answer line that starts with it, trimmed
    /// (say `PARTICIPANTS` → `R:java-j,R:rust-r`); at most `deadline`.
    ///
    /// # Panics
    ///
    /// As [`expect`](Self::expect).
    pub async fn query(&mut self, command: &str, deadline: Duration) -> String {
        self.send(command).await;
        let line = self.expect(command, deadline).await;
        line[command.len()..].trim().to_owned()
    }

    /// Sends `command` (say `"QUIT"`) and waits, at most `deadline`, for the process to exit.
    /// It is killed if it does not.
    pub async fn quit(mut self, command: &str, deadline: Duration) {
        let _ = self
            .stdin
            .write_all(format!("{command}\n").as_bytes())
            .await;
        let _ = self.stdin.flush().await;
        if tokio::time::timeout(deadline, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }

    /// The child process, e.g. to kill it abruptly.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}
