//! The `marks` notice: every viewer's mark now in the scene, and where it
//! stays (on the anatomy, on the screen, or partly; why points stayed on the
//! screen), so every page can show each mark's mode.

use std::collections::HashMap;

use scopecast_transport::protocol::{Anchor, MAX_MARKS_LISTED, MarkState};

use crate::scene::{Annotation, AnnotationEntry, MarkPoint, MarkShape, Scene};

/// The session id in an author name the telestration gives (`viewer-3`,
/// `viewer-3/laser`); 0 for anything else (the station, a recording).
pub fn author_id(author: &str) -> u64 {
    author
        .strip_prefix("viewer-")
        .map(|rest| rest.trim_end_matches("/laser"))
        .and_then(|id| id.parse().ok())
        .unwrap_or(0)
}

fn state(entry: &AnnotationEntry, scene: &Scene, reasons: &HashMap<u64, String>) -> Option<MarkState> {
    let laser = entry.author.ends_with("/laser");
    let (shape, anchor, on_anatomy, on_screen, model) = match &entry.annotation {
        Annotation::Stroke { points, .. } => ("stroke", Anchor::Screen, 0, points.len(), None),
        Annotation::Arrow { .. } => ("arrow", Anchor::Screen, 0, 2, None),
        Annotation::Label { .. } => return None,
        Annotation::Anchored { shape, points, .. } => {
            let on_model = |p: &&MarkPoint| matches!(p, MarkPoint::OnModel { .. });
            let anatomy = points.iter().filter(on_model).count();
            let model = points.iter().find_map(|p| match p {
                MarkPoint::OnModel { model, .. } => scene.models.get(usize::from(*model)).map(|m| m.name.clone()),
                MarkPoint::Screen(_) => None,
            });
            let shape = if *shape == MarkShape::Arrow { "arrow" } else { "stroke" };
            (shape, Anchor::Anatomy, anatomy, points.len() - anatomy, model)
        }
    };
    let message = match reasons.get(&entry.id) {
        Some(reason) if anchor == Anchor::Anatomy && on_screen > 0 => reason.clone(),
        _ => String::new(),
    };
    Some(MarkState {
        id: entry.id,
        by: author_id(&entry.author),
        shape: if laser { "laser".into() } else { shape.into() },
        anchor,
        on_anatomy: on_anatomy as u32,
        on_screen: on_screen as u32,
        model,
        message,
    })
}

/// The newest [`MAX_MARKS_LISTED`] marks of `scene`, oldest first; `reasons`
/// says, by annotation id, why points of an anatomy mark stayed on the screen.
pub fn mark_states(scene: &Scene, reasons: &HashMap<u64, String>) -> Vec<MarkState> {
    let mut marks: Vec<MarkState> =
        scene.annotations.iter().rev().filter_map(|e| state(e, scene, reasons)).take(MAX_MARKS_LISTED).collect();
    marks.reverse();
    marks
}

#[cfg(test)]
mod tests {
    use glam::{Vec2, Vec3};

    use super::*;

    fn entry(author: &str, id: u64, annotation: Annotation) -> AnnotationEntry {
        AnnotationEntry { author: author.into(), time_ns: 0, annotation, id, expires_ns: None }
    }

    #[test]
    fn each_mark_says_where_it_stays_and_why() {
        let mut scene = Scene {
            models: vec![crate::anchoring::lift::tests::model("liver", glam::Mat4::IDENTITY)],
            ..Default::default()
        };
        let anchored = Annotation::Anchored {
            shape: MarkShape::Stroke,
            points: vec![
                MarkPoint::OnModel { model: 0, at_mm: Vec3::ZERO },
                MarkPoint::Screen(Vec2::new(0.9, 0.9)),
                MarkPoint::OnModel { model: 0, at_mm: Vec3::X },
            ],
            colour: [1.0; 4],
            width_px: 4.0,
        };
        scene.annotations.push(entry("viewer-3", 7, anchored));
        let screen = Annotation::Arrow { from: Vec2::ZERO, to: Vec2::ONE, colour: [1.0; 4], width_px: 2.0 };
        scene.annotations.push(entry("viewer-4", 8, screen));
        let laser = Annotation::Stroke { points: vec![Vec2::ONE], colour: [1.0; 4], width_px: 14.0 };
        scene.annotations.push(entry("viewer-4/laser", 0, laser));
        let reasons = HashMap::from([(7, "no model surface under the point".to_string())]);
        let marks = mark_states(&scene, &reasons);
        assert_eq!(marks.len(), 3);
        assert_eq!((marks[0].by, marks[0].anchor, marks[0].on_anatomy, marks[0].on_screen), (3, Anchor::Anatomy, 2, 1));
        assert_eq!(marks[0].model.as_deref(), Some("liver"));
        assert_eq!(marks[0].message, "no model surface under the point");
        assert_eq!(
            (marks[1].shape.as_str(), marks[1].anchor, marks[1].message.as_str()),
            ("arrow", Anchor::Screen, "")
        );
        assert_eq!((marks[2].shape.as_str(), marks[2].by), ("laser", 4));
        assert_eq!(author_id("recorded:viewer-2"), 0);
    }
}
