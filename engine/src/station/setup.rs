//! What a station is built from, read off its [`Config`]: the frame source,
//! the source supervisor's health policy, the recording's setup record, and
//! the named threads every stage runs on.

use std::thread::JoinHandle;

use super::StationError;
use crate::clock::SharedClock;
use crate::config::{CalibrationSource, Config};
use crate::source::gst::GstSource;
use crate::source::health::HealthPolicy;
use crate::source::supervisor::SupervisorSettings;
use crate::source::synthetic::SyntheticEndoscope;
use crate::source::{FrameSource, SourceSpec};

/// What a recording's manifest says about the setup: the calibration (its
/// contents, not its path) and the models' names.
pub(super) fn session_info(config: &Config) -> crate::recorder::SessionInfo {
    let calibration = match &config.compositor.calibration {
        source @ (CalibrationSource::Synthetic | CalibrationSource::None) => serde_json::json!(source.to_string()),
        CalibrationSource::File(path) => scopecast_calibration::file::CalibrationFile::load(path)
            .ok()
            .and_then(|c| serde_json::from_str::<serde_json::Value>(&c.to_json()).ok())
            .unwrap_or(serde_json::Value::Null),
    };
    let models: Vec<String> = config
        .compositor
        .models
        .iter()
        .filter_map(|m| m.path.file_name().map(|n| n.to_string_lossy().to_string()))
        .collect();
    crate::recorder::SessionInfo {
        station: "scopecast capture station".into(),
        setup: crate::recorder::format::SetupRecord { calibration, models },
        encoder: crate::recorder::format::EncoderRecord {
            kind: format!("{:?}", config.encoder.kind),
            bitrate_kbps: config.encoder.bitrate_kbps,
            keyframe_interval_s: config.encoder.keyframe_interval_s,
            width: config.source.width,
            height: config.source.height,
            fps: config.source.fps,
        },
    }
}

pub(super) fn make_source(config: &Config, clock: &SharedClock) -> Result<Box<dyn FrameSource>, StationError> {
    let s = &config.source;
    Ok(match SourceSpec::parse(&s.uri)? {
        SourceSpec::Synthetic => {
            Box::new(SyntheticEndoscope::new(s.width, s.height, s.fps, &s.synthetic, clock.clone()))
        }
        spec => Box::new(GstSource::new(spec, s.loop_file, s.format, (s.width, s.height, s.fps), clock.clone())),
    })
}

pub(super) fn spawn(name: &'static str, body: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, StationError> {
    std::thread::Builder::new().name(name.into()).spawn(body).map_err(|source| StationError::Spawn { name, source })
}

pub(super) fn supervisor_settings(config: &Config) -> SupervisorSettings {
    let s = &config.source;
    let ms = |v: u64| v * 1_000_000;
    SupervisorSettings {
        policy: HealthPolicy {
            no_signal_after_ns: ms(s.no_signal_after_ms),
            restart_after_ns: ms(s.restart_after_ms),
            retry_initial_ns: ms(s.retry_initial_ms),
            retry_max_ns: ms(s.retry_max_ms),
        },
        fps: s.fps,
        size: (s.width, s.height),
    }
}
