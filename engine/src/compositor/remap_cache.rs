//! The remap table in use and the one being built. A table (one per
//! calibration, frame size and output mode; see `remap`) takes long enough
//! to build that it is built on a named background thread: until it is
//! ready the video is shown as captured and the overlay waits, so a
//! calibration change never stalls the frame loop. One table is kept; a new
//! key starts a new build, and a build whose key is no longer wanted is
//! forgotten (its thread finishes and its result is dropped).

use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError};

use scopecast_calibration::CameraModel;

use super::CompositorError;
use super::cpu_frame::VideoGather;
use super::gpu::GpuContext;
use super::projection::{OverlayViewport, camera_for_frame};
use super::remap::{self, RemapTable};
use super::targets::{self, OverlayTarget};
use crate::scene::{OutputMode, Scene};

/// What a remap table is for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RemapKey {
    /// The lens, scaled to the frame size.
    pub(crate) camera: CameraModel,
    /// Frame size, px.
    pub(crate) size: (u32, u32),
    pub(crate) mode: OutputMode,
}

/// A table on the GPU, with the overlay target its mode draws into.
pub(crate) struct ReadyRemap {
    pub(crate) key: RemapKey,
    /// The table as a texture (binding 5 of the compose pass).
    pub(crate) view: wgpu::TextureView,
    /// The overlay target on the ideal image plane this table maps from
    /// (distorted mode; the undistorted mode draws into the output-sized one).
    pub(crate) overlay: OverlayTarget,
    /// The undistorted mode's table as bilinear taps for the CPU plan (built
    /// with the table, on its thread, when the cache was asked to).
    pub(crate) gather: Option<Arc<VideoGather>>,
}

/// What a table build yields.
type Built = (RemapTable, OverlayViewport, Option<VideoGather>);

/// A table being built on its thread.
struct PendingRemap {
    key: RemapKey,
    built: Receiver<Built>,
}

/// The remap table in use and the one being built.
#[derive(Default)]
pub(crate) struct RemapCache {
    ready: Option<ReadyRemap>,
    pending: Option<PendingRemap>,
    /// Build the CPU plan's taps with each undistorted table.
    with_gather: bool,
}

/// What [`RemapCache::update`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RemapUpdate {
    /// Nothing bound changed.
    Unchanged,
    /// A new table (and overlay target) replaced the one in use: bind groups
    /// that hold them must be rebuilt.
    Installed,
}

impl RemapCache {
    /// A cache whose undistorted tables also come as CPU taps (`PassPlan::Cpu`).
    pub(crate) fn with_gather() -> Self {
        Self { with_gather: true, ..Self::default() }
    }

    /// Starts or collects the table `scene` needs for frames of `size` px;
    /// never waits for a build. Without a calibration no table is kept.
    pub(crate) fn update(
        &mut self,
        ctx: &GpuContext,
        scene: &Scene,
        size: (u32, u32),
        msaa_samples: u32,
    ) -> Result<RemapUpdate, CompositorError> {
        let Some(calibration) = &scene.calibration else {
            self.ready = None;
            return Ok(RemapUpdate::Unchanged);
        };
        let key = RemapKey {
            camera: camera_for_frame(&calibration.camera, (calibration.width, calibration.height), size),
            size,
            mode: scene.output_mode,
        };
        if self.ready.as_ref().is_some_and(|r| r.key == key) {
            return Ok(RemapUpdate::Unchanged);
        }
        if let Some(pending) = &self.pending
            && pending.key == key
        {
            return match pending.built.try_recv() {
                Ok((table, viewport, gather)) => {
                    let view = targets::remap_texture(&ctx.device, &ctx.queue, &table);
                    let overlay = OverlayTarget::new(&ctx.device, viewport, msaa_samples);
                    self.ready = Some(ReadyRemap { key, view, overlay, gather: gather.map(Arc::new) });
                    self.pending = None;
                    Ok(RemapUpdate::Installed)
                }
                Err(TryRecvError::Empty) => Ok(RemapUpdate::Unchanged),
                Err(TryRecvError::Disconnected) => {
                    self.pending = None;
                    Err(CompositorError::RemapBuilderGone)
                }
            };
        }
        let (tx, rx) = std::sync::mpsc::channel::<Built>();
        let with_gather = self.with_gather;
        let spawned = std::thread::Builder::new().name("scopecast-remap".into()).spawn(move || {
            let built = match key.mode {
                OutputMode::Undistorted => {
                    let table = remap::undistort_video(&key.camera, key.size.0, key.size.1);
                    let gather = with_gather.then(|| VideoGather::from_table(&table));
                    (table, OverlayViewport::identity(key.size.0, key.size.1), gather)
                }
                OutputMode::Distorted => {
                    let (table, viewport) = remap::distort_overlay(&key.camera, key.size.0, key.size.1);
                    (table, viewport, None)
                }
            };
            let _ = tx.send(built);
        });
        if spawned.is_err() {
            return Err(CompositorError::RemapBuilderGone);
        }
        self.pending = Some(PendingRemap { key, built: rx });
        Ok(RemapUpdate::Unchanged)
    }

    /// Whether the table `scene` needs is in use (true without a calibration).
    pub(crate) fn ready_for(&self, scene: &Scene) -> bool {
        match (&scene.calibration, &self.ready) {
            (None, _) => true,
            (Some(_), Some(r)) => r.key.mode == scene.output_mode && self.pending.is_none(),
            (Some(_), None) => false,
        }
    }

    /// The table the compose pass binds for `scene`: none without a
    /// calibration or while a new one is being built.
    pub(crate) fn in_use(&self, scene: &Scene) -> Option<&ReadyRemap> {
        self.ready.as_ref().filter(|_| self.pending.is_none() && scene.calibration.is_some())
    }

    /// The distorted mode's overlay target, when `mode` is distorted and a
    /// table is held.
    pub(crate) fn distorted_overlay(&self, mode: OutputMode) -> Option<&OverlayTarget> {
        match (mode, &self.ready) {
            (OutputMode::Distorted, Some(r)) => Some(&r.overlay),
            _ => None,
        }
    }
}
