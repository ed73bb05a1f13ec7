//! Shared by the tests that watch the station in headless Chromium: starting
//! the demo, plain HTTP requests, and the playwright-core player (play.mjs).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_scopecast");

pub fn node_modules() -> String {
    let dir = std::env::var("SCOPECAST_NODE_MODULES")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target/node/node_modules").to_string());
    assert!(
        std::path::Path::new(&dir).join("playwright-core").exists(),
        "playwright-core not found in {dir}: the README's test command installs it (npm install --prefix target/node playwright-core)"
    );
    assert!(std::path::Path::new("/usr/bin/chromium").exists(), "/usr/bin/chromium missing: apt-get install chromium");
    dir
}

pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").args(["-s", sig, &pid.to_string()]).status();
}

/// A running demo station.
pub struct Station {
    pub child: std::process::Child,
    /// `http://127.0.0.1:PORT/#token=…`.
    pub viewer_url: String,
    /// The generated operator token.
    pub operator_token: String,
    /// What it printed up to the operator token.
    pub startup: Vec<String>,
}

impl Drop for Station {
    /// A test that fails half-way must not leave a station running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the demo on loopback with `args`.
pub fn start_station(args: &[&str]) -> Station {
    start_station_on("127.0.0.1:0", args)
}

/// Starts the demo listening on `listen` with `args`.
pub fn start_station_on(listen: &str, args: &[&str]) -> Station {
    let mut all = vec!["demo", "--listen", listen];
    all.extend_from_slice(args);
    start_serving(&all)
}

/// Runs `scopecast ARGS` (a station or a replay that serves the viewer page)
/// until it printed its viewer URL and operator token.
pub fn start_serving(args: &[&str]) -> Station {
    start_command(Command::new(BIN).args(args).stderr(Stdio::null()))
}

/// Runs `command` (whose stdout this takes) until it printed its viewer URL
/// and operator token.
pub fn start_command(command: &mut Command) -> Station {
    let mut child = command.stdout(Stdio::piped()).spawn().expect("scopecast starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
    let mut startup = Vec::new();
    for line in lines.by_ref() {
        let done = line.starts_with("operator token: ");
        startup.push(line);
        if done {
            break;
        }
    }
    let find = |prefix: &str| startup.iter().find_map(|l| l.strip_prefix(prefix).map(str::to_string));
    let viewer_url = find("viewer: ").unwrap_or_else(|| panic!("the viewer URL is printed: {startup:?}"));
    let operator_token =
        find("operator token: ").unwrap_or_else(|| panic!("the operator token is printed: {startup:?}"));
    // Keep reading, so the station's status lines never meet a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Station { child, viewer_url, operator_token, startup }
}

/// A station config file (320x240 at 15 fps, listening on a free loopback
/// port, with `extra_http` appended to its `[http]` table) and a way to start
/// `scopecast run --config` on it.
pub struct ConfiguredStation {
    /// The port it listens on.
    pub port: u16,
    _dir: tempfile::TempDir,
    config: std::path::PathBuf,
}

impl ConfiguredStation {
    /// Writes the config; `viewer_token` is the viewer's bearer token.
    pub fn new(viewer_token: &str, extra_http: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("station.toml");
        std::fs::write(
            &config,
            format!(
                "[source]\nwidth = 320\nheight = 240\nfps = 15\n[http]\nlisten = \"127.0.0.1:{port}\"\n{extra_http}\n\
                 [[http.tokens]]\ntoken = \"{viewer_token}\"\nrole = \"viewer\"\n"
            ),
        )
        .expect("write config");
        Self { port, _dir: dir, config }
    }

    /// Starts a station on the config (output discarded).
    pub fn start(&self) -> std::process::Child {
        Command::new(BIN)
            .args(["run", "--config"])
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("station starts")
    }
}

/// Sends one HTTP/1.1 request to `addr`; returns the whole response.
///
/// A server may close the connection before the request is fully written (a TLS port that got
/// plain HTTP does): the write error is then not a failure, and whatever came back is returned.
pub fn http(addr: &str, head: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connects");
    let request =
        format!("{head}\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    if let Err(error) = stream.write_all(request.as_bytes()) {
        let closed = matches!(error.kind(), std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset);
        assert!(closed, "send to {addr}: {error}");
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}

/// A GET of `path` on `addr` with an optional bearer token; (head, body bytes).
pub fn http_get_bytes(addr: &str, path: &str, token: Option<&str>) -> (String, Vec<u8>) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connects");
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n").expect("request");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("response");
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(response.len());
    let body = response.get(split + 4..).unwrap_or_default().to_vec();
    (String::from_utf8_lossy(&response[..split]).into_owned(), body)
}

pub fn status_line(response: &str) -> &str {
    response.lines().next().unwrap_or("")
}

/// (`ADDR:PORT`, viewer token) from the viewer link.
pub fn addr_and_token(viewer_url: &str) -> (String, String) {
    let (origin, token) = viewer_url.split_once("/#token=").expect("the viewer link carries a token");
    (origin.trim_start_matches("http://").trim_start_matches("https://").to_string(), token.to_string())
}

pub fn play(url: &str, frames: u32, timeout_ms: u32) -> serde_json::Value {
    play_with(url, frames, timeout_ms, &[])
}

/// [`play`] with extra environment for play.mjs (`SCOPECAST_RELAY`, …).
pub fn play_with(url: &str, frames: u32, timeout_ms: u32, env: &[(&str, &str)]) -> serde_json::Value {
    let modules = node_modules();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/viewer/play.mjs");
    let output = Command::new("node")
        .args([script, url, &frames.to_string(), &timeout_ms.to_string()])
        .envs(env.iter().copied())
        .env("SCOPECAST_NODE_MODULES", modules)
        .output()
        .expect("node runs (apt-get install nodejs)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "player failed: {}\n{stdout}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

pub fn percentile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1]
}

pub mod relay;

/// The Python with aiortc: `SCOPECAST_PYTHON` (the README's test command sets
/// it to target/pyenv, where it installs aiortc), else target/pyenv.
pub fn aiortc_python() -> String {
    let python = std::env::var("SCOPECAST_PYTHON")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target/pyenv/bin/python").to_string());
    let check = Command::new(&python).args(["-c", "import aiortc, av"]).output();
    assert!(
        check.as_ref().is_ok_and(|o| o.status.success()),
        "aiortc is missing for {python}: the README's test command installs it (pip install aiortc into target/pyenv)"
    );
    python
}

/// Plays the station's WHEP stream with aiortc (benches/aiortc/whep_client.py);
/// `extra` adds flags such as `--garbage-rtcp`.
pub fn play_aiortc(whep_url: &str, token: &str, frames: u32, timeout_s: u32, extra: &[&str]) -> serde_json::Value {
    let python = aiortc_python();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../benches/aiortc/whep_client.py");
    let output = Command::new(&python)
        .args([script, whep_url, token, &frames.to_string(), &timeout_s.to_string()])
        .args(extra)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "aiortc player failed: {}\n{stdout}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// Runs the script `name` (in tests/viewer/) with `args` under node with
/// playwright-core; returns the JSON object it prints last.
pub fn node_script(name: &str, args: &[&str]) -> serde_json::Value {
    let modules = node_modules();
    let script = format!("{}/tests/viewer/{name}", env!("CARGO_MANIFEST_DIR"));
    let output = Command::new("node")
        .arg(&script)
        .args(args)
        .env("SCOPECAST_NODE_MODULES", modules)
        .output()
        .expect("node runs (apt-get install nodejs)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{name} failed: {}\n{stdout}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// Runs draw.mjs (telestration between an annotator's and a watcher's page)
/// against `origin`; returns its JSON report.
pub fn draw(origin: &str, annotator_token: &str, watcher_token: &str, trials: u32) -> serde_json::Value {
    node_script("draw.mjs", &[origin, annotator_token, watcher_token, &trials.to_string(), "60000"])
}

/// Runs vr.mjs (the page's headset mode under the iwer WebXR emulator)
/// against `origin`; returns its JSON report.
pub fn vr(origin: &str, annotator_token: &str) -> serde_json::Value {
    let modules = node_modules();
    assert!(
        std::path::Path::new(&modules).join("iwer/build/iwer.min.js").exists(),
        "iwer not found in {modules}: the README's test command installs it (npm install --prefix target/node iwer@2)"
    );
    node_script("vr.mjs", &[origin, annotator_token, "60000"])
}

/// Runs send.mjs: one page with `token` sends `steps` (`[[wait_ms, message], …]`)
/// on its data channel; returns the page's state after each step.
pub fn send_steps(origin: &str, token: &str, steps: &serde_json::Value) -> serde_json::Value {
    node_script("send.mjs", &[origin, token, &steps.to_string()])
}
