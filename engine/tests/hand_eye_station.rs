//! Hand–eye calibration at the station, end to end: the synthetic endoscope
//! looks at a phantom with a printed chessboard from around it (tilted up to 20°) (9 × 6 inner corners of
//! 6 mm), the simulated tracker publishes the scope's poses over OpenIGTLink,
//! and `collect_hand_eye` (what `scopecast calibrate hand-eye-live` runs)
//! finds the board in the frames, pairs each view with the scope's pose at
//! its capture time and solves `camera_from_scope`, which must match the
//! hand–eye file the simulation uses.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use scopecast_engine::clock::{SharedClock, SystemClock};
use scopecast_engine::config::{Config, TrackedPhantomConfig, TrackerConfig};
use scopecast_engine::source::phantom::PathShape;
use scopecast_engine::station::hand_eye_run::{HandEyePlan, collect_hand_eye};
use scopecast_engine::tracking::setup::load_transform_file;

#[test]
fn chessboard_views_at_the_station_give_the_camera_on_the_scope() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../demos/tracked-scope/phantom");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let mut config = Config::default();
    config.source.fps = 15;
    config.source.synthetic.instrument = false;
    config.source.synthetic.tracked = Some(TrackedPhantomConfig {
        phantom: folder.join("chessboard.json"),
        camera_from_scope: folder.join("camera_from_scope.json"),
        listen: format!("127.0.0.1:{port}"),
        speed_mm_s: 20.0,
        path: PathShape::Survey,
        ..Default::default()
    });
    config.tracking.trackers = vec![TrackerConfig {
        name: "simulated".into(),
        connect: Some(format!("127.0.0.1:{port}")),
        tracker_timestamps: true,
        ..Default::default()
    }];
    let plan = HandEyePlan {
        cols: 9,
        rows: 6,
        square_mm: 6.0,
        scope: "ScopeToTracker".into(),
        views: 12,
        min_turn_deg: 5.0,
        max_board_rms_px: 1.0,
        timeout: Duration::from_secs(90),
    };
    let clock: SharedClock = Arc::new(SystemClock::new());
    let mut said = Vec::new();
    let run = collect_hand_eye(&config, clock, &plan, |line| said.push(line)).unwrap_or_else(|e| panic!("{e}"));
    println!("{}", said.join("\n"));
    let truth = load_transform_file(&folder.join("camera_from_scope.json")).expect("the truth");
    let found = run.result.camera_from_scope;
    let translation_mm = found.translation.distance(truth.translation);
    let rotation_deg = found.rotation.angle_between(truth.rotation).to_degrees();
    println!(
        "hand-eye at the station: {} views ({} boards in {} frames), {translation_mm:.3} mm and {rotation_deg:.3} degrees from the truth; residuals {:.4} degrees, {:.4} mm RMS; corners reproject to {:.3} px at worst",
        run.result.views,
        run.boards,
        run.frames,
        run.result.rotation_rms_deg,
        run.result.translation_rms_mm,
        run.board_rms_px.iter().copied().fold(0.0, f64::max)
    );
    assert_eq!(run.result.views, 12);
    assert!(rotation_deg < 0.1, "rotation {rotation_deg} degrees off");
    assert!(translation_mm < 0.5, "translation {translation_mm} mm off");
}
