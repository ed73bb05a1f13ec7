//! The registration desk at a running station: the sans-IO desk
//! (`crate::tracking::registration_desk`) fed from the shared pose store on a
//! named thread (`scopecast-registration`, every 10 ms), driven by the
//! operator's page (the data channel's `registration` command) and the
//! monitor's keys, and heard by every page (an announcement, at most 10 a
//! second) and the HUD. An accepted registration is written as the
//! registration file (who accepted it, in the access log's terms, and when),
//! set in the pose store so the next frame uses it, and noted in the
//! session recording's timeline (again when a recording starts later).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use glam::DVec3;
use scopecast_transport::protocol::{Notice, PROTOCOL_VERSION, RegistrationState, RegistrationStep};
use scopecast_transport::room_channels::{Announcer, Topic};
use thiserror::Error;

use crate::clock::SharedClock;
use crate::config::RegistrationConfig;
use crate::recorder::Recorder;
use crate::recorder::format::TimelineRecord;
use crate::shutdown::Shutdown;
use crate::tracking::chain::{REGISTRATION_LINK, canonical_name};
use crate::tracking::pose_store::{Freshness, PoseAt, PoseStore};
use crate::tracking::registration::StillWindow;
use crate::tracking::registration_desk::{AcceptedRegistration, DeskPlan, RegistrationDesk};
use crate::tracking::registration_file::{RegistrationFile, RegistrationFileError};
use crate::tracking::tracker_link::SharedPoses;

/// How often the desk reads the pose store.
const TICK: Duration = Duration::from_millis(10);
/// Fewest ns between two announcements of the desk's state.
const ANNOUNCE_EVERY_NS: u64 = 100_000_000;
/// The reference's pose is looked up this fresh at a pointer sample's time.
const REFERENCE_FRESH: Freshness = Freshness { stale_after_ns: 100_000_000 };

/// Why the desk cannot start.
#[derive(Debug, Error)]
pub enum DeskSetupError {
    /// The fiducials file.
    #[error("[registration] fiducials {path}: {reason}")]
    Fiducials {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The surface mesh.
    #[error("[registration] surface {path}: {reason}")]
    Surface {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The registration accepted before could not be read.
    #[error("[registration] output: {0}")]
    Accepted(#[from] RegistrationFileError),
}

/// The model's fiducials from a JSON file with `"fiducials_mm": [[x, y, z], ...]`.
pub fn read_fiducials(path: &std::path::Path) -> Result<Vec<DVec3>, DeskSetupError> {
    let fail = |reason: String| DeskSetupError::Fiducials { path: path.into(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| fail(format!("not JSON: {e}")))?;
    let points: Vec<[f64; 3]> = serde_json::from_value(value.get("fiducials_mm").cloned().unwrap_or_default())
        .map_err(|_| fail("needs \"fiducials_mm\": [[x, y, z], ...]".into()))?;
    if points.len() < 3 || points.len() > scopecast_transport::protocol::MAX_FIDUCIALS as usize {
        return Err(fail(format!("{} fiducials: 3 to 64 are needed", points.len())));
    }
    if points.iter().flatten().any(|c| !c.is_finite()) {
        return Err(fail("a fiducial is not three finite numbers".into()));
    }
    Ok(points.iter().map(|p| DVec3::from_array(*p)).collect())
}

/// Gives `desk` the `pointer`'s samples in `store` newer than `seen_ns`, each
/// with the `reference`'s pose at its time (canonical names); the newest
/// pointer sample's time.
pub fn feed(desk: &mut RegistrationDesk, store: &PoseStore, pointer: &str, reference: &str, seen_ns: u64) -> u64 {
    let mut newest = seen_ns;
    for sample in store.samples(pointer).filter(|s| s.time_ns > seen_ns) {
        newest = sample.time_ns;
        let pointer_pose = sample.valid.then_some(sample.pose);
        let reference_pose = match store.at(reference, sample.time_ns, REFERENCE_FRESH) {
            PoseAt::Tracked(pose) => Some(pose),
            _ => None,
        };
        desk.observe(sample.time_ns, pointer_pose, reference_pose);
    }
    newest
}

/// The desk, shared by its thread, the data channel and the monitor.
pub struct StationDesk {
    desk: Mutex<RegistrationDesk>,
    poses: SharedPoses,
    pointer: String,
    reference: String,
    output: PathBuf,
    clock: SharedClock,
    announcer: Announcer,
    recorder: Mutex<Option<Arc<Recorder>>>,
    /// The registration in use, as written (for a recording that starts later).
    in_use: Mutex<Option<RegistrationFile>>,
    /// When the state was last announced, and what it was.
    announced: Mutex<(u64, Option<RegistrationState>)>,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl StationDesk {
    /// A desk from `[registration]` on `poses`; a registration accepted
    /// before (its `output` file) is in use at once.
    pub fn new(
        config: &RegistrationConfig,
        poses: SharedPoses,
        clock: SharedClock,
        announcer: Announcer,
    ) -> Result<Arc<Self>, DeskSetupError> {
        let (Some(fiducials), Some(output)) = (&config.fiducials, &config.output) else {
            return Err(DeskSetupError::Fiducials {
                path: config.fiducials.clone().unwrap_or_default(),
                reason: "registration at the station needs both fiducials and output".into(),
            });
        };
        let surface = match &config.surface {
            Some(path) => {
                let mesh = crate::scene::mesh::load_mesh(path)
                    .map_err(|e| DeskSetupError::Surface { path: path.clone(), reason: e.to_string() })?;
                Some(mesh.positions.iter().map(|p| DVec3::new(p[0].into(), p[1].into(), p[2].into())).collect())
            }
            None => None,
        };
        let plan = DeskPlan {
            model_fiducials: read_fiducials(fiducials)?,
            tip_in_pointer: config.tip_mm.map(DVec3::from_array),
            pivot_ns: (config.pivot_seconds * 1e9) as u64,
            target: config.target_mm.map(DVec3::from_array),
            target_name: config.target_name.clone(),
            still: StillWindow::default(),
            min_apart_mm: 5.0,
            surface,
        };
        let mut desk = RegistrationDesk::new(plan);
        let mut in_use = None;
        if output.exists() {
            let file = RegistrationFile::load(output)?;
            let pose = file.pose().ok_or_else(|| RegistrationFileError::Format {
                path: output.clone(),
                reason: "reference_from_model is not rigid".into(),
            })?;
            poses.rcu(|store| {
                let mut next = crate::tracking::pose_store::PoseStore::clone(store);
                next.set_fixed(REGISTRATION_LINK, pose);
                next
            });
            desk.set_accepted_by(file.accepted_by.clone());
            tracing::info!(file = %output.display(), accepted_by = %file.accepted_by, "registration in use");
            in_use = Some(file);
        }
        Ok(Arc::new(Self {
            desk: Mutex::new(desk),
            poses,
            pointer: canonical_name(&config.pointer),
            reference: canonical_name(&config.reference),
            output: output.clone(),
            clock,
            announcer,
            recorder: Mutex::new(None),
            in_use: Mutex::new(in_use),
            announced: Mutex::new((0, None)),
        }))
    }

    /// Accepted registrations are also noted in `recorder`'s sessions.
    pub fn set_recorder(&self, recorder: Option<Arc<Recorder>>) {
        *locked(&self.recorder) = recorder;
    }

    /// What the pages and the HUD show now.
    pub fn state(&self) -> RegistrationState {
        locked(&self.desk).state()
    }

    /// The HUD's lines for the desk (upper case, short).
    pub fn hud_lines(&self) -> Vec<String> {
        let state = self.state();
        let taken = state.fiducials.iter().filter(|f| f.taken).count();
        let mut line = format!("REGISTRATION {}  {taken}/{}", state.phase, state.fiducials.len());
        if let Some(fre) = state.fre_mm {
            line.push_str(&format!("  FRE {fre:.2} MM"));
        }
        if let Some(tre) = state.tre_mm {
            line.push_str(&format!("  TRE {tre:.2} MM AT {}", state.target));
        }
        let mut lines =
            vec![line.to_uppercase(), format!("POINTER {}: {}", state.pointer, state.message).to_uppercase()];
        if state.fre_mm.is_some() {
            let residuals: Vec<String> = state
                .fiducials
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let mark = if f.suspect { "!" } else { "" };
                    format!("{}:{:.1}{mark}", i + 1, f.residual_mm.unwrap_or(f64::NAN))
                })
                .collect();
            lines.push(format!("RESIDUALS MM {}", residuals.join(" ")));
        }
        match (state.surface_rms_mm, state.phase.as_str()) {
            (Some(rms), _) => lines.push(format!(
                "SURFACE RMS {rms:.2} MM OVER {} POINTS, MOVED {:.2} MM",
                state.surface_points,
                state.surface_change_mm.unwrap_or(f64::NAN)
            )),
            (None, "sweep") => lines.push(format!("SWEEPING: {} SURFACE POINTS", state.surface_points)),
            _ => {}
        }
        lines
    }

    /// Carries out `step` for `who` (the access log's words: "Dr A
    /// (operator)"); `Err` says why not, in words.
    pub fn step(&self, step: RegistrationStep, fiducial: Option<u32>, who: &str) -> Result<(), String> {
        let now = self.clock.now_ns();
        let mut desk = locked(&self.desk);
        let done = desk.step(step, fiducial, now);
        let outcome = match done {
            Ok(Some(accepted)) => match self.accept(&accepted, who) {
                Ok(()) => {
                    desk.set_accepted_by(who.to_string());
                    tracing::info!(%who, file = %self.output.display(), fre_mm = accepted.fiducials.fre_mm, "registration accepted and in use");
                    Ok(())
                }
                Err(e) => {
                    desk.accept_failed(format!("could not write {}: {e}; not accepted", self.output.display()));
                    Err(format!("could not write the registration file: {e}"))
                }
            },
            Ok(None) => Ok(()),
            Err(why) => Err(why),
        };
        let state = desk.state();
        drop(desk);
        self.announce(state, now, true);
        outcome
    }

    /// Writes, uses and records an accepted registration.
    fn accept(&self, accepted: &AcceptedRegistration, who: &str) -> Result<(), RegistrationFileError> {
        let file = RegistrationFile::accepted(
            &accepted.reference_from_model,
            &accepted.fiducials,
            Some(accepted.target_name.clone()),
            accepted.surface.clone(),
            who.to_string(),
            self.clock.wall_ms(),
        );
        file.save(&self.output)?;
        let pose = accepted.reference_from_model;
        self.poses.rcu(|store| {
            let mut next = crate::tracking::pose_store::PoseStore::clone(store);
            next.set_fixed(REGISTRATION_LINK, pose);
            next
        });
        self.note(&file);
        *locked(&self.in_use) = Some(file);
        Ok(())
    }

    /// Notes `file` in the session recording, if one is open.
    fn note(&self, file: &RegistrationFile) {
        if let Some(recorder) = locked(&self.recorder).as_ref() {
            recorder.note(TimelineRecord::Registration {
                t_ns: self.clock.now_ns(),
                wall_ms: self.clock.wall_ms(),
                file: Box::new(file.clone()),
            });
        }
    }

    fn announce(&self, state: RegistrationState, now_ns: u64, at_once: bool) {
        let mut announced = locked(&self.announced);
        let due = at_once || now_ns.saturating_sub(announced.0) >= ANNOUNCE_EVERY_NS;
        if !due || announced.1.as_ref() == Some(&state) {
            return;
        }
        *announced = (now_ns, Some(state.clone()));
        drop(announced);
        self.announcer.send_modify(|all| {
            all.set(Topic::Registration, Notice::Registration { v: PROTOCOL_VERSION, state: Box::new(state) })
        });
    }

    /// Feeds the desk the pointer's new poses since `seen_ns`; the newest
    /// pointer sample's time.
    fn feed(&self, seen_ns: u64) -> u64 {
        feed(&mut locked(&self.desk), &self.poses.load(), &self.pointer, &self.reference, seen_ns)
    }

    /// The desk's thread body: until `shutdown`.
    pub fn run(self: Arc<Self>, shutdown: &Shutdown) {
        let mut seen_ns = 0;
        let mut was_recording = false;
        self.announce(self.state(), self.clock.now_ns(), true);
        while !shutdown.is_triggered() {
            std::thread::sleep(TICK);
            seen_ns = self.feed(seen_ns);
            let now = self.clock.now_ns();
            let state = {
                let mut desk = locked(&self.desk);
                desk.tick(now);
                desk.state()
            };
            self.announce(state, now, false);
            // A recording that starts later also says which registration is in use.
            let recording = locked(&self.recorder).as_ref().is_some_and(|r| r.is_recording());
            if recording && !was_recording {
                let in_use = locked(&self.in_use).clone();
                if let Some(file) = in_use {
                    self.note(&file);
                }
            }
            was_recording = recording;
        }
    }
}
