//! When each recorded frame goes out during a replay: pause, seek and speed
//! as a state machine over the recording's frame times. It never reads a
//! clock: every decision takes `now_ns` (the player's monotonic clock, ns).
//!
//! Playing, frame `i` is due at `anchor_now + (t[i] − anchor_play) / speed`,
//! where `(anchor_now, anchor_play)` is re-set on every play, seek and speed
//! change, so position is continuous across a speed change. A seek lands on
//! the last keyframe at or before its target (a decoder cannot start
//! elsewhere) and sends it at once. Frames that must reach a viewer without
//! waiting (the keyframe after a seek while held, the pictures up to the
//! held one for a joining viewer) go out as a burst ahead of the schedule.

use std::collections::VecDeque;

/// Furthest a playing schedule may fall behind before it is re-anchored
/// (a slow disk must not turn into a burst of stale frames), ns.
pub const MAX_LAG_NS: u64 = 250_000_000;
/// A playing viewer that needs a keyframe waits for the next one in the
/// recording if it is due within this long, ns; otherwise playback goes
/// back to the keyframe at or before the position.
pub const KEYFRAME_WAIT_NS: u64 = 1_500_000_000;

/// A frame's place on the replay timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameTime {
    /// Position on the replay timeline, ns from the first frame.
    pub play_ns: u64,
    /// An IDR picture: playback may start here.
    pub keyframe: bool,
}

/// The playback state.
#[derive(Debug, Clone)]
pub struct Playback {
    frames: Vec<FrameTime>,
    /// The next frame of the schedule.
    next: usize,
    /// The last frame sent, if any.
    last_sent: Option<usize>,
    paused: bool,
    speed: f64,
    anchor_now_ns: u64,
    anchor_play_ns: u64,
    /// Frames to send at once, before the schedule.
    burst: VecDeque<usize>,
}

impl Playback {
    /// Playing from the first keyframe at `now_ns`, at the recorded pace.
    pub fn new(frames: Vec<FrameTime>, now_ns: u64) -> Self {
        let first = frames.iter().position(|f| f.keyframe).unwrap_or(frames.len());
        let anchor_play_ns = frames.get(first).map_or(0, |f| f.play_ns);
        Self {
            frames,
            next: first,
            last_sent: None,
            paused: false,
            speed: 1.0,
            anchor_now_ns: now_ns,
            anchor_play_ns,
            burst: VecDeque::new(),
        }
    }

    /// The recording's length, ns (the last frame's time plus one frame).
    pub fn duration_ns(&self) -> u64 {
        match self.frames.as_slice() {
            [] => 0,
            [only] => only.play_ns.saturating_add(33_333_333),
            [.., before, last] => last.play_ns.saturating_add(last.play_ns.saturating_sub(before.play_ns).max(1)),
        }
    }

    /// Held by the trainer.
    pub fn paused(&self) -> bool {
        self.paused
    }

    /// Every frame was sent.
    pub fn ended(&self) -> bool {
        self.next >= self.frames.len() && self.burst.is_empty()
    }

    /// × the recorded pace.
    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// Where playback is at `now_ns`, ns of the replay timeline.
    pub fn position_ns(&self, now_ns: u64) -> u64 {
        let shown = self.last_sent.map_or(self.anchor_play_ns, |i| self.frames[i].play_ns);
        if self.paused || self.ended() {
            return shown;
        }
        let elapsed = now_ns.saturating_sub(self.anchor_now_ns) as f64 * self.speed;
        let scheduled = self.anchor_play_ns.saturating_add(elapsed as u64);
        // Between frames the position moves with the clock, never past the next frame to send.
        let limit = self.frames.get(self.next).map_or(self.duration_ns(), |f| f.play_ns);
        scheduled.min(limit).max(shown.min(limit))
    }

    /// When the next frame is due (`now_ns` clock); `None` while held or ended.
    pub fn due_ns(&self) -> Option<u64> {
        if !self.burst.is_empty() {
            return Some(0);
        }
        if self.paused {
            return None;
        }
        let frame = self.frames.get(self.next)?;
        let ahead = frame.play_ns.saturating_sub(self.anchor_play_ns) as f64 / self.speed;
        Some(self.anchor_now_ns.saturating_add(ahead as u64))
    }

    /// The frame to send now, if one is due at `now_ns`.
    pub fn take_due(&mut self, now_ns: u64) -> Option<usize> {
        if let Some(index) = self.burst.pop_front() {
            self.last_sent = Some(index);
            return Some(index);
        }
        let due = self.due_ns()?;
        if due > now_ns {
            return None;
        }
        let index = self.next;
        if now_ns - due > MAX_LAG_NS {
            // Fell behind (disk, scheduler): go on from here rather than rush.
            self.anchor_now_ns = now_ns;
            self.anchor_play_ns = self.frames[index].play_ns;
        }
        self.next += 1;
        self.last_sent = Some(index);
        Some(index)
    }

    /// The last keyframe at or before `target_ns` (the first keyframe when
    /// there is none before it).
    pub fn keyframe_at_or_before(&self, target_ns: u64) -> Option<usize> {
        let after = self.frames.partition_point(|f| f.play_ns <= target_ns);
        self.frames[..after].iter().rposition(|f| f.keyframe).or_else(|| self.frames.iter().position(|f| f.keyframe))
    }

    /// Goes to the keyframe at or before `target_ns`; it is sent at once
    /// (held: it becomes the held picture). Returns its index.
    pub fn seek(&mut self, target_ns: u64, now_ns: u64) -> Option<usize> {
        let index = self.keyframe_at_or_before(target_ns)?;
        self.burst.clear();
        self.anchor_now_ns = now_ns;
        self.anchor_play_ns = self.frames[index].play_ns;
        if self.paused {
            self.burst.push_back(index);
            self.next = index + 1;
        } else {
            self.next = index;
        }
        Some(index)
    }

    /// Holds the picture.
    pub fn pause(&mut self, now_ns: u64) {
        if !self.paused {
            self.anchor_play_ns = self.position_ns(now_ns);
            self.paused = true;
        }
    }

    /// Goes on from the held picture (the next frame goes out at once).
    pub fn play(&mut self, now_ns: u64) {
        if self.paused {
            self.paused = false;
            self.anchor_now_ns = now_ns;
            self.anchor_play_ns = self.frames.get(self.next).map_or(self.anchor_play_ns, |f| f.play_ns);
        }
    }

    /// Plays at `factor` × the recorded pace from the current position.
    pub fn set_speed(&mut self, factor: f64, now_ns: u64) {
        if !(factor.is_finite() && factor > 0.0) {
            return;
        }
        if !self.paused {
            self.anchor_play_ns = self.position_ns(now_ns);
            self.anchor_now_ns = now_ns;
        }
        self.speed = factor;
    }

    /// A viewer needs a keyframe (it joined, or lost packets). Held or
    /// ended: the pictures from the keyframe before the held one up to it
    /// go out at once. Playing: the next keyframe if it is due within
    /// [`KEYFRAME_WAIT_NS`], else playback goes back to the last keyframe.
    pub fn refresh(&mut self, now_ns: u64) {
        let Some(shown) = self.last_sent else { return };
        if self.paused || self.ended() {
            if let Some(key) = self.keyframe_at_or_before(self.frames[shown].play_ns) {
                self.burst = (key..=shown.max(key)).collect();
            }
            return;
        }
        let next_key = self.frames[self.next..].iter().position(|f| f.keyframe).map(|i| i + self.next);
        let soon = next_key.and_then(|k| {
            let ahead = self.frames[k].play_ns.saturating_sub(self.anchor_play_ns) as f64 / self.speed;
            let due = self.anchor_now_ns.saturating_add(ahead as u64);
            (due.saturating_sub(now_ns) <= KEYFRAME_WAIT_NS).then_some(k)
        });
        if soon.is_none() {
            let position = self.position_ns(now_ns);
            self.seek(position, now_ns);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// 30 fps, a keyframe every 30 frames, `seconds` long.
    fn recording(seconds: u64) -> Vec<FrameTime> {
        (0..seconds * 30).map(|i| FrameTime { play_ns: i * 1_000_000_000 / 30, keyframe: i % 30 == 0 }).collect()
    }

    /// Sends everything due up to `until_ns` in 1 ms steps; (index, sent at).
    fn run(playback: &mut Playback, from_ns: u64, until_ns: u64) -> Vec<(usize, u64)> {
        let mut sent = Vec::new();
        let mut now = from_ns;
        while now <= until_ns {
            while let Some(index) = playback.take_due(now) {
                sent.push((index, now));
            }
            now += MS;
        }
        sent
    }

    #[test]
    fn frames_go_out_at_the_recorded_pace_times_the_speed() {
        let mut playback = Playback::new(recording(4), 0);
        let sent = run(&mut playback, 0, 1000 * MS - 1);
        assert_eq!(sent.len(), 30, "one second at 1×: 30 frames");
        assert_eq!(sent[10], (10, 334 * MS), "frame 10 at 333.3 ms, sent on the next 1 ms step");
        playback.set_speed(2.0, 1000 * MS);
        let sent = run(&mut playback, 1000 * MS, 2000 * MS - 1);
        assert_eq!(sent.len(), 60, "one second at 2×: 60 frames");
        assert_eq!(playback.position_ns(2000 * MS), 3000 * MS);
        playback.set_speed(0.25, 2000 * MS);
        assert_eq!(run(&mut playback, 2000 * MS, 3000 * MS - 1).len(), 8, "0.25×: 7.5 frames a second");
    }

    #[test]
    fn a_seek_lands_on_the_keyframe_at_or_before_its_target_and_sends_it_at_once() {
        let mut playback = Playback::new(recording(10), 0);
        run(&mut playback, 0, 100 * MS);
        assert_eq!(playback.seek(5_500 * MS, 200 * MS), Some(150), "5.5 s → the keyframe at 5 s");
        assert_eq!(playback.take_due(200 * MS), Some(150));
        assert_eq!(playback.position_ns(200 * MS), 5_000 * MS);
        assert_eq!(playback.seek(0, 300 * MS), Some(0));
        assert_eq!(playback.seek(60_000 * MS, 300 * MS), Some(270), "past the end → the last keyframe");
        assert_eq!(playback.keyframe_at_or_before(5_000 * MS), Some(150), "a keyframe exactly at the target");
    }

    #[test]
    fn a_held_replay_sends_nothing_until_play_and_a_seek_shows_the_new_picture() {
        let mut playback = Playback::new(recording(10), 0);
        run(&mut playback, 0, 500 * MS);
        playback.pause(500 * MS);
        let held = playback.position_ns(500 * MS);
        assert!(run(&mut playback, 500 * MS, 2000 * MS).is_empty(), "nothing while held");
        assert_eq!(playback.position_ns(5000 * MS), held);
        assert_eq!(playback.seek(2_100 * MS, 2000 * MS), Some(60));
        assert_eq!(run(&mut playback, 2000 * MS, 3000 * MS), vec![(60, 2000 * MS)], "only the keyframe, once");
        assert!(playback.paused());
        playback.play(3000 * MS);
        let sent = run(&mut playback, 3000 * MS, 3100 * MS);
        assert_eq!(sent.first(), Some(&(61, 3000 * MS)), "play goes on after the held picture at once");
    }

    #[test]
    fn a_viewer_needing_a_keyframe_gets_the_held_picture_or_the_next_keyframe() {
        let mut playback = Playback::new(recording(10), 0);
        run(&mut playback, 0, 1400 * MS);
        playback.pause(1400 * MS);
        playback.refresh(1500 * MS);
        let burst: Vec<usize> = run(&mut playback, 1500 * MS, 1500 * MS).into_iter().map(|(i, _)| i).collect();
        assert_eq!(burst, (30..=42).collect::<Vec<_>>(), "keyframe 30 up to the held frame 42");
        playback.play(1600 * MS);
        playback.refresh(1600 * MS);
        assert_eq!(playback.take_due(1600 * MS), Some(43), "the next keyframe (60) is 0.57 s away: wait for it");
        playback.set_speed(0.25, 1600 * MS);
        playback.refresh(1600 * MS);
        assert_eq!(playback.take_due(1600 * MS), Some(30), "at 0.25× it is 2.3 s away: back to keyframe 30");
    }

    #[test]
    fn a_stalled_player_goes_on_from_where_it_is_without_a_burst() {
        let mut playback = Playback::new(recording(10), 0);
        assert_eq!(playback.take_due(0), Some(0));
        assert_eq!(playback.take_due(2000 * MS), Some(1), "late frame still goes out");
        assert_eq!(playback.take_due(2000 * MS), None, "but the schedule restarts from it");
        assert!(!playback.ended());
        assert!(playback.duration_ns().abs_diff(10_000 * MS) <= 1, "the last frame's time plus one frame");
    }
}
