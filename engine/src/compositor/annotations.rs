//! Annotations as GPU shape instances: capsules for stroke segments and
//! arrows, boxes for the pixels of text glyphs (the station's 5×7 font), in
//! output pixel edge coordinates. Marks on the anatomy are placed into the
//! frame first (`crate::anchoring::place`); their parts behind tissue are
//! drawn as [`HiddenMarks`] says.

use bytemuck::{Pod, Zeroable};
use glam::Vec2;
use serde::{Deserialize, Serialize};

use crate::anchoring::place::{Placed, Placer};
use crate::font::{ADVANCE, GLYPH_HEIGHT, GLYPH_WIDTH, glyph};
use crate::scene::{Annotation, AnnotationEntry, MarkShape};

/// How the parts of a mark behind tissue (or on a model whose tracking is
/// stale) are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HiddenMarks {
    /// Dashes (`2·width + 4` px on, `width + 4` px off) at [`DASHED_ALPHA`].
    #[default]
    Dashed,
    /// Whole, at [`FADED_ALPHA`] of its opacity.
    Faded,
}

/// Opacity factor of a dashed hidden part.
pub const DASHED_ALPHA: f32 = 0.8;
/// Opacity factor of a faded hidden part.
pub const FADED_ALPHA: f32 = 0.35;

/// How marks on the anatomy are placed and drawn in one frame.
#[derive(Debug, Clone, Copy)]
pub struct MarkDrawing<'a> {
    /// Where their points land.
    pub placer: Placer<'a>,
    /// How hidden parts look.
    pub hidden: HiddenMarks,
}

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

/// Capsules along a polyline part from `a` to `b` (px): whole when shown,
/// dashed or faded when hidden. `travelled` is the dash pattern's phase
/// (px along the mark so far), carried from segment to segment.
fn segment(
    out: &mut Vec<ShapeInstance>,
    (a, b): (Vec2, Vec2),
    hidden: Option<HiddenMarks>,
    shape: ShapeStyle,
    travelled: &mut f32,
) {
    let length = a.distance(b);
    let ShapeStyle { half, colour } = shape;
    let with_alpha = |k: f32| [colour[0], colour[1], colour[2], colour[3] * k];
    match hidden {
        None => out.push(ShapeInstance { p0: a.to_array(), p1: b.to_array(), shape: [half, CAPSULE], colour }),
        Some(HiddenMarks::Faded) => out.push(ShapeInstance {
            p0: a.to_array(),
            p1: b.to_array(),
            shape: [half, CAPSULE],
            colour: with_alpha(FADED_ALPHA),
        }),
        Some(HiddenMarks::Dashed) => {
            let (on, off) = (4.0 * half + 4.0, 2.0 * half + 4.0);
            let period = on + off;
            let direction = (b - a).normalize_or_zero();
            let mut s = 0.0;
            while s < length {
                let phase = (*travelled + s) % period;
                if phase < on {
                    let end = (s + on - phase).min(length);
                    let (p0, p1) = (a + direction * s, a + direction * end);
                    out.push(ShapeInstance {
                        p0: p0.to_array(),
                        p1: p1.to_array(),
                        shape: [half, CAPSULE],
                        colour: with_alpha(DASHED_ALPHA),
                    });
                    s = end;
                } else {
                    s += period - phase;
                }
            }
        }
    }
    *travelled += length;
}

/// Half width and colour of a mark's capsules.
#[derive(Debug, Clone, Copy)]
struct ShapeStyle {
    half: f32,
    colour: [f32; 4],
}

/// A mark on the anatomy, placed into this frame: its parts between
/// placed points (a point that cannot be placed breaks the line).
fn anchored(
    out: &mut Vec<ShapeInstance>,
    placed: &[Option<Placed>],
    mark: MarkShape,
    style: ShapeStyle,
    size: Vec2,
    hidden_style: HiddenMarks,
) {
    let px = |p: &Placed| p.at * size;
    let hidden = |a: &Placed, b: &Placed| (a.hidden || b.hidden).then_some(hidden_style);
    match mark {
        MarkShape::Stroke => {
            if let [Some(p)] = placed {
                let dot_style = if p.hidden { HiddenMarks::Faded } else { hidden_style };
                segment(out, (px(p), px(p)), p.hidden.then_some(dot_style), style, &mut 0.0);
            }
            let mut travelled = 0.0;
            for pair in placed.windows(2) {
                if let (Some(a), Some(b)) = (&pair[0], &pair[1]) {
                    segment(out, (px(a), px(b)), hidden(a, b), style, &mut travelled);
                }
            }
        }
        MarkShape::Arrow => {
            let [Some(from), Some(to)] = placed else { return };
            let (a, b) = (px(from), px(to));
            segment(out, (a, b), hidden(from, to), style, &mut 0.0);
            let back = (a - b).normalize_or_zero() * (8.0 * style.half).max(12.0);
            let head = if to.hidden { Some(HiddenMarks::Faded) } else { None };
            for angle in [0.45f32, -0.45] {
                segment(out, (b, b + Vec2::from_angle(angle).rotate(back)), head, style, &mut 0.0);
            }
        }
    }
}

/// Shapes for every annotation visible at `now_ns` (pipeline clock; fading
/// ones with their opacity scaled by [`AnnotationEntry::fade`]), oldest first
/// (later ones draw on top); marks on the anatomy placed by `marks`.
pub fn instances(
    entries: &[AnnotationEntry],
    width: u32,
    height: u32,
    now_ns: u64,
    marks: &MarkDrawing<'_>,
) -> Vec<ShapeInstance> {
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
            Annotation::Anchored { shape, points, colour, width_px } => {
                let placed: Vec<Option<Placed>> = points.iter().map(|p| marks.placer.place(p)).collect();
                let style = ShapeStyle { half: width_px / 2.0, colour: faded(colour) };
                anchored(&mut out, &placed, *shape, style, size, marks.hidden);
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

    /// No camera: only screen marks land.
    const SCREEN_ONLY: MarkDrawing<'static> =
        MarkDrawing { placer: Placer::new(None, &[], &[]), hidden: HiddenMarks::Dashed };

    #[test]
    fn marks_on_the_anatomy_follow_their_model_and_hidden_parts_are_dashed_or_faded() {
        use crate::anchoring::ModelAt;
        use crate::anchoring::view::FrameView;
        use crate::scene::{MarkPoint, OutputMode};
        use glam::{Mat4, Vec3};
        let surface = Mat4::from_translation(Vec3::new(0.0, 0.0, 100.0));
        let models = vec![crate::anchoring::lift::tests::model("surface", surface)];
        let view = FrameView::of(&crate::anchoring::view::tests::scene(OutputMode::Undistorted), (1280, 720));
        let on = |x: f32| MarkPoint::OnModel { model: 0, at_mm: Vec3::new(x, 0.0, 0.0) };
        let mark = Annotation::Anchored {
            shape: MarkShape::Stroke,
            points: vec![on(-20.0), on(20.0), MarkPoint::Screen(Vec2::new(0.9, 0.9))],
            colour: [1.0; 4],
            width_px: 4.0,
        };
        let shown = [ModelAt::Current(surface)];
        let drawing = MarkDrawing { placer: Placer::new(view, &models, &shown), hidden: HiddenMarks::Dashed };
        let shapes = instances(&[entry(mark.clone())], 1280, 720, 0, &drawing);
        assert_eq!(shapes.len(), 2, "two segments, the last to the point that stayed on the screen");
        // 40 mm at 100 mm with fx 700: 280 px, centred on the optical axis.
        assert!((shapes[0].p1[0] - shapes[0].p0[0] - 280.0).abs() < 1e-3, "{:?}", shapes[0]);
        assert_eq!(shapes[1].p1, [0.9 * 1280.0, 0.9 * 720.0]);
        // Stale tracking: hidden parts dashed (many short capsules at 0.8) or faded (one at 0.35).
        let stale = [ModelAt::Stale(surface)];
        let dashed = instances(
            &[entry(mark.clone())],
            1280,
            720,
            0,
            &MarkDrawing { placer: Placer::new(view, &models, &stale), hidden: HiddenMarks::Dashed },
        );
        assert!(dashed.len() > 10, "{} dashes", dashed.len());
        assert!(dashed.iter().all(|d| d.colour[3] == DASHED_ALPHA));
        let first_dash = dashed[0].p0[0].max(dashed[0].p1[0]) - dashed[0].p0[0].min(dashed[0].p1[0]);
        assert!((first_dash - 12.0).abs() < 1e-3, "on 2·4 + 4 px: {first_dash}");
        let faded = instances(
            &[entry(mark.clone())],
            1280,
            720,
            0,
            &MarkDrawing { placer: Placer::new(view, &models, &stale), hidden: HiddenMarks::Faded },
        );
        assert_eq!(faded.len(), 2);
        assert!(faded.iter().all(|d| d.colour[3] == FADED_ALPHA));
        // The model not placed (hidden while stale): only what stayed on the screen, and no line to it.
        let unplaced = [ModelAt::Unplaced];
        let none = instances(
            &[entry(mark)],
            1280,
            720,
            0,
            &MarkDrawing { placer: Placer::new(view, &models, &unplaced), hidden: HiddenMarks::Dashed },
        );
        assert!(none.is_empty());
    }

    #[test]
    fn strokes_become_one_capsule_per_segment_in_pixels() {
        let stroke = Annotation::Stroke {
            points: vec![Vec2::new(0.0, 0.0), Vec2::new(0.5, 0.5), Vec2::new(1.0, 0.5)],
            colour: [1.0; 4],
            width_px: 6.0,
        };
        let shapes = instances(&[entry(stroke)], 200, 100, 0, &SCREEN_ONLY);
        assert_eq!(shapes.len(), 2);
        assert_eq!(shapes[0].p1, [100.0, 50.0]);
        assert_eq!(shapes[1].p1, [200.0, 50.0]);
        assert_eq!(shapes[0].shape, [3.0, CAPSULE]);
    }

    #[test]
    fn arrows_have_a_head_and_labels_one_box_per_lit_font_pixel() {
        let arrow = Annotation::Arrow { from: Vec2::ZERO, to: Vec2::new(0.5, 0.0), colour: [1.0; 4], width_px: 2.0 };
        assert_eq!(instances(&[entry(arrow)], 100, 100, 0, &SCREEN_ONLY).len(), 3);
        let label = Annotation::Label { at: Vec2::ZERO, text: "I".into(), colour: [1.0; 4], size_px: 14.0 };
        let lit: u32 = glyph('I').iter().map(|r| r.count_ones()).sum();
        let shapes = instances(&[entry(label)], 100, 100, 0, &SCREEN_ONLY);
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
        let alpha =
            |now| instances(std::slice::from_ref(&fading), 100, 100, now, &SCREEN_ONLY).first().map(|s| s.colour[3]);
        assert_eq!(alpha(5_000_000_000), Some(0.8));
        assert!((alpha(9_500_000_000).expect("half faded") - 0.4).abs() < 1e-6);
        assert_eq!(alpha(10_000_000_000), None);
    }
}
