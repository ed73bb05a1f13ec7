//! Registration on the tracked phantom, end to end through OpenIGTLink: the
//! simulated pointer (0.1 mm tracker noise) pivots about its tip (its tip is
//! solved live), then rests on each painted dot in turn, `collect_fiducials` (what `scopecast register collect` runs) takes
//! each still tip and registers the model's fiducials, given in a "CT" frame
//! of their own. The registration matches the truth, the overlay it gives
//! lands on the dots within a pixel, and a wrong pairing stands out.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use glam::{DQuat, DVec3};
use scopecast_engine::clock::{SharedClock, SystemClock};
use scopecast_engine::config::{Config, TrackedPhantomConfig, TrackerConfig};
use scopecast_engine::source::phantom::{PathShape, PhantomFile, ScopePath};
use scopecast_engine::source::synthetic::synthetic_camera;
use scopecast_engine::station::fiducial_run::{FiducialPlan, collect_fiducials};
use scopecast_engine::tracking::pose_store::Pose;
use scopecast_engine::tracking::registration::{StillWindow, register_fiducials};

#[test]
fn the_pointer_registers_the_phantom_and_the_overlay_lands_on_the_dots() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../demos/tracked-scope/phantom");
    let phantom = PhantomFile::load(&folder.join("phantom.json")).unwrap_or_else(|e| panic!("{e}"));
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let mut config = Config::default();
    config.source.synthetic.tracked = Some(TrackedPhantomConfig {
        phantom: folder.join("phantom.json"),
        camera_from_scope: folder.join("camera_from_scope.json"),
        listen: format!("127.0.0.1:{port}"),
        noise_mm: 0.1,
        pointer: true,
        pointer_dwell_ms: 700.0,
        pointer_travel_ms: 300.0,
        pointer_pivot_ms: 3_000.0,
        ..Default::default()
    });
    config.tracking.trackers = vec![TrackerConfig {
        name: "simulated".into(),
        connect: Some(format!("127.0.0.1:{port}")),
        tracker_timestamps: true,
        ..Default::default()
    }];
    // The model (a CT, say) has its own frame: phantom_from_model is what registration must find.
    let phantom_from_model = Pose {
        rotation: DQuat::from_euler(glam::EulerRot::XYZ, 0.2, -0.1, 0.9),
        translation: DVec3::new(12.0, -30.0, 55.0),
    };
    let model_from_phantom = phantom_from_model.inverse().matrix();
    let in_phantom: Vec<DVec3> = phantom.fiducials_mm.iter().map(|f| DVec3::from_array(*f)).collect();
    let model_fiducials: Vec<DVec3> = in_phantom.iter().map(|p| model_from_phantom.transform_point3(*p)).collect();
    let target = model_from_phantom.transform_point3(DVec3::new(6.0, -4.0, 9.0));
    let plan = FiducialPlan {
        model_fiducials: model_fiducials.clone(),
        pointer: "PointerToTracker".into(),
        reference: "PhantomToTracker".into(),
        // Unknown: pivoted live first.
        tip_in_pointer: DVec3::ZERO,
        target: Some(target),
        still: StillWindow::default(),
        min_apart_mm: 5.0,
        timeout: Duration::from_secs(60),
        pivot: Some(Duration::from_millis(2_500)),
    };
    let clock: SharedClock = Arc::new(SystemClock::new());
    let mut said = Vec::new();
    let run = collect_fiducials(&config, clock, &plan, |line| said.push(line)).unwrap_or_else(|e| panic!("{e}"));
    let r = &run.registration;
    println!("{}", said.join("\n"));
    println!(
        "FRE {:.3} mm, TRE at the target {:.3} mm, residuals {:.3?} mm, leave-one-out {:.3?} mm",
        r.fre_mm,
        r.tre_mm.unwrap_or(f64::NAN),
        r.residuals_mm,
        r.leave_one_out_mm
    );
    let pivot = run.pivot.expect("pivoted");
    assert!(pivot.tip_in_pointer.distance(DVec3::new(0.0, 0.0, 150.0)) < 0.3, "{pivot:?}");
    assert_eq!(run.collected.len(), 9);
    assert!(r.fre_mm < 0.2 && r.suspects.is_empty(), "{r:?}");
    let error_mm = (r.reference_from_model.translation - phantom_from_model.translation).length();
    assert!(error_mm < 0.2, "registration {error_mm} mm from the truth");
    // The overlay through this registration, seen by the demo's scope: within a pixel of the dots.
    let camera = synthetic_camera(1280, 720, &config.source.synthetic);
    let path = ScopePath { speed_mm_s: 50.0, radius_mm: 15.0, distance_mm: 90.0, shape: PathShape::Circle };
    let mut worst_px: f64 = 0.0;
    for t_ms in [0u64, 700, 1900] {
        let camera_from_phantom = path.camera_from_phantom(t_ms * 1_000_000).matrix();
        let drawn = camera_from_phantom * r.reference_from_model.matrix();
        for (model, truth) in model_fiducials.iter().zip(&in_phantom) {
            let at = |p: DVec3| camera.project(p.to_array()).expect("in front");
            let a = at(drawn.transform_point3(*model));
            let b = at(camera_from_phantom.transform_point3(*truth));
            worst_px = worst_px.max((a[0] - b[0]).hypot(a[1] - b[1]));
        }
    }
    println!("overlay through the registration: worst {worst_px:.3} px from the dots at 720p");
    assert!(worst_px < 1.0, "{worst_px} px");
    // Two fiducials touched in the wrong order stand out.
    let mut swapped = model_fiducials.clone();
    swapped.swap(2, 6);
    let wrong = register_fiducials(&swapped, &run.collected, None).expect("solves");
    assert!(wrong.suspects.contains(&2) && wrong.suspects.contains(&6), "{wrong:?}");
}
