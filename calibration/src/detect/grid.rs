//! Growing a lattice of points from a seed, shared by the pattern detectors.

use std::collections::{HashMap, VecDeque};

pub(crate) fn sub(a: [f64; 2], b: [f64; 2]) -> [f64; 2] {
    [a[0] - b[0], a[1] - b[1]]
}

fn add(a: [f64; 2], b: [f64; 2]) -> [f64; 2] {
    [a[0] + b[0], a[1] + b[1]]
}

pub(crate) fn norm(a: [f64; 2]) -> f64 {
    a[0].hypot(a[1])
}

/// Grows a grid of candidate indices keyed by (i, j) from `seed`: the two
/// nearest, roughly perpendicular neighbours set the axes, and every further
/// point is predicted from its neighbours and snapped to the nearest unused
/// candidate within 30 % of a step.
pub(crate) fn grow(points: &[[f64; 2]], seed: usize) -> Option<HashMap<(i32, i32), usize>> {
    let p0 = points[seed];
    let mut by_distance: Vec<(usize, f64)> =
        points.iter().enumerate().filter(|(i, _)| *i != seed).map(|(i, p)| (i, norm(sub(*p, p0)))).collect();
    by_distance.sort_by(|a, b| a.1.total_cmp(&b.1));
    let (first, d1) = *by_distance.first()?;
    let u = sub(points[first], p0);
    // The nearest neighbour roughly perpendicular to u.
    let (second, _) = *by_distance.iter().take(12).find(|(i, d)| {
        let v = sub(points[*i], p0);
        let cos = (u[0] * v[0] + u[1] * v[1]) / (norm(u) * norm(v));
        cos.abs() < 0.5 && *d < 2.0 * d1
    })?;
    let v = sub(points[second], p0);
    let mut grid: HashMap<(i32, i32), usize> = HashMap::from([((0, 0), seed), ((1, 0), first), ((0, 1), second)]);
    let mut used: Vec<bool> = vec![false; points.len()];
    for &i in grid.values() {
        used[i] = true;
    }
    let mut queue: VecDeque<(i32, i32)> = VecDeque::from([(0, 0), (1, 0), (0, 1)]);
    while let Some((i, j)) = queue.pop_front() {
        let here = points[grid[&(i, j)]];
        for (di, dj) in [(1, 0), (-1, 0), (0, 1), (0, -1)] {
            let target = (i + di, j + dj);
            if grid.contains_key(&target) {
                continue;
            }
            // Step along the direction from the opposite neighbour if known, else from any
            // parallel step elsewhere in the grid nearby, else the seed's basis.
            let step = match grid.get(&(i - di, j - dj)) {
                Some(&back) => sub(here, points[back]),
                None => {
                    let parallel = [(i + dj, j + di), (i - dj, j - di)].iter().find_map(|&(pi, pj)| {
                        let a = grid.get(&(pi, pj))?;
                        let b = grid.get(&(pi + di, pj + dj))?;
                        Some(sub(points[*b], points[*a]))
                    });
                    parallel.unwrap_or(match (di, dj) {
                        (1, 0) => u,
                        (-1, 0) => [-u[0], -u[1]],
                        (0, 1) => v,
                        _ => [-v[0], -v[1]],
                    })
                }
            };
            let predicted = add(here, step);
            let tolerance = 0.3 * norm(step);
            let best = points
                .iter()
                .enumerate()
                .filter(|(k, _)| !used[*k])
                .map(|(k, p)| (k, norm(sub(*p, predicted))))
                .filter(|(_, d)| *d < tolerance)
                .min_by(|a, b| a.1.total_cmp(&b.1));
            if let Some((k, _)) = best {
                used[k] = true;
                grid.insert(target, k);
                queue.push_back(target);
            }
        }
    }
    Some(grid)
}
