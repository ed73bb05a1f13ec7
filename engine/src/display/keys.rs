//! The monitor's keys (listed in the README and on `?`).

use winit::keyboard::{Key, NamedKey};

/// What a key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `A`: the 3D anatomy overlay on/off.
    ToggleAnatomy,
    /// `N`: the annotations on/off.
    ToggleAnnotations,
    /// `U`: undistorted / as captured.
    ToggleUndistortion,
    /// `C`: remove every annotation.
    ClearAnnotations,
    /// `R`: start/stop recording.
    ToggleRecording,
    /// `S`: the monitor's picture to a PNG in the working directory.
    Snapshot,
    /// `F`: fullscreen on/off.
    ToggleFullscreen,
    /// `H`: the HUD on/off.
    ToggleHud,
    /// `?` or F1: the key list.
    ToggleHelp,
    /// `Q` or Escape: stop the station.
    Quit,
    /// `P`: registration, pivot the pointer.
    RegistrationPivot,
    /// `T`: registration, take the fiducial the pointer rests on.
    RegistrationTake,
    /// `1`–`9`: registration, redo that fiducial.
    RegistrationRedo(u32),
    /// `W`: registration, start or end sweeping the surface.
    RegistrationSweep,
    /// Enter: registration, accept the one shown.
    RegistrationAccept,
}

/// The action of a pressed key, if it has one.
pub fn action_for(key: &Key) -> Option<Action> {
    match key {
        Key::Named(NamedKey::Escape) => Some(Action::Quit),
        Key::Named(NamedKey::F1) => Some(Action::ToggleHelp),
        Key::Named(NamedKey::Enter) => Some(Action::RegistrationAccept),
        Key::Character(text) => match text.to_ascii_lowercase().as_str() {
            "a" => Some(Action::ToggleAnatomy),
            "n" => Some(Action::ToggleAnnotations),
            "u" => Some(Action::ToggleUndistortion),
            "c" => Some(Action::ClearAnnotations),
            "r" => Some(Action::ToggleRecording),
            "s" => Some(Action::Snapshot),
            "f" => Some(Action::ToggleFullscreen),
            "h" => Some(Action::ToggleHud),
            "?" => Some(Action::ToggleHelp),
            "q" => Some(Action::Quit),
            "p" => Some(Action::RegistrationPivot),
            "t" => Some(Action::RegistrationTake),
            "w" => Some(Action::RegistrationSweep),
            digit if digit.len() == 1 && ("1"..="9").contains(&digit) => {
                digit.parse().ok().map(Action::RegistrationRedo)
            }
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_in_either_case_and_the_named_keys_map() {
        assert_eq!(action_for(&Key::Character("A".into())), Some(Action::ToggleAnatomy));
        assert_eq!(action_for(&Key::Character("q".into())), Some(Action::Quit));
        assert_eq!(action_for(&Key::Character("?".into())), Some(Action::ToggleHelp));
        assert_eq!(action_for(&Key::Named(NamedKey::Escape)), Some(Action::Quit));
        assert_eq!(action_for(&Key::Character("z".into())), None);
        assert_eq!(action_for(&Key::Character("T".into())), Some(Action::RegistrationTake));
        assert_eq!(action_for(&Key::Character("3".into())), Some(Action::RegistrationRedo(3)));
        assert_eq!(action_for(&Key::Named(NamedKey::Enter)), Some(Action::RegistrationAccept));
    }
}
