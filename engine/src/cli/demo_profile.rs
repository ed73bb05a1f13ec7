//! What `scopecast demo` adds to a config so that a first run shows the
//! product: the viewer page on loopback (127.0.0.1:8080, or a free port when
//! that one is taken), the monitor window where a display server is, and on a
//! software GPU settings it can sustain (no MSAA; 30 fps where the CPU plan
//! cannot hold the configured rate), each said in words in the demo's first
//! lines. Explicit flags win over all of it.

use scopecast_engine::compositor::cpu_frame;
use scopecast_engine::compositor::gpu::{AdapterPreference, is_software, probe_adapter};
use scopecast_engine::config::Config;

use crate::Overrides;

/// Where the demo serves the viewer page unless told otherwise.
pub const DEMO_LISTEN: &str = "127.0.0.1:8080";

/// Frame rate a software renderer sustains for the demo's 720p composite
/// with a browser on the same machine where the CPU plan cannot hold more:
/// without AVX2 (scalar kernels) the CPU plan on 2 cores kept 59–61 fps with
/// nobody watching but 44–50 fps with Chromium beside it (frames dropped,
/// latency doubled), and tracked poses move the layer on every frame (the
/// fused pass: 37–40 fps); at 30 fps both play smoothly. With AVX2 and a
/// still layer the station delivered 58.5–60 fps to Chromium on the same
/// 2 cores (`glass_to_glass`), so the configured rate is kept. fps.
const SOFTWARE_FPS: u32 = 30;

/// The demo's choices.
pub struct DemoProfile {
    /// `--headless`: no monitor window even where there is a display.
    pub headless: bool,
    /// Lower the frame rate and MSAA on a software GPU.
    pub software_limits: bool,
}

impl DemoProfile {
    /// Applies the profile to `config` (before `overrides`, which win);
    /// returns what it did in words, one line each.
    pub fn apply(&self, config: &mut Config, overrides: &Overrides) -> Vec<String> {
        let mut said = Vec::new();
        if overrides.listen.is_none() && config.http.listen.is_none() {
            config.http.listen = Some(DEMO_LISTEN.into());
        }
        if !self.headless && !config.display.enabled {
            if display_server_present() {
                config.display.enabled = true;
            } else {
                said.push(
                    "no display server here (DISPLAY is not set), so the station's monitor window stays closed; \
                     watch through the viewer link below, or run the demo on the station's desktop (or over \
                     ssh -X) to get the window"
                        .to_string(),
                );
            }
        }
        // A GPU runs the config as it is; no adapter at all is the station's error to report.
        if self.software_limits
            && config.compositor.enabled
            && let Ok(info) = probe_adapter(AdapterPreference::HighPerformance)
            && is_software(&info)
        {
            let renderer = format!("{} ({:?})", info.name, info.backend);
            // Without trackers the layer is still between edits: the CPU plan runs every frame.
            let holds_rate = cpu_frame::Kernels::Widest.is_simd() && config.tracking.trackers.is_empty();
            said.extend(limit_for_software(config, &renderer, overrides.fps.is_some() || holds_rate));
        }
        said
    }
}

/// Whether a window can be opened here (the monitor is an X11 window; Wayland
/// desktops run Xwayland and set `DISPLAY` too).
fn display_server_present() -> bool {
    std::env::var_os("DISPLAY").is_some_and(|v| !v.is_empty())
}

/// Lowers the frame rate (unless `fps_fixed`: by a flag, or because the CPU
/// plan holds it) and MSAA of `config` to what a software renderer
/// sustains; the line that says so, if anything changed.
fn limit_for_software(config: &mut Config, renderer: &str, fps_fixed: bool) -> Option<String> {
    let mut changes = Vec::new();
    if !fps_fixed && config.source.fps > SOFTWARE_FPS {
        changes.push(format!("at {SOFTWARE_FPS} fps (not {})", config.source.fps));
        config.source.fps = SOFTWARE_FPS;
    }
    if config.compositor.msaa > 1 {
        changes.push(format!("without MSAA (not {}x)", config.compositor.msaa));
        config.compositor.msaa = 1;
    }
    (!changes.is_empty()).then(|| {
        format!(
            "software GPU {renderer}: the demo runs {} so it keeps up (a GPU runs the config as it is; \
             --no-software-limits keeps it here too)",
            changes.join(" and ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_software_renderer_gets_30_fps_without_msaa_and_says_so() {
        let mut config = Config::default();
        config.source.fps = 60;
        config.compositor.msaa = 4;
        let line = limit_for_software(&mut config, "llvmpipe (Vulkan)", false).expect("a change");
        assert_eq!((config.source.fps, config.compositor.msaa), (30, 1));
        assert!(line.contains("30 fps (not 60)") && line.contains("without MSAA (not 4x)"), "{line}");
        assert_eq!(limit_for_software(&mut config, "llvmpipe", false), None, "nothing left to lower");
    }

    #[test]
    fn a_rate_the_cpu_plan_holds_is_kept_and_only_msaa_lowered() {
        let mut config = Config::default();
        config.source.fps = 60;
        config.compositor.msaa = 4;
        let line = limit_for_software(&mut config, "llvmpipe (Vulkan)", true).expect("msaa lowered");
        assert_eq!((config.source.fps, config.compositor.msaa), (60, 1));
        assert!(!line.contains("fps") && line.contains("without MSAA (not 4x)"), "{line}");
    }

    #[test]
    fn an_explicit_frame_rate_is_kept() {
        let mut config = Config::default();
        config.source.fps = 60;
        let line = limit_for_software(&mut config, "llvmpipe", true).expect("msaa lowered");
        assert_eq!(config.source.fps, 60);
        assert!(!line.contains("fps"), "{line}");
    }

    #[test]
    fn the_demo_serves_on_loopback_unless_told_otherwise() {
        let profile = DemoProfile { headless: true, software_limits: false };
        let mut config = Config::default();
        profile.apply(&mut config, &Overrides::default());
        assert_eq!(config.http.listen.as_deref(), Some(DEMO_LISTEN));
        let mut config = Config::default();
        config.http.listen = Some("0.0.0.0:9443".into());
        profile.apply(&mut config, &Overrides::default());
        assert_eq!(config.http.listen.as_deref(), Some("0.0.0.0:9443"), "a configured address is kept");
    }
}
