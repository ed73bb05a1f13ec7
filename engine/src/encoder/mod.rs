//! H.264 encoding of the composited frames, once for every viewer.
//!
//! Low-latency settings throughout: constrained baseline (what browsers and
//! headsets decode), no B-frames, no lookahead, one frame in and one access
//! unit out, bitrate control, keyframes on request, and short GOPs rather
//! than periodic intra refresh: a viewer that joins or loses packets gets a
//! decodable picture at the next IDR (with SPS/PPS in front, which Chrome
//! needs), and an IDR every second bounds that wait.

pub mod choice;
pub mod downscale;
pub mod embedded;
pub mod gst_h264;
pub mod keyframe_clock;
pub mod stage;

use scopecast_transport::media::AccessUnit;
use thiserror::Error;

use crate::frame::Frame;

/// Why a frame could not be encoded.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum EncoderError {
    /// The encoder element or GStreamer is missing.
    #[error("encoder unavailable: {0}")]
    Unavailable(String),
    /// The input is not what the encoder takes.
    #[error("the encoder takes I420 frames of {expected_width}x{expected_height}, got {format} {width}x{height}")]
    WrongInput {
        /// Size the encoder was opened with.
        expected_width: u32,
        /// Size the encoder was opened with.
        expected_height: u32,
        /// What came.
        format: String,
        /// Its width.
        width: u32,
        /// Its height.
        height: u32,
    },
    /// The encoding pipeline failed.
    #[error("encoder pipeline: {0}")]
    Pipeline(String),
}

/// Which H.264 encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncoderKind {
    /// x264 where GStreamer has it (and everything its pipeline needs),
    /// otherwise the embedded OpenH264 (see [`choice`]).
    Auto,
    /// GStreamer's x264enc, ultrafast preset, zerolatency tune, sliced threads.
    X264,
    /// GStreamer's openh264enc, low complexity.
    Openh264,
    /// OpenH264 compiled into the binary (no system codec needed).
    Embedded,
}

/// Encoder settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EncoderSettings {
    /// Which encoder.
    pub kind: EncoderKind,
    /// Frame size, px.
    pub width: u32,
    /// Frame size, px.
    pub height: u32,
    /// Frames per second (for rate control and the level).
    pub fps: u32,
    /// Target bitrate, kbit/s.
    pub bitrate_kbps: u32,
    /// An IDR at least every this many frames.
    pub keyframe_interval: u32,
}

/// The smallest H.264 level (ITU-T H.264 table A-1) that allows `width ×
/// height` at `fps`, as `level_idc` (31 = 3.1): browsers refuse streams whose
/// SPS exceeds the level they were offered, and 720p60 needs 3.2, 1080p60 4.2.
pub fn h264_level_idc(width: u32, height: u32, fps: u32) -> u8 {
    let mbs = u64::from(width.div_ceil(16)) * u64::from(height.div_ceil(16));
    let mbs_per_s = mbs * u64::from(fps);
    // (level_idc, MaxMBPS, MaxFS) from table A-1.
    const LEVELS: [(u8, u64, u64); 13] = [
        (10, 1_485, 99),
        (11, 3_000, 396),
        (12, 6_000, 396),
        (13, 11_880, 396),
        (20, 11_880, 396),
        (21, 19_800, 792),
        (22, 20_250, 1_620),
        (30, 40_500, 1_620),
        (31, 108_000, 3_600),
        (32, 216_000, 5_120),
        (40, 245_760, 8_192),
        (42, 522_240, 8_704),
        (51, 983_040, 36_864),
    ];
    LEVELS.iter().find(|(_, max_mbps, max_fs)| mbs_per_s <= *max_mbps && mbs <= *max_fs).map_or(52, |l| l.0)
}

/// An H.264 encoder: one I420 frame in, at most one access unit out.
pub trait H264Encoder: Send {
    /// Encodes `frame`; with `keyframe`, the output is an IDR with SPS/PPS.
    fn encode(&mut self, frame: &Frame, keyframe: bool) -> Result<Option<AccessUnit>, EncoderError>;
}

/// `Ok` when `frame` is an I420 frame of the size `settings` was opened with.
pub fn check_input(settings: &EncoderSettings, frame: &Frame) -> Result<(), EncoderError> {
    if frame.format() != crate::frame::PixelFormat::I420
        || frame.width() != settings.width
        || frame.height() != settings.height
    {
        return Err(EncoderError::WrongInput {
            expected_width: settings.width,
            expected_height: settings.height,
            format: frame.format().to_string(),
            width: frame.width(),
            height: frame.height(),
        });
    }
    Ok(())
}

impl std::fmt::Display for EncoderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::X264 => "x264",
            Self::Openh264 => "openh264",
            Self::Embedded => "embedded",
        })
    }
}

/// Opens the encoder `settings.kind` names (`auto` is resolved here too; the
/// stage resolves it once with [`choice::choose_here`] and says what it chose).
pub fn open(settings: EncoderSettings) -> Result<Box<dyn H264Encoder>, EncoderError> {
    Ok(match choice::choose_here(settings.kind).kind {
        EncoderKind::X264 | EncoderKind::Openh264 => Box::new(gst_h264::GstH264Encoder::new(settings)?),
        EncoderKind::Embedded | EncoderKind::Auto => Box::new(embedded::EmbeddedH264Encoder::new(settings)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_table_a1() {
        assert_eq!(h264_level_idc(1280, 720, 30), 31);
        assert_eq!(h264_level_idc(1280, 720, 60), 32);
        assert_eq!(h264_level_idc(1920, 1080, 30), 40);
        assert_eq!(h264_level_idc(1920, 1080, 60), 42);
        assert_eq!(h264_level_idc(640, 360, 30), 30);
    }
}

/// What the encoder stage makes of one frame: the full layer's access unit
/// and, when the reduced layer is on, the reduced one's.
#[derive(Debug, Clone)]
pub struct EncodedFrame {
    /// The full-size picture.
    pub full: scopecast_transport::media::AccessUnit,
    /// Half the size, for viewers on poor networks.
    pub reduced: Option<scopecast_transport::media::AccessUnit>,
}

impl crate::slot::Timestamped for EncodedFrame {
    fn capture_time_ns(&self) -> u64 {
        self.full.capture_time_ns
    }
}
