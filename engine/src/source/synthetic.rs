//! The built-in synthetic endoscope: a live-looking scope picture that needs
//! neither a camera nor GStreamer, so the station runs anywhere.
//!
//! What it draws, per frame: wet tissue (procedural texture with vessels, fat
//! and specular glints) drifting slowly as if the scope breathed with the
//! patient, the round vignette of a rigid scope, and a moving metallic
//! instrument with a specular stripe; all seen through the lens distortion of
//! a configurable camera model (Brown–Conrady or Kannala–Brandt), so
//! undistortion downstream has something true to correct.
//!
//! Cost: everything that does not move (the texture, the per-pixel lens
//! remap and the vignette) is computed once; a frame is one table lookup and a
//! multiply per pixel, plus a distance test inside the instrument's box.

use std::f32::consts::TAU;
use std::sync::Arc;

use scopecast_calibration::{BrownConrady, CameraModel, KannalaBrandt, LensModel, PinholeIntrinsics};

use super::phantom::{LensView, PhantomPicture, ScopePath};
use super::{FrameSource, SourceError};
use crate::clock::{NS_PER_S, SharedClock};
use crate::config::{SyntheticConfig, SyntheticLens};
use crate::frame::{Frame, FrameContent, FrameStamp, PixelFormat};
use crate::pacing::{Pace, Pacer};
use crate::pool::BufferPool;
use crate::simd::Avx2;

mod avx2;

/// Texel index marking a pixel outside the scope's field of view.
const OUTSIDE: u32 = u32::MAX;
/// Largest tissue drift from the rest position, ideal px.
const DRIFT_PX: f32 = 24.0;

/// Builds the camera model of the synthetic scope from its config.
pub fn synthetic_camera(width: u32, height: u32, config: &SyntheticConfig) -> CameraModel {
    let f = config.focal_per_width * f64::from(width);
    let k = |i: usize| config.distortion.get(i).copied().unwrap_or(0.0);
    let lens = match config.lens {
        SyntheticLens::BrownConrady => {
            LensModel::BrownConrady(BrownConrady { k1: k(0), k2: k(1), p1: k(2), p2: k(3), k3: k(4) })
        }
        SyntheticLens::KannalaBrandt => {
            LensModel::KannalaBrandt(KannalaBrandt { k1: k(0), k2: k(1), k3: k(2), k4: k(3) })
        }
    };
    CameraModel {
        intrinsics: PinholeIntrinsics {
            fx: f,
            fy: f,
            cx: (f64::from(width) - 1.0) / 2.0,
            cy: (f64::from(height) - 1.0) / 2.0,
        },
        lens,
    }
}

/// Deterministic hash noise in [0, 1) for integer lattice points.
pub(crate) fn hash01(x: i32, y: i32, seed: u32) -> f32 {
    let mut h =
        (x as u32).wrapping_mul(0x8da6_b343) ^ (y as u32).wrapping_mul(0xd816_3841) ^ seed.wrapping_mul(0xcb1a_b31f);
    h ^= h >> 13;
    h = h.wrapping_mul(0x5bd1_e995);
    h ^= h >> 15;
    (h & 0x00ff_ffff) as f32 / 16_777_216.0
}

/// Smooth value noise at `(x, y)` with lattice spacing `cell` px.
fn value_noise(x: f32, y: f32, cell: f32, seed: u32) -> f32 {
    let (gx, gy) = (x / cell, y / cell);
    let (ix, iy) = (gx.floor() as i32, gy.floor() as i32);
    let (fx, fy) = (gx - ix as f32, gy - iy as f32);
    let (sx, sy) = (fx * fx * (3.0 - 2.0 * fx), fy * fy * (3.0 - 2.0 * fy));
    let top = hash01(ix, iy, seed) * (1.0 - sx) + hash01(ix + 1, iy, seed) * sx;
    let bottom = hash01(ix, iy + 1, seed) * (1.0 - sx) + hash01(ix + 1, iy + 1, seed) * sx;
    top * (1.0 - sy) + bottom * sy
}

pub(crate) fn fractal(x: f32, y: f32, cell: f32, seed: u32) -> f32 {
    let mut sum = 0.0;
    let mut amplitude = 0.5;
    let mut c = cell;
    for octave in 0..4 {
        sum += amplitude * value_noise(x, y, c, seed + octave);
        amplitude *= 0.5;
        c *= 0.5;
    }
    sum / 0.9375
}

fn pack_rgba(r: f32, g: f32, b: f32) -> u32 {
    let c = |v: f32| v.clamp(0.0, 255.0) as u32;
    c(r) | c(g) << 8 | c(b) << 16 | 0xff00_0000
}

/// Tissue texture in ideal (undistorted) pixel coordinates, offset so that
/// ideal pixel `(x, y)` is texel `(x - origin_x, y - origin_y)`.
struct Tissue {
    texels: Vec<u32>,
    width: usize,
    origin: (i32, i32),
}

impl Tissue {
    fn generate(min: (i32, i32), max: (i32, i32), scale: f32) -> Self {
        let margin = DRIFT_PX.ceil() as i32 + 2;
        let origin = (min.0 - margin, min.1 - margin);
        let width = (max.0 - min.0 + 2 * margin + 1).max(1) as usize;
        let height = (max.1 - min.1 + 2 * margin + 1).max(1) as usize;
        let mut texels = vec![0u32; width * height];
        // Specular glints: bright spots on the wet surface, seeded so every run looks the same.
        let glint_count = (width * height / 9000).max(4);
        let glints: Vec<(f32, f32, f32)> = (0..glint_count)
            .map(|i| {
                let i = i as i32;
                (
                    hash01(i, 1, 77) * width as f32,
                    hash01(i, 2, 77) * height as f32,
                    (1.5 + 4.0 * hash01(i, 3, 77)) * scale,
                )
            })
            .collect();
        for ty in 0..height {
            for tx in 0..width {
                let (x, y) = (tx as f32 / scale, ty as f32 / scale);
                let base = fractal(x, y, 90.0, 1);
                let fat = value_noise(x, y, 160.0, 9);
                let vessel_field = fractal(x, y, 140.0, 5);
                let vessel = (1.0 - ((vessel_field - 0.5).abs() / 0.018)).max(0.0);
                let fine_vessel = (1.0 - ((fractal(x, y, 45.0, 13) - 0.5).abs() / 0.012)).max(0.0) * 0.6;
                let shade = 0.65 + 0.5 * base;
                let (mut r, mut g, mut b) = (200.0 * shade, 72.0 * shade, 68.0 * shade);
                let fat_mix = ((fat - 0.68) * 6.0).clamp(0.0, 1.0);
                r = r * (1.0 - fat_mix) + 225.0 * fat_mix;
                g = g * (1.0 - fat_mix) + 185.0 * fat_mix;
                b = b * (1.0 - fat_mix) + 110.0 * fat_mix;
                let v = vessel.max(fine_vessel);
                r = r * (1.0 - v) + 110.0 * v;
                g = g * (1.0 - v) + 18.0 * v;
                b = b * (1.0 - v) + 35.0 * v;
                texels[ty * width + tx] = pack_rgba(r, g, b);
            }
        }
        for &(gx, gy, radius) in &glints {
            let reach = (radius * 3.0) as i32;
            for dy in -reach..=reach {
                for dx in -reach..=reach {
                    let (x, y) = (gx as i32 + dx, gy as i32 + dy);
                    if x < 0 || y < 0 || x as usize >= width || y as usize >= height {
                        continue;
                    }
                    let d2 = (dx * dx + dy * dy) as f32 / (radius * radius);
                    let a = (-d2).exp();
                    let t = &mut texels[y as usize * width + x as usize];
                    let [r, g, b, _] = t.to_le_bytes();
                    let mix = |c: u8| f32::from(c) * (1.0 - a) + 255.0 * a;
                    *t = pack_rgba(mix(r), mix(g), mix(b));
                }
            }
        }
        Self { texels, width, origin }
    }
}

/// Everything about the picture that does not change from frame to frame.
struct Tables {
    width: usize,
    height: usize,
    tissue: Tissue,
    /// Per output pixel: texel index of its ideal point at rest, or [`OUTSIDE`].
    texel_at_rest: Vec<u32>,
    /// Per output pixel: brightness 0..=256 (vignette and scope edge).
    vignette: Vec<u16>,
    /// Per output pixel: ideal (undistorted) pixel coordinates.
    ideal: Vec<[f32; 2]>,
    /// Per row: the range of columns inside the scope circle.
    spans: Vec<(usize, usize)>,
    /// Per tile of [`TILE`]² output pixels (row-major, `tiles_across` a
    /// row): the bounds of its pixels' ideal points, `[min_x, min_y, max_x,
    /// max_y]`, or `None` where no pixel has one.
    tile_bounds: Vec<Option<[f32; 4]>>,
    /// Tiles per row of tiles.
    tiles_across: usize,
}

/// Side of the tiles the instrument is culled by, px.
const TILE: usize = 16;

/// The bounds of each tile's ideal points (see [`Tables::tile_bounds`]).
fn tile_bounds(ideal: &[[f32; 2]], w: usize, h: usize) -> (Vec<Option<[f32; 4]>>, usize) {
    let (across, down) = (w.div_ceil(TILE), h.div_ceil(TILE));
    let mut bounds: Vec<Option<[f32; 4]>> = vec![None; across * down];
    for (y, row) in ideal.chunks_exact(w.max(1)).enumerate().take(h) {
        for (x, &[ix, iy]) in row.iter().enumerate() {
            if ix.is_nan() || iy.is_nan() {
                continue;
            }
            let b = bounds[(y / TILE) * across + x / TILE].get_or_insert([ix, iy, ix, iy]);
            *b = [b[0].min(ix), b[1].min(iy), b[2].max(ix), b[3].max(iy)];
        }
    }
    (bounds, across)
}

impl Tables {
    fn build(width: u32, height: u32, camera: &CameraModel) -> Self {
        let (w, h) = (width as usize, height as usize);
        let centre = ((w as f32 - 1.0) / 2.0, (h as f32 - 1.0) / 2.0);
        // A rigid scope's image circle, slightly clipped at top and bottom.
        let radius = 0.53 * h as f32;
        let mut ideal = vec![[f32::NAN; 2]; w * h];
        let mut vignette = vec![0u16; w * h];
        let mut spans = vec![(0, 0); h];
        let (mut min, mut max) = ((i32::MAX, i32::MAX), (i32::MIN, i32::MIN));
        for (y, row_span) in spans.iter_mut().enumerate() {
            let mut span = (usize::MAX, 0);
            for x in 0..w {
                let (dx, dy) = (x as f32 - centre.0, y as f32 - centre.1);
                let r = (dx * dx + dy * dy).sqrt();
                if r >= radius {
                    continue;
                }
                let Ok([xn, yn]) = camera.unproject([x as f64, y as f64]) else { continue };
                let p = camera.pixel_from_normalized(xn, yn);
                let (ix, iy) = (p[0] as f32, p[1] as f32);
                if !ix.is_finite() || !iy.is_finite() || ix.abs() > 1e5 || iy.abs() > 1e5 {
                    continue;
                }
                let i = y * w + x;
                ideal[i] = [ix, iy];
                let edge = ((radius - r) / 3.0).clamp(0.0, 1.0);
                let falloff = 1.0 - 0.6 * (r / radius).powi(2);
                vignette[i] = (256.0 * edge * falloff) as u16;
                min = (min.0.min(ix.floor() as i32), min.1.min(iy.floor() as i32));
                max = (max.0.max(ix.ceil() as i32), max.1.max(iy.ceil() as i32));
                span = (span.0.min(x), x + 1);
            }
            *row_span = if span.0 == usize::MAX { (0, 0) } else { span };
        }
        if min.0 > max.0 {
            (min, max) = ((0, 0), (0, 0));
        }
        let tissue = Tissue::generate(min, max, w as f32 / 1280.0);
        let texel_at_rest = ideal
            .iter()
            .zip(&vignette)
            .map(|(&[ix, iy], &v)| {
                if v == 0 || ix.is_nan() {
                    return OUTSIDE;
                }
                let tx = ix.round() as i32 - tissue.origin.0;
                let ty = iy.round() as i32 - tissue.origin.1;
                (ty as usize * tissue.width + tx as usize) as u32
            })
            .collect();
        let (tile_bounds, tiles_across) = tile_bounds(&ideal, w, h);
        Self { width: w, height: h, tissue, texel_at_rest, vignette, ideal, spans, tile_bounds, tiles_across }
    }
}

fn fill_opaque_black(pixels: &mut [u8]) {
    for pixel in pixels.chunks_exact_mut(4) {
        pixel.copy_from_slice(&[0, 0, 0, 255]);
    }
}

/// The instrument at one moment, in ideal pixel coordinates.
#[derive(Debug, Clone, Copy)]
struct Instrument {
    entry: [f32; 2],
    tip: [f32; 2],
    radius: f32,
}

impl Instrument {
    fn at(time_s: f32, w: f32, h: f32) -> Self {
        let tip = [
            w * 0.5 + w * 0.14 * (TAU * time_s / 6.0).cos() - w * 0.04,
            h * 0.5 + h * 0.16 * (TAU * time_s / 4.5).sin() + h * 0.05,
        ];
        Self { entry: [w * 1.05, h * 1.15], tip, radius: 0.028 * w }
    }

    /// Paints output pixel `i` (RGBA in `out`) where the shaft covers it.
    fn paint(&self, tables: &Tables, i: usize, out: &mut [u8]) {
        let Some((across, along, coverage)) = self.hit(tables.ideal[i]) else { return };
        let v = f32::from(tables.vignette[i]) / 256.0;
        let metal = self.shade(across, along);
        let pixel = &mut out[i * 4..i * 4 + 4];
        for (channel, m) in pixel.iter_mut().zip(metal) {
            *channel = (f32::from(*channel) * (1.0 - coverage) + m * v * coverage).clamp(0.0, 255.0) as u8;
        }
    }

    /// Distance from `p` to the shaft's axis (the segment tip → entry), px.
    fn axis_distance(&self, p: [f32; 2]) -> f32 {
        let (ax, ay) = (self.entry[0] - self.tip[0], self.entry[1] - self.tip[1]);
        let (px, py) = (p[0] - self.tip[0], p[1] - self.tip[1]);
        let along = ((px * ax + py * ay) / (ax * ax + ay * ay)).clamp(0.0, 1.0);
        let (cx, cy) = (px - ax * along, py - ay * along);
        (cx * cx + cy * cy).sqrt()
    }

    /// Whether no point of the ideal-space box `[min_x, min_y, max_x, max_y]`
    /// can hit the shaft: every point lies within half the box's diagonal of
    /// its centre, so its distance to the axis is at least the centre's minus
    /// that ([`Self::hit`] misses at `radius + 1` and beyond).
    fn misses_box(&self, [x0, y0, x1, y1]: [f32; 4]) -> bool {
        let half_diagonal = 0.5 * (x1 - x0).hypot(y1 - y0);
        self.axis_distance([0.5 * (x0 + x1), 0.5 * (y0 + y1)]) - half_diagonal >= self.radius + 1.0
    }

    /// Signed position across the shaft (-1..1) and along it (0 at the tip),
    /// or `None` outside it.
    fn hit(&self, p: [f32; 2]) -> Option<(f32, f32, f32)> {
        let (ax, ay) = (self.entry[0] - self.tip[0], self.entry[1] - self.tip[1]);
        let (px, py) = (p[0] - self.tip[0], p[1] - self.tip[1]);
        let len2 = ax * ax + ay * ay;
        let along = ((px * ax + py * ay) / len2).clamp(0.0, 1.0);
        let (cx, cy) = (px - ax * along, py - ay * along);
        let dist = (cx * cx + cy * cy).sqrt();
        if dist >= self.radius + 1.0 {
            return None;
        }
        let side = (cx * -ay + cy * ax).signum() * dist / self.radius;
        let coverage = (self.radius + 0.5 - dist).clamp(0.0, 1.0);
        Some((side.clamp(-1.0, 1.0), along * len2.sqrt(), coverage))
    }

    fn shade(&self, across: f32, along_px: f32) -> [f32; 3] {
        // A cylinder lit from the scope: Lambert across the shaft plus a specular stripe.
        let lambert = (1.0 - across * across).max(0.0).sqrt();
        let stripe = (-((across + 0.35) / 0.12).powi(2)).exp();
        if along_px < self.radius * 2.2 {
            // Jaws: darker, warmer metal.
            let v = 60.0 + 110.0 * lambert + 140.0 * stripe;
            [v * 1.05, v * 0.95, v * 0.8]
        } else {
            let v = 70.0 + 120.0 * lambert + 150.0 * stripe;
            [v, v * 1.02, v * 1.06]
        }
    }
}

/// The synthetic endoscope source.
pub struct SyntheticEndoscope {
    width: u32,
    height: u32,
    camera: CameraModel,
    instrument: bool,
    clock: SharedClock,
    pacer: Pacer,
    pool: BufferPool,
    tables: Option<Arc<Tables>>,
    first_due_ns: Option<u64>,
    tracked: Option<TrackedView>,
    /// The tissue's kernel where the CPU has AVX2 (the same pixels).
    simd: Option<Avx2>,
}

/// The tracked mode's picture: the phantom seen along the scope's path.
struct TrackedView {
    picture: Arc<PhantomPicture>,
    path: ScopePath,
    video_delay_ns: u64,
    /// Per output pixel, normalized ideal coordinates (built with the tables).
    rays: Option<Arc<Vec<[f32; 2]>>>,
}

impl SyntheticEndoscope {
    /// A `width`×`height` scope at `fps`, paced by `clock`.
    pub fn new(width: u32, height: u32, fps: u32, config: &SyntheticConfig, clock: SharedClock) -> Self {
        Self {
            width,
            height,
            camera: synthetic_camera(width, height, config),
            instrument: config.instrument,
            clock,
            pacer: Pacer::new(fps),
            pool: BufferPool::new(4),
            tables: None,
            first_due_ns: None,
            tracked: None,
            simd: Avx2::detect(),
        }
    }

    /// Tracked mode: the scope sees `picture` from `path` at each frame's
    /// capture time (station clock) minus `video_delay_ns` (a camera whose
    /// picture is older than its stamp), instead of the tissue.
    pub fn with_phantom(mut self, picture: Arc<PhantomPicture>, path: ScopePath, video_delay_ns: u64) -> Self {
        self.tracked = Some(TrackedView { picture, path, video_delay_ns, rays: None });
        self
    }

    /// The camera model the picture is distorted with.
    pub fn camera(&self) -> &CameraModel {
        &self.camera
    }

    /// Renders the picture at `time_s` into an RGBA buffer of `width·height·4` bytes.
    fn render(&self, tables: &Tables, time_s: f32, due_ns: u64, out: &mut [u8]) {
        if let Some(TrackedView { picture, path, video_delay_ns, rays: Some(rays) }) = &self.tracked {
            let view = LensView {
                width: tables.width,
                rays,
                vignette: &tables.vignette,
                spans: &tables.spans,
                focal_px: self.camera.intrinsics.fx as f32,
            };
            picture.render(&view, &path.camera_from_phantom(due_ns.saturating_sub(*video_delay_ns)), out);
            if self.instrument {
                self.draw_instrument(tables, time_s, out);
            }
            return;
        }
        let w = tables.width;
        let tissue = &tables.tissue;
        let drift = (
            (DRIFT_PX * (TAU * time_s / 7.0).sin()).round() as isize,
            (DRIFT_PX * (TAU * time_s / 5.3 + 1.0).sin()).round() as isize,
        );
        let shift = drift.1 * tissue.width as isize + drift.0;
        for (y, row) in out.chunks_exact_mut(w * 4).enumerate().take(tables.height) {
            let (x0, x1) = tables.spans[y];
            fill_opaque_black(&mut row[..x0 * 4]);
            fill_opaque_black(&mut row[x1 * 4..]);
            let base = y * w;
            let texels = &tables.texel_at_rest[base + x0..base + x1];
            let vignette = &tables.vignette[base + x0..base + x1];
            let row = &mut row[x0 * 4..x1 * 4];
            let done = self.simd.map_or(0, |k| k.tissue_row(texels, vignette, &tissue.texels, shift, row));
            let (texels, vignette) = (&texels[done..], &vignette[done..]);
            for ((pixel, &texel), &v) in row[done * 4..].chunks_exact_mut(4).zip(texels).zip(vignette) {
                let c = if texel == OUTSIDE {
                    0
                } else {
                    // The drift margin keeps the shifted index inside the texture.
                    tissue.texels.get((texel as isize + shift) as usize).copied().unwrap_or(0)
                };
                let v = u32::from(v);
                let rb = (((c & 0x00ff_00ff) * v) >> 8) & 0x00ff_00ff;
                let g = (((c & 0x0000_ff00) * v) >> 8) & 0x0000_ff00;
                pixel.copy_from_slice(&(rb | g | 0xff00_0000).to_le_bytes());
            }
        }
        if self.instrument {
            self.draw_instrument(tables, time_s, out);
        }
    }

    /// Distorts an ideal pixel position into the output image.
    fn distorted_pixel(&self, p: [f32; 2]) -> [f32; 2] {
        let PinholeIntrinsics { fx, fy, cx, cy } = self.camera.intrinsics;
        let (xd, yd) = self.camera.lens.distort((f64::from(p[0]) - cx) / fx, (f64::from(p[1]) - cy) / fy);
        let q = self.camera.pixel_from_normalized(xd, yd);
        [q[0] as f32, q[1] as f32]
    }

    fn draw_instrument(&self, tables: &Tables, time_s: f32, out: &mut [u8]) {
        let (w, h) = (tables.width, tables.height);
        let tool = Instrument::at(time_s, w as f32, h as f32);
        // Bounding box in the output: distort points along the shaft's outline.
        let (dx, dy) = (tool.entry[0] - tool.tip[0], tool.entry[1] - tool.tip[1]);
        let len = (dx * dx + dy * dy).sqrt().max(1.0);
        let normal = [-dy / len * tool.radius, dx / len * tool.radius];
        let (mut lo, mut hi) = ([f32::MAX; 2], [f32::MIN; 2]);
        // From the far side of the tip's rounded end to the entry.
        let t0 = -1.5 * tool.radius / len;
        for i in 0..=32 {
            let t = t0 + (1.0 - t0) * i as f32 / 32.0;
            let c = [tool.tip[0] + dx * t, tool.tip[1] + dy * t];
            for s in [-1.5f32, 1.5] {
                let q = self.distorted_pixel([c[0] + normal[0] * s, c[1] + normal[1] * s]);
                lo = [lo[0].min(q[0]), lo[1].min(q[1])];
                hi = [hi[0].max(q[0]), hi[1].max(q[1])];
            }
        }
        let x0 = (lo[0].floor().max(0.0) as usize).min(w);
        let x1 = ((hi[0].ceil() + 2.0).max(0.0) as usize).min(w);
        let y0 = (lo[1].floor().max(0.0) as usize).min(h);
        let y1 = ((hi[1].ceil() + 2.0).max(0.0) as usize).min(h);
        // Whole tiles the shaft cannot reach are skipped (the same pixels either way).
        for tile_y in (y0 / TILE)..y1.div_ceil(TILE) {
            for tile_x in (x0 / TILE)..x1.div_ceil(TILE) {
                match tables.tile_bounds.get(tile_y * tables.tiles_across + tile_x) {
                    Some(Some(bounds)) if !tool.misses_box(*bounds) => {}
                    _ => continue,
                }
                for y in (tile_y * TILE).max(y0)..((tile_y + 1) * TILE).min(y1) {
                    let (s0, s1) = tables.spans[y];
                    let columns = (tile_x * TILE).max(x0).max(s0)..((tile_x + 1) * TILE).min(x1).min(s1);
                    for x in columns {
                        tool.paint(tables, y * w + x, out);
                    }
                }
            }
        }
    }
}

impl FrameSource for SyntheticEndoscope {
    fn describe(&self) -> String {
        if self.tracked.is_some() { "synthetic (tracked phantom)".into() } else { "synthetic".into() }
    }

    fn start(&mut self) -> Result<(), SourceError> {
        if self.tables.is_none() {
            self.tables = Some(Arc::new(Tables::build(self.width, self.height, &self.camera)));
        }
        if let (Some(tracked), Some(tables)) = (&mut self.tracked, &self.tables)
            && tracked.rays.is_none()
        {
            let PinholeIntrinsics { fx, fy, cx, cy } = self.camera.intrinsics;
            let rays = tables
                .ideal
                .iter()
                .map(|&[ix, iy]| [((f64::from(ix) - cx) / fx) as f32, ((f64::from(iy) - cy) / fy) as f32])
                .collect();
            tracked.rays = Some(Arc::new(rays));
        }
        self.pacer.reset();
        Ok(())
    }

    fn next_frame(&mut self, timeout_ns: u64) -> Result<Option<Frame>, SourceError> {
        let Some(tables) = self.tables.clone() else { return Ok(None) };
        let now = self.clock.now_ns();
        let due_ns = match self.pacer.poll(now) {
            Pace::Emit { due_ns, .. } => due_ns,
            Pace::Wait { until_ns } => {
                if until_ns - now > timeout_ns {
                    self.clock.sleep_until_ns(now + timeout_ns);
                    return Ok(None);
                }
                self.clock.sleep_until_ns(until_ns);
                match self.pacer.poll(self.clock.now_ns()) {
                    Pace::Emit { due_ns, .. } => due_ns,
                    Pace::Wait { .. } => return Ok(None),
                }
            }
        };
        let first = *self.first_due_ns.get_or_insert(due_ns);
        let time_s = ((due_ns - first) as f64 / NS_PER_S as f64) as f32;
        let (planes, len) = PixelFormat::Rgba8.packed_layout(self.width, self.height);
        let mut buffer = self.pool.take(len);
        self.render(&tables, time_s, due_ns, buffer.as_mut_slice());
        let now_ns = self.clock.now_ns();
        let wall_ms = self.clock.wall_ms().saturating_sub(now_ns.saturating_sub(due_ns) / 1_000_000);
        let stamp = FrameStamp { sequence: 0, capture_time_ns: due_ns, capture_wall_ms: wall_ms };
        let frame = Frame::new(
            PixelFormat::Rgba8,
            self.width,
            self.height,
            planes,
            Arc::new(buffer),
            stamp,
            FrameContent::Live,
        )?;
        Ok(Some(frame))
    }

    fn stop(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, FakeClock, NS_PER_MS};

    fn source(width: u32, height: u32, fps: u32, clock: Arc<FakeClock>) -> SyntheticEndoscope {
        let mut s = SyntheticEndoscope::new(width, height, fps, &SyntheticConfig::default(), clock);
        s.start().expect("synthetic always starts");
        s
    }

    fn pixel(frame: &Frame, x: usize, y: usize) -> [u8; 4] {
        let at = y * frame.planes()[0].stride + x * 4;
        frame.bytes()[at..at + 4].try_into().expect("4 bytes")
    }

    #[test]
    fn frames_are_paced_by_the_clock() {
        let clock = Arc::new(FakeClock::new(0, 1_700_000_000_000));
        let mut s = source(320, 180, 30, clock.clone());
        let stamps: Vec<u64> = (0..31)
            .map(|_| s.next_frame(NS_PER_S).expect("renders").expect("a frame within 1 s").capture_time_ns)
            .collect();
        assert_eq!(stamps[30] - stamps[0], NS_PER_S, "30 frames at 30 fps span exactly 1 s");
        assert_eq!(clock.now_ns(), NS_PER_S);
        // A frame is not due within 1 ms: nothing comes.
        assert!(s.next_frame(NS_PER_MS).expect("no error").is_none());
    }

    /// Off x86-64 there is no kernel: the scalar loop is all there is.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx2_tissue_gives_the_scalar_pixels() {
        Avx2::required_by_test("the synthetic tissue");
        for (width, height) in [(1280u32, 720u32), (333, 187)] {
            let clock = Arc::new(FakeClock::new(0, 0));
            let mut widest = source(width, height, 30, clock.clone());
            let mut scalar = source(width, height, 30, clock.clone());
            scalar.simd = None;
            // Frames across the drift's range (both signs of the shift).
            for _ in 0..12 {
                let (a, b) = (
                    widest.next_frame(NS_PER_S).expect("renders").expect("frame"),
                    scalar.next_frame(NS_PER_S).expect("renders").expect("frame"),
                );
                assert_eq!(a.capture_time_ns, b.capture_time_ns);
                let first = a.bytes().iter().zip(b.bytes()).position(|(x, y)| x != y);
                assert_eq!(first, None, "{width}x{height} at {} ns: first differing byte", a.capture_time_ns);
                clock.advance_ns(NS_PER_S / 3);
            }
        }
    }

    #[test]
    fn tiles_the_shaft_cannot_reach_are_skipped_without_changing_a_pixel() {
        let clock = Arc::new(FakeClock::new(0, 0));
        let s = source(640, 360, 30, clock);
        let tables = s.tables.clone().expect("started");
        let (w, h) = (tables.width, tables.height);
        for time_s in [0.0f32, 0.7, 1.9, 3.3, 5.1] {
            let mut culled = vec![0u8; w * h * 4];
            s.draw_instrument(&tables, time_s, &mut culled);
            // Every pixel inside the scope, none skipped.
            let tool = Instrument::at(time_s, w as f32, h as f32);
            let mut every = vec![0u8; w * h * 4];
            for (y, &(s0, s1)) in tables.spans.iter().enumerate() {
                for x in s0..s1 {
                    tool.paint(&tables, y * w + x, &mut every);
                }
            }
            let painted = every.chunks_exact(4).filter(|p| p.iter().any(|&c| c != 0)).count();
            assert!(painted > 1000, "at {time_s} s the shaft covers {painted} pixels");
            let differ: Vec<usize> = culled
                .chunks_exact(4)
                .zip(every.chunks_exact(4))
                .enumerate()
                .filter(|(_, (a, b))| a != b)
                .map(|(i, _)| i)
                .collect();
            assert!(
                differ.is_empty(),
                "at {time_s} s the culled drawing differs at {} pixels, first {:?}",
                differ.len(),
                differ.first().map(|i| (i % w, i / w))
            );
        }
    }

    #[test]
    fn the_picture_looks_like_a_scope() {
        let clock = Arc::new(FakeClock::new(0, 0));
        let mut s = source(1280, 720, 60, clock);
        let frame = s.next_frame(NS_PER_S).expect("renders").expect("frame");
        assert_eq!((frame.format(), frame.width(), frame.height()), (PixelFormat::Rgba8, 1280, 720));
        // Corners are outside the scope circle: black.
        for (x, y) in [(0, 0), (1279, 0), (0, 719), (1279, 719)] {
            assert_eq!(pixel(&frame, x, y), [0, 0, 0, 255], "corner ({x}, {y})");
        }
        // The centre region is tissue: red dominates.
        let (mut red, mut n) = (0u32, 0u32);
        for y in (300..420).step_by(7) {
            for x in (520..760).step_by(7) {
                let [r, g, b, _] = pixel(&frame, x, y);
                n += 1;
                red += u32::from(r > g && r > b);
            }
        }
        assert!(red * 10 > n * 6, "{red} of {n} central samples are reddish");
        // The vignette darkens towards the circle's edge.
        let mean = |x0: usize, y0: usize| -> f32 {
            let mut s = 0.0;
            for y in y0..y0 + 20 {
                for x in x0..x0 + 20 {
                    let [r, g, b, _] = pixel(&frame, x, y);
                    s += f32::from(r) + f32::from(g) + f32::from(b);
                }
            }
            s / 400.0
        };
        assert!(mean(630, 350) > mean(300, 350) * 1.2, "centre brighter than the side");
    }

    #[test]
    fn the_instrument_moves_and_the_picture_changes() {
        let clock = Arc::new(FakeClock::new(0, 0));
        let mut s = source(640, 360, 30, clock.clone());
        let a = s.next_frame(NS_PER_S).expect("renders").expect("frame");
        clock.advance_ns(2 * NS_PER_S);
        let b = s.next_frame(NS_PER_S).expect("renders").expect("frame");
        let differing = a.bytes().chunks_exact(4).zip(b.bytes().chunks_exact(4)).filter(|(p, q)| p != q).count();
        assert!(differing > 640 * 360 / 10, "only {differing} pixels changed in 2 s");
        // The instrument is grey metal: find near-neutral bright pixels inside the scope.
        let grey = b
            .bytes()
            .chunks_exact(4)
            .filter(|p| {
                p[0] > 80
                    && (i32::from(p[0]) - i32::from(p[2])).abs() < 30
                    && (i32::from(p[1]) - i32::from(p[2])).abs() < 30
            })
            .count();
        assert!(grey > 2_000, "instrument pixels: {grey}");
    }

    #[test]
    fn the_picture_is_distorted_by_the_configured_lens() {
        // A straight instrument edge bends under barrel distortion: with a strong k1,
        // the rest-position ideal coordinates of the image edge reach well beyond it.
        let config = SyntheticConfig { distortion: vec![-0.35, 0.1, 0.0, 0.0, 0.0], ..Default::default() };
        let camera = synthetic_camera(1280, 720, &config);
        let tables = Tables::build(1280, 720, &camera);
        let right_edge = tables.spans[360].1 - 1;
        let ideal_x = tables.ideal[360 * 1280 + right_edge][0];
        assert!(ideal_x > right_edge as f32 + 20.0, "barrel: ideal {ideal_x} vs distorted {right_edge}");
        let none = SyntheticConfig { distortion: vec![0.0; 5], ..Default::default() };
        let flat = Tables::build(1280, 720, &synthetic_camera(1280, 720, &none));
        let ideal_x = flat.ideal[360 * 1280 + right_edge][0];
        assert!((ideal_x - right_edge as f32).abs() < 0.01, "no distortion: {ideal_x}");
    }

    #[test]
    fn the_tracked_phantom_s_dots_are_where_the_camera_model_projects_them() {
        use super::super::phantom::{FORMAT, PathShape, PhantomFile, PhantomPicture, ScopePath};
        let fiducials = vec![[0.0, 0.0, 0.0], [18.0, -12.0, 0.0], [-20.0, 15.0, 0.0]];
        let file = PhantomFile {
            format: FORMAT.into(),
            width_mm: 140.0,
            height_mm: 110.0,
            texture_seed: 3,
            dot_radius_mm: 2.0,
            ring_radius_mm: 3.5,
            fiducials_mm: fiducials.clone(),
            chessboard: None,
        };
        let path = ScopePath { speed_mm_s: 50.0, radius_mm: 15.0, distance_mm: 90.0, shape: PathShape::Circle };
        let clock = Arc::new(FakeClock::new(1_234_000_000, 0));
        let config = SyntheticConfig { instrument: false, ..Default::default() };
        let mut s = SyntheticEndoscope::new(1280, 720, 30, &config, clock).with_phantom(
            Arc::new(PhantomPicture::new(file)),
            path,
            0,
        );
        assert_eq!(s.describe(), "synthetic (tracked phantom)");
        s.start().expect("starts");
        let frame = s.next_frame(NS_PER_S).expect("renders").expect("frame");
        let camera_from_phantom = path.camera_from_phantom(frame.capture_time_ns).matrix();
        for f in fiducials {
            let q = camera_from_phantom.transform_point3(glam::DVec3::from_array(f));
            let [u, v] = s.camera().project(q.to_array()).expect("in front");
            // Darkness-weighted centroid within the white ring (dot radius 2 mm is about 16 px here).
            let (mut sum, mut sx, mut sy) = (0.0, 0.0, 0.0);
            for y in (v as usize - 20)..=(v as usize + 20) {
                for x in (u as usize - 20)..=(u as usize + 20) {
                    if (x as f64 - u).hypot(y as f64 - v) > 20.0 {
                        continue;
                    }
                    let w = (200.0 - f64::from(pixel(&frame, x, y)[1])).max(0.0);
                    (sum, sx, sy) = (sum + w, sx + w * x as f64, sy + w * y as f64);
                }
            }
            let error = (sx / sum - u).hypot(sy / sum - v);
            assert!(error < 0.3, "dot {f:?}: drawn {error:.3} px from its projection ({u:.1}, {v:.1})");
        }
    }

    #[test]
    fn fisheye_lens_and_1080p_render() {
        let clock = Arc::new(FakeClock::new(0, 0));
        let config = SyntheticConfig {
            lens: SyntheticLens::KannalaBrandt,
            focal_per_width: 0.4,
            distortion: vec![-0.02, 0.003, 0.0, 0.0],
            instrument: true,
            tracked: None,
        };
        let mut s = SyntheticEndoscope::new(1920, 1080, 30, &config, clock);
        s.start().expect("starts");
        let frame = s.next_frame(NS_PER_S).expect("renders").expect("frame");
        assert_eq!((frame.width(), frame.height()), (1920, 1080));
        assert_ne!(pixel(&frame, 960, 540), [0, 0, 0, 255]);
    }
}
