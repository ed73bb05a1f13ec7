//! Asymmetric circle grid detection (OpenCV's `CALIB_CB_ASYMMETRIC_GRID`
//! layout: circle (row i, column j) at `((2j + i mod 2)·s, i·s, 0)`).
//!
//! Dark blobs are found by a local-mean threshold and connected components,
//! kept if round and filled like a (projected) circle, and located at their
//! darkness-weighted centroid. In this layout each circle's nearest
//! neighbours are diagonal, so the centres form a square lattice turned by
//! 45°: it is grown like the chessboard grid, then mapped to rows and
//! columns, keeping the one mapping that fits the layout and is right-handed.

use std::collections::HashMap;

use super::grid::{grow, sub};
use super::{DetectError, GrayImage};

/// Dark round blobs: (centroid, area).
fn blobs(image: &GrayImage) -> Vec<([f64; 2], usize)> {
    let (w, h) = (image.width, image.height);
    // Integral image for local means over a window of about a sixteenth of the image.
    let mut integral = vec![0f64; (w + 1) * (h + 1)];
    for y in 0..h {
        let mut row = 0.0;
        for x in 0..w {
            row += f64::from(image.data[y * w + x]);
            integral[(y + 1) * (w + 1) + x + 1] = integral[y * (w + 1) + x + 1] + row;
        }
    }
    let r = (w.max(h) / 32).max(4);
    let local_mean = |x: usize, y: usize| -> f64 {
        let (x0, y0, x1, y1) = (x.saturating_sub(r), y.saturating_sub(r), (x + r + 1).min(w), (y + r + 1).min(h));
        let sum = integral[y1 * (w + 1) + x1] - integral[y0 * (w + 1) + x1] - integral[y1 * (w + 1) + x0]
            + integral[y0 * (w + 1) + x0];
        sum / ((x1 - x0) * (y1 - y0)) as f64
    };
    let darkness: Vec<f32> = (0..w * h).map(|i| (local_mean(i % w, i / w) - f64::from(image.data[i])) as f32).collect();
    let dark: Vec<bool> = darkness.iter().map(|d| *d > 15.0).collect();
    let mut seen = vec![false; w * h];
    let mut out = Vec::new();
    for start in 0..w * h {
        if !dark[start] || seen[start] {
            continue;
        }
        let mut stack = vec![start];
        seen[start] = true;
        let (mut area, mut sx, mut sy, mut sw) = (0usize, 0.0, 0.0, 0.0);
        let (mut min_x, mut max_x, mut min_y, mut max_y) = (w, 0, h, 0);
        while let Some(i) = stack.pop() {
            let (x, y) = (i % w, i / w);
            area += 1;
            let weight = f64::from(darkness[i]);
            sx += weight * x as f64;
            sy += weight * y as f64;
            sw += weight;
            (min_x, max_x, min_y, max_y) = (min_x.min(x), max_x.max(x), min_y.min(y), max_y.max(y));
            let neighbours = [(x.wrapping_sub(1), y), (x + 1, y), (x, y.wrapping_sub(1)), (x, y + 1)];
            for (nx, ny) in neighbours {
                if nx < w && ny < h && dark[ny * w + nx] && !seen[ny * w + nx] {
                    seen[ny * w + nx] = true;
                    stack.push(ny * w + nx);
                }
            }
        }
        let (bw, bh) = (max_x - min_x + 1, max_y - min_y + 1);
        let touches_border = min_x == 0 || min_y == 0 || max_x == w - 1 || max_y == h - 1;
        let fill = area as f64 / (bw * bh) as f64;
        let aspect = bw.max(bh) as f64 / bw.min(bh) as f64;
        // A disc fills π/4 ≈ 0.785 of its box; a projected disc (ellipse) likewise.
        if !touches_border && area >= 12 && area * 20 < w * h && aspect < 4.0 && (0.6..0.95).contains(&fill) && sw > 0.0
        {
            out.push(([sx / sw, sy / sw], area));
        }
    }
    out
}

/// Finds the circles of an asymmetric grid with `cols` circles per row and
/// `rows` rows; returns their centres row by row (OpenCV's order).
pub fn find_asymmetric_circles(image: &GrayImage, cols: usize, rows: usize) -> Result<Vec<[f64; 2]>, DetectError> {
    let needed = cols * rows;
    let mut found = blobs(image);
    if found.len() < needed {
        return Err(DetectError::TooFewCorners { found: found.len(), needed });
    }
    // The pattern's circles share one size: keep those near the median area.
    let mut areas: Vec<usize> = found.iter().map(|b| b.1).collect();
    areas.sort_unstable();
    let median = areas[areas.len() / 2] as f64;
    found.retain(|b| (b.1 as f64 / median - 1.0).abs() < 0.6);
    let points: Vec<[f64; 2]> = found.iter().map(|b| b.0).collect();
    let mut last_reason = "no seed grew a lattice".to_string();
    for seed in 0..points.len().min(needed) {
        let Some(lattice) = grow(&points, seed) else { continue };
        if lattice.len() != needed {
            last_reason = format!("grew a lattice of {} circles", lattice.len());
            continue;
        }
        // The 8 ways to read lattice (p, q) as layout (X, Y) with X = 2j + i mod 2 and Y = i.
        let mut fits = Vec::new();
        for swap in [false, true] {
            for sx in [1i32, -1] {
                for sy in [1i32, -1] {
                    let mapped: HashMap<(i32, i32), usize> = lattice
                        .iter()
                        .map(|(&(p, q), &k)| {
                            let (a, b) = if swap { (p - q, p + q) } else { (p + q, p - q) };
                            ((sx * a, sy * b), k)
                        })
                        .collect();
                    let min_y = mapped.keys().map(|k| k.1).min().unwrap_or(0);
                    let min_x = mapped.keys().filter(|k| k.1 == min_y).map(|k| k.0).min().unwrap_or(0);
                    let layout = (0..rows).flat_map(|i| (0..cols).map(move |j| (i, j)));
                    let ordered: Option<Vec<[f64; 2]>> = layout
                        .map(|(i, j)| {
                            let key = (min_x + (2 * j + i % 2) as i32, min_y + i as i32);
                            mapped.get(&key).map(|&k| points[k])
                        })
                        .collect();
                    if let Some(ordered) = ordered {
                        // Right-handed: the column direction × the row direction > 0 in y-down images.
                        let dx = sub(ordered[1], ordered[0]);
                        let dy = sub(ordered[2 * cols], ordered[0]);
                        if dx[0] * dy[1] - dx[1] * dy[0] > 0.0 {
                            fits.push(ordered);
                        }
                    }
                }
            }
        }
        match fits.len() {
            1 => return Ok(fits.remove(0)),
            0 => last_reason = "the lattice does not match the asymmetric layout".into(),
            n => last_reason = format!("{n} readings of the lattice fit; the grid size is ambiguous"),
        }
    }
    Err(DetectError::NoGrid { cols, rows, reason: last_reason })
}
