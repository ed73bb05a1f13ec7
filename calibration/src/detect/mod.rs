//! Calibration pattern detection in grayscale images: chessboard inner
//! corners (X-corner response, grid growing, sub-pixel refinement) and the
//! asymmetric circle grid (blobs, lattice growing). Views in
//! which the full pattern is not found are reported, never guessed.
//!
//! Images are row-major grayscale with values in 0..=255 (f32), pixel
//! centres at integer coordinates (OpenCV's convention, as the rest of this
//! crate).

pub mod chessboard;
pub mod circles;
mod grid;
pub mod subpixel;

use thiserror::Error;

/// A grayscale image.
#[derive(Debug, Clone, PartialEq)]
pub struct GrayImage {
    /// Width, px.
    pub width: usize,
    /// Height, px.
    pub height: usize,
    /// Row-major intensities, 0..=255.
    pub data: Vec<f32>,
}

impl GrayImage {
    /// Wraps `data` (`width × height` values).
    pub fn new(width: usize, height: usize, data: Vec<f32>) -> Option<Self> {
        (data.len() == width * height && width > 0 && height > 0).then_some(Self { width, height, data })
    }

    /// Intensity at integer `(x, y)`, clamped to the border.
    pub fn at(&self, x: isize, y: isize) -> f32 {
        let x = x.clamp(0, self.width as isize - 1) as usize;
        let y = y.clamp(0, self.height as isize - 1) as usize;
        self.data[y * self.width + x]
    }

    /// Bilinear intensity at `(x, y)`.
    pub fn sample(&self, x: f64, y: f64) -> f32 {
        let (x0, y0) = (x.floor(), y.floor());
        let (fx, fy) = ((x - x0) as f32, (y - y0) as f32);
        let (x0, y0) = (x0 as isize, y0 as isize);
        let top = self.at(x0, y0) * (1.0 - fx) + self.at(x0 + 1, y0) * fx;
        let bottom = self.at(x0, y0 + 1) * (1.0 - fx) + self.at(x0 + 1, y0 + 1) * fx;
        top * (1.0 - fy) + bottom * fy
    }
}

/// Why a pattern was not found.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum DetectError {
    /// Too few corner-like points.
    #[error("found {found} corner candidates, the pattern has {needed}")]
    TooFewCorners {
        /// Candidates found.
        found: usize,
        /// Corners in the pattern.
        needed: usize,
    },
    /// The candidates do not form a complete grid of the expected size.
    #[error("no complete {cols}x{rows} grid: {reason}")]
    NoGrid {
        /// Expected columns.
        cols: usize,
        /// Expected rows.
        rows: usize,
        /// Why.
        reason: String,
    },
}
