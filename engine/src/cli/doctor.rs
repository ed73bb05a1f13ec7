//! `scopecast doctor [--config FILE]`: whether this machine can run the
//! configured station, in plain words with the fix for each finding: the GPU
//! adapter, the Vulkan loader, GStreamer and every element the config needs
//! (source, encoder, the replay's decoder), a display server for the monitor,
//! the listen port and the recordings folder. Exit code 1 when the configured
//! station cannot run, 0 otherwise (warnings included).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use scopecast_engine::compositor::gpu::{AdapterPreference, is_software, leaky_software_renderer, probe_adapter};
use scopecast_engine::config::Config;
use scopecast_engine::encoder::choice::choose_here;
use scopecast_engine::gst_elements::{elements_in, install_hint, missing};
use scopecast_engine::source::SourceSpec;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    /// Works.
    Ok,
    /// Works, but not as well as it could, or only part of it.
    Warn,
    /// The configured station cannot run.
    Fail,
}

/// One thing checked.
#[derive(Debug, Clone, PartialEq)]
struct Finding {
    level: Level,
    topic: &'static str,
    text: String,
    fix: Option<String>,
}

fn finding(level: Level, topic: &'static str, text: impl Into<String>, fix: Option<String>) -> Finding {
    Finding { level, topic, text: text.into(), fix }
}

/// GStreamer's oldest version the station is built and tested against.
const GST_MIN: (u32, u32) = (1, 22);

/// Runs every check for `config` and prints the report.
pub fn run(config: &Config, path: Option<&Path>) -> ExitCode {
    let origin = path.map_or("the defaults (as `scopecast demo` runs them)".to_string(), |p| p.display().to_string());
    let mut findings = Vec::new();
    if let Err(e) = config.validate(path.unwrap_or(Path::new("<defaults>"))) {
        findings.push(finding(Level::Fail, "config", e.to_string(), Some("correct the field named".into())));
    }
    findings.extend(gpu(config));
    findings.push(vulkan_loader());
    findings.extend(gstreamer(config));
    findings.push(display(config));
    findings.push(listen(config, path.is_none()));
    findings.push(recordings(config));
    findings.push(state_folder(config));
    let report = render(&origin, &findings);
    print!("{report}");
    if findings.iter().any(|f| f.level == Level::Fail) { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// The report: a line per finding, its fix below it, and a verdict.
fn render(origin: &str, findings: &[Finding]) -> String {
    let mut out = format!("scopecast doctor: checking this machine for the station configured by {origin}\n");
    for f in findings {
        let tag = match f.level {
            Level::Ok => "ok  ",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        };
        out.push_str(&format!("  {tag}  {}: {}\n", f.topic, f.text));
        if let Some(fix) = &f.fix {
            out.push_str(&format!("        fix: {fix}\n"));
        }
    }
    let fails = findings.iter().filter(|f| f.level == Level::Fail).count();
    let warns = findings.iter().filter(|f| f.level == Level::Warn).count();
    out.push_str(&match (fails, warns) {
        (0, 0) => "verdict: the station can run here.\n".to_string(),
        (0, w) => format!("verdict: the station can run here ({w} warning{}).\n", if w == 1 { "" } else { "s" }),
        (f, _) => format!(
            "verdict: the station cannot run here: {f} problem{} to fix (above).\n",
            if f == 1 { "" } else { "s" }
        ),
    });
    out
}

fn gpu(config: &Config) -> Vec<Finding> {
    let needed = config.compositor.enabled;
    let info = match probe_adapter(AdapterPreference::HighPerformance) {
        Ok(info) => info,
        Err(e) => {
            let level = if needed { Level::Fail } else { Level::Warn };
            let fix = "install a GPU driver with Vulkan, or Mesa's lavapipe where there is no GPU \
                       (Debian/Ubuntu: apt-get install libvulkan1 mesa-vulkan-drivers)";
            return vec![finding(level, "GPU", e.to_string(), Some(fix.into()))];
        }
    };
    let name = format!("{} ({:?}, {:?}, driver {})", info.name, info.backend, info.device_type, info.driver_info);
    let mut found = Vec::new();
    if is_software(&info) {
        found.push(finding(
            Level::Warn,
            "GPU",
            format!(
                "{name} is a software renderer: expect about 30 fps at 1280x720 without MSAA on a few cores \
                 (`scopecast demo` lowers its settings to that by itself)"
            ),
            Some("a GPU with a Vulkan driver composites at 60 fps with 4x MSAA".into()),
        ));
    } else {
        found.push(finding(Level::Ok, "GPU", name, None));
    }
    if let Some(warning) = leaky_software_renderer(&info) {
        found.push(finding(
            Level::Warn,
            "GPU",
            warning,
            Some("run .ci/deps.sh demo (it installs Mesa from bookworm-backports on Debian 12)".into()),
        ));
    }
    found
}

/// Where the Vulkan loader may be.
const LIBRARY_DIRS: [&str; 6] =
    ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib", "/lib"];

fn vulkan_loader() -> Finding {
    let mut dirs: Vec<PathBuf> = std::env::var("LD_LIBRARY_PATH")
        .unwrap_or_default()
        .split(':')
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .collect();
    dirs.extend(LIBRARY_DIRS.iter().map(PathBuf::from));
    match dirs.iter().map(|d| d.join("libvulkan.so.1")).find(|p| p.exists()) {
        Some(path) => finding(Level::Ok, "Vulkan loader", path.display().to_string(), None),
        None if cfg!(target_os = "linux") => finding(
            Level::Warn,
            "Vulkan loader",
            "libvulkan.so.1 not found: only OpenGL adapters can be used",
            Some("Debian/Ubuntu: apt-get install libvulkan1 mesa-vulkan-drivers".into()),
        ),
        None => finding(Level::Ok, "Vulkan loader", "not needed on this system (Metal/DX12)", None),
    }
}

/// GStreamer's version and the elements the config needs.
fn gstreamer(config: &Config) -> Vec<Finding> {
    use gstreamer as gst;
    let spec = SourceSpec::parse(&config.source.uri).ok();
    let source_needs_gst = spec.as_ref().is_some_and(|s| *s != SourceSpec::Synthetic);
    if let Err(e) = scopecast_engine::gst_runtime::init() {
        let level = if source_needs_gst { Level::Fail } else { Level::Warn };
        return vec![finding(
            level,
            "GStreamer",
            format!("cannot start GStreamer ({e}); the embedded encoder and the synthetic source still work"),
            Some("Debian/Ubuntu: apt-get install gstreamer1.0-plugins-base (or run .ci/deps.sh demo)".into()),
        )];
    }
    let (major, minor, micro, _) = gst::version();
    let mut found = vec![if (major, minor) >= GST_MIN {
        finding(Level::Ok, "GStreamer", format!("{major}.{minor}.{micro}"), None)
    } else {
        finding(
            Level::Warn,
            "GStreamer",
            format!("{major}.{minor}.{micro} is older than {}.{}, the oldest tested", GST_MIN.0, GST_MIN.1),
            Some("use Debian 12 / Ubuntu 24.04 or newer GStreamer packages".into()),
        )
    }];
    if let Some(spec) = spec.as_ref().filter(|_| source_needs_gst) {
        let elements = scopecast_engine::source::gst::source_elements(spec);
        let lacking = missing(&elements);
        found.push(if lacking.is_empty() {
            finding(Level::Ok, "source elements", elements.join(", "), None)
        } else {
            finding(
                Level::Fail,
                "source elements",
                format!("{} needs {}, not installed", config.source.uri, lacking.join(", ")),
                Some(install_hint(&lacking)),
            )
        });
    }
    if config.encoder.enabled {
        let choice = choose_here(config.encoder.kind);
        let needed = scopecast_engine::encoder::gst_h264::elements(choice.kind);
        found.push(match &choice.reason {
            None if needed.is_empty() => finding(Level::Ok, "encoder", "embedded OpenH264 (built in)", None),
            None => finding(Level::Ok, "encoder", format!("{} ({})", choice.kind, needed.join(", ")), None),
            Some(_) => {
                let preferred = scopecast_engine::encoder::gst_h264::elements(
                    if choice.requested == scopecast_engine::encoder::EncoderKind::Auto {
                        scopecast_engine::encoder::EncoderKind::X264
                    } else {
                        choice.requested
                    },
                );
                let preferred: Vec<&str> = preferred.iter().map(String::as_str).collect();
                finding(
                    Level::Warn,
                    "encoder",
                    format!("{}: the built-in encoder serves, about 1.7x slower than x264", choice.summary()),
                    Some(install_hint(&missing(&preferred))),
                )
            }
        });
    }
    let decoder = elements_in(scopecast_engine::replay::decoder::DESCRIPTION);
    let lacking = missing(&decoder);
    found.push(if lacking.is_empty() {
        finding(Level::Ok, "replay decoder", decoder.join(", "), None)
    } else {
        finding(
            Level::Warn,
            "replay decoder",
            format!(
                "{} not installed: replays that draw the overlays afresh cannot decode (as-recorded replays work)",
                lacking.join(", ")
            ),
            Some(install_hint(&lacking)),
        )
    });
    found
}

fn display(config: &Config) -> Finding {
    let present = std::env::var_os("DISPLAY").is_some_and(|v| !v.is_empty());
    match (present, config.display.enabled) {
        (true, _) => finding(
            Level::Ok,
            "display",
            format!("X display {} for the monitor window", std::env::var("DISPLAY").unwrap_or_default()),
            None,
        ),
        (false, true) => finding(
            Level::Warn,
            "display",
            "[display] enabled but DISPLAY is not set: the station will run without its monitor window",
            Some("start it on the station's desktop session (or export DISPLAY=:0)".into()),
        ),
        (false, false) => finding(
            Level::Ok,
            "display",
            "none (DISPLAY is not set); the monitor window is off, viewers watch through the link",
            None,
        ),
    }
}

/// The listen address; with `demo`, the demo's default when none is configured.
fn listen(config: &Config, demo: bool) -> Finding {
    let listen = match (config.http.listen.as_deref(), demo) {
        (None, true) => super::demo_profile::DEMO_LISTEN,
        (None, false) => {
            return finding(
                Level::Warn,
                "listen",
                "[http] listen is empty: no viewer page and no WHEP, so nobody can watch remotely",
                Some("set [http] listen = \"127.0.0.1:8080\" (or --listen ADDR:PORT)".into()),
            );
        }
        (Some(configured), _) => configured,
    };
    let addr: std::net::SocketAddr = match listen.parse() {
        Ok(addr) => addr,
        Err(e) => {
            return finding(
                Level::Fail,
                "listen",
                format!("{listen:?} is not ADDR:PORT ({e})"),
                Some("set [http] listen = \"127.0.0.1:8080\"".into()),
            );
        }
    };
    match std::net::TcpListener::bind(addr) {
        Ok(_) => finding(Level::Ok, "listen", format!("{addr} is free"), None),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => finding(
            Level::Warn,
            "listen",
            format!("{addr} is taken: the station will serve on a free port of {} and print it", addr.ip()),
            Some(format!("stop what listens there (ss -ltnp 'sport = :{}') or choose another port", addr.port())),
        ),
        Err(e) => finding(
            Level::Fail,
            "listen",
            format!("cannot listen on {addr}: {e}"),
            Some("use an address of this machine (127.0.0.1 or 0.0.0.0) and a port above 1023".into()),
        ),
    }
}

/// Less free space than this in the recordings folder is a warning (a 4 s
/// segment at 6 Mbit/s is 3 MB; an hour about 2.7 GB).
const LOW_SPACE_BYTES: u64 = 5 * 1024 * 1024 * 1024;

fn recordings(config: &Config) -> Finding {
    let folder = PathBuf::from(&config.recording.folder);
    let folder =
        if folder.is_absolute() { folder } else { std::env::current_dir().map(|d| d.join(&folder)).unwrap_or(folder) };
    // The folder, or the nearest existing folder above it (it is made at the first recording).
    let Some(existing) = folder.ancestors().find(|p| p.is_dir()) else {
        return finding(Level::Fail, "recordings", format!("no folder above {} exists", folder.display()), None);
    };
    let probe = existing.join(format!(".scopecast-doctor-{}", std::process::id()));
    let writable = std::fs::write(&probe, b"").is_ok();
    let _ = std::fs::remove_file(&probe);
    if !writable {
        return finding(
            Level::Fail,
            "recordings",
            format!("{} is not writable, so nothing could be recorded", existing.display()),
            Some("set [recording] folder (or --recordings DIR) to a folder this user may write".into()),
        );
    }
    match free_bytes(existing) {
        Some(free) if free < LOW_SPACE_BYTES => finding(
            Level::Warn,
            "recordings",
            format!("{} is writable but has only {:.1} GB free", folder.display(), free as f64 / 1e9),
            Some("free space or record elsewhere ([recording] folder): an hour of 6 Mbit/s is about 2.7 GB".into()),
        ),
        Some(free) => finding(
            Level::Ok,
            "recordings",
            format!("{} writable, {:.0} GB free", folder.display(), free as f64 / 1e9),
            None,
        ),
        None => finding(Level::Ok, "recordings", format!("{} writable", folder.display()), None),
    }
}

/// The state folder (named links' secret, revocations, the access log): a
/// warning, not a failure, when it cannot be written: the station streams,
/// but refuses named links and keeps no access log.
fn state_folder(config: &Config) -> Finding {
    let folder = config.access.state_dir();
    let existing = folder.ancestors().find(|p| p.is_dir());
    let probe = existing.map(|d| d.join(format!(".scopecast-doctor-{}", std::process::id())));
    let writable = probe.as_ref().is_some_and(|p| std::fs::write(p, b"").is_ok());
    if let Some(probe) = &probe {
        let _ = std::fs::remove_file(probe);
    }
    if writable {
        finding(Level::Ok, "state", format!("{} writable (named links, access log)", folder.display()), None)
    } else {
        finding(
            Level::Warn,
            "state",
            format!("{} is not writable: named links are refused and no access log is kept", folder.display()),
            Some("set [access] state_dir (or SCOPECAST_STATE_DIR) to a folder this user may write".into()),
        )
    }
}

/// Free bytes of the file system holding `dir`, from POSIX `df -Pk`.
fn free_bytes(dir: &Path) -> Option<u64> {
    let output = std::process::Command::new("df").arg("-Pk").arg(dir).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let available_kb: u64 = text.lines().nth(1)?.split_whitespace().nth(3)?.parse().ok()?;
    Some(available_kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_gives_each_fix_and_a_verdict() {
        let findings = vec![
            finding(Level::Ok, "GPU", "NVIDIA H100", None),
            finding(Level::Warn, "encoder", "embedded (x264enc not installed)", Some("apt-get install x".into())),
        ];
        let report = render("station.toml", &findings);
        assert!(report.contains("  ok    GPU: NVIDIA H100\n"), "{report}");
        assert!(report.contains("  WARN  encoder: embedded (x264enc not installed)\n        fix: apt-get install x\n"));
        assert!(report.ends_with("verdict: the station can run here (1 warning).\n"), "{report}");
        let failing = render("x", &[finding(Level::Fail, "listen", "bad", None)]);
        assert!(failing.ends_with("verdict: the station cannot run here: 1 problem to fix (above).\n"), "{failing}");
    }

    #[test]
    fn a_taken_port_is_a_warning_and_a_bad_address_a_failure() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut config = Config::default();
        config.http.listen = Some(taken.local_addr().expect("addr").to_string());
        assert_eq!(listen(&config, false).level, Level::Warn);
        config.http.listen = Some("not an address".into());
        assert_eq!(listen(&config, false).level, Level::Fail);
        config.http.listen = None;
        assert_eq!(listen(&config, false).level, Level::Warn, "nobody can watch");
    }

    #[test]
    fn an_unwritable_recordings_folder_fails() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::default();
        config.recording.folder = dir.path().join("sessions/today").display().to_string();
        // Made at the first recording: ok (or, on a machine short of disk space, a warning about
        // that); never a failure.
        let made = recordings(&config);
        assert!(made.level == Level::Ok || made.text.contains("GB free"), "{made:?}");
        config.recording.folder = "/proc/scopecast-recordings".into();
        assert_eq!(recordings(&config).level, Level::Fail);
    }
}
