//! The tracked phantom of the synthetic endoscope: a flat silicone-like
//! surface with painted fiducial dots at known positions, seen from a scope
//! that moves along a scripted path (`ScopePath`), rendered through the
//! configured lens. The built-in simulated tracker
//! (`crate::tracking::simulated`) publishes the same path's poses over
//! OpenIGTLink, so the overlay can be checked against the dots in the video.
//!
//! Frames: the phantom's frame has the surface in its `z = 0` plane (mm), `x`
//! right and `y` down as seen by the scope; the camera frame is OpenCV's (`z`
//! forward, `y` down).
//!
//! The file (`format: "scopecast-phantom/1"`, JSON) holds the surface's size,
//! its texture seed and the fiducials; [`PhantomFile::parse`] checks every
//! value, so a broken file is an error in words, never a panic.

use std::path::Path;

use glam::{DQuat, DVec3, Vec3};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::synthetic::fractal;
use crate::tracking::pose_store::Pose;

/// The file format this module reads and writes.
pub const FORMAT: &str = "scopecast-phantom/1";
/// Texels per mm of the surface texture.
const TEXELS_PER_MM: f64 = 10.0;
/// The most fiducials a phantom may have.
pub const MAX_FIDUCIALS: usize = 64;
/// The largest surface side, mm.
pub const MAX_SIDE_MM: f64 = 400.0;

/// A phantom file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhantomFile {
    /// [`FORMAT`].
    pub format: String,
    /// Surface width (phantom `x`), mm, centred on the origin.
    pub width_mm: f64,
    /// Surface height (phantom `y`), mm, centred on the origin.
    pub height_mm: f64,
    /// Seed of the surface texture.
    pub texture_seed: u32,
    /// Radius of each black fiducial dot, mm.
    pub dot_radius_mm: f64,
    /// Radius of the white ring painted around each dot, mm.
    pub ring_radius_mm: f64,
    /// Fiducial centres in the phantom's frame, mm (on the surface: `z = 0`).
    pub fiducials_mm: Vec<[f64; 3]>,
    /// A chessboard printed on the surface (for hand–eye calibration), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chessboard: Option<Chessboard>,
}

/// A chessboard on the phantom's surface: `(cols + 1) × (rows + 1)` squares
/// whose `cols × rows` inner corners are what a detector finds. The board's
/// frame: origin at the inner corner nearest (−x, −y), `x` along the
/// columns, `y` along the rows, on the surface (`z = 0`), axes as the
/// phantom's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chessboard {
    /// Inner corners per row.
    pub cols: usize,
    /// Inner corners per column.
    pub rows: usize,
    /// Side of a square, mm.
    pub square_mm: f64,
    /// The board's centre on the surface, mm.
    pub centre_mm: [f64; 2],
}

impl Chessboard {
    /// The board's first inner corner in the phantom's frame, mm.
    pub fn origin_mm(&self) -> [f64; 2] {
        [
            self.centre_mm[0] - (self.cols - 1) as f64 * self.square_mm / 2.0,
            self.centre_mm[1] - (self.rows - 1) as f64 * self.square_mm / 2.0,
        ]
    }

    /// The inner corners in the board's frame, row by row, mm.
    pub fn corners_mm(&self) -> Vec<[f64; 3]> {
        (0..self.rows)
            .flat_map(|r| (0..self.cols).map(move |c| [c as f64 * self.square_mm, r as f64 * self.square_mm, 0.0]))
            .collect()
    }

    /// The board's half sides (with the outer squares), mm.
    fn half_extent_mm(&self) -> [f64; 2] {
        [(self.cols + 1) as f64 * self.square_mm / 2.0, (self.rows + 1) as f64 * self.square_mm / 2.0]
    }
}

/// Why a phantom file was refused.
#[derive(Debug, Error)]
pub enum PhantomError {
    /// The file could not be read.
    #[error("phantom file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// Not a phantom file, or a value out of range.
    #[error("phantom file {path}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

impl PhantomFile {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Self, PhantomError> {
        let bytes =
            std::fs::read(path).map_err(|source| PhantomError::Read { path: path.display().to_string(), source })?;
        Self::parse(&bytes).map_err(|reason| PhantomError::Invalid { path: path.display().to_string(), reason })
    }

    /// Parses and checks a phantom file's bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let file: Self = serde_json::from_slice(bytes).map_err(|e| format!("not a phantom file: {e}"))?;
        if file.format != FORMAT {
            return Err(format!("format {:?}, this station reads {FORMAT:?}", file.format));
        }
        let side = |v: f64| v.is_finite() && (1.0..=MAX_SIDE_MM).contains(&v);
        if !side(file.width_mm) || !side(file.height_mm) {
            return Err(format!(
                "surface {} x {} mm: each side must be 1 to {MAX_SIDE_MM} mm",
                file.width_mm, file.height_mm
            ));
        }
        let radii_ok = file.dot_radius_mm.is_finite()
            && file.ring_radius_mm.is_finite()
            && file.dot_radius_mm > 0.0
            && file.ring_radius_mm > file.dot_radius_mm;
        if !radii_ok {
            return Err(format!(
                "dot radius {} mm and ring radius {} mm: need 0 < dot < ring",
                file.dot_radius_mm, file.ring_radius_mm
            ));
        }
        if file.fiducials_mm.is_empty() || file.fiducials_mm.len() > MAX_FIDUCIALS {
            return Err(format!("{} fiducials: need 1 to {MAX_FIDUCIALS}", file.fiducials_mm.len()));
        }
        for (i, f) in file.fiducials_mm.iter().enumerate() {
            let on_surface = f[0].abs() + file.ring_radius_mm <= file.width_mm / 2.0
                && f[1].abs() + file.ring_radius_mm <= file.height_mm / 2.0;
            if !f.iter().all(|v| v.is_finite()) || f[2] != 0.0 || !on_surface {
                return Err(format!("fiducial {i} at {f:?} mm is not on the surface (z = 0, ring inside the edges)"));
            }
            for (j, g) in file.fiducials_mm.iter().enumerate().take(i) {
                let apart = (f[0] - g[0]).hypot(f[1] - g[1]);
                if apart < 5.0 * file.ring_radius_mm {
                    return Err(format!(
                        "fiducials {j} and {i} are {apart:.1} mm apart: keep them 5 ring radii ({:.1} mm) apart",
                        5.0 * file.ring_radius_mm
                    ));
                }
            }
        }
        if let Some(board) = &file.chessboard {
            let [hx, hy] = board.half_extent_mm();
            let fits = board.square_mm.is_finite()
                && board.square_mm >= 1.0
                && (2..=40).contains(&board.cols)
                && (2..=40).contains(&board.rows)
                && board.centre_mm.iter().all(|c| c.is_finite())
                && board.centre_mm[0].abs() + hx <= file.width_mm / 2.0
                && board.centre_mm[1].abs() + hy <= file.height_mm / 2.0;
            if !fits {
                return Err(format!(
                    "chessboard {} x {} inner corners of {} mm at {:?} mm: 2 to 40 corners a side, squares of 1 mm or more, inside the surface",
                    board.cols, board.rows, board.square_mm, board.centre_mm
                ));
            }
        }
        Ok(file)
    }

    /// The file's JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// The shape of the scope's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PathShape {
    /// A circle at a constant speed (the accuracy runs).
    #[default]
    Circle,
    /// A wiggle: two sines of unrelated frequencies across the phantom,
    /// speeding up and slowing down (what temporal calibration needs).
    Wiggle,
    /// A survey: the scope looks at the phantom's centre from around it,
    /// tilted up to 20° every way and rolled up to 15° (what hand–eye
    /// calibration needs: turns about several axes); `radius_mm` is unused.
    Survey,
}

/// The scripted path of the scope over the phantom: its camera circles (or
/// wiggles about) the phantom's centre at `distance_mm` from the surface,
/// `radius_mm` off the axis, at `speed_mm_s` (the circle's; the wiggle's
/// peak speed is about that), rolling and tilting a little as a hand would.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScopePath {
    /// Speed of the camera's centre, mm/s.
    pub speed_mm_s: f64,
    /// Radius of the circle, mm.
    pub radius_mm: f64,
    /// Distance from the surface, mm.
    pub distance_mm: f64,
    /// Circle or wiggle.
    pub shape: PathShape,
}

impl ScopePath {
    /// The camera's pose in the phantom's frame at `time_ns` (station clock):
    /// `phantom_from_camera`.
    pub fn phantom_from_camera(&self, time_ns: u64) -> Pose {
        let t = time_ns as f64 / 1e9;
        let omega = if self.radius_mm > 0.0 { self.speed_mm_s / self.radius_mm } else { 0.0 };
        // Angles are kept in one turn so that long runs keep f64 precision.
        let angle = (omega * t) % std::f64::consts::TAU;
        if self.shape == PathShape::Survey {
            // Unrelated frequencies, so the views cover the cap of directions.
            let second = (omega * 0.618 * t) % std::f64::consts::TAU;
            let third = (omega * 0.381 * t + 1.0) % std::f64::consts::TAU;
            let rotation = DQuat::from_rotation_z(angle)
                * DQuat::from_rotation_x(20f64.to_radians() * second.sin())
                * DQuat::from_rotation_z(-angle + 15f64.to_radians() * third.sin());
            return Pose { rotation, translation: rotation * DVec3::new(0.0, 0.0, -self.distance_mm) };
        }
        let roll = 6f64.to_radians() * (0.5 * angle).sin();
        let tilt = 4f64.to_radians() * (angle + 0.7).sin();
        let rotation = DQuat::from_rotation_z(roll) * DQuat::from_rotation_x(tilt);
        let centre = match self.shape {
            PathShape::Circle => {
                DVec3::new(self.radius_mm * angle.cos(), self.radius_mm * angle.sin(), -self.distance_mm)
            }
            PathShape::Survey | PathShape::Wiggle => {
                // The second sine's period is not a multiple of the first's, so no lag repeats the motion.
                let second = (omega * 1.618 * t + 0.5) % std::f64::consts::TAU;
                DVec3::new(self.radius_mm * angle.sin(), 0.7 * self.radius_mm * second.sin(), -self.distance_mm)
            }
        };
        Pose { rotation, translation: centre }
    }

    /// `camera_from_phantom` at `time_ns`.
    pub fn camera_from_phantom(&self, time_ns: u64) -> Pose {
        self.phantom_from_camera(time_ns).inverse()
    }
}

/// Per output pixel, what the lens sees: the ray's normalized ideal
/// coordinates (`x/z`, `y/z`) and the scope's vignette (0..=256); rows'
/// spans inside the image circle.
pub struct LensView<'a> {
    /// Image width, px.
    pub width: usize,
    /// Normalized ideal coordinates per pixel (NaN outside the lens' domain).
    pub rays: &'a [[f32; 2]],
    /// Brightness per pixel, 0..=256.
    pub vignette: &'a [u16],
    /// Per row, the columns inside the image circle.
    pub spans: &'a [(usize, usize)],
    /// Focal length, px (for the pixel footprint used in anti-aliasing).
    pub focal_px: f32,
}

/// The phantom, ready to render: its texture and a grid of which fiducial
/// may cover each cell.
pub struct PhantomPicture {
    file: PhantomFile,
    texels: Vec<[u8; 3]>,
    texture_size: (usize, usize),
    /// Cells of `ring_radius_mm`: the fiducial whose ring may reach it, or `u8::MAX`.
    cells: Vec<u8>,
    cell_columns: usize,
    /// Fiducial centres on the surface (x, y), mm, for the per-pixel test.
    fiducials: Vec<[f32; 2]>,
    /// The chessboard, if the file has one.
    chessboard: Option<BoardPaint>,
}

/// A chessboard ready to paint per pixel (mm, f32).
struct BoardPaint {
    /// The outer squares' corner nearest (−x, −y).
    min: [f32; 2],
    /// Squares per side (inner corners + 1).
    squares: [f32; 2],
    square: f32,
}

impl BoardPaint {
    fn of(board: &Chessboard) -> Self {
        let o = board.origin_mm();
        let square = board.square_mm as f32;
        Self {
            min: [o[0] as f32 - square, o[1] as f32 - square],
            squares: [(board.cols + 1) as f32, (board.rows + 1) as f32],
            square,
        }
    }

    /// Paints the board at surface point (`x`, `y`) mm over `colour`, the
    /// pixel's footprint `footprint` mm wide: anti-aliased by each axis's
    /// signed distance to its nearest square edge.
    fn paint(&self, x: f32, y: f32, footprint: f32, colour: &mut [f32; 3]) {
        let (u, v) = ((x - self.min[0]) / self.square, (y - self.min[1]) / self.square);
        if u < 0.0 || v < 0.0 || u >= self.squares[0] || v >= self.squares[1] {
            return;
        }
        // Per axis: +1 deep in an even square, −1 deep in an odd one, linear across an edge.
        let side = |t: f32| {
            let parity = if (t.floor() as i64) % 2 == 0 { 1.0 } else { -1.0 };
            let to_edge = (t - t.floor()).min(t.ceil() - t) * self.square;
            parity * (to_edge / footprint.max(1e-3) * 2.0).min(1.0)
        };
        let white = 0.5 + 0.5 * side(u) * side(v);
        for c in colour.iter_mut() {
            *c = 20.0 + 225.0 * white;
        }
    }
}

impl PhantomPicture {
    /// Builds the texture and the fiducial grid of `file` (checked by [`PhantomFile::parse`]).
    pub fn new(file: PhantomFile) -> Self {
        let tw = (file.width_mm * TEXELS_PER_MM).ceil() as usize + 1;
        let th = (file.height_mm * TEXELS_PER_MM).ceil() as usize + 1;
        let seed = file.texture_seed;
        let mut texels = Vec::with_capacity(tw * th);
        for ty in 0..th {
            for tx in 0..tw {
                // Pink silicone with mottling (about 6 mm) and a few darker vessels; texel units.
                let (x, y) = (tx as f32, ty as f32);
                let mottle = fractal(x, y, 60.0, seed);
                let vessel = (fractal(x + 500.0, y, 140.0, seed + 9) - 0.5).abs();
                let vessel = 1.0 - (vessel / 0.035).clamp(0.0, 1.0);
                let r = 205.0 + 40.0 * mottle - 90.0 * vessel;
                let g = 120.0 + 45.0 * mottle - 80.0 * vessel;
                let b = 115.0 + 35.0 * mottle - 50.0 * vessel;
                texels.push([r.clamp(0.0, 255.0) as u8, g.clamp(0.0, 255.0) as u8, b.clamp(0.0, 255.0) as u8]);
            }
        }
        let cell = file.ring_radius_mm;
        let cell_columns = (file.width_mm / cell).ceil() as usize + 1;
        let cell_rows = (file.height_mm / cell).ceil() as usize + 1;
        let mut cells = vec![u8::MAX; cell_columns * cell_rows];
        for (row, cells_row) in cells.chunks_exact_mut(cell_columns).enumerate() {
            for (column, slot) in cells_row.iter_mut().enumerate() {
                let centre = [
                    (column as f64 + 0.5) * cell - file.width_mm / 2.0,
                    (row as f64 + 0.5) * cell - file.height_mm / 2.0,
                ];
                let reach = file.ring_radius_mm + cell * std::f64::consts::SQRT_2;
                if let Some(i) =
                    file.fiducials_mm.iter().position(|f| (f[0] - centre[0]).hypot(f[1] - centre[1]) <= reach)
                {
                    *slot = i as u8;
                }
            }
        }
        let fiducials = file.fiducials_mm.iter().map(|f| [f[0] as f32, f[1] as f32]).collect();
        let chessboard = file.chessboard.as_ref().map(BoardPaint::of);
        Self { file, texels, texture_size: (tw, th), cells, cell_columns, fiducials, chessboard }
    }

    /// Renders the phantom seen at `camera_from_phantom` into `out` (RGBA,
    /// `view.width` px per row): outside the surface, the dark drape.
    pub fn render(&self, view: &LensView, camera_from_phantom: &Pose, out: &mut [u8]) {
        let phantom_from_camera = camera_from_phantom.inverse();
        let rotation = glam::Mat3::from_quat(phantom_from_camera.rotation.as_quat());
        let origin = phantom_from_camera.translation.as_vec3();
        let file = &self.file;
        let (half_w, half_h) = ((file.width_mm / 2.0) as f32, (file.height_mm / 2.0) as f32);
        let (dot_r, ring_r) = (file.dot_radius_mm as f32, file.ring_radius_mm as f32);
        let (tw, th) = self.texture_size;
        let texels_per_mm = TEXELS_PER_MM as f32;
        let cell = ring_r;
        for (y, row) in out.chunks_exact_mut(view.width * 4).enumerate().take(view.spans.len()) {
            let (x0, x1) = view.spans[y];
            for x in (0..x0).chain(x1..view.width) {
                row[x * 4..x * 4 + 4].copy_from_slice(&[0, 0, 0, 255]);
            }
            for x in x0..x1 {
                let i = y * view.width + x;
                let v = f32::from(view.vignette[i]) / 256.0;
                let [xn, yn] = view.rays[i];
                let mut colour = [24.0f32, 40.0, 52.0];
                let direction = rotation * Vec3::new(xn, yn, 1.0);
                if xn.is_finite() && direction.z > 1e-6 {
                    let s = -origin.z / direction.z;
                    let p = origin + direction * s;
                    if s > 0.0 && p.x.abs() <= half_w && p.y.abs() <= half_h {
                        let tx = (((p.x + half_w) * texels_per_mm) as usize).min(tw - 1);
                        let ty = (((p.y + half_h) * texels_per_mm) as usize).min(th - 1);
                        colour = self.texels[ty * tw + tx].map(f32::from);
                        let column = ((p.x + half_w) / cell) as usize;
                        let row_index = ((p.y + half_h) / cell) as usize;
                        if let Some(board) = &self.chessboard {
                            let footprint = s * direction.length() / view.focal_px / direction.z.max(0.2);
                            board.paint(p.x, p.y, footprint, &mut colour);
                        }
                        let candidate = self.cells.get(row_index * self.cell_columns + column).copied();
                        if let Some(f) = candidate.and_then(|c| self.fiducials.get(usize::from(c))) {
                            // Coverage over the pixel's footprint on the surface (its size in mm).
                            let footprint = s * direction.length() / view.focal_px / direction.z.max(0.2);
                            let d = (p.x - f[0]).hypot(p.y - f[1]);
                            let ring = ((ring_r - d) / footprint + 0.5).clamp(0.0, 1.0);
                            let dot = ((dot_r - d) / footprint + 0.5).clamp(0.0, 1.0);
                            for (c, white) in colour.iter_mut().zip([250.0, 248.0, 240.0]) {
                                *c = *c * (1.0 - ring) + white * (ring - dot) + 12.0 * dot;
                            }
                        }
                    }
                }
                let pixel = &mut row[x * 4..x * 4 + 4];
                for (channel, c) in pixel.iter_mut().zip(colour) {
                    *channel = (c * v).clamp(0.0, 255.0) as u8;
                }
                pixel[3] = 255;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> PhantomFile {
        PhantomFile {
            format: FORMAT.into(),
            width_mm: 120.0,
            height_mm: 90.0,
            texture_seed: 7,
            dot_radius_mm: 2.0,
            ring_radius_mm: 3.5,
            fiducials_mm: vec![[0.0, 0.0, 0.0], [20.0, -10.0, 0.0]],
            chessboard: None,
        }
    }

    #[test]
    fn the_file_round_trips_and_refuses_nonsense_in_words() {
        let f = file();
        assert_eq!(PhantomFile::parse(f.to_json().as_bytes()).expect("parses"), f);
        let broken = [
            (r#"{"format":"other/1"}"#, "not a phantom file"),
            (&f.to_json().replace("scopecast-phantom/1", "scopecast-phantom/9"), "this station reads"),
            (&f.to_json().replace("120.0", "1e9"), "each side"),
            (&f.to_json().replace("\"dot_radius_mm\": 2.0", "\"dot_radius_mm\": 5.0"), "0 < dot < ring"),
            (&f.to_json().replace("-10.0,\n      0.0", "-10.0,\n      1.0"), "not on the surface"),
            (&f.to_json().replace("20.0", "10.0"), "apart"),
        ];
        for (text, expected) in broken {
            let error = PhantomFile::parse(text.as_bytes()).expect_err(text);
            assert!(error.contains(expected), "{error} (wanted {expected:?})");
        }
        let many = PhantomFile { fiducials_mm: vec![[0.0; 3]; 65], ..f };
        assert!(PhantomFile::parse(many.to_json().as_bytes()).expect_err("too many").contains("1 to 64"));
    }

    #[test]
    fn a_chessboard_round_trips_and_must_fit_on_the_surface() {
        let board = Chessboard { cols: 9, rows: 6, square_mm: 6.0, centre_mm: [0.0, 5.0] };
        let f = PhantomFile { chessboard: Some(board), ..file() };
        assert_eq!(PhantomFile::parse(f.to_json().as_bytes()).expect("parses"), f);
        assert_eq!(board.origin_mm(), [-24.0, -10.0]);
        assert_eq!(board.corners_mm()[10], [6.0, 6.0, 0.0]);
        let off = PhantomFile { chessboard: Some(Chessboard { centre_mm: [40.0, 0.0], ..board }), ..file() };
        let why = PhantomFile::parse(off.to_json().as_bytes()).expect_err("refused");
        assert!(why.contains("inside the surface"), "{why}");
    }

    #[test]
    fn the_survey_keeps_the_phantom_centre_in_view_from_every_side() {
        let path = ScopePath { speed_mm_s: 20.0, radius_mm: 15.0, distance_mm: 90.0, shape: PathShape::Survey };
        let mut most_tilt: f64 = 0.0;
        for k in 0..200u64 {
            let camera_from_phantom = path.camera_from_phantom(k * 50_000_000);
            let centre = camera_from_phantom.matrix().transform_point3(DVec3::ZERO);
            assert!((centre.x.abs() < 1e-9) && (centre.y.abs() < 1e-9) && (centre.z - 90.0).abs() < 1e-9, "{centre}");
            let axis = camera_from_phantom.inverse().rotation * DVec3::Z;
            most_tilt = most_tilt.max(axis.angle_between(DVec3::Z).to_degrees());
        }
        assert!(most_tilt > 15.0 && most_tilt <= 20.0 + 1e-9, "tilts up to {most_tilt} degrees");
    }

    #[test]
    fn the_path_moves_at_its_speed_and_keeps_its_distance() {
        let path = ScopePath { speed_mm_s: 50.0, radius_mm: 15.0, distance_mm: 90.0, shape: PathShape::Circle };
        let a = path.phantom_from_camera(1_000_000_000);
        let b = path.phantom_from_camera(1_001_000_000);
        let speed = (b.translation - a.translation).length() / 1e-3;
        assert!((speed - 50.0).abs() < 0.1, "{speed} mm/s");
        assert!((a.translation.z + 90.0).abs() < 1e-9);
        let back = path.camera_from_phantom(1_000_000_000).then_after(&a);
        assert!(back.translation.length() < 1e-9);
    }
}
