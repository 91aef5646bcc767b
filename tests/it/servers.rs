//! Real search servers for the black-box tests: `tests/servers/opensearch`
//! or `tests/servers/elasticsearch` started on a free port in a temp dir,
//! waited for until `/_cluster/health` answers, and killed when dropped (a
//! shared node: when the test binary exits). The scripts fetch their jars
//! with Maven the first time, so that run takes longer; a missing Java or
//! Maven fails the test with the script's own message.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde_json::Value;

use crate::support::{repo, wait_until};

/// How long a start may take: the first one fetches about 50 MB of jars.
const START_TIMEOUT: Duration = Duration::from_secs(600);

/// Which server, and so which script under `tests/servers/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Product {
    OpenSearch,
    Elasticsearch,
}

impl Product {
    pub fn name(self) -> &'static str {
        match self {
            Self::OpenSearch => "opensearch",
            Self::Elasticsearch => "elasticsearch",
        }
    }

    /// The shipped index template for this server, under `conf/elasticsearch/`.
    pub fn template_file(self) -> &'static str {
        match self {
            Self::OpenSearch => "audit-index-template.opensearch.json",
            Self::Elasticsearch => "audit-index-template.json",
        }
    }
}

/// A single node from `tests/servers/<product>`.
pub struct SearchServer {
    pub product: Product,
    pub port: u16,
    settings: Vec<String>,
    child: Mutex<Option<Child>>,
    /// Holds `node/` (the script's `--dir`) and `script.log`.
    dir: tempfile::TempDir,
}

/// The node of `product` every test may share: each test uses index,
/// template and pipeline names of its own. Started once, killed at exit.
pub fn shared(product: Product) -> &'static SearchServer {
    static OPENSEARCH: OnceLock<SearchServer> = OnceLock::new();
    static ELASTICSEARCH: OnceLock<SearchServer> = OnceLock::new();
    let cell = match product {
        Product::OpenSearch => &OPENSEARCH,
        Product::Elasticsearch => &ELASTICSEARCH,
    };
    cell.get_or_init(|| {
        let node = SearchServer::start(product, &[]);
        kill_at_exit(&node);
        node
    })
}

impl SearchServer {
    /// Starts a node of its own with extra node `settings` (`KEY=VALUE`).
    pub fn start(product: Product, settings: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let node = Self {
            product,
            port,
            settings: settings.iter().map(|s| (*s).to_owned()).collect(),
            child: Mutex::new(None),
            dir,
        };
        node.launch();
        node
    }

    /// The endpoint as the agent's config wants it.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The node's own log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir
            .path()
            .join(format!("node/logs/{}.log", self.product.name()))
    }

    fn launch(&self) {
        let script_log = self.dir.path().join("script.log");
        let out = std::fs::File::create(&script_log).expect("script log");
        let script = format!("tests/servers/{}", self.product.name());
        let mut cmd = Command::new(repo(&script));
        cmd.arg("--port")
            .arg(self.port.to_string())
            .arg("--dir")
            .arg(self.dir.path().join("node"));
        for setting in &self.settings {
            cmd.arg("--setting").arg(setting);
        }
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone().expect("script log"))
            .stderr(out);
        let mut child =
            spawn_tied_to_this_process(cmd).unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
        let mut exited = None;
        let healthy = wait_until(START_TIMEOUT, || {
            if let Some(status) = child.try_wait().expect("try_wait") {
                exited = Some(status);
                return true;
            }
            matches!(
                self.try_request("GET", "/_cluster/health", None),
                Some((200, _))
            )
        });
        let output = std::fs::read_to_string(&script_log).unwrap_or_default();
        if let Some(status) = exited {
            panic!(
                "{script} exited ({status}) before the node answered; it needs Java 17 \
                 (java, javac) and Maven (mvn). Its output:\n{output}\nnode log: {}",
                self.log_path().display()
            );
        }
        if !healthy {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{script}: the node did not answer /_cluster/health within {START_TIMEOUT:?}. \
                 Its output:\n{output}\nnode log: {}",
                self.log_path().display()
            );
        }
        *self.child.lock().expect("lock") = Some(child);
    }

    /// `kill -9` the node (its data stays in the dir).
    pub fn kill(&self) {
        if let Some(mut child) = self.child.lock().expect("lock").take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the node again on the same dir and port.
    pub fn restart(&self) {
        self.kill();
        self.launch();
    }

    /// One request; `None` when the node cannot be reached.
    fn try_request(&self, method: &str, path: &str, body: Option<&str>) -> Option<(u16, Value)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .ok()?;
        let body = body.unwrap_or("");
        let content_type = if path.contains("_bulk") {
            "application/x-ndjson"
        } else {
            "application/json"
        };
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\
             Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
            self.port,
            body.len()
        )
        .ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).ok()?;
        let response = String::from_utf8_lossy(&response);
        let (head, body) = response.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        let chunked = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        let body = if chunked {
            dechunk(body)?
        } else {
            body.to_owned()
        };
        let body = body.as_str();
        let value = if body.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned()))
        };
        Some((status, value))
    }

    /// One request to the running node: status and JSON answer.
    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        self.try_request(method, path, body)
            .unwrap_or_else(|| panic!("{method} {path}: {} did not answer", self.url()))
    }

    /// A request that must succeed (2xx); its answer.
    pub fn ok(&self, method: &str, path: &str, body: &str) -> Value {
        let (status, answer) = self.request(method, path, Some(body));
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {answer}"
        );
        answer
    }

    /// Documents matching `query` (a query DSL object) in `index`, after a
    /// refresh so that everything indexed so far is visible.
    pub fn count(&self, index: &str, query: Value) -> u64 {
        self.request("POST", &format!("/{index}/_refresh"), None);
        let body = serde_json::json!({ "query": query }).to_string();
        // Right after an index is created or the node restarted, its shards
        // may not be started yet: 503 `no_shard_available_action_exception`.
        let mut answered = None;
        wait_until(Duration::from_secs(60), || {
            let (status, answer) = self.request("POST", &format!("/{index}/_count"), Some(&body));
            let done = status != 503;
            answered = Some((status, answer));
            done
        });
        let (status, answer) = answered.expect("asked at least once");
        if status == 404 && answer["error"]["type"] == "index_not_found_exception" {
            return 0;
        }
        assert_eq!(status, 200, "POST /{index}/_count: {answer}");
        answer["count"]
            .as_u64()
            .unwrap_or_else(|| panic!("no count in {answer}"))
    }

    /// Every document in `index`.
    pub fn count_all(&self, index: &str) -> u64 {
        self.count(index, serde_json::json!({ "match_all": {} }))
    }

    /// Documents whose `field` is exactly `value`.
    pub fn count_term(&self, index: &str, field: &str, value: impl Into<Value>) -> u64 {
        self.count(
            index,
            serde_json::json!({ "term": { field: value.into() } }),
        )
    }
}

impl Drop for SearchServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The body of a `Transfer-Encoding: chunked` answer (Elasticsearch 8
/// streams some, such as `_cat` and `_nodes/stats`).
fn dechunk(mut rest: &str) -> Option<String> {
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(body);
        }
        body.push_str(after.get(..size)?);
        rest = after.get(size..)?.strip_prefix("\r\n")?;
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("addr").port()
}

/// Spawns `cmd` so that the kernel kills it (SIGKILL) when the test binary
/// dies, however it dies (an interrupted run leaves no JVM behind). The
/// parent-death signal follows the thread that forked, so every node is
/// forked by one thread that lives as long as the process.
fn spawn_tied_to_this_process(mut cmd: Command) -> std::io::Result<Child> {
    use std::os::unix::process::CommandExt;
    use std::sync::mpsc;

    type Request = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();
    // SAFETY: prctl(2) is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let spawner = SPAWNER.get_or_init(|| {
        let (requests, incoming) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("test-server-spawner".into())
            .spawn(move || {
                for (mut cmd, answer) in incoming {
                    let _ = answer.send(cmd.spawn());
                }
                // The sender lives in a static: never reached, the thread
                // stays until the process exits.
            })
            .expect("spawner thread");
        Mutex::new(requests)
    });
    let (answer, result) = mpsc::channel();
    spawner
        .lock()
        .expect("lock")
        .send((cmd, answer))
        .expect("spawner alive");
    result.recv().expect("spawner answers")
}

/// Pids and dirs of nodes that live as long as the test binary.
static AT_EXIT: Mutex<Vec<(libc::pid_t, PathBuf)>> = Mutex::new(Vec::new());

/// Statics are never dropped: kill the shared node and remove its dir when
/// the test binary exits.
fn kill_at_exit(node: &SearchServer) {
    extern "C" fn cleanup() {
        let Ok(nodes) = AT_EXIT.lock() else { return };
        for (pid, dir) in nodes.iter() {
            // SAFETY: kill(2) and waitpid(2) on our own child; no memory is shared.
            unsafe {
                libc::kill(*pid, libc::SIGKILL);
                libc::waitpid(*pid, std::ptr::null_mut(), 0);
            }
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    let pid = node
        .child
        .lock()
        .expect("lock")
        .as_ref()
        .map(|c| libc::pid_t::try_from(c.id()).expect("pid fits"))
        .expect("a running node");
    let mut nodes = AT_EXIT.lock().expect("lock");
    if nodes.is_empty() {
        // SAFETY: registers a plain function with no captured state.
        unsafe {
            libc::atexit(cleanup);
        }
    }
    nodes.push((pid, node.dir.path().to_owned()));
}
