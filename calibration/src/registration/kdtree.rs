//! A static 3-D k-d tree for nearest-neighbour queries (ICP correspondences
//! and normal estimation). Built once by median splits, O(n log² n); queries
//! are O(log n) on average.

use nalgebra::Vector3;

#[derive(Debug, Clone)]
struct Node {
    /// Index into the points.
    point: usize,
    axis: usize,
    left: Option<usize>,
    right: Option<usize>,
}

/// A k-d tree over a point set.
#[derive(Debug, Clone)]
pub struct KdTree {
    points: Vec<Vector3<f64>>,
    nodes: Vec<Node>,
    root: Option<usize>,
}

impl KdTree {
    /// Builds the tree (points are copied).
    pub fn new(points: &[Vector3<f64>]) -> Self {
        let mut tree = Self { points: points.to_vec(), nodes: Vec::with_capacity(points.len()), root: None };
        let mut indices: Vec<usize> = (0..points.len()).collect();
        tree.root = tree.build(&mut indices, 0);
        tree
    }

    fn build(&mut self, indices: &mut [usize], depth: usize) -> Option<usize> {
        if indices.is_empty() {
            return None;
        }
        let axis = depth % 3;
        let mid = indices.len() / 2;
        let points = &self.points;
        indices.select_nth_unstable_by(mid, |a, b| points[*a][axis].total_cmp(&points[*b][axis]));
        let point = indices[mid];
        let (left, rest) = indices.split_at_mut(mid);
        let right = &mut rest[1..];
        let left = self.build(left, depth + 1);
        let right = self.build(right, depth + 1);
        self.nodes.push(Node { point, axis, left, right });
        Some(self.nodes.len() - 1)
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether the tree is empty.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The point with index `i`.
    pub fn point(&self, i: usize) -> &Vector3<f64> {
        &self.points[i]
    }

    /// The nearest point's index and squared distance.
    pub fn nearest(&self, query: &Vector3<f64>) -> Option<(usize, f64)> {
        let mut best = self.k_nearest(query, 1);
        best.pop()
    }

    /// The `k` nearest points (index, squared distance), nearest first.
    pub fn k_nearest(&self, query: &Vector3<f64>, k: usize) -> Vec<(usize, f64)> {
        let mut best: Vec<(usize, f64)> = Vec::with_capacity(k + 1);
        if k > 0 {
            self.search(self.root, query, k, &mut best);
        }
        best
    }

    fn search(&self, node: Option<usize>, query: &Vector3<f64>, k: usize, best: &mut Vec<(usize, f64)>) {
        let Some(index) = node else { return };
        let node = &self.nodes[index];
        let p = &self.points[node.point];
        let d2 = (p - query).norm_squared();
        if best.len() < k || d2 < best[best.len() - 1].1 {
            let at = best.partition_point(|(_, d)| *d <= d2);
            best.insert(at, (node.point, d2));
            best.truncate(k);
        }
        let diff = query[node.axis] - p[node.axis];
        let (near, far) = if diff < 0.0 { (node.left, node.right) } else { (node.right, node.left) };
        self.search(near, query, k, best);
        if best.len() < k || diff * diff < best[best.len() - 1].1 {
            self.search(far, query, k, best);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_brute_force() {
        let mut state = 7u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64 * 100.0
        };
        let points: Vec<Vector3<f64>> = (0..2000).map(|_| Vector3::new(next(), next(), next())).collect();
        let tree = KdTree::new(&points);
        for _ in 0..200 {
            let q = Vector3::new(next(), next(), next());
            let mut brute: Vec<(usize, f64)> =
                points.iter().enumerate().map(|(i, p)| (i, (p - q).norm_squared())).collect();
            brute.sort_by(|a, b| a.1.total_cmp(&b.1));
            let got = tree.k_nearest(&q, 5);
            assert_eq!(got.iter().map(|x| x.0).collect::<Vec<_>>(), brute[..5].iter().map(|x| x.0).collect::<Vec<_>>());
        }
        assert!(KdTree::new(&[]).nearest(&Vector3::zeros()).is_none());
    }
}
