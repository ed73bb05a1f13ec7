//! `scopecast snapshot`: one composited picture of the configured source,
//! written as an image file.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use scopecast_engine::clock::{SharedClock, SystemClock};
use scopecast_engine::config::Config;

/// Writes the last of `frames` live frames, composited, to `out`.
pub fn snapshot(config: &Config, out: &Path, frames: u32, timeout_s: f64) -> anyhow::Result<()> {
    let clock: SharedClock = Arc::new(SystemClock::new());
    let timeout_ms = (timeout_s.clamp(0.1, 3600.0) * 1000.0) as u64;
    let picture = scopecast_engine::station::snapshot(config, clock, frames, timeout_ms)?;
    image::save_buffer(out, &picture.rgb, picture.width, picture.height, image::ExtendedColorType::Rgb8)
        .with_context(|| format!("cannot write {}", out.display()))?;
    println!(
        "{}: {}x{} frame {} (capture {} ms) from {}",
        out.display(),
        picture.width,
        picture.height,
        picture.sequence,
        picture.capture_wall_ms,
        config.source.uri
    );
    Ok(())
}
