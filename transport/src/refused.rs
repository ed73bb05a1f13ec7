//! Why the station refused an accepted data-channel command: one enum for
//! every [`crate::room::CommandSink`] (the live station's drawing and
//! recording, a replay's controls). The room sends its text back to the
//! sender alone, as an `error` notice with code `refused`.

use thiserror::Error;

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CommandRefused {
    /// This station has no sink for commands at all.
    #[error("this station takes no drawing")]
    NoDrawing,
    /// A replay control, a recording switch or a greeting sent to the drawing board.
    #[error("{command} is not a drawing command")]
    NotDrawing {
        /// The command's wire name.
        command: &'static str,
    },
    /// A stroke's colour is not `#rrggbb`.
    #[error("colour {colour:?} is not #rrggbb")]
    BadColour {
        /// What was sent.
        colour: String,
    },
    /// `pen_move` for a stroke that is not open.
    #[error("no open stroke {stroke}: send pen_down first")]
    NoOpenStroke {
        /// The sender's stroke id.
        stroke: u32,
    },
    /// `pen_up` for a stroke that is not open.
    #[error("no open stroke {stroke}")]
    NoStrokeToLift {
        /// The sender's stroke id.
        stroke: u32,
    },
    /// The stroke being drawn was cleared meanwhile.
    #[error("stroke {stroke} was cleared")]
    StrokeCleared {
        /// The sender's stroke id.
        stroke: u32,
    },
    /// A stroke reached its most points.
    #[error("a stroke has at most {max} points: lift the pen")]
    StrokeTooLong {
        /// Points a stroke may have.
        max: usize,
    },
    /// `undo_mine` with nothing of the sender's on the picture.
    #[error("nothing of yours to undo")]
    NothingToUndo,
    /// A layer switch for a model the scene does not have.
    #[error("no model named {name:?}")]
    NoSuchModel {
        /// The name sent.
        name: String,
    },
    /// The scene would become invalid (too many annotations, say).
    #[error("{reason}")]
    Scene {
        /// Why, in words.
        reason: String,
    },
    /// `record` on a station that does not encode.
    #[error("this station is not encoding, so it cannot record")]
    NotEncoding,
    /// The recorder's control queue is full.
    #[error("{reason}")]
    RecorderBusy {
        /// Why, in words.
        reason: String,
    },
    /// A replay control sent to the live station.
    #[error("{command} works on a replay (scopecast replay), not on the live station")]
    ReplayOnly {
        /// The command's wire name.
        command: &'static str,
    },
    /// `record` sent to a replay.
    #[error("a replay does not record")]
    ReplayDoesNotRecord,
    /// Drawing on a replay of the composited stream, which is sent as recorded.
    #[error("{command} is refused: this replay plays the composited stream as recorded, which is never altered")]
    RecordedAsIs {
        /// The command's wire name.
        command: &'static str,
    },
    /// A registration step where no registration desk runs.
    #[error(
        "this station has no registration desk: set [registration] fiducials and output in its config (a replay never has one)"
    )]
    NoRegistrationDesk,
    /// A registration step the desk cannot take now.
    #[error("{reason}")]
    Registration {
        /// Why, in words.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_read_as_sentences_with_their_values() {
        assert_eq!(CommandRefused::NoOpenStroke { stroke: 3 }.to_string(), "no open stroke 3: send pen_down first");
        assert_eq!(
            CommandRefused::StrokeTooLong { max: 4096 }.to_string(),
            "a stroke has at most 4096 points: lift the pen"
        );
        assert_eq!(CommandRefused::NoSuchModel { name: "spleen".into() }.to_string(), "no model named \"spleen\"");
        assert_eq!(
            CommandRefused::ReplayOnly { command: "seek" }.to_string(),
            "seek works on a replay (scopecast replay), not on the live station"
        );
    }
}
