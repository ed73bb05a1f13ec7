//! `scopecast recordings list|info|verify|export`: what is in a recordings
//! folder, one session's figures, a check of every file, and the session as
//! one tar archive. A corrupt or foreign file is reported in words, never a
//! panic.

use std::path::Path;

use anyhow::{Context, bail};
use scopecast_engine::recorder::format::{Manifest, SessionState, TimelineRecord};
use scopecast_engine::recorder::mp4::SegmentContents;
use scopecast_engine::recorder::{Track, mp4, segment_files, sessions, timeline, track_files};

fn manifest(dir: &Path) -> anyhow::Result<Manifest> {
    Ok(scopecast_engine::replay::session::read_manifest(dir)?)
}

/// Figures of one session.
struct Figures {
    segments: usize,
    frames: usize,
    keyframes: usize,
    duration_s: f64,
    bytes: u64,
    gaps: usize,
    scene_changes: usize,
    /// Segments without a whole fragment, with why (not counted).
    left_out: Vec<String>,
    /// The clean video (`record_clean`): segments, frames.
    clean: (usize, usize),
    problems: Vec<String>,
}

fn figures(dir: &Path) -> anyhow::Result<Figures> {
    let mut f = Figures {
        segments: 0,
        frames: 0,
        keyframes: 0,
        duration_s: 0.0,
        bytes: 0,
        gaps: 0,
        scene_changes: 0,
        clean: (0, 0),
        problems: Vec::new(),
        left_out: Vec::new(),
    };
    for segment in track_files(dir, Track::Clean) {
        let name = segment.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let bytes = std::fs::read(&segment).with_context(|| format!("cannot read {name}"))?;
        f.bytes += bytes.len() as u64;
        match mp4::read_segment(&bytes) {
            SegmentContents::Whole { samples, .. } => {
                f.clean.0 += 1;
                f.clean.1 += samples.len();
            }
            SegmentContents::NoWholeFragment => {
                f.left_out.push(format!("{name}: no whole fragment (left out, as replays do)"))
            }
            SegmentContents::Broken(e) => f.problems.push(format!("{name}: {e}")),
        }
    }
    for segment in segment_files(dir) {
        let name = segment.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let bytes = std::fs::read(&segment).with_context(|| format!("cannot read {name}"))?;
        f.bytes += bytes.len() as u64;
        // The same reader as replay's: a segment cut before its first whole
        // fragment (a kill right after it was opened) holds no picture and is
        // left out by both; a broken one is a problem here and skipped there.
        match mp4::read_segment(&bytes) {
            SegmentContents::Whole { samples, torn_bytes, .. } => {
                f.segments += 1;
                if torn_bytes > 0 {
                    f.problems.push(format!("{name}: {torn_bytes} bytes after the last whole fragment"));
                }
                if samples.first().is_some_and(|(_, s)| !s.keyframe) {
                    f.problems.push(format!("{name}: does not start with a keyframe"));
                }
                f.frames += samples.len();
                f.keyframes += samples.iter().filter(|(_, s)| s.keyframe).count();
                f.duration_s += samples.iter().map(|(_, s)| f64::from(s.duration)).sum::<f64>() / mp4::TIMESCALE as f64;
            }
            SegmentContents::NoWholeFragment => {
                f.left_out.push(format!("{name}: no whole fragment (left out, as replays do)"))
            }
            SegmentContents::Broken(e) => f.problems.push(format!("{name}: {e}")),
        }
    }
    let timeline_bytes = std::fs::read(dir.join("timeline.bin")).unwrap_or_default();
    match timeline::read(&timeline_bytes) {
        Some(contents) => {
            if contents.torn_bytes > 0 {
                f.problems.push(format!("timeline.bin: {} bytes after the last whole record", contents.torn_bytes));
            }
            f.gaps = contents.records.iter().filter(|r| matches!(r, TimelineRecord::Gap { .. })).count();
            f.scene_changes = contents.records.iter().filter(|r| matches!(r, TimelineRecord::Scene { .. })).count();
        }
        None => f.problems.push("timeline.bin: missing or not a scopecast timeline".into()),
    }
    Ok(f)
}

/// `recordings list FOLDER`.
pub fn list(folder: &Path) -> anyhow::Result<String> {
    let found = sessions(folder);
    if found.is_empty() {
        return Ok(format!("no recordings in {}", folder.display()));
    }
    let mut out = String::new();
    for dir in found {
        let name = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        match manifest(&dir) {
            Ok(m) => out.push_str(&format!(
                "{name}  {}  {} segment(s)  {:.1} s\n",
                m.state,
                segment_files(&dir).len(),
                m.duration_ms.unwrap_or(0) as f64 / 1000.0
            )),
            Err(e) => out.push_str(&format!("{name}  unreadable: {e}\n")),
        }
    }
    Ok(out)
}

/// `recordings info SESSION`.
pub fn info(dir: &Path) -> anyhow::Result<String> {
    let m = manifest(dir)?;
    let f = figures(dir)?;
    let mut out = format!(
        "session {}\nstate {}{}\nduration {:.2} s in {} segment(s), {} frames ({} keyframes), {:.1} MB\n\
         gaps {}, scene changes {}\n",
        m.session,
        m.state,
        match (m.state, m.repair) {
            (SessionState::Repaired, Some(repair)) => {
                format!(" (after a crash: {} bytes of torn tails cut)", repair.cut_bytes)
            }
            (SessionState::Repaired, None) => " (after a crash)".to_string(),
            _ => String::new(),
        },
        f.duration_s,
        f.segments,
        f.frames,
        f.keyframes,
        f.bytes as f64 / 1e6,
        f.gaps,
        f.scene_changes,
    );
    for left_out in &f.left_out {
        out.push_str(&format!("left out: {left_out}\n"));
    }
    if f.clean.0 > 0 {
        out.push_str(&format!(
            "clean video {} segment(s), {} frames (replay draws the overlays afresh)\n",
            f.clean.0, f.clean.1
        ));
    }
    for problem in &f.problems {
        out.push_str(&format!("problem: {problem}\n"));
    }
    Ok(out)
}

/// `recordings verify SESSION`: an error when anything is wrong.
pub fn verify(dir: &Path) -> anyhow::Result<String> {
    manifest(dir)?;
    let f = figures(dir)?;
    if !f.problems.is_empty() {
        bail!("{} problem(s):\n{}", f.problems.len(), f.problems.join("\n"));
    }
    if f.segments == 0 {
        bail!("{}: no segments with a whole fragment", dir.display());
    }
    let left_out: String = f.left_out.iter().map(|l| format!("\nleft out: {l}")).collect();
    Ok(format!("ok: {} segment(s), {} frames, {:.2} s, timeline whole{left_out}", f.segments, f.frames, f.duration_s))
}

/// One ustar header block (POSIX.1-1988) for a regular file.
fn tar_header(name: &str, size: u64, mtime: u64) -> anyhow::Result<[u8; 512]> {
    let mut h = [0u8; 512];
    if name.len() > 99 {
        bail!("{name}: name too long for the archive");
    }
    h[..name.len()].copy_from_slice(name.as_bytes());
    let octal = |field: &mut [u8], value: u64| {
        let text = format!("{value:0width$o}\0", width = field.len() - 1);
        field.copy_from_slice(text.as_bytes());
    };
    octal(&mut h[100..108], 0o644);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], mtime);
    h[148..156].copy_from_slice(b"        ");
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let text = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(text.as_bytes());
    Ok(h)
}

/// `recordings export SESSION OUT.tar`: the session folder as one tar archive.
pub fn export(dir: &Path, out: &Path) -> anyhow::Result<String> {
    use std::io::Write;
    let m = manifest(dir)?;
    // The archive's folder: the session's name, unless it could climb out of it.
    let folder_name = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "session".into());
    let session = if m.session.is_empty() || m.session.contains(['/', '\\']) || m.session.starts_with('.') {
        folder_name
    } else {
        m.session
    };
    let mut files: Vec<_> = std::fs::read_dir(dir)?.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
    files.sort();
    let mut archive = std::io::BufWriter::new(
        std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?,
    );
    let mut total = 0u64;
    for path in &files {
        let bytes = std::fs::read(path)?;
        let name =
            format!("{session}/{}", path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default());
        let mtime = path.metadata()?.modified()?.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        archive.write_all(&tar_header(&name, bytes.len() as u64, mtime)?)?;
        archive.write_all(&bytes)?;
        archive.write_all(&vec![0u8; (512 - bytes.len() % 512) % 512])?;
        total += bytes.len() as u64;
    }
    archive.write_all(&[0u8; 1024])?;
    archive.flush()?;
    Ok(format!("{} file(s), {:.1} MB, written to {}", files.len(), total as f64 / 1e6, out.display()))
}
