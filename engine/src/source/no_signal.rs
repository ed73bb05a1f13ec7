//! The NO SIGNAL card: what every later stage (monitor, viewers, recording)
//! shows while the source is down, so nobody mistakes a frozen picture for a
//! live one. A dark card with a yellow warning frame, NO SIGNAL in large
//! letters, the source and the reason below.

use std::sync::Arc;

use crate::font::{ADVANCE, GLYPH_HEIGHT, draw_text_rgba, text_width};
use crate::frame::{Frame, FrameBytes, FrameContent, FrameStamp, PixelFormat};

/// Background colour (dark slate, so a working display is distinguishable from a dead one).
const BACKGROUND: [u8; 4] = [28, 30, 36, 255];
/// Warning colour of the frame and the title.
const WARNING: [u8; 4] = [255, 200, 0, 255];
/// Colour of the explanatory lines.
const TEXT: [u8; 4] = [235, 235, 235, 255];

/// Draws NO SIGNAL cards, re-using the pixels while size and text stay the same.
#[derive(Default)]
pub struct NoSignalCard {
    cached: Option<(u32, u32, String, Arc<dyn FrameBytes>)>,
}

impl NoSignalCard {
    /// A card renderer with an empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// An RGBA NO SIGNAL frame of `width`×`height` explaining `reason` for `source`.
    pub fn frame(&mut self, width: u32, height: u32, source: &str, reason: &str, stamp: FrameStamp) -> Frame {
        let text = format!("{source}\n{reason}");
        let bytes = match &self.cached {
            Some((w, h, t, bytes)) if *w == width && *h == height && *t == text => bytes.clone(),
            _ => {
                let bytes: Arc<dyn FrameBytes> = Arc::new(render(width as usize, height as usize, source, reason));
                self.cached = Some((width, height, text, bytes.clone()));
                bytes
            }
        };
        let (planes, _) = PixelFormat::Rgba8.packed_layout(width, height);
        let content = FrameContent::NoSignal { reason: reason.to_string() };
        // The layout is the packed layout of exactly these bytes, so it cannot be rejected.
        Frame::new(PixelFormat::Rgba8, width, height, planes, bytes, stamp, content)
            .unwrap_or_else(|e| unreachable!("packed NO SIGNAL layout rejected: {e}"))
    }
}

/// Draws `text` centred horizontally at row `y`, scaled to fit the width.
fn centred_line(
    image: &mut [u8],
    (w, h): (usize, usize),
    y: usize,
    max_scale: usize,
    colour: [u8; 4],
    text: &str,
) -> usize {
    let natural = text_width(text).max(1);
    let scale = (w * 9 / 10 / natural).clamp(1, max_scale);
    let x = w.saturating_sub(natural * scale) / 2;
    draw_text_rgba(image, w * 4, (w, h), (x, y), scale, colour, text);
    GLYPH_HEIGHT * scale
}

fn render(w: usize, h: usize, source: &str, reason: &str) -> Vec<u8> {
    let mut image: Vec<u8> = BACKGROUND.iter().copied().cycle().take(w * h * 4).collect();
    // Warning frame: a band of h/40 px along every edge.
    let band = (h / 40).max(2);
    for y in 0..h {
        for x in 0..w {
            if y < band || y >= h - band || x < band || x >= w - band {
                image[(y * w + x) * 4..][..4].copy_from_slice(&WARNING);
            }
        }
    }
    let title_scale = (h / 60).max(1);
    let mut y = h / 3;
    y += centred_line(&mut image, (w, h), y, title_scale, WARNING, "NO SIGNAL");
    let line_scale = (h / 180).max(1);
    y += GLYPH_HEIGHT * line_scale * 2;
    let source_line = format!("SOURCE: {source}");
    y += centred_line(&mut image, (w, h), y, line_scale, TEXT, &source_line);
    y += GLYPH_HEIGHT * line_scale;
    // Long reasons wrap at the width the smallest scale allows.
    let max_chars = (w * 9 / 10 / (ADVANCE * line_scale)).max(8);
    for chunk in reason.chars().collect::<Vec<_>>().chunks(max_chars).take(4) {
        let line: String = chunk.iter().collect();
        y += centred_line(&mut image, (w, h), y, line_scale, TEXT, &line);
        y += GLYPH_HEIGHT * line_scale / 2;
    }
    image
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(sequence: u64) -> FrameStamp {
        FrameStamp { sequence, capture_time_ns: sequence, capture_wall_ms: 0 }
    }

    #[test]
    fn the_card_is_marked_drawn_and_cached() {
        let mut card = NoSignalCard::new();
        let a = card.frame(1280, 720, "v4l2:///dev/video0", "device gone", stamp(1));
        let b = card.frame(1280, 720, "v4l2:///dev/video0", "device gone", stamp(2));
        assert!(a.is_no_signal());
        assert_eq!(a.content, FrameContent::NoSignal { reason: "device gone".into() });
        assert_eq!((a.format(), a.width(), a.height()), (PixelFormat::Rgba8, 1280, 720));
        assert!(std::ptr::eq(a.bytes().as_ptr(), b.bytes().as_ptr()), "same text re-uses the pixels");
        let warning_pixels = a.bytes().chunks_exact(4).filter(|p| *p == WARNING).count();
        // The frame is a band of 720/40 = 18 px along every edge; the title adds thousands more.
        let border = 2 * 18 * 1280 + 2 * 18 * (720 - 36);
        assert!(warning_pixels > border + 5_000, "{warning_pixels} warning pixels, border alone {border}");
        let c = card.frame(1280, 720, "v4l2:///dev/video0", "retrying", stamp(3));
        assert_ne!(a.bytes(), c.bytes(), "a new reason is drawn");
    }

    #[test]
    fn tiny_frames_and_long_reasons_do_not_panic() {
        let mut card = NoSignalCard::new();
        card.frame(16, 16, "x", &"very long reason ".repeat(40), stamp(1));
        card.frame(7680, 16, "", "", stamp(2));
    }
}
