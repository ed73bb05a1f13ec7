//! Video frames as they travel through the pipeline: pixel format, size,
//! planes with strides over one shared byte buffer, sequence number and
//! capture times.
//!
//! The pixels are reference-counted (`Arc`), so handing a frame to the next
//! stage, or to several consumers, never copies them. The bytes may be a
//! pooled buffer of ours or a mapped GStreamer buffer (zero copy from the
//! decoder or camera).

use std::fmt;
use std::sync::Arc;

use thiserror::Error;

/// Pixel layouts the pipeline carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// 8-bit R, G, B, A interleaved; one plane.
    Rgba8,
    /// 8-bit planar Y, U, V with 2×2 chroma subsampling; three planes.
    I420,
    /// 8-bit Y plane, then interleaved UV with 2×2 subsampling; two planes.
    Nv12,
}

impl PixelFormat {
    /// Number of planes.
    pub fn plane_count(self) -> usize {
        match self {
            PixelFormat::Rgba8 => 1,
            PixelFormat::I420 => 3,
            PixelFormat::Nv12 => 2,
        }
    }

    /// Bytes per row and rows of plane `index` for a `width`×`height` image.
    /// Chroma planes round odd sizes up, as GStreamer and FFmpeg do.
    pub fn plane_extent(self, index: usize, width: u32, height: u32) -> (usize, usize) {
        let (w, h) = (width as usize, height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        match (self, index) {
            (PixelFormat::Rgba8, _) => (w * 4, h),
            (PixelFormat::I420 | PixelFormat::Nv12, 0) => (w, h),
            (PixelFormat::I420, _) => (cw, ch),
            (PixelFormat::Nv12, _) => (cw * 2, ch),
        }
    }

    /// Tightly packed planes (stride = row bytes) laid out one after another;
    /// returns the planes and the total byte size.
    pub fn packed_layout(self, width: u32, height: u32) -> (Vec<Plane>, usize) {
        let mut offset = 0;
        let planes = (0..self.plane_count())
            .map(|i| {
                let (row_bytes, rows) = self.plane_extent(i, width, height);
                let plane = Plane { offset, stride: row_bytes };
                offset += row_bytes * rows;
                plane
            })
            .collect();
        (planes, offset)
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PixelFormat::Rgba8 => "RGBA",
            PixelFormat::I420 => "I420",
            PixelFormat::Nv12 => "NV12",
        })
    }
}

/// Where one plane lives in the frame's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plane {
    /// Byte offset of the plane's first row.
    pub offset: usize,
    /// Bytes from one row to the next (≥ the row's pixel bytes).
    pub stride: usize,
}

/// Why a frame could not be built from the bytes given.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// Zero width or height.
    #[error("frame size {width}x{height} is empty")]
    EmptySize {
        /// Width, px.
        width: u32,
        /// Height, px.
        height: u32,
    },
    /// The number of planes does not match the format.
    #[error("{format} needs {expected} planes, got {actual}")]
    PlaneCount {
        /// Pixel format.
        format: PixelFormat,
        /// Planes the format needs.
        expected: usize,
        /// Planes given.
        actual: usize,
    },
    /// A stride shorter than one row of pixels.
    #[error("plane {plane} stride {stride} is below its row size {row_bytes}")]
    StrideTooSmall {
        /// Plane index.
        plane: usize,
        /// Given stride, bytes.
        stride: usize,
        /// Bytes one row of pixels needs.
        row_bytes: usize,
    },
    /// A plane reaches past the end of the buffer.
    #[error("plane {plane} needs bytes up to {end} but the buffer holds {len}")]
    PlaneOutOfBounds {
        /// Plane index.
        plane: usize,
        /// One past the last byte the plane needs.
        end: usize,
        /// Buffer length.
        len: usize,
    },
}

/// Bytes a frame's pixels live in; anything that can lend a byte slice.
pub trait FrameBytes: Send + Sync {
    /// The whole buffer.
    fn bytes(&self) -> &[u8];
}

impl FrameBytes for Vec<u8> {
    fn bytes(&self) -> &[u8] {
        self
    }
}

/// What a frame shows: live input or a NO SIGNAL placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameContent {
    /// Pictures from the source.
    Live,
    /// The source has failed or stalled; the text says why.
    NoSignal {
        /// Plain-words reason shown on the frame and in the status.
        reason: String,
    },
}

/// One video frame. Cloning is cheap: the pixels are shared.
#[derive(Clone)]
pub struct Frame {
    format: PixelFormat,
    width: u32,
    height: u32,
    planes: Vec<Plane>,
    bytes: Arc<dyn FrameBytes>,
    /// Source-assigned sequence number, increasing by one per emitted frame.
    pub sequence: u64,
    /// Capture time on the pipeline's monotonic clock, ns.
    pub capture_time_ns: u64,
    /// Capture time in Unix milliseconds (the visual timecode stamps it).
    pub capture_wall_ms: u64,
    /// Live pictures or NO SIGNAL.
    pub content: FrameContent,
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field("format", &self.format)
            .field("size", &(self.width, self.height))
            .field("planes", &self.planes)
            .field("sequence", &self.sequence)
            .field("capture_time_ns", &self.capture_time_ns)
            .field("content", &self.content)
            .finish_non_exhaustive()
    }
}

/// Capture metadata of a frame being built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameStamp {
    /// Sequence number.
    pub sequence: u64,
    /// Monotonic capture time, ns.
    pub capture_time_ns: u64,
    /// Unix capture time, ms.
    pub capture_wall_ms: u64,
}

impl Frame {
    /// Wraps `bytes` as a frame after checking that every plane fits.
    pub fn new(
        format: PixelFormat,
        width: u32,
        height: u32,
        planes: Vec<Plane>,
        bytes: Arc<dyn FrameBytes>,
        stamp: FrameStamp,
        content: FrameContent,
    ) -> Result<Self, FrameError> {
        if width == 0 || height == 0 {
            return Err(FrameError::EmptySize { width, height });
        }
        let expected = format.plane_count();
        if planes.len() != expected {
            return Err(FrameError::PlaneCount { format, expected, actual: planes.len() });
        }
        let len = bytes.bytes().len();
        for (index, plane) in planes.iter().enumerate() {
            let (row_bytes, rows) = format.plane_extent(index, width, height);
            if plane.stride < row_bytes {
                return Err(FrameError::StrideTooSmall { plane: index, stride: plane.stride, row_bytes });
            }
            let end = plane.offset.saturating_add(plane.stride.saturating_mul(rows - 1)).saturating_add(row_bytes);
            if end > len {
                return Err(FrameError::PlaneOutOfBounds { plane: index, end, len });
            }
        }
        let FrameStamp { sequence, capture_time_ns, capture_wall_ms } = stamp;
        Ok(Self { format, width, height, planes, bytes, sequence, capture_time_ns, capture_wall_ms, content })
    }

    /// Pixel format.
    pub fn format(&self) -> PixelFormat {
        self.format
    }

    /// Width, px.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height, px.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Plane layout.
    pub fn planes(&self) -> &[Plane] {
        &self.planes
    }

    /// The whole byte buffer.
    pub fn bytes(&self) -> &[u8] {
        self.bytes.bytes()
    }

    /// Row `row` of plane `plane`, without stride padding. `None` when out of range.
    pub fn row(&self, plane: usize, row: usize) -> Option<&[u8]> {
        let p = self.planes.get(plane)?;
        let (row_bytes, rows) = self.format.plane_extent(plane, self.width, self.height);
        if row >= rows {
            return None;
        }
        let start = p.offset + p.stride * row;
        self.bytes().get(start..start + row_bytes)
    }

    /// Whether this is a NO SIGNAL placeholder.
    pub fn is_no_signal(&self) -> bool {
        matches!(self.content, FrameContent::NoSignal { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp() -> FrameStamp {
        FrameStamp { sequence: 7, capture_time_ns: 1, capture_wall_ms: 2 }
    }

    #[test]
    fn packed_layouts_match_gstreamer_sizes() {
        // GStreamer's video-info sizes for packed 1280×720 and odd 5×3 frames.
        assert_eq!(PixelFormat::Rgba8.packed_layout(1280, 720).1, 1280 * 720 * 4);
        assert_eq!(PixelFormat::I420.packed_layout(1280, 720).1, 1280 * 720 * 3 / 2);
        assert_eq!(PixelFormat::Nv12.packed_layout(1280, 720).1, 1280 * 720 * 3 / 2);
        let (planes, size) = PixelFormat::I420.packed_layout(5, 3);
        assert_eq!(
            planes,
            vec![Plane { offset: 0, stride: 5 }, Plane { offset: 15, stride: 3 }, Plane { offset: 21, stride: 3 }]
        );
        assert_eq!(size, 27);
    }

    #[test]
    fn planes_past_the_buffer_are_rejected() {
        let (planes, size) = PixelFormat::Nv12.packed_layout(64, 32);
        let short: Arc<dyn FrameBytes> = Arc::new(vec![0u8; size - 1]);
        let err = Frame::new(PixelFormat::Nv12, 64, 32, planes, short, stamp(), FrameContent::Live).unwrap_err();
        assert_eq!(err, FrameError::PlaneOutOfBounds { plane: 1, end: size, len: size - 1 });
    }

    #[test]
    fn short_strides_and_wrong_plane_counts_are_rejected() {
        let bytes: Arc<dyn FrameBytes> = Arc::new(vec![0u8; 4096]);
        let err = Frame::new(
            PixelFormat::Rgba8,
            16,
            16,
            vec![Plane { offset: 0, stride: 60 }],
            bytes.clone(),
            stamp(),
            FrameContent::Live,
        )
        .unwrap_err();
        assert_eq!(err, FrameError::StrideTooSmall { plane: 0, stride: 60, row_bytes: 64 });
        let err =
            Frame::new(PixelFormat::I420, 16, 16, vec![], bytes.clone(), stamp(), FrameContent::Live).unwrap_err();
        assert_eq!(err, FrameError::PlaneCount { format: PixelFormat::I420, expected: 3, actual: 0 });
        let err = Frame::new(PixelFormat::Rgba8, 0, 16, vec![], bytes, stamp(), FrameContent::Live).unwrap_err();
        assert_eq!(err, FrameError::EmptySize { width: 0, height: 16 });
    }

    #[test]
    fn rows_respect_strides_and_clones_share_pixels() {
        let mut data = vec![0u8; 2 * 12];
        data[12..20].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        let bytes: Arc<dyn FrameBytes> = Arc::new(data);
        let frame = Frame::new(
            PixelFormat::Rgba8,
            2,
            2,
            vec![Plane { offset: 0, stride: 12 }],
            bytes,
            stamp(),
            FrameContent::Live,
        )
        .expect("valid layout");
        let copy = frame.clone();
        assert_eq!(copy.row(0, 1), Some(&[1, 2, 3, 4, 5, 6, 7, 8][..]));
        assert_eq!(copy.row(0, 2), None);
        assert!(std::ptr::eq(frame.bytes().as_ptr(), copy.bytes().as_ptr()));
    }
}
