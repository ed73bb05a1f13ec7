//! The GStreamer elements the station's pipelines are made of, whether this
//! machine has them, and which Debian/Ubuntu package ships each.
//!
//! The element names come from the code that builds the pipelines (the
//! launch descriptions of the encoder and the replay decoder, the element
//! list of each source), never from a second, hand-kept list: `scopecast
//! doctor`, the encoder's `auto` choice and the test that checks the demo's
//! package list (`engine/tests/demo_packages.rs`) all read them from here
//! ([`config_elements`]).

use gstreamer as gst;

/// The element names of a `gst-launch` style description, in order: the
/// first word of each `!`-separated part that is not a caps filter (caps
/// contain a `/`, as in `video/x-raw,format=I420`).
pub fn elements_in(description: &str) -> Vec<&str> {
    description
        .split('!')
        .filter_map(|part| part.split_whitespace().next())
        .filter(|word| !word.contains('/') && !word.contains('='))
        .collect()
}

/// Whether GStreamer here can make `element` (false when GStreamer itself
/// cannot start).
pub fn is_installed(element: &str) -> bool {
    crate::gst_runtime::init().is_ok() && gst::ElementFactory::find(element).is_some()
}

/// The elements of `elements` that this machine lacks, in order.
pub fn missing<'a>(elements: &[&'a str]) -> Vec<&'a str> {
    elements.iter().copied().filter(|e| !is_installed(e)).collect()
}

/// The Debian/Ubuntu package that ships `element` (Debian 12 and Ubuntu
/// 24.04 agree on these). `engine/tests/demo_packages.rs` checks every
/// element the default config uses against `dpkg -S` of its plugin file.
pub fn package_of(element: &str) -> &'static str {
    match element {
        "queue" | "capsfilter" | "identity" | "fakesink" => "libgstreamer1.0-0",
        "x264enc" => "gstreamer1.0-plugins-ugly",
        "openh264enc" | "h264parse" | "tsdemux" | "mpegtsmux" => "gstreamer1.0-plugins-bad",
        "avdec_h264" => "gstreamer1.0-libav",
        "v4l2src" | "rtspsrc" | "qtdemux" | "matroskademux" => "gstreamer1.0-plugins-good",
        _ => "gstreamer1.0-plugins-base",
    }
}

/// Every GStreamer element `config` uses, with what for: the source's, the
/// encoder's (for `auto`, x264's, which it prefers), and the replay decoder's.
pub fn config_elements(config: &crate::config::Config) -> Vec<(&'static str, String)> {
    use crate::encoder::EncoderKind;
    let mut elements = Vec::new();
    if let Ok(spec) = crate::source::SourceSpec::parse(&config.source.uri) {
        elements.extend(crate::source::gst::source_elements(&spec).into_iter().map(|e| ("source", e.to_string())));
    }
    if config.encoder.enabled {
        let kind = match config.encoder.kind {
            EncoderKind::Auto => EncoderKind::X264,
            other => other,
        };
        elements.extend(crate::encoder::gst_h264::elements(kind).into_iter().map(|e| ("encoder", e)));
    }
    elements.extend(
        elements_in(crate::replay::decoder::DESCRIPTION).into_iter().map(|e| ("replay decoder", e.to_string())),
    );
    elements
}

/// What to run to get `elements`: `apt-get install gstreamer1.0-plugins-ugly
/// gstreamer1.0-plugins-bad (for x264enc, h264parse)`, each package once.
pub fn install_hint(elements: &[&str]) -> String {
    let mut packages: Vec<&str> = Vec::new();
    for element in elements {
        let package = package_of(element);
        if !packages.contains(&package) {
            packages.push(package);
        }
    }
    format!("apt-get install {} (for {})", packages.join(" "), elements.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_are_read_from_a_launch_description() {
        let description = "appsrc name=src is-live=true caps=video/x-raw,format=I420,width=8 \
             ! x264enc name=enc tune=zerolatency ! video/x-h264,profile=constrained-baseline \
             ! h264parse config-interval=-1 ! appsink name=sink sync=false";
        assert_eq!(elements_in(description), ["appsrc", "x264enc", "h264parse", "appsink"]);
        assert!(elements_in("").is_empty());
    }

    #[test]
    fn packages_name_the_plugin_sets() {
        assert_eq!(package_of("x264enc"), "gstreamer1.0-plugins-ugly");
        assert_eq!(package_of("h264parse"), "gstreamer1.0-plugins-bad");
        assert_eq!(package_of("appsink"), "gstreamer1.0-plugins-base");
        assert_eq!(
            install_hint(&["appsrc", "x264enc", "h264parse", "appsink"]),
            "apt-get install gstreamer1.0-plugins-base gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad \
             (for appsrc, x264enc, h264parse, appsink)"
        );
    }
}
