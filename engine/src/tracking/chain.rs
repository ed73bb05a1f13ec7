//! A model's pose as a chain of named transforms, e.g. `camera_from_scope`
//! (a hand–eye calibration file) ∘ `scope_from_tracker` (the tracker,
//! inverted) ∘ `tracker_from_reference` ∘ `reference_from_model` (a
//! registration file), evaluated at a frame's capture time. Names are
//! `a_from_b`; PLUS's `BToA` names are mapped once, at the edge
//! ([`canonical_name`]).

use super::pose_store::{Alignment, Freshness, Pose, PoseAt, PoseStore};

/// The pose-store name of the registration accepted at the station (set
/// as a fixed pose, [`super::pose_store::PoseStore::set_fixed`]): a model
/// chain's `file` link naming `[registration] output` reads it.
pub const REGISTRATION_LINK: &str = "reference_from_model";

/// One link of a chain.
#[derive(Debug, Clone, PartialEq)]
pub enum Link {
    /// A transform received from a tracker, by its `a_from_b` name;
    /// `inverted` uses `b_from_a` of it.
    Tracked {
        /// The transform's name.
        name: String,
        /// Use its inverse.
        inverted: bool,
    },
    /// A transform from a file or the config, constant.
    Fixed(Pose),
}

/// A chain at a moment.
#[derive(Debug, Clone, PartialEq)]
pub enum ChainAt {
    /// Every link tracked: the composed pose.
    Tracked(Pose),
    /// A link's newest pose is too old.
    Stale {
        /// The link.
        link: String,
        /// Its age, ns.
        age_ns: u64,
    },
    /// A link is reported invalid (out of view).
    Invalid {
        /// The link.
        link: String,
    },
    /// A link was never received.
    Missing {
        /// The link.
        link: String,
    },
}

/// Links composed left to right: the first maps into the target frame
/// (`camera_from_…`), the last from the model's.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Chain {
    /// The links.
    pub links: Vec<Link>,
}

impl Chain {
    /// The chain at `time_ns` (station clock): the first link that is not
    /// tracked decides.
    pub fn at(&self, store: &PoseStore, time_ns: u64, freshness: Freshness, alignment: Alignment) -> ChainAt {
        let mut composed = Pose::IDENTITY;
        for link in &self.links {
            let pose = match link {
                Link::Fixed(pose) => *pose,
                Link::Tracked { name, inverted } => match store.aligned(name, time_ns, freshness, alignment) {
                    PoseAt::Tracked(pose) if *inverted => pose.inverse(),
                    PoseAt::Tracked(pose) => pose,
                    PoseAt::Stale { age_ns } => return ChainAt::Stale { link: name.clone(), age_ns },
                    PoseAt::Invalid => return ChainAt::Invalid { link: name.clone() },
                    PoseAt::Missing => return ChainAt::Missing { link: name.clone() },
                },
            };
            composed = composed.then_after(&pose);
        }
        ChainAt::Tracked(composed)
    }
}

/// `snake_case` of a `CamelCase` frame name (`StylusTip` → `stylus_tip`).
fn snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for (i, c) in camel.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// The `a_from_b` name of a transform as a tracker names it: PLUS's `BToA`
/// (`StylusToTracker` → `tracker_from_stylus`); a name already `a_from_b`
/// is kept; anything else is kept as sent.
pub fn canonical_name(sent: &str) -> String {
    if sent.contains("_from_") {
        return sent.to_string();
    }
    match sent.split_once("To") {
        Some((from, to)) if !from.is_empty() && to.starts_with(char::is_uppercase) => {
            format!("{}_from_{}", snake(to), snake(from))
        }
        _ => sent.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use glam::{DQuat, DVec3};

    use super::*;
    use crate::tracking::pose_store::Sample;

    const FRESH: Freshness = Freshness { stale_after_ns: 200_000_000 };

    #[test]
    fn plus_names_map_to_a_from_b() {
        assert_eq!(canonical_name("StylusToTracker"), "tracker_from_stylus");
        assert_eq!(canonical_name("StylusTipToReference"), "reference_from_stylus_tip");
        assert_eq!(canonical_name("scope_from_tracker"), "scope_from_tracker");
        assert_eq!(canonical_name("Tool"), "Tool");
    }

    #[test]
    fn a_chain_composes_fixed_and_tracked_links_and_names_the_stale_one() {
        let mut store = PoseStore::new();
        let tracker_from_scope = Pose {
            rotation: DQuat::from_rotation_z(std::f64::consts::FRAC_PI_2),
            translation: DVec3::new(100.0, 0.0, 0.0),
        };
        store.insert(
            "tracker_from_scope",
            Sample { time_ns: 1_000, pose: tracker_from_scope, valid: true, arrival_ns: 1_000 },
        );
        let camera_from_scope = Pose { rotation: DQuat::IDENTITY, translation: DVec3::new(0.0, 0.0, 5.0) };
        let chain = Chain {
            links: vec![
                Link::Fixed(camera_from_scope),
                Link::Tracked { name: "tracker_from_scope".into(), inverted: true },
                Link::Tracked { name: "tracker_from_model".into(), inverted: false },
            ],
        };
        assert_eq!(
            chain.at(&store, 1_000, FRESH, Alignment::CaptureTime),
            ChainAt::Missing { link: "tracker_from_model".into() }
        );
        let tracker_from_model = Pose { rotation: DQuat::IDENTITY, translation: DVec3::new(100.0, 50.0, 0.0) };
        store.insert(
            "tracker_from_model",
            Sample { time_ns: 1_000, pose: tracker_from_model, valid: true, arrival_ns: 1_000 },
        );
        let ChainAt::Tracked(camera_from_model) = chain.at(&store, 1_000, FRESH, Alignment::CaptureTime) else {
            panic!("tracked")
        };
        // The model's origin is 50 mm from the scope's origin along the tracker's y, which is the
        // scope's x (the scope is turned 90° about z): (50, 0, 0) in the scope, then 5 mm along z.
        let origin = camera_from_model.matrix().transform_point3(DVec3::ZERO);
        assert!((origin - DVec3::new(50.0, 0.0, 5.0)).length() < 1e-9, "{origin}");
        assert!(
            matches!(chain.at(&store, 1_000 + 300_000_000, FRESH, Alignment::CaptureTime), ChainAt::Stale { link, .. } if link == "tracker_from_scope")
        );
    }
}
