//! Temporal calibration: the camera's delay against the tracker's
//! (`[tracking] video_minus_tracker_latency_ms`), from a few seconds of the
//! scope wiggled over a still scene. The image's own motion (the global
//! shift of its centre between consecutive frames) is matched against the
//! motion the tracker predicts for the same spot (a model point near the
//! optical axis, projected at each tracker sample's time); the lag that best
//! aligns the two velocity series is the delay. The same idea as PLUS's
//! temporal calibration of tracked ultrasound (Lasso et al.), with image
//! motion in place of the ultrasound line.
//!
//! Sans IO: frames' luminance and timed predictions in, the delay out. Times
//! are station-clock ns; a frame's time is its capture stamp.

use thiserror::Error;

use crate::frame::{Frame, PixelFormat};

/// Luminance, downscaled by [`DOWNSCALE`] in each direction.
#[derive(Debug, Clone, PartialEq)]
pub struct Gray {
    /// Width, px (downscaled).
    pub width: usize,
    /// Height, px (downscaled).
    pub height: usize,
    /// Row-major luminance, 0..=255.
    pub pixels: Vec<f32>,
}

/// Downscaling of frames before matching (each side).
pub const DOWNSCALE: usize = 4;
/// The largest shift searched between consecutive frames, downscaled px.
pub const MAX_SHIFT: i32 = 12;

impl Gray {
    /// The frame's luminance (green of RGBA, Y of I420/NV12), averaged over
    /// `DOWNSCALE`² blocks.
    pub fn of_frame(frame: &Frame) -> Self {
        let (w, h) = (frame.width() as usize / DOWNSCALE, frame.height() as usize / DOWNSCALE);
        let plane = frame.planes()[0];
        let bytes = frame.bytes();
        let (step, channel) = match frame.format() {
            PixelFormat::Rgba8 => (4, 1),
            _ => (1, 0),
        };
        let mut pixels = vec![0.0f32; w * h];
        for (y, row) in pixels.chunks_exact_mut(w.max(1)).enumerate().take(h) {
            for (x, out) in row.iter_mut().enumerate() {
                let mut sum = 0u32;
                for dy in 0..DOWNSCALE {
                    let line = plane.offset + (y * DOWNSCALE + dy) * plane.stride;
                    for dx in 0..DOWNSCALE {
                        sum += u32::from(bytes.get(line + (x * DOWNSCALE + dx) * step + channel).copied().unwrap_or(0));
                    }
                }
                *out = sum as f32 / (DOWNSCALE * DOWNSCALE) as f32;
            }
        }
        Self { width: w, height: h, pixels }
    }
}

/// How far the picture's centre moved from `previous` to `current`, full-size
/// px (content displacement: `current(x + shift) = previous(x)`), by the least
/// mean absolute difference over the central half of the frame, refined to
/// sub-pixel by a parabola; `None` when the frames differ in size or the
/// best shift is at the edge of the search (faster than it can follow).
pub fn image_shift(previous: &Gray, current: &Gray) -> Option<[f64; 2]> {
    if previous.width != current.width || previous.height != current.height {
        return None;
    }
    let (w, h) = (previous.width as i32, previous.height as i32);
    let (x0, x1, y0, y1) = (w / 4, 3 * w / 4, h / 4, 3 * h / 4);
    if x0 < MAX_SHIFT || y0 < MAX_SHIFT {
        return None;
    }
    let side = (2 * MAX_SHIFT + 1) as usize;
    let mut cost = vec![0.0f64; side * side];
    for dy in -MAX_SHIFT..=MAX_SHIFT {
        for dx in -MAX_SHIFT..=MAX_SHIFT {
            let mut sum = 0.0f64;
            for y in y0..y1 {
                let p = &previous.pixels[(y * w) as usize..][..w as usize];
                let c = &current.pixels[((y + dy) * w) as usize..][..w as usize];
                for x in x0..x1 {
                    sum += f64::from((c[(x + dx) as usize] - p[x as usize]).abs());
                }
            }
            cost[((dy + MAX_SHIFT) as usize) * side + (dx + MAX_SHIFT) as usize] = sum;
        }
    }
    let best = (0..cost.len()).min_by(|a, b| cost[*a].total_cmp(&cost[*b]))?;
    let (by, bx) = (best / side, best % side);
    if bx == 0 || by == 0 || bx == side - 1 || by == side - 1 {
        return None;
    }
    let parabola = |minus: f64, centre: f64, plus: f64| {
        let curvature = minus - 2.0 * centre + plus;
        if curvature > 0.0 { 0.5 * (minus - plus) / curvature } else { 0.0 }
    };
    let at = |x: usize, y: usize| cost[y * side + x];
    let fx = bx as f64 + parabola(at(bx - 1, by), at(bx, by), at(bx + 1, by)) - f64::from(MAX_SHIFT);
    let fy = by as f64 + parabola(at(bx, by - 1), at(bx, by), at(bx, by + 1)) - f64::from(MAX_SHIFT);
    Some([fx * DOWNSCALE as f64, fy * DOWNSCALE as f64])
}

/// Velocities (px/s) at the midpoints of consecutive `(time_ns, position_px)`.
pub fn velocities(positions: &[(u64, [f64; 2])]) -> Vec<(u64, [f64; 2])> {
    positions
        .windows(2)
        .filter_map(|w| {
            let (t0, a) = w[0];
            let (t1, b) = w[1];
            let dt = t1.checked_sub(t0).filter(|d| *d > 0)? as f64 / 1e9;
            Some((t0 + (t1 - t0) / 2, [(b[0] - a[0]) / dt, (b[1] - a[1]) / dt]))
        })
        .collect()
}

/// The delay found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DelayEstimate {
    /// The camera's delay minus the tracker's, ns (positive: the picture is
    /// older than its stamp says, relative to the poses).
    pub video_minus_tracker_ns: i64,
    /// Normalized correlation of the aligned velocities (1: identical up to scale).
    pub correlation: f64,
    /// Image velocities used.
    pub samples: usize,
}

/// Why no delay could be found.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum TemporalError {
    /// Too few frames or poses overlap.
    #[error("only {samples} image motions overlap the tracker's poses; wiggle the scope for a few seconds")]
    TooFew {
        /// Samples that overlapped.
        samples: usize,
    },
    /// The image and the tracker do not move together at any lag.
    #[error(
        "the picture's motion does not follow the tracker's (best correlation {correlation:.2}): is the model's pose chain right, and the scene still?"
    )]
    NoMatch {
        /// The best correlation.
        correlation: f64,
    },
}

fn interpolate(series: &[(u64, [f64; 2])], time_ns: i64) -> Option<[f64; 2]> {
    if time_ns < 0 {
        return None;
    }
    let t = time_ns as u64;
    let after = series.partition_point(|(s, _)| *s <= t);
    let (t0, a) = *series.get(after.checked_sub(1)?)?;
    let (t1, b) = *series.get(after)?;
    let f = (t - t0) as f64 / (t1 - t0).max(1) as f64;
    Some([a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f])
}

/// Normalized correlation of `image` against `tracker` shifted by `lag_ns`
/// (the image at `t` against the tracker at `t - lag`), and the samples used.
fn correlation(image: &[(u64, [f64; 2])], tracker: &[(u64, [f64; 2])], lag_ns: i64) -> (f64, usize) {
    let (mut dot, mut ii, mut tt, mut n) = (0.0, 0.0, 0.0, 0);
    for (t, v) in image {
        let Some(p) = interpolate(tracker, *t as i64 - lag_ns) else { continue };
        dot += v[0] * p[0] + v[1] * p[1];
        ii += v[0] * v[0] + v[1] * v[1];
        tt += p[0] * p[0] + p[1] * p[1];
        n += 1;
    }
    let norm = (ii * tt).sqrt();
    (if norm > 0.0 { dot / norm } else { 0.0 }, n)
}

/// The lag within ±`max_delay_ns` (1 ms steps, then a parabola through the
/// peak) at which the image velocities best match the tracker's predicted
/// ones.
pub fn estimate_delay(
    image: &[(u64, [f64; 2])],
    tracker: &[(u64, [f64; 2])],
    max_delay_ns: u64,
) -> Result<DelayEstimate, TemporalError> {
    const STEP_NS: i64 = 1_000_000;
    let steps = (max_delay_ns as i64 / STEP_NS).max(1);
    let scores: Vec<(i64, f64, usize)> = (-steps..=steps)
        .map(|k| {
            let (c, n) = correlation(image, tracker, k * STEP_NS);
            (k * STEP_NS, c, n)
        })
        .collect();
    let most = scores.iter().map(|s| s.2).max().unwrap_or(0);
    // Lags where most samples overlap; the ends of the recording do not decide.
    let fair: Vec<&(i64, f64, usize)> = scores.iter().filter(|s| s.2 * 10 >= most * 9).collect();
    let Some(best) = fair.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1)) else {
        return Err(TemporalError::TooFew { samples: 0 });
    };
    if best.2 < 20 {
        return Err(TemporalError::TooFew { samples: best.2 });
    }
    if best.1 < 0.8 {
        return Err(TemporalError::NoMatch { correlation: best.1 });
    }
    let index = scores.iter().position(|s| s.0 == best.0).unwrap_or(0);
    let refined = match (index.checked_sub(1).and_then(|i| scores.get(i)), scores.get(index + 1)) {
        (Some(minus), Some(plus)) => {
            let curvature = minus.1 - 2.0 * best.1 + plus.1;
            if curvature < 0.0 { 0.5 * (minus.1 - plus.1) / curvature } else { 0.0 }
        }
        _ => 0.0,
    };
    Ok(DelayEstimate {
        video_minus_tracker_ns: best.0 + (refined.clamp(-1.0, 1.0) * STEP_NS as f64) as i64,
        correlation: best.1,
        samples: best.2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wiggle(t_s: f64) -> [f64; 2] {
        [40.0 * (std::f64::consts::TAU * 1.3 * t_s).sin(), 25.0 * (std::f64::consts::TAU * 2.1 * t_s + 0.4).sin()]
    }

    #[test]
    fn a_known_lag_is_found_to_a_fraction_of_a_millisecond() {
        let delay_s = 0.037;
        // Tracker: positions at 60 Hz. Image: the same motion 37 ms late, at 30 fps, scaled and as shifts.
        let tracker: Vec<(u64, [f64; 2])> =
            (0..300).map(|i| (1_000_000_000 + i * 16_666_667, wiggle(1.0 + i as f64 / 60.0))).collect();
        let frames: Vec<(u64, [f64; 2])> = (0..150)
            .map(|i| {
                let t = 1.0 + i as f64 / 30.0;
                let p = wiggle(t - delay_s);
                ((t * 1e9) as u64, [3.0 * p[0], 3.0 * p[1]])
            })
            .collect();
        let found = estimate_delay(&velocities(&frames), &velocities(&tracker), 200_000_000).expect("found");
        let error_ms = (found.video_minus_tracker_ns as f64 / 1e6 - 37.0).abs();
        assert!(error_ms < 0.5, "{found:?}");
        assert!(found.correlation > 0.99);
    }

    #[test]
    fn unrelated_motion_is_refused_in_words() {
        let tracker: Vec<(u64, [f64; 2])> = (0..300).map(|i| (i * 16_666_667, wiggle(i as f64 / 60.0))).collect();
        let image: Vec<(u64, [f64; 2])> = (0..150)
            .map(|i| (i * 33_333_333, [((i * 7919) % 13) as f64 - 6.0, ((i * 104_729) % 11) as f64 - 5.0]))
            .collect();
        let result = estimate_delay(&image, &velocities(&tracker), 200_000_000);
        assert!(matches!(result, Err(TemporalError::NoMatch { .. })), "{result:?}");
        assert!(matches!(estimate_delay(&image[..5], &tracker, 200_000_000), Err(TemporalError::TooFew { .. })));
    }

    #[test]
    fn a_shifted_picture_is_measured_to_a_fraction_of_a_pixel() {
        let (w, h) = (160usize, 96usize);
        // Smooth noise (no period a wrong shift could match).
        let texture =
            |x: f64, y: f64| 255.0 * f64::from(crate::source::synthetic::fractal(x as f32, y as f32, 12.0, 5));
        let gray = |sx: f64, sy: f64| Gray {
            width: w,
            height: h,
            pixels: (0..w * h).map(|i| texture((i % w) as f64 - sx, (i / w) as f64 - sy) as f32).collect(),
        };
        let shift = image_shift(&gray(0.0, 0.0), &gray(2.3, -1.6)).expect("within the search");
        let expected = [2.3 * DOWNSCALE as f64, -1.6 * DOWNSCALE as f64];
        assert!((shift[0] - expected[0]).abs() < 0.5 && (shift[1] - expected[1]).abs() < 0.5, "{shift:?}");
    }
}
