//! `scopecast doctor` as a user runs it, and a taken port that falls back to a free one.

mod viewer;

use std::process::{Command, Stdio};

use viewer::{BIN, signal, start_command};

#[test]
fn doctor_passes_here_and_fails_in_words_where_the_station_cannot_run() {
    let output = Command::new(BIN).arg("doctor").output().expect("doctor runs");
    let report = String::from_utf8_lossy(&output.stdout);
    println!("{report}");
    assert!(output.status.success(), "this machine runs the demo: {report}");
    for topic in ["GPU:", "Vulkan loader:", "GStreamer:", "encoder:", "replay decoder:", "display:", "listen:"] {
        assert!(report.contains(topic), "the report covers {topic}");
    }
    assert!(report.contains("recordings:") && report.contains("verdict: the station can run here"), "{report}");

    // A config whose source needs elements GStreamer cannot find (plugins hidden) and whose
    // recordings folder cannot be written: the station cannot run, and each finding says why and what to do.
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("station.toml");
    std::fs::write(
        &config,
        "[source]\nuri = \"tcp://127.0.0.1:9\"\n[recording]\nfolder = \"/proc/scopecast-recordings\"\n[http]\nlisten = \"127.0.0.1:0\"\n",
    )
    .expect("write config");
    let output = Command::new(BIN)
        .args(["doctor", "--config"])
        .arg(&config)
        .env("GST_PLUGIN_SYSTEM_PATH_1_0", dir.path())
        .env("GST_PLUGIN_PATH_1_0", dir.path())
        .env("GST_REGISTRY_1_0", dir.path().join("registry.bin"))
        .output()
        .expect("doctor runs");
    let report = String::from_utf8_lossy(&output.stdout);
    println!("{report}");
    assert_eq!(output.status.code(), Some(1), "{report}");
    assert!(report.contains("FAIL  source elements: tcp://127.0.0.1:9 needs"), "{report}");
    assert!(report.contains("fix: apt-get install gstreamer1.0-plugins-base"), "{report}");
    assert!(report.contains("FAIL  recordings:") && report.contains("not writable"), "{report}");
    assert!(report.contains("WARN  encoder: embedded ("), "{report}");
    assert!(report.contains("verdict: the station cannot run here: 2 problems"), "{report}");
}

#[test]
fn a_taken_port_falls_back_to_a_free_one_and_the_link_says_which() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let listen = format!("127.0.0.1:{port}");
    let mut station = start_command(
        Command::new(BIN)
            .args(["demo", "--headless", "--listen", &listen, "--width", "320", "--height", "240", "--fps", "15"])
            .stderr(Stdio::null()),
    );
    let startup = station.startup.join("\n");
    signal(station.child.id(), "INT");
    let _ = station.child.wait();
    assert!(startup.contains(&format!("port {port} is taken")), "{startup}");
    assert!(station.viewer_url.starts_with("http://127.0.0.1:"), "{}", station.viewer_url);
    assert!(!station.viewer_url.starts_with(&format!("http://{listen}/")), "a free port: {}", station.viewer_url);
}

#[test]
fn metrics_can_require_a_token() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("station.toml");
    std::fs::write(
        &config,
        "[source]\nwidth = 320\nheight = 240\nfps = 15\n[http]\nlisten = \"127.0.0.1:0\"\nmetrics_auth = \"token\"\n\
         [[http.tokens]]\ntoken = \"metrics-reader-token-1234\"\nrole = \"viewer\"\n\
         [[http.tokens]]\ntoken = \"operator-token-abcdefgh\"\nrole = \"operator\"\n",
    )
    .expect("write config");
    let mut station = start_command(Command::new(BIN).args(["run", "--config"]).arg(&config).stderr(Stdio::null()));
    let (addr, _) = viewer::addr_and_token(&station.viewer_url);
    let anonymous = viewer::http(&addr, "GET /metrics HTTP/1.1", "");
    let with_token =
        viewer::http(&addr, "GET /metrics HTTP/1.1\r\nAuthorization: Bearer metrics-reader-token-1234", "");
    let health = viewer::http(&addr, "GET /healthz HTTP/1.1", "");
    signal(station.child.id(), "INT");
    let _ = station.child.wait();
    assert!(viewer::status_line(&anonymous).contains(" 401 "), "{anonymous}");
    assert!(viewer::status_line(&with_token).contains(" 200 ") && with_token.contains("scopecast_"), "{with_token}");
    assert!(!viewer::status_line(&health).contains(" 401 "), "health stays open for monitoring: {health}");
}
