//! Hand–eye calibration at the station, sans IO: each view pairs the scope
//! marker's tracked pose (`tracker_from_scope`) with the chessboard's pose
//! in the camera (`camera_from_board`, from its detected inner corners:
//! a homography on ideal normalized coordinates, decomposed as in Zhang,
//! "A flexible new technique for camera calibration", 2000, §3.1, then
//! Gauss–Newton on the reprojection error); views are kept when the scope
//! turned enough since every kept one; the kept views solve `A X = X B`
//! (`scopecast_calibration::registration::hand_eye`) for `camera_from_scope`.
//! Frames: board and tracker mm; image px of the calibration.

use glam::{DMat3, DQuat, DVec3};
use nalgebra::Isometry3;
use scopecast_calibration::camera::CameraModel;
use scopecast_calibration::intrinsics::homography;
use scopecast_calibration::registration::hand_eye::hand_eye_calibration;

use super::pose_store::Pose;

/// A board pose from its corners.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoardPose {
    /// The board in the camera, mm.
    pub camera_from_board: Pose,
    /// RMS reprojection error of the corners, px.
    pub rms_px: f64,
}

fn project(pose: &Pose, p: DVec3) -> Option<[f64; 2]> {
    let q = pose.rotation * p + pose.translation;
    (q.z > 1e-6).then(|| [q.x / q.z, q.y / q.z])
}

fn residuals(pose: &Pose, board: &[DVec3], seen: &[[f64; 2]]) -> Option<Vec<f64>> {
    let mut out = Vec::with_capacity(board.len() * 2);
    for (p, s) in board.iter().zip(seen) {
        let [x, y] = project(pose, *p)?;
        out.push(x - s[0]);
        out.push(y - s[1]);
    }
    Some(out)
}

/// `pose` nudged by a rotation vector and a translation.
fn nudged(pose: &Pose, delta: &[f64; 6]) -> Pose {
    let turn = DVec3::new(delta[0], delta[1], delta[2]);
    let rotation = if turn.length() > 0.0 {
        DQuat::from_axis_angle(turn.normalize(), turn.length()) * pose.rotation
    } else {
        pose.rotation
    };
    Pose { rotation: rotation.normalize(), translation: pose.translation + DVec3::new(delta[3], delta[4], delta[5]) }
}

/// The board's pose from its inner corners seen at `corners_px` (the
/// detector's order, matching `board_mm`), through `camera`; `None` when the
/// corners do not give one.
pub fn board_pose(camera: &CameraModel, corners_px: &[[f64; 2]], board_mm: &[[f64; 3]]) -> Option<BoardPose> {
    if corners_px.len() != board_mm.len() || corners_px.len() < 4 {
        return None;
    }
    let seen: Vec<[f64; 2]> = corners_px.iter().map(|p| camera.unproject(*p).ok()).collect::<Option<_>>()?;
    let h = homography(board_mm, &seen)?;
    let (h1, h2, h3) = (h.column(0), h.column(1), h.column(2));
    let mut scale = 1.0 / h1.norm();
    // The board is in front of the camera.
    if h3[2] * scale < 0.0 {
        scale = -scale;
    }
    let r1 = DVec3::new(h1[0], h1[1], h1[2]) * scale;
    let r2 = DVec3::new(h2[0], h2[1], h2[2]) * scale;
    let t = DVec3::new(h3[0], h3[1], h3[2]) * scale;
    // The nearest rotation to [r1 r2 r1×r2] (Zhang, appendix C).
    let m = nalgebra::Matrix3::from_columns(&[
        nalgebra::Vector3::new(r1.x, r1.y, r1.z),
        nalgebra::Vector3::new(r2.x, r2.y, r2.z),
        nalgebra::Vector3::new(r1.cross(r2).x, r1.cross(r2).y, r1.cross(r2).z),
    ]);
    let svd = m.svd(true, true);
    let (u, v_t) = (svd.u?, svd.v_t?);
    let mut r = u * v_t;
    if r.determinant() < 0.0 {
        r = -r;
    }
    let columns = |c: usize| DVec3::new(r[(0, c)], r[(1, c)], r[(2, c)]);
    let mut pose = Pose {
        rotation: DQuat::from_mat3(&DMat3::from_cols(columns(0), columns(1), columns(2))).normalize(),
        translation: t,
    };
    let board: Vec<DVec3> = board_mm.iter().map(|p| DVec3::from_array(*p)).collect();
    // Gauss–Newton on the normalized reprojection error, numeric Jacobian.
    for _ in 0..20 {
        let r0 = residuals(&pose, &board, &seen)?;
        let mut jtj = nalgebra::Matrix6::<f64>::zeros();
        let mut jtr = nalgebra::Vector6::<f64>::zeros();
        let mut columns_j = Vec::with_capacity(6);
        for k in 0..6 {
            let mut delta = [0.0; 6];
            delta[k] = if k < 3 { 1e-7 } else { 1e-5 };
            let r1 = residuals(&nudged(&pose, &delta), &board, &seen)?;
            columns_j.push(r1.iter().zip(&r0).map(|(a, b)| (a - b) / delta[k]).collect::<Vec<f64>>());
        }
        for i in 0..6 {
            for j in 0..6 {
                jtj[(i, j)] = columns_j[i].iter().zip(&columns_j[j]).map(|(a, b)| a * b).sum();
            }
            jtr[i] = columns_j[i].iter().zip(&r0).map(|(a, b)| a * b).sum();
        }
        let step = jtj.try_inverse()? * -jtr;
        pose = nudged(&pose, &[step[0], step[1], step[2], step[3], step[4], step[5]]);
        if step.norm() < 1e-10 {
            break;
        }
    }
    let r = residuals(&pose, &board, &seen)?;
    let focal = camera.intrinsics.fx;
    let rms_px = (r.iter().map(|e| e * e).sum::<f64>() / board.len() as f64).sqrt() * focal;
    Some(BoardPose { camera_from_board: pose, rms_px })
}

/// Views collected for a hand–eye calibration.
#[derive(Debug, Clone, Default)]
pub struct HandEyeViews {
    /// (tracker_from_scope, camera_from_board), mm.
    views: Vec<(Pose, Pose)>,
}

/// A solved hand–eye calibration.
#[derive(Debug, Clone, PartialEq)]
pub struct HandEyeResult {
    /// The camera in the scope marker's frame's inverse: what a model chain's
    /// first link is.
    pub camera_from_scope: Pose,
    /// RMS rotation residual of `A X ≈ X B` over all view pairs, degrees.
    pub rotation_rms_deg: f64,
    /// RMS translation residual, mm.
    pub translation_rms_mm: f64,
    /// Views used.
    pub views: usize,
}

impl HandEyeViews {
    /// Keeps the view when the scope turned at least `min_turn_deg` from every
    /// kept view; whether it was kept.
    pub fn offer(&mut self, tracker_from_scope: Pose, camera_from_board: Pose, min_turn_deg: f64) -> bool {
        let apart = self
            .views
            .iter()
            .all(|(kept, _)| kept.rotation.angle_between(tracker_from_scope.rotation).to_degrees() >= min_turn_deg);
        if apart {
            self.views.push((tracker_from_scope, camera_from_board));
        }
        apart
    }

    /// The first kept view's board pose.
    pub fn first_board(&self) -> Option<Pose> {
        self.views.first().map(|(_, board)| *board)
    }

    /// Views kept.
    pub fn len(&self) -> usize {
        self.views.len()
    }

    /// No view kept yet.
    pub fn is_empty(&self) -> bool {
        self.views.is_empty()
    }

    /// Solves for `camera_from_scope`; the calibration crate's reason when it cannot.
    pub fn solve(&self) -> Result<HandEyeResult, String> {
        let markers: Vec<Isometry3<f64>> = self.views.iter().map(|(m, _)| m.to_isometry()).collect();
        let boards: Vec<Isometry3<f64>> = self.views.iter().map(|(_, b)| b.to_isometry()).collect();
        let solved = hand_eye_calibration(&markers, &boards).map_err(|e| e.to_string())?;
        let scope_from_camera = Pose::from_isometry(&solved.marker_from_camera);
        Ok(HandEyeResult {
            camera_from_scope: scope_from_camera.inverse(),
            rotation_rms_deg: solved.rotation_rms_deg,
            translation_rms_mm: solved.translation_rms_mm,
            views: self.views.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use scopecast_calibration::camera::{BrownConrady, LensModel, PinholeIntrinsics};

    use super::*;

    fn camera() -> CameraModel {
        CameraModel {
            intrinsics: PinholeIntrinsics { fx: 700.0, fy: 700.0, cx: 640.0, cy: 360.0 },
            lens: LensModel::BrownConrady(BrownConrady { k1: -0.3, k2: 0.1, p1: 0.001, p2: -0.0005, k3: -0.02 }),
        }
    }

    fn board() -> Vec<[f64; 3]> {
        (0..6).flat_map(|r| (0..9).map(move |c| [c as f64 * 6.0, r as f64 * 6.0, 0.0])).collect()
    }

    #[test]
    fn a_board_pose_is_recovered_from_its_projected_corners() {
        let truth = Pose {
            rotation: DQuat::from_euler(glam::EulerRot::XYZ, 0.3, -0.2, 0.4),
            translation: DVec3::new(-20.0, -10.0, 95.0),
        };
        let cam = camera();
        let corners: Vec<[f64; 2]> = board()
            .iter()
            .map(|p| {
                cam.project((truth.rotation * DVec3::from_array(*p) + truth.translation).to_array()).expect("in front")
            })
            .collect();
        let found = board_pose(&cam, &corners, &board()).expect("a pose");
        assert!(found.rms_px < 1e-6, "{found:?}");
        assert!(found.camera_from_board.translation.distance(truth.translation) < 1e-6);
        assert!(found.camera_from_board.rotation.angle_between(truth.rotation) < 1e-9);
    }

    #[test]
    fn views_solve_the_camera_on_the_scope() {
        let camera_from_scope = Pose {
            rotation: DQuat::from_euler(glam::EulerRot::XYZ, 0.05, -0.1, 1.2),
            translation: DVec3::new(3.0, -2.0, 40.0),
        };
        let tracker_from_board =
            Pose { rotation: DQuat::from_rotation_x(3.0), translation: DVec3::new(0.0, 0.0, 900.0) };
        let mut views = HandEyeViews::default();
        for i in 0..12 {
            let a = f64::from(i) * 0.5;
            let tracker_from_scope = Pose {
                rotation: DQuat::from_euler(glam::EulerRot::XYZ, 0.2 * a.sin(), 0.2 * a.cos(), 0.3 * a),
                translation: DVec3::new(10.0 * a.cos(), 10.0 * a.sin(), 800.0),
            };
            let camera_from_board =
                camera_from_scope.then_after(&tracker_from_scope.inverse()).then_after(&tracker_from_board);
            views.offer(tracker_from_scope, camera_from_board, 3.0);
        }
        assert!(views.len() >= 10);
        let solved = views.solve().expect("solves");
        assert!(solved.camera_from_scope.translation.distance(camera_from_scope.translation) < 1e-6, "{solved:?}");
        assert!(solved.rotation_rms_deg < 1e-6);
    }
}
