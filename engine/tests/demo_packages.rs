//! The demo's package list (`.ci/deps.sh demo`) covers every GStreamer
//! element the default config and the demo's config use. The element names
//! come from the code that builds the pipelines (`gst_elements::config_elements`),
//! the package of each from `dpkg -S` of the plugin file GStreamer loads it
//! from; so neither list is a second, hand-kept copy. The demo once streamed
//! at 0 fps on a fresh machine because x264enc's package was missing here.

use std::path::Path;
use std::process::Command;

use gstreamer as gst;
use gstreamer::prelude::*;
use scopecast_engine::config::Config;
use scopecast_engine::gst_elements::{config_elements, package_of};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// The packages `.ci/deps.sh demo` installs.
fn demo_packages() -> Vec<String> {
    let output = Command::new(format!("{ROOT}/.ci/deps.sh")).args(["demo", "--list"]).output().expect("deps.sh runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).lines().map(str::to_string).collect()
}

/// The Debian package that owns `file`.
fn owner(file: &Path) -> String {
    // GStreamer may name it under /lib, a link to /usr/lib (merged /usr) that dpkg does not know.
    let file = std::fs::canonicalize(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let output = Command::new("dpkg").arg("-S").arg(&file).output().expect("dpkg runs (Debian/Ubuntu)");
    assert!(output.status.success(), "no package owns {}: {}", file.display(), String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8_lossy(&output.stdout);
    // `package:arch: /path`, or `package: /path`.
    let package = text.lines().next().and_then(|l| l.split(": ").next()).expect("dpkg -S output");
    package.split(':').next().unwrap_or(package).to_string()
}

#[test]
fn the_demo_packages_ship_every_element_the_default_and_demo_configs_use() {
    gst::init().expect("GStreamer starts (the test command installs it)");
    let packages = demo_packages();
    let demo = Config::load(Path::new(&format!("{ROOT}/demos/capture-station/station.toml"))).expect("demo config");
    let mut checked = Vec::new();
    for config in [Config::default(), demo] {
        for (purpose, element) in config_elements(&config) {
            let factory = gst::ElementFactory::find(&element)
                .unwrap_or_else(|| panic!("{element} ({purpose}) is not installed here: the test packages include it"));
            let plugin = factory.plugin().unwrap_or_else(|| panic!("{element} has no plugin"));
            let file = plugin.filename().unwrap_or_else(|| panic!("{element}'s plugin has no file"));
            let package = owner(&file);
            assert!(
                packages.contains(&package),
                "{element} ({purpose}) comes from {package} ({}), which `.ci/deps.sh demo` does not install: {packages:?}",
                file.display()
            );
            assert_eq!(package_of(&element), package, "what the station tells users to install for {element}");
            checked.push(format!("{element} ({purpose}): {package}"));
        }
    }
    println!("{}", checked.join("\n"));
    for element in ["x264enc", "h264parse", "avdec_h264", "appsrc", "appsink"] {
        assert!(checked.iter().any(|c| c.starts_with(&format!("{element} "))), "{element} was among the elements");
    }
}
