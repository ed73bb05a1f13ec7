//! Annotations as GPU shape instances: capsules for stroke segments and
//! arrows, boxes for the pixels of text glyphs (the station's 5×7 font), in
//! output pixel edge coordinates.

use bytemuck::{Pod, Zeroable};
use glam::Vec2;

use crate::font::{ADVANCE, GLYPH_HEIGHT, GLYPH_WIDTH, glyph};
use crate::scene::{Annotation, AnnotationEntry};

/// One shape, laid out as the annotation shader's instance attributes.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct ShapeInstance {
    /// First end point (capsule) or corner (box), px.
    pub p0: [f32; 2],
    /// Second end point or opposite corner, px.
    pub p1: [f32; 2],
    /// Half width (px) and kind (0 capsule, 1 box).
    pub shape: [f32; 2],
    /// Straight RGBA.
    pub colour: [f32; 4],
}

/// Most shapes drawn per frame (10 MB of instances); beyond it the oldest
/// annotations are not drawn.
pub const MAX_SHAPES: usize = 262_144;

const CAPSULE: f32 = 0.0;
const BOX: f32 = 1.0;

fn to_px(p: Vec2, size: Vec2) -> [f32; 2] {
    (p * size).to_array()
}

/// Shapes for every annotation visible at `now_ns` (pipeline clock; fading
/// ones with their opacity scaled by [`AnnotationEntry::fade`]), oldest first
/// (later ones draw on top).
pub fn instances(entries: &[AnnotationEntry], width: u32, height: u32, now_ns: u64) -> Vec<ShapeInstance> {
    let size = Vec2::new(width as f32, height as f32);
    let mut out = Vec::new();
    for entry in entries {
        let fade = entry.fade(now_ns);
        if fade <= 0.0 {
            continue;
        }
        let faded = |c: &[f32; 4]| [c[0], c[1], c[2], c[3] * fade];
        match &entry.annotation {
            Annotation::Stroke { points, colour, width_px } => {
                let colour = &faded(colour);
                let half = width_px / 2.0;
                if points.len() == 1 {
                    let p = to_px(points[0], size);
                    out.push(ShapeInstance { p0: p, p1: p, shape: [half, CAPSULE], colour: *colour });
                }
                for pair in points.windows(2) {
                    out.push(ShapeInstance {
                        p0: to_px(pair[0], size),
                        p1: to_px(pair[1], size),
                        shape: [half, CAPSULE],
                        colour: *colour,
                    });
                }
            }
            Annotation::Arrow { from, to, colour, width_px } => {
                let colour = &faded(colour);
                let (a, b) = (*from * size, *to * size);
                let half = width_px / 2.0;
                let back = (a - b).normalize_or_zero() * (4.0 * width_px).max(12.0);
                let shape = [half, CAPSULE];
                out.push(ShapeInstance { p0: a.to_array(), p1: b.to_array(), shape, colour: *colour });
                for angle in [0.45f32, -0.45] {
                    let head = b + Vec2::from_angle(angle).rotate(back);
                    out.push(ShapeInstance { p0: b.to_array(), p1: head.to_array(), shape, colour: *colour });
                }
            }
            Annotation::Label { at, text, colour, size_px } => {
                let colour = &faded(colour);
                let cell = size_px / GLYPH_HEIGHT as f32;
                let origin = *at * size;
                for (i, c) in text.chars().enumerate() {
                    let rows = glyph(c);
                    for (row, bits) in rows.iter().enumerate() {
                        for col in 0..GLYPH_WIDTH {
                            if bits & (0x10 >> col) == 0 {
                                continue;
                            }
                            let x = origin.x + (i * ADVANCE + col) as f32 * cell;
                            let y = origin.y + row as f32 * cell;
                            out.push(ShapeInstance {
                                p0: [x, y],
                                p1: [x + cell, y + cell],
                                shape: [0.0, BOX],
                                colour: *colour,
                            });
                        }
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(annotation: Annotation) -> AnnotationEntry {
        AnnotationEntry { author: "t".into(), time_ns: 0, id: 0, expires_ns: None, annotation }
    }

    #[test]
    fn strokes_become_one_capsule_per_segment_in_pixels() {
        let stroke = Annotation::Stroke {
            points: vec![Vec2::new(0.0, 0.0), Vec2::new(0.5, 0.5), Vec2::new(1.0, 0.5)],
            colour: [1.0; 4],
            width_px: 6.0,
        };
        let shapes = instances(&[entry(stroke)], 200, 100, 0);
        assert_eq!(shapes.len(), 2);
        assert_eq!(shapes[0].p1, [100.0, 50.0]);
        assert_eq!(shapes[1].p1, [200.0, 50.0]);
        assert_eq!(shapes[0].shape, [3.0, CAPSULE]);
    }

    #[test]
    fn arrows_have_a_head_and_labels_one_box_per_lit_font_pixel() {
        let arrow = Annotation::Arrow { from: Vec2::ZERO, to: Vec2::new(0.5, 0.0), colour: [1.0; 4], width_px: 2.0 };
        assert_eq!(instances(&[entry(arrow)], 100, 100, 0).len(), 3);
        let label = Annotation::Label { at: Vec2::ZERO, text: "I".into(), colour: [1.0; 4], size_px: 14.0 };
        let lit: u32 = glyph('I').iter().map(|r| r.count_ones()).sum();
        let shapes = instances(&[entry(label)], 100, 100, 0);
        assert_eq!(shapes.len() as u32, lit);
        assert!(shapes.iter().all(|s| s.shape[1] == BOX && (s.p1[0] - s.p0[0] - 2.0).abs() < 1e-6));
    }

    #[test]
    fn expiring_annotations_fade_over_the_last_second_then_vanish() {
        let mut fading = entry(Annotation::Arrow {
            from: Vec2::ZERO,
            to: Vec2::new(0.5, 0.0),
            colour: [1.0, 0.0, 0.0, 0.8],
            width_px: 2.0,
        });
        fading.expires_ns = Some(10_000_000_000);
        let alpha = |now| instances(std::slice::from_ref(&fading), 100, 100, now).first().map(|s| s.colour[3]);
        assert_eq!(alpha(5_000_000_000), Some(0.8));
        assert!((alpha(9_500_000_000).expect("half faded") - 0.4).abs() < 1e-6);
        assert_eq!(alpha(10_000_000_000), None);
    }
}
