//! `scopecast calibrate delay`: the camera's delay against the tracker's,
//! measured with the configured station's source and trackers
//! (`scopecast_engine::station::delay`), and written into its config.

use std::path::PathBuf;

use clap::Args;

/// `scopecast calibrate delay`.
#[derive(Debug, Args)]
pub struct DelayArgs {
    /// The station's config: its source, its trackers and a tracked model.
    #[arg(long)]
    pub config: PathBuf,
    /// Seconds to record while the scope is wiggled over a still scene.
    #[arg(long, default_value_t = 6.0)]
    pub seconds: f64,
    /// The tracked model whose pose chain predicts the motion (default: the first tracked one).
    #[arg(long)]
    pub model: Option<String>,
    /// Write the result into the config's `[tracking] video_minus_tracker_latency_ms`.
    #[arg(long)]
    pub write: bool,
}

/// Measures the camera-minus-tracker delay with the configured source and trackers.
pub fn delay(args: &DelayArgs) -> anyhow::Result<String> {
    let config = scopecast_engine::config::Config::load(&args.config)?;
    let clock: scopecast_engine::clock::SharedClock = std::sync::Arc::new(scopecast_engine::clock::SystemClock::new());
    eprintln!("scopecast: wiggle the scope over a still scene for {} s", args.seconds);
    let found = scopecast_engine::station::delay::measure_delay(&config, clock, args.seconds, args.model.as_deref())?;
    let ms = found.estimate.video_minus_tracker_ns as f64 / 1e6;
    let mut text = format!(
        "video minus tracker delay {ms:.1} ms (correlation {:.3}; {} image motions, {} poses of {})\n",
        found.estimate.correlation, found.frames, found.poses, found.model
    );
    if args.write {
        let before = std::fs::read_to_string(&args.config)?;
        let after = with_video_minus_tracker(&before, ms);
        scopecast_engine::config::Config::from_toml_str(&after, &args.config)?;
        let temporary = args.config.with_extension("toml.new");
        std::fs::write(&temporary, after)?;
        std::fs::rename(&temporary, &args.config)?;
        text.push_str(&format!(
            "written into {}: [tracking] video_minus_tracker_latency_ms = {ms:.1}",
            args.config.display()
        ));
    } else {
        text.push_str(&format!(
            "put it in the config: [tracking] video_minus_tracker_latency_ms = {ms:.1} (or run with --write)"
        ));
    }
    Ok(text)
}

/// `text` (a config) with `[tracking] video_minus_tracker_latency_ms = ms`:
/// the line replaced where it is, else added under `[tracking]`, else a
/// `[tracking]` table added at the end. Comments and order stay.
pub fn with_video_minus_tracker(text: &str, ms: f64) -> String {
    let line = format!("video_minus_tracker_latency_ms = {ms:.1}");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let is_table = |l: &str| l.trim_start().starts_with('[');
    let Some(header) = lines.iter().position(|l| l.trim_start().starts_with("[tracking]")) else {
        if lines.last().is_some_and(|l| !l.trim().is_empty()) {
            lines.push(String::new());
        }
        lines.push("[tracking]".into());
        lines.push(line);
        return lines.join("\n") + "\n";
    };
    let end = lines.iter().skip(header + 1).position(|l| is_table(l)).map_or(lines.len(), |k| header + 1 + k);
    match (header + 1..end).find(|&k| lines[k].trim_start().starts_with("video_minus_tracker_latency_ms")) {
        Some(k) => lines[k] = line,
        None => {
            // After the table's last line that is not blank, so blank lines stay between tables.
            let last = (header..end).rev().find(|&k| !lines[k].trim().is_empty()).unwrap_or(header);
            lines.insert(last + 1, line);
        }
    }
    lines.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_goes_into_the_tracking_table_and_nothing_else_changes() {
        let replaced =
            "[source]\nfps = 30\n\n[tracking]\n# camera\nvideo_minus_tracker_latency_ms = 0.0\nwhen_stale = \"hide\"\n";
        assert_eq!(
            with_video_minus_tracker(replaced, 41.26),
            "[source]\nfps = 30\n\n[tracking]\n# camera\nvideo_minus_tracker_latency_ms = 41.3\nwhen_stale = \"hide\"\n"
        );
        let added = "[tracking]\nstale_after_ms = 200\n\n[[tracking.trackers]]\nname = \"plus\"\n";
        assert_eq!(
            with_video_minus_tracker(added, -3.0),
            "[tracking]\nstale_after_ms = 200\nvideo_minus_tracker_latency_ms = -3.0\n\n[[tracking.trackers]]\nname = \"plus\"\n"
        );
        assert_eq!(
            with_video_minus_tracker("[source]\nfps = 30\n", 12.0),
            "[source]\nfps = 30\n\n[tracking]\nvideo_minus_tracker_latency_ms = 12.0\n"
        );
        // A trackers table alone is not [tracking]: the key must not land in a tracker.
        let trackers_only = "[[tracking.trackers]]\nname = \"plus\"\n";
        assert!(
            with_video_minus_tracker(trackers_only, 5.0)
                .ends_with("[tracking]\nvideo_minus_tracker_latency_ms = 5.0\n")
        );
    }
}
