//! Replay of a recorded session to the same viewer page as live
//! (`scopecast replay SESSION`): the recording's frames go into a fan-out
//! at their recorded pace, and WHEP viewers watch them exactly as they
//! watched the live station, overlays and annotations included, because the
//! recording is the composited stream everyone saw.
//!
//! - `session.rs`: the session folder read for replay (never modified).
//! - `schedule.rs`: when each frame goes out: pause, seek, speed (pure).
//! - `player.rs`: the thread that sends them, and the trainer's controls.

pub mod decoder;
pub mod player;
pub mod scene_track;
pub mod schedule;
pub mod session;
pub mod source;

use std::sync::Arc;

use scopecast_transport::broadcast::Broadcast;
use scopecast_transport::fanout::FanOutPolicy;

/// The fan-out for a replay: one layer (what was recorded), and queues long
/// enough for the burst a joining viewer gets while the replay is held (the
/// pictures from the last keyframe to the held one: one GOP, ≤ 1 s at 60 fps).
pub fn replay_broadcast() -> Arc<Broadcast> {
    let policy = FanOutPolicy { queue_capacity: 128, ..FanOutPolicy::default() };
    Arc::new(Broadcast::new(policy))
}
