//! Which H.264 encoder the station opens. `auto` (the default) takes x264
//! where GStreamer has every element of its pipeline, otherwise the embedded
//! OpenH264, which needs nothing from the system. A configured GStreamer
//! encoder that is missing falls back to the embedded one too: no missing
//! plugin may leave the live path at 0 fps while another encoder could serve.
//! What was chosen, and why, is said once in the log and shown in the status
//! line and the HUD (`encoder embedded (x264enc not installed)`).

use super::EncoderKind;

/// The encoder chosen for a requested kind, and why it differs, if it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncoderChoice {
    /// What the config asked for.
    pub requested: EncoderKind,
    /// What will be opened (never `Auto`).
    pub kind: EncoderKind,
    /// Why `kind` is not what `auto` prefers or the config named, in words.
    pub reason: Option<String>,
}

impl EncoderChoice {
    /// `x264`, or `embedded (x264enc not installed)`.
    pub fn summary(&self) -> String {
        match &self.reason {
            Some(reason) => format!("{} ({reason})", self.kind),
            None => self.kind.to_string(),
        }
    }

    /// The choice after the chosen GStreamer encoder failed to open with
    /// `error`: the embedded one, with the error as the reason.
    pub fn fall_back(&self, error: &str) -> Self {
        Self {
            requested: self.requested,
            kind: EncoderKind::Embedded,
            reason: Some(format!("{} failed to open: {error}", self.kind)),
        }
    }
}

/// Chooses for `requested`, given `missing(kind)`: the GStreamer elements
/// the pipeline of `kind` needs that this machine lacks.
pub fn choose(requested: EncoderKind, missing: impl Fn(EncoderKind) -> Vec<String>) -> EncoderChoice {
    let preferred = match requested {
        EncoderKind::Auto => EncoderKind::X264,
        other => other,
    };
    if preferred == EncoderKind::Embedded {
        return EncoderChoice { requested, kind: EncoderKind::Embedded, reason: None };
    }
    let lacking = missing(preferred);
    if lacking.is_empty() {
        return EncoderChoice { requested, kind: preferred, reason: None };
    }
    let verb = if lacking.len() == 1 { "is" } else { "are" };
    let what = lacking.join(", ");
    let reason = match requested {
        EncoderKind::Auto => format!("{what} not installed"),
        _ => format!("{what} {verb} not installed; {preferred} was configured"),
    };
    EncoderChoice { requested, kind: EncoderKind::Embedded, reason: Some(reason) }
}

/// [`choose`] against this machine's GStreamer registry.
pub fn choose_here(requested: EncoderKind) -> EncoderChoice {
    choose(requested, |kind| {
        let elements = super::gst_h264::elements(kind);
        let elements: Vec<&str> = elements.iter().map(String::as_str).collect();
        crate::gst_elements::missing(&elements).into_iter().map(str::to_string).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lacking(names: &'static [&'static str]) -> impl Fn(EncoderKind) -> Vec<String> {
        move |_| names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn auto_takes_x264_when_its_pipeline_is_complete() {
        let choice = choose(EncoderKind::Auto, lacking(&[]));
        assert_eq!(choice.kind, EncoderKind::X264);
        assert_eq!(choice.summary(), "x264");
    }

    #[test]
    fn auto_falls_back_to_the_embedded_encoder_and_says_why() {
        let choice = choose(EncoderKind::Auto, lacking(&["x264enc"]));
        assert_eq!(choice.kind, EncoderKind::Embedded);
        assert_eq!(choice.summary(), "embedded (x264enc not installed)");
        let choice = choose(EncoderKind::Auto, lacking(&["x264enc", "h264parse"]));
        assert_eq!(choice.summary(), "embedded (x264enc, h264parse not installed)");
    }

    #[test]
    fn a_configured_encoder_that_is_missing_falls_back_too() {
        let choice = choose(EncoderKind::Openh264, lacking(&["openh264enc"]));
        assert_eq!(choice.kind, EncoderKind::Embedded);
        assert_eq!(choice.summary(), "embedded (openh264enc is not installed; openh264 was configured)");
        assert_eq!(choose(EncoderKind::X264, lacking(&[])).kind, EncoderKind::X264);
        assert_eq!(choose(EncoderKind::Embedded, lacking(&["x264enc"])).summary(), "embedded");
    }

    #[test]
    fn an_encoder_that_fails_to_open_falls_back_with_its_error() {
        let choice = choose(EncoderKind::Auto, lacking(&[])).fall_back("no such plugin");
        assert_eq!(choice.kind, EncoderKind::Embedded);
        assert_eq!(choice.summary(), "embedded (x264 failed to open: no such plugin)");
    }
}
