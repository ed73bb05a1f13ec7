//! Ray casts against a mesh's surface, for marks that stick to the anatomy:
//! where a viewer's pixel ray first meets a model (lifting a point onto it),
//! and whether anything of a model lies between the camera and a point on it
//! (drawing the point as hidden).
//!
//! A bounding-volume hierarchy over the triangles (axis-aligned boxes, split
//! at the median of the longest axis of the centroids, at most
//! [`LEAF_TRIANGLES`] per leaf), built once per mesh (lazily, see
//! [`crate::scene::Mesh::surface`]); rays against triangles by Möller and
//! Trumbore ("Fast, minimum storage ray–triangle intersection", 1997), both
//! faces (a mark may be drawn on the inside of a cavity). Coordinates are the
//! mesh's own (mm), in f32 like the mesh; a ray's `t` is in units of its
//! direction's length.

use glam::Vec3;

/// Most triangles in a leaf.
pub const LEAF_TRIANGLES: usize = 4;

/// One node: a box and either two children or a run of triangles.
#[derive(Debug, Clone, PartialEq)]
struct Node {
    min: Vec3,
    max: Vec3,
    /// Leaf: the first of its `count` entries of `order`; inner: the left child.
    first: u32,
    /// Triangles in a leaf; 0 for an inner node.
    count: u32,
    /// The right child of an inner node.
    right: u32,
}

/// The hierarchy of one mesh.
#[derive(Debug, Clone, PartialEq)]
pub struct SurfaceBvh {
    nodes: Vec<Node>,
    /// Triangle numbers in leaf order.
    order: Vec<u32>,
    /// The triangles' corners, in triangle order.
    triangles: Vec<[Vec3; 3]>,
}

/// Where a ray meets the surface.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SurfaceHit {
    /// Along the ray, in units of its direction's length.
    pub t: f32,
    /// The triangle hit.
    pub triangle: u32,
}

fn bounds(points: impl Iterator<Item = Vec3>) -> (Vec3, Vec3) {
    points.fold((Vec3::splat(f32::INFINITY), Vec3::splat(f32::NEG_INFINITY)), |(lo, hi), p| (lo.min(p), hi.max(p)))
}

impl SurfaceBvh {
    /// The hierarchy over `positions` and the triangle list `indices`
    /// (checked by `Mesh::new`: indices in range, finite positions).
    pub fn build(positions: &[[f32; 3]], indices: &[u32]) -> Self {
        let triangles: Vec<[Vec3; 3]> = indices
            .chunks_exact(3)
            .map(|t| [0, 1, 2].map(|k| Vec3::from_array(positions.get(t[k] as usize).copied().unwrap_or([0.0; 3]))))
            .collect();
        let centroids: Vec<Vec3> = triangles.iter().map(|t| (t[0] + t[1] + t[2]) / 3.0).collect();
        let mut order: Vec<u32> = (0..triangles.len() as u32).collect();
        let mut nodes = Vec::with_capacity(2 * triangles.len() / LEAF_TRIANGLES + 1);
        if !triangles.is_empty() {
            Self::split(&triangles, &centroids, &mut order, 0, triangles.len(), &mut nodes);
        }
        Self { nodes, order, triangles }
    }

    /// Builds the node for `order[first..first + count]`, returns its index.
    fn split(
        triangles: &[[Vec3; 3]],
        centroids: &[Vec3],
        order: &mut [u32],
        first: usize,
        count: usize,
        nodes: &mut Vec<Node>,
    ) -> u32 {
        let run = &mut order[first..first + count];
        let (min, max) = bounds(run.iter().flat_map(|&t| triangles[t as usize]));
        let index = nodes.len() as u32;
        nodes.push(Node { min, max, first: first as u32, count: count as u32, right: 0 });
        if count <= LEAF_TRIANGLES {
            return index;
        }
        let (lo, hi) = bounds(run.iter().map(|&t| centroids[t as usize]));
        let extent = hi - lo;
        let axis = if extent.x >= extent.y && extent.x >= extent.z {
            0
        } else if extent.y >= extent.z {
            1
        } else {
            2
        };
        let half = count / 2;
        run.select_nth_unstable_by(half, |a, b| centroids[*a as usize][axis].total_cmp(&centroids[*b as usize][axis]));
        let left = Self::split(triangles, centroids, order, first, half, nodes);
        let right = Self::split(triangles, centroids, order, first + half, count - half, nodes);
        nodes[index as usize] = Node { min, max, first: left, count: 0, right };
        index
    }

    /// Triangles in the mesh.
    pub fn triangle_count(&self) -> usize {
        self.triangles.len()
    }

    /// The nearest hit of the ray `origin + t·direction` with `t` in
    /// `(t_min, t_max)`, if any.
    pub fn first_hit(&self, origin: Vec3, direction: Vec3, t_min: f32, t_max: f32) -> Option<SurfaceHit> {
        let mut best: Option<SurfaceHit> = None;
        self.walk(origin, direction, t_min, t_max, |hit| {
            if best.is_none_or(|b| hit.t < b.t) {
                best = Some(hit);
            }
            false
        });
        best
    }

    /// Whether the ray meets the surface anywhere with `t` in `(t_min, t_max)`
    /// (stops at the first hit found).
    pub fn any_hit(&self, origin: Vec3, direction: Vec3, t_min: f32, t_max: f32) -> bool {
        let mut found = false;
        self.walk(origin, direction, t_min, t_max, |_| {
            found = true;
            true
        });
        found
    }

    /// Visits every hit in `(t_min, t_max)` (the bound shrinks to the nearest
    /// one so far) until `visit` returns true.
    fn walk(
        &self,
        origin: Vec3,
        direction: Vec3,
        t_min: f32,
        mut t_max: f32,
        mut visit: impl FnMut(SurfaceHit) -> bool,
    ) {
        if self.nodes.is_empty() || !(origin.is_finite() && direction.is_finite()) {
            return;
        }
        let inverse = direction.recip();
        let mut stack: Vec<u32> = Vec::with_capacity(64);
        stack.push(0);
        while let Some(index) = stack.pop() {
            let node = &self.nodes[index as usize];
            if !slab_hit(node.min, node.max, origin, inverse, t_min, t_max) {
                continue;
            }
            if node.count == 0 {
                stack.push(node.right);
                stack.push(node.first);
                continue;
            }
            let first = node.first as usize;
            for &triangle in &self.order[first..first + node.count as usize] {
                let Some(t) = intersect(&self.triangles[triangle as usize], origin, direction) else { continue };
                if t > t_min && t < t_max {
                    if visit(SurfaceHit { t, triangle }) {
                        return;
                    }
                    t_max = t;
                }
            }
        }
    }
}

/// Whether the ray enters the box `[min, max]` within `(t_min, t_max)`
/// (the slab test; `inverse` is 1/direction, infinities included).
fn slab_hit(min: Vec3, max: Vec3, origin: Vec3, inverse: Vec3, t_min: f32, t_max: f32) -> bool {
    let a = (min - origin) * inverse;
    let b = (max - origin) * inverse;
    // 0 · ∞ is NaN where the ray lies in a slab's plane: max/min ignore it.
    let near = a.min(b).max_element().max(t_min);
    let far = a.max(b).min_element().min(t_max);
    near <= far * (1.0 + 4.0 * f32::EPSILON) + 1e-6
}

/// Möller–Trumbore: `t` where the ray meets the triangle (either face).
fn intersect(triangle: &[Vec3; 3], origin: Vec3, direction: Vec3) -> Option<f32> {
    let edge1 = triangle[1] - triangle[0];
    let edge2 = triangle[2] - triangle[0];
    let p = direction.cross(edge2);
    let determinant = edge1.dot(p);
    if determinant.abs() < 1e-12 {
        return None;
    }
    let inverse = 1.0 / determinant;
    let s = origin - triangle[0];
    let u = s.dot(p) * inverse;
    if !(-1e-6..=1.0 + 1e-6).contains(&u) {
        return None;
    }
    let q = s.cross(edge1);
    let v = direction.dot(q) * inverse;
    if v < -1e-6 || u + v > 1.0 + 1e-6 {
        return None;
    }
    Some(edge2.dot(q) * inverse)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `n`×`n` grid of squares of `step` mm in the plane z = `z`.
    fn grid(n: u32, step: f32, z: f32) -> (Vec<[f32; 3]>, Vec<u32>) {
        let mut positions = Vec::new();
        for j in 0..=n {
            for i in 0..=n {
                positions.push([i as f32 * step, j as f32 * step, z]);
            }
        }
        let mut indices = Vec::new();
        for j in 0..n {
            for i in 0..n {
                let a = j * (n + 1) + i;
                indices.extend_from_slice(&[a, a + 1, a + n + 2, a, a + n + 2, a + n + 1]);
            }
        }
        (positions, indices)
    }

    #[test]
    fn a_ray_meets_the_plane_where_brute_force_says() {
        let (positions, indices) = grid(40, 2.5, 30.0);
        let bvh = SurfaceBvh::build(&positions, &indices);
        assert_eq!(bvh.triangle_count(), 3200);
        let origin = Vec3::new(10.0, 20.0, 0.0);
        for direction in [Vec3::new(0.1, 0.2, 1.0), Vec3::new(1.7, 1.1, 1.0), Vec3::new(-0.2, 0.0, 1.0)] {
            let hit = bvh.first_hit(origin, direction, 0.0, f32::INFINITY);
            let brute = bvh
                .triangles
                .iter()
                .filter_map(|t| intersect(t, origin, direction))
                .filter(|t| *t > 0.0)
                .min_by(f32::total_cmp);
            match (hit, brute) {
                (Some(hit), Some(brute)) => {
                    assert!((hit.t - 30.0).abs() < 1e-3, "{direction}: t {}", hit.t);
                    assert!((hit.t - brute).abs() < 1e-4);
                }
                (None, None) => assert!(direction.x < 0.0, "off the grid's edge only"),
                other => panic!("{direction}: {other:?}"),
            }
        }
        // Parallel to the plane, or pointing away: no hit.
        assert!(bvh.first_hit(origin, Vec3::X, 0.0, f32::INFINITY).is_none());
        assert!(bvh.first_hit(origin, -Vec3::Z, 0.0, f32::INFINITY).is_none());
    }

    #[test]
    fn the_nearest_of_two_layers_wins_and_any_hit_respects_the_bounds() {
        let (mut positions, mut indices) = grid(8, 5.0, 50.0);
        let (far_positions, far_indices) = grid(8, 5.0, 80.0);
        let offset = positions.len() as u32;
        positions.extend(far_positions);
        indices.extend(far_indices.iter().map(|i| i + offset));
        let bvh = SurfaceBvh::build(&positions, &indices);
        let (origin, direction) = (Vec3::new(20.0, 20.0, 0.0), Vec3::Z);
        assert!((bvh.first_hit(origin, direction, 0.0, f32::INFINITY).expect("hit").t - 50.0).abs() < 1e-4);
        assert!((bvh.first_hit(origin, direction, 60.0, f32::INFINITY).expect("hit").t - 80.0).abs() < 1e-4);
        // A point on the far layer: the near layer hides it; a point on the near one: nothing does.
        assert!(bvh.any_hit(origin, direction, 1e-3, 80.0 - 0.01));
        assert!(!bvh.any_hit(origin, direction, 1e-3, 50.0 - 0.01));
    }

    #[test]
    fn an_empty_or_degenerate_mesh_is_never_hit() {
        let bvh = SurfaceBvh::build(&[[0.0; 3]; 3], &[0, 1, 2]);
        assert!(bvh.first_hit(Vec3::new(0.0, 0.0, -1.0), Vec3::Z, 0.0, f32::INFINITY).is_none());
        let empty = SurfaceBvh::build(&[], &[]);
        assert!(!empty.any_hit(Vec3::ZERO, Vec3::Z, 0.0, f32::INFINITY));
        assert!(empty.first_hit(Vec3::NAN, Vec3::Z, 0.0, 1.0).is_none());
    }
}
