//! The heads-up display drawn on the station's monitor only (never into the
//! stream): what the OR staff need at a glance, alarms in plain words, and
//! the key list on `?`. Rendered on the CPU with the built-in bitmap font into
//! a small premultiplied RGBA image, re-made only when its text changes.

use crate::font::{GLYPH_HEIGHT, draw_text_rgba, text_width};

/// What the HUD shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HudState {
    /// Source description and size, e.g. `synthetic 1280x720`.
    pub source: String,
    /// Frames per second reaching the monitor.
    pub fps: f64,
    /// Remote viewers connected.
    pub viewers: usize,
    /// Capture → present on this monitor, p50 and p99, ms.
    pub local_latency_ms: Option<(f64, f64)>,
    /// Recording state in words.
    pub recording: String,
    /// Alarms, one line each, in plain words.
    pub alarms: Vec<String>,
    /// A passing message (snapshot saved, …).
    pub message: Option<String>,
    /// The registration desk's lines, when it runs.
    pub registration: Vec<String>,
}

/// The keys, as `?` shows them and the README lists them.
pub const KEY_HELP: [&str; 16] = [
    "KEYS",
    "A  ANATOMY OVERLAY ON/OFF",
    "N  ANNOTATIONS ON/OFF",
    "U  UNDISTORTION ON/OFF",
    "C  CLEAR ANNOTATIONS",
    "R  START/STOP RECORDING",
    "S  SNAPSHOT TO PNG",
    "F  FULLSCREEN",
    "H  HIDE/SHOW THIS HUD",
    "P  PIVOT THE POINTER",
    "T  TAKE THE FIDUCIAL",
    "1-9  REDO THAT FIDUCIAL",
    "W  SWEEP THE SURFACE",
    "ENTER  ACCEPT REGISTRATION",
    "?  THIS LIST",
    "Q  QUIT (ESC TOO)",
];

/// Font pixel size on the monitor.
const SCALE: usize = 2;
const MARGIN: usize = 6;
const LINE: usize = (GLYPH_HEIGHT + 3) * SCALE;

impl HudState {
    /// The lines, top to bottom.
    pub fn lines(&self) -> Vec<(String, [u8; 4])> {
        let white = [235, 235, 235, 255];
        let amber = [255, 190, 40, 255];
        let mut lines = vec![
            (format!("{}  {:.1} FPS", self.source, self.fps), white),
            (format!("VIEWERS {}   REC {}", self.viewers, self.recording), white),
            (
                match self.local_latency_ms {
                    Some((p50, p99)) => format!("LOCAL LATENCY P50 {p50:.0} MS  P99 {p99:.0} MS"),
                    None => "LOCAL LATENCY -".into(),
                },
                white,
            ),
        ];
        lines.extend(self.alarms.iter().map(|a| (format!("! {a}"), amber)));
        lines.extend(self.registration.iter().map(|l| (l.clone(), [140, 255, 160, 255])));
        if let Some(message) = &self.message {
            lines.push((message.clone(), [120, 220, 255, 255]));
        }
        lines.push(("? KEYS".into(), [160, 160, 160, 255]));
        lines
    }
}

/// Renders `lines` on a dark translucent panel: (premultiplied RGBA, size).
pub fn render_panel(lines: &[(String, [u8; 4])]) -> (Vec<u8>, (u32, u32)) {
    let width = lines.iter().map(|(t, _)| text_width(t) * SCALE).max().unwrap_or(0) + 2 * MARGIN;
    let height = lines.len() * LINE + 2 * MARGIN - 3 * SCALE;
    // Black at 60 % coverage, premultiplied: (0, 0, 0, 153).
    let mut image = [0u8, 0, 0, 153].repeat(width * height);
    for (i, (text, colour)) in lines.iter().enumerate() {
        draw_text_rgba(&mut image, width * 4, (width, height), (MARGIN, MARGIN + i * LINE), SCALE, *colour, text);
    }
    (image, (width as u32, height as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alarms_and_messages_follow_the_figures() {
        let state = HudState {
            source: "SYNTHETIC 1280X720".into(),
            fps: 59.94,
            viewers: 2,
            local_latency_ms: Some((12.4, 20.9)),
            recording: "OFF".into(),
            alarms: vec!["NO SIGNAL: CAMERA UNPLUGGED".into()],
            message: Some("SNAPSHOT SAVED".into()),
            registration: Vec::new(),
        };
        let lines: Vec<String> = state.lines().into_iter().map(|(t, _)| t).collect();
        assert_eq!(lines[0], "SYNTHETIC 1280X720  59.9 FPS");
        assert_eq!(lines[2], "LOCAL LATENCY P50 12 MS  P99 21 MS");
        assert_eq!(lines[3], "! NO SIGNAL: CAMERA UNPLUGGED");
        assert_eq!(lines[4], "SNAPSHOT SAVED");
    }

    #[test]
    fn the_panel_fits_its_longest_line() {
        let (image, (w, h)) = render_panel(&[("AB".into(), [255; 4]), ("ABCD".into(), [255; 4])]);
        assert_eq!(w as usize, text_width("ABCD") * SCALE + 2 * MARGIN);
        assert_eq!(image.len(), (w * h * 4) as usize);
        assert!(image.chunks(4).any(|p| p == [255, 255, 255, 255]), "text is drawn");
    }
}
