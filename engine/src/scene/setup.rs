//! The station's first scene, from the config: the calibration, the demo
//! anatomy and models from files. A model file that cannot be loaded is
//! reported and left out; the station runs without it.

use std::sync::Arc;

use glam::Mat4;
use scopecast_calibration::file::CalibrationFile;

use super::{Calibration, Model, ModelStyle, OutputMode, Scene, anatomy, mesh::load_mesh};
use crate::config::{CalibrationSource, Config, OutputModeConfig, StyleConfig};
use crate::source::synthetic::synthetic_camera;

/// The scene described by `config`, and one message per model left out.
pub fn scene_from_config(config: &Config) -> (Scene, Vec<String>) {
    let c = &config.compositor;
    let s = &config.source;
    let mut problems = Vec::new();
    let calibration = match &c.calibration {
        CalibrationSource::None => None,
        CalibrationSource::Synthetic => Some(Calibration {
            camera: synthetic_camera(s.width, s.height, &s.synthetic),
            width: s.width,
            height: s.height,
        }),
        CalibrationSource::File(file) => match CalibrationFile::load(file) {
            Ok(f) => Some(Calibration { camera: f.camera, width: f.image_width, height: f.image_height }),
            Err(e) => {
                problems.push(format!("calibration left out, the video is shown as captured: {e}"));
                None
            }
        },
    };
    let mut models = if c.demo_anatomy { anatomy::demo_models() } else { Vec::new() };
    for model in &c.models {
        match load_mesh(&model.path) {
            Ok(mesh) => {
                let mut cols = [0.0f32; 16];
                cols.copy_from_slice(&model.camera_from_model[..16.min(model.camera_from_model.len())]);
                models.push(Model {
                    name: model.name(),
                    mesh: Arc::new(mesh),
                    // The config is row-major; glam takes columns.
                    camera_from_model: Mat4::from_cols_array(&cols).transpose(),
                    colour: model.colour,
                    opacity: model.opacity,
                    visible: model.visible,
                    style: match model.style {
                        StyleConfig::Solid => ModelStyle::Solid,
                        StyleConfig::Wireframe => ModelStyle::Wireframe,
                        StyleConfig::Silhouette => ModelStyle::Silhouette,
                    },
                });
            }
            Err(e) => problems.push(format!("model left out: {e}")),
        }
    }
    let output_mode = match c.output_mode {
        OutputModeConfig::Undistorted => OutputMode::Undistorted,
        OutputModeConfig::Distorted => OutputMode::Distorted,
    };
    (Scene { calibration, output_mode, models, ..Default::default() }, problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelConfig;

    #[test]
    fn a_broken_model_file_is_left_out_and_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        let good = dir.path().join("tri.obj");
        std::fs::write(&good, "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n").expect("write");
        let bad = dir.path().join("broken.stl");
        std::fs::write(&bad, b"solid x\nfacet normal 0 0 1\nouter loop\nvertex 0 0\n").expect("write");
        let mut config = Config::default();
        config.compositor.demo_anatomy = false;
        config.compositor.models = vec![
            ModelConfig { path: good, ..Default::default() },
            ModelConfig { path: bad.clone(), ..Default::default() },
        ];
        let (scene, problems) = scene_from_config(&config);
        assert_eq!(scene.models.len(), 1);
        assert_eq!(scene.models[0].name, "tri");
        // Row-major translation (x, y, z) = (0, 0, 80) ends up in the last column.
        assert_eq!(scene.models[0].camera_from_model.w_axis.z, 80.0);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("broken.stl"), "{problems:?}");
        assert!(scene.validate().is_ok());
    }

    #[test]
    fn a_calibration_file_sets_the_camera() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("scope.yaml");
        let camera = crate::source::synthetic::synthetic_camera(640, 480, &Default::default());
        CalibrationFile { camera, image_width: 640, image_height: 480, avg_reprojection_error: 0.2 }
            .save(&path)
            .expect("written");
        let mut config = Config::default();
        config.compositor.calibration = CalibrationSource::File(path.clone());
        let (scene, problems) = scene_from_config(&config);
        assert!(problems.is_empty(), "{problems:?}");
        let calibration = scene.calibration.expect("loaded");
        assert_eq!((calibration.camera, calibration.width, calibration.height), (camera, 640, 480));
        std::fs::write(&path, "%YAML:1.0\nimage_width: 640\n").expect("write");
        let err = config.validate(std::path::Path::new("station.toml")).expect_err("broken calibration refused");
        assert!(err.to_string().contains("camera_matrix"), "{err}");
    }
}
