//! Chessboard inner-corner detection.
//!
//! 1. X-corner response (ChESS, Bennett & Lasenby, "ChESS – Quick and robust
//!    detection of chess-board features", CVIU 118, 2014) on rings of two
//!    radii, non-maximum suppression.
//! 2. Grid growing from a central seed: each next corner is predicted from
//!    its neighbours (so perspective and lens distortion bend the grid
//!    smoothly) and snapped to the nearest unused candidate.
//! 3. The grid must be complete and exactly `cols × rows`; its axes are
//!    oriented so the object frame is right-handed as seen by the camera and
//!    the first corner is the one nearest the image's top-left corner.
//! 4. Sub-pixel refinement ([`super::subpixel`]).

use super::grid::{grow, norm, sub};
use super::subpixel::refine_corner;
use super::{DetectError, GrayImage};

/// Ring sample offsets for radius `r` (16 points, equally spaced).
fn ring(r: f64) -> [(isize, isize); 16] {
    std::array::from_fn(|n| {
        let a = std::f64::consts::TAU * n as f64 / 16.0;
        ((r * a.cos()).round() as isize, (r * a.sin()).round() as isize)
    })
}

/// ChESS response at every pixel for ring radius `r` (0 near the border).
fn chess_response(image: &GrayImage, r: f64) -> Vec<f32> {
    let offsets = ring(r);
    let margin = r.ceil() as usize + 1;
    let (w, h) = (image.width, image.height);
    let mut out = vec![0f32; w * h];
    if w <= 2 * margin || h <= 2 * margin {
        return out;
    }
    for y in margin..h - margin {
        for x in margin..w - margin {
            let v: [f32; 16] = std::array::from_fn(|n| {
                image.data[(y as isize + offsets[n].1) as usize * w + (x as isize + offsets[n].0) as usize]
            });
            let mut sum = 0.0;
            for n in 0..4 {
                sum += ((v[n] + v[n + 8]) - (v[n + 4] + v[n + 12])).abs();
            }
            let mut diff = 0.0;
            for n in 0..8 {
                diff += (v[n] - v[n + 8]).abs();
            }
            let ring_mean = v.iter().sum::<f32>() / 16.0;
            let mut local = 0.0;
            for dy in -1..=1isize {
                for dx in -1..=1isize {
                    local += image.data[(y as isize + dy) as usize * w + (x as isize + dx) as usize];
                }
            }
            let mean_diff = (ring_mean - local / 9.0).abs();
            out[y * w + x] = sum - diff - 16.0 * mean_diff;
        }
    }
    out
}

/// Corner candidates: local maxima of the response, strongest first.
fn candidates(image: &GrayImage) -> Vec<([f64; 2], f32)> {
    let (w, h) = (image.width, image.height);
    let small = chess_response(image, 4.0);
    let large = chess_response(image, 7.0);
    let response: Vec<f32> = small.iter().zip(&large).map(|(a, b)| a.max(*b)).collect();
    let max = response.iter().copied().fold(0.0f32, f32::max);
    let threshold = (0.12 * max).max(20.0);
    let radius = 4isize;
    let mut out = Vec::new();
    for y in 0..h {
        for x in 0..w {
            let v = response[y * w + x];
            if v < threshold {
                continue;
            }
            let mut is_max = true;
            'window: for dy in -radius..=radius {
                for dx in -radius..=radius {
                    let (nx, ny) = (x as isize + dx, y as isize + dy);
                    if (dx, dy) == (0, 0) || nx < 0 || ny < 0 || nx >= w as isize || ny >= h as isize {
                        continue;
                    }
                    let n = response[ny as usize * w + nx as usize];
                    // Ties break towards the earlier pixel, so a plateau yields one maximum.
                    if n > v || (n == v && (dy < 0 || (dy == 0 && dx < 0))) {
                        is_max = false;
                        break 'window;
                    }
                }
            }
            if is_max {
                out.push(([x as f64, y as f64], v));
            }
        }
    }
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}

/// Finds the `cols × rows` inner corners of a chessboard; returns them row by
/// row (column index fastest), refined to sub-pixel accuracy.
pub fn find_chessboard(image: &GrayImage, cols: usize, rows: usize) -> Result<Vec<[f64; 2]>, DetectError> {
    let needed = cols * rows;
    let found = candidates(image);
    if found.len() < needed {
        return Err(DetectError::TooFewCorners { found: found.len(), needed });
    }
    // Only the strongest few times the pattern size: weak maxima are texture, not corners.
    let points: Vec<[f64; 2]> = found.iter().take(needed * 4).map(|c| c.0).collect();
    let no_grid = |reason: String| DetectError::NoGrid { cols, rows, reason };
    // Try seeds from the strongest candidates until one grows the full grid.
    let mut last_reason = String::from("no seed grew a grid");
    for seed in 0..points.len().min(needed) {
        let Some(grid) = grow(&points, seed) else { continue };
        let (min_i, max_i) = (grid.keys().map(|k| k.0).min().unwrap_or(0), grid.keys().map(|k| k.0).max().unwrap_or(0));
        let (min_j, max_j) = (grid.keys().map(|k| k.1).min().unwrap_or(0), grid.keys().map(|k| k.1).max().unwrap_or(0));
        let (extent_i, extent_j) = ((max_i - min_i + 1) as usize, (max_j - min_j + 1) as usize);
        let complete = grid.len() == extent_i * extent_j;
        let matches = (extent_i, extent_j) == (cols, rows) || (extent_i, extent_j) == (rows, cols);
        if !complete || !matches {
            last_reason = format!("grew a {extent_i}x{extent_j} grid with {} corners", grid.len());
            continue;
        }
        // Index (column c, row r) → candidate, with the column axis along the `cols` side.
        let transposed = (extent_i, extent_j) != (cols, rows);
        let at = |c: usize, r: usize| -> [f64; 2] {
            let key =
                if transposed { (min_i + r as i32, min_j + c as i32) } else { (min_i + c as i32, min_j + r as i32) };
            points[grid[&key]]
        };
        let mut ordered: Vec<[f64; 2]> =
            (0..rows).flat_map(|r| (0..cols).map(move |c| (c, r))).map(|(c, r)| at(c, r)).collect();
        // Right-handed object frame (x along columns, y along rows, z away from the camera):
        // in y-down image coordinates x × y must be positive.
        let (c0, r0) = (cols / 2, rows / 2);
        let origin = ordered[r0 * cols + c0.min(cols - 2)];
        let dx = sub(ordered[r0 * cols + c0.min(cols - 2) + 1], origin);
        let dy = sub(
            ordered[(r0.min(rows - 2) + 1) * cols + c0.min(cols - 2)],
            ordered[r0.min(rows - 2) * cols + c0.min(cols - 2)],
        );
        if dx[0] * dy[1] - dx[1] * dy[0] < 0.0 {
            // Reverse the rows.
            ordered = (0..rows).rev().flat_map(|r| ordered[r * cols..(r + 1) * cols].to_vec()).collect();
        }
        // Of the two orderings related by a half turn, start nearest the image's top-left.
        let first = ordered[0];
        let last = ordered[needed - 1];
        if first[0] + first[1] > last[0] + last[1] {
            ordered.reverse();
        }
        let spacing = norm(dx).min(norm(dy));
        let half_window = ((spacing * 0.3).round() as usize).clamp(2, 10);
        return Ok(ordered.into_iter().map(|p| refine_corner(image, p, half_window, 40, 1e-3)).collect());
    }
    Err(no_grid(last_reason))
}
