//! The demo anatomy: a liver surface, a vessel tree and a tumour, generated
//! procedurally (so there is no file whose licence we must check), placed in
//! the synthetic endoscope's field of view at a working distance of 60–110 mm.

use std::f32::consts::{PI, TAU};
use std::sync::Arc;

use glam::{Mat4, Vec3};

use super::{Mesh, Model, ModelStyle};

/// A UV sphere of `radius` with `rings` × `segments` quads, scaled per axis and
/// displaced along the normal by `bump(theta, phi)` (fraction of the radius).
pub fn ellipsoid(radius: Vec3, rings: u32, segments: u32, bump: impl Fn(f32, f32) -> f32) -> Mesh {
    let (rings, segments) = (rings.max(2), segments.max(3));
    let mut positions = Vec::new();
    for r in 0..=rings {
        let theta = PI * r as f32 / rings as f32;
        for s in 0..=segments {
            let phi = TAU * s as f32 / segments as f32;
            let unit = Vec3::new(theta.sin() * phi.cos(), theta.cos(), theta.sin() * phi.sin());
            let p = unit * radius * (1.0 + bump(theta, phi));
            positions.push(p.to_array());
        }
    }
    let stride = segments + 1;
    let mut indices = Vec::new();
    for r in 0..rings {
        for s in 0..segments {
            let a = r * stride + s;
            let b = a + stride;
            indices.extend_from_slice(&[a, b, a + 1, a + 1, b, b + 1]);
        }
    }
    // Generated geometry is finite and in range by construction.
    Mesh::new(positions, None, indices).unwrap_or_else(|e| unreachable!("generated ellipsoid is invalid: {e}"))
}

/// Tubes of radius `radius_mm` along each polyline, `sides` faces around.
pub fn tubes(polylines: &[Vec<Vec3>], radius_mm: f32, sides: u32) -> Mesh {
    let sides = sides.max(3);
    let (mut positions, mut indices) = (Vec::new(), Vec::new());
    for line in polylines {
        for pair in line.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let axis = (b - a).normalize_or_zero();
            if axis == Vec3::ZERO {
                continue;
            }
            let side = axis.any_orthonormal_vector();
            let up = axis.cross(side);
            let base = positions.len() as u32;
            for end in [a, b] {
                for k in 0..sides {
                    let angle = TAU * k as f32 / sides as f32;
                    positions.push((end + (side * angle.cos() + up * angle.sin()) * radius_mm).to_array());
                }
            }
            for k in 0..sides {
                let (i0, i1) = (base + k, base + (k + 1) % sides);
                let (j0, j1) = (i0 + sides, i1 + sides);
                indices.extend_from_slice(&[i0, j0, i1, i1, j0, j1]);
            }
        }
    }
    Mesh::new(positions, None, indices).unwrap_or_else(|e| unreachable!("generated tubes are invalid: {e}"))
}

/// A branching vessel tree in model millimetres, rooted at the origin.
fn vessel_tree() -> Vec<Vec<Vec3>> {
    let mut lines = Vec::new();
    let trunk: Vec<Vec3> =
        (0..=8).map(|i| Vec3::new(-40.0 + i as f32 * 10.0, 6.0 * (i as f32 * 0.7).sin(), 0.0)).collect();
    for (k, &root) in trunk.iter().enumerate().skip(1).step_by(2) {
        let sign = if k % 4 == 1 { 1.0 } else { -1.0 };
        let branch: Vec<Vec3> =
            (0..=4).map(|i| root + Vec3::new(i as f32 * 3.0, sign * i as f32 * 6.0, i as f32 * 1.5)).collect();
        lines.push(branch);
    }
    lines.push(trunk);
    lines
}

/// The demo models with their poses in the camera frame (+Z forward, mm).
pub fn demo_models() -> Vec<Model> {
    let liver = ellipsoid(Vec3::new(70.0, 22.0, 45.0), 48, 96, |theta, phi| {
        0.06 * (3.0 * phi).sin() * (2.0 * theta).sin() + 0.03 * (7.0 * phi + theta).cos()
    });
    let tumour = ellipsoid(Vec3::splat(7.0), 24, 48, |theta, phi| 0.08 * (5.0 * phi).sin() * theta.sin());
    let vessels = tubes(&vessel_tree(), 1.6, 10);
    vec![
        Model {
            name: "liver".into(),
            mesh: Arc::new(liver),
            // Lying across the view, its upper surface 80 mm in front of the scope.
            camera_from_model: Mat4::from_translation(Vec3::new(0.0, 8.0, 105.0)) * Mat4::from_rotation_x(-1.2),
            colour: [0.55, 0.25, 0.2],
            opacity: 0.8,
            visible: true,
            style: ModelStyle::Silhouette,
        },
        Model {
            name: "vessels".into(),
            mesh: Arc::new(vessels),
            camera_from_model: Mat4::from_translation(Vec3::new(2.0, 4.0, 75.0)) * Mat4::from_rotation_z(0.35),
            colour: [0.2, 0.45, 1.0],
            opacity: 0.85,
            visible: true,
            style: ModelStyle::Solid,
        },
        Model {
            name: "tumour".into(),
            mesh: Arc::new(tumour),
            camera_from_model: Mat4::from_translation(Vec3::new(-12.0, -6.0, 70.0)),
            colour: [0.2, 1.0, 0.35],
            opacity: 0.7,
            visible: true,
            style: ModelStyle::Solid,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_meshes_are_closed_enough_and_sized() {
        let sphere = ellipsoid(Vec3::splat(10.0), 100, 500, |_, _| 0.0);
        assert_eq!(sphere.triangle_count(), 100 * 500 * 2);
        let models = demo_models();
        assert_eq!(models.len(), 3);
        for m in &models {
            assert!(m.mesh.triangle_count() > 100, "{}", m.name);
            // Every model sits in front of the scope.
            let centre = m.camera_from_model.transform_point3(Vec3::ZERO);
            assert!((50.0..150.0).contains(&centre.z), "{} at {centre}", m.name);
        }
    }
}
