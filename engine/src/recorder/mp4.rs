//! Fragmented MP4 (ISO/IEC 14496-12 with the AVC file format, 14496-15) for
//! one H.264 video track: a segment file is `ftyp` + `moov` (with `mvex`, no
//! samples) followed by `moof` + `mdat` fragments, each fragment written and
//! synced as a whole, so a file cut anywhere is a valid file up to its last
//! complete fragment ([`valid_length`] finds it). Timescale 90 kHz; each
//! segment's decode times start at 0 (its first capture time is kept in the
//! timeline). Samples are AVCC (4-byte lengths); SPS and PPS go into `avcC`
//! and are left out of the samples. [`read_samples`] reads a segment back.

use std::io::Write;

use scopecast_transport::media::{NalType, nal_units};

/// Timescale of the track, ticks per second.
pub const TIMESCALE: u64 = 90_000;
const TRACK_ID: u32 = 1;
/// `trun` sample flags: a sync sample, and one that depends on others.
const SYNC_SAMPLE: u32 = 0x0200_0000;
const NON_SYNC_SAMPLE: u32 = 0x0101_0000;

/// Why a segment could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Mp4Error {
    /// Not a fragmented MP4 this recorder wrote, or damaged.
    #[error("not a scopecast MP4 segment: {0}")]
    Malformed(&'static str),
}

/// One sample of a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// AVCC bytes.
    pub data: Vec<u8>,
    /// Duration, ticks.
    pub duration: u32,
    /// A sync sample (IDR).
    pub keyframe: bool,
}

fn mp4_box(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + payload.len());
    out.extend_from_slice(&((8 + payload.len()) as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(payload);
    out
}

fn full_box(kind: &[u8; 4], version: u8, flags: u32, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(4 + payload.len());
    body.extend_from_slice(&((u32::from(version) << 24) | (flags & 0x00ff_ffff)).to_be_bytes());
    body.extend_from_slice(payload);
    mp4_box(kind, &body)
}

const MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

fn be32(values: &[u32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_be_bytes()).collect()
}

/// SPS and PPS of an Annex B access unit (the first of each).
pub fn parameter_sets(annex_b: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let nals = nal_units(annex_b);
    let find = |t: NalType| nals.iter().find(|n| n.first().map(|b| NalType::from_header(*b)) == Some(t));
    Some((find(NalType::Sps)?.to_vec(), find(NalType::Pps)?.to_vec()))
}

/// The AVCC sample of an Annex B access unit: every NAL unit but SPS, PPS
/// and access unit delimiters, each with a 4-byte length.
pub fn avcc_sample(annex_b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(annex_b.len());
    for nal in nal_units(annex_b) {
        let Some(&header) = nal.first() else { continue };
        if matches!(NalType::from_header(header), NalType::Sps | NalType::Pps | NalType::Aud) {
            continue;
        }
        out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        out.extend_from_slice(nal);
    }
    out
}

/// `ftyp` + `moov` for an H.264 track of `width` × `height` with these parameter sets.
pub fn init_segment(width: u32, height: u32, sps: &[u8], pps: &[u8]) -> Vec<u8> {
    let mut out =
        mp4_box(b"ftyp", &[b"iso6".as_slice(), &0u32.to_be_bytes(), b"iso6", b"isom", b"avc1", b"mp41"].concat());
    let mvhd = full_box(
        b"mvhd",
        0,
        0,
        &[
            be32(&[0, 0, 1000, 0, 0x0001_0000]),
            vec![0x01, 0x00, 0, 0],
            vec![0; 8],
            be32(&MATRIX),
            vec![0; 24],
            be32(&[TRACK_ID + 1]),
        ]
        .concat(),
    );
    let tkhd = full_box(
        b"tkhd",
        0,
        3,
        &[be32(&[0, 0, TRACK_ID, 0, 0]), vec![0; 8], vec![0; 8], be32(&MATRIX), be32(&[width << 16, height << 16])]
            .concat(),
    );
    let mdhd = full_box(b"mdhd", 0, 0, &[be32(&[0, 0, TIMESCALE as u32, 0]), vec![0x55, 0xc4, 0, 0]].concat());
    let hdlr =
        full_box(b"hdlr", 0, 0, &[vec![0; 4], b"vide".to_vec(), vec![0; 12], b"scopecast video\0".to_vec()].concat());
    let avcc = mp4_box(
        b"avcC",
        &[
            vec![
                1,
                sps.get(1).copied().unwrap_or(66),
                sps.get(2).copied().unwrap_or(0),
                sps.get(3).copied().unwrap_or(31),
            ],
            vec![0xff, 0xe1],
            (sps.len() as u16).to_be_bytes().to_vec(),
            sps.to_vec(),
            vec![1],
            (pps.len() as u16).to_be_bytes().to_vec(),
            pps.to_vec(),
        ]
        .concat(),
    );
    let mut avc1 = vec![0u8; 6];
    avc1.extend_from_slice(&1u16.to_be_bytes()); // data_reference_index
    avc1.extend_from_slice(&[0; 16]);
    avc1.extend_from_slice(&(width as u16).to_be_bytes());
    avc1.extend_from_slice(&(height as u16).to_be_bytes());
    avc1.extend_from_slice(&be32(&[0x0048_0000, 0x0048_0000, 0]));
    avc1.extend_from_slice(&1u16.to_be_bytes()); // frame_count
    avc1.extend_from_slice(&[0; 32]); // compressorname
    avc1.extend_from_slice(&[0x00, 0x18, 0xff, 0xff]); // depth, pre_defined
    avc1.extend_from_slice(&avcc);
    let stsd = full_box(b"stsd", 0, 0, &[be32(&[1]), mp4_box(b"avc1", &avc1)].concat());
    let empty_table = |kind: &[u8; 4]| full_box(kind, 0, 0, &be32(&[0]));
    let stbl = mp4_box(
        b"stbl",
        &[
            stsd,
            empty_table(b"stts"),
            empty_table(b"stsc"),
            full_box(b"stsz", 0, 0, &be32(&[0, 0])),
            empty_table(b"stco"),
        ]
        .concat(),
    );
    let dinf = mp4_box(b"dinf", &full_box(b"dref", 0, 0, &[be32(&[1]), full_box(b"url ", 0, 1, &[])].concat()));
    let minf = mp4_box(b"minf", &[full_box(b"vmhd", 0, 1, &[0; 8]), dinf, stbl].concat());
    let mdia = mp4_box(b"mdia", &[mdhd, hdlr, minf].concat());
    let trak = mp4_box(b"trak", &[tkhd, mdia].concat());
    // mehd's duration (and mvhd's) are filled in when the segment is closed ([`duration_patches`]).
    let mehd = full_box(b"mehd", 1, 0, &0u64.to_be_bytes());
    let mvex = mp4_box(b"mvex", &[mehd, full_box(b"trex", 0, 0, &be32(&[TRACK_ID, 1, 0, 0, 0]))].concat());
    out.extend_from_slice(&mp4_box(b"moov", &[mvhd, trak, mvex].concat()));
    out
}

/// Where a closed segment's duration goes in its init segment `init`, and
/// what: (offset, bytes) for `mvhd` and `mehd`, both in the movie timescale
/// (ms). Players read the length of a fragmented file from these.
pub fn duration_patches(init: &[u8], ticks: u64) -> Vec<(u64, Vec<u8>)> {
    let ms = ticks * 1000 / TIMESCALE;
    let mut patches = Vec::new();
    if let Some(at) = init.windows(4).position(|w| w == b"mvhd") {
        // type, version/flags, creation, modification, timescale, then duration.
        patches.push(((at + 20) as u64, (ms.min(u64::from(u32::MAX)) as u32).to_be_bytes().to_vec()));
    }
    if let Some(at) = init.windows(4).position(|w| w == b"mehd") {
        patches.push(((at + 8) as u64, ms.to_be_bytes().to_vec()));
    }
    patches
}

/// `moof` + `mdat` of fragment `sequence` whose first sample decodes at `base_time` ticks.
pub fn fragment(sequence: u32, base_time: u64, samples: &[Sample]) -> Vec<u8> {
    let mfhd = full_box(b"mfhd", 0, 0, &be32(&[sequence]));
    let tfhd = full_box(b"tfhd", 0, 0x02_0000, &be32(&[TRACK_ID]));
    let tfdt = full_box(b"tfdt", 1, 0, &base_time.to_be_bytes());
    let trun_len = 8 + 4 + 4 + 4 + 12 * samples.len();
    let moof_len = 8 + mfhd.len() + 8 + tfhd.len() + tfdt.len() + trun_len;
    let mut trun = be32(&[samples.len() as u32, (moof_len + 8) as u32]);
    for sample in samples {
        let flags = if sample.keyframe { SYNC_SAMPLE } else { NON_SYNC_SAMPLE };
        trun.extend_from_slice(&be32(&[sample.duration, sample.data.len() as u32, flags]));
    }
    let trun = full_box(b"trun", 0, 0x000701, &trun);
    let traf = mp4_box(b"traf", &[tfhd, tfdt, trun].concat());
    let mut out = mp4_box(b"moof", &[mfhd, traf].concat());
    debug_assert_eq!(out.len(), moof_len);
    let mdat_len: usize = samples.iter().map(|s| s.data.len()).sum();
    out.extend_from_slice(&((8 + mdat_len) as u32).to_be_bytes());
    out.extend_from_slice(b"mdat");
    for sample in samples {
        out.extend_from_slice(&sample.data);
    }
    out
}

/// Top-level boxes of `bytes`: (kind, start, length); stops at the first
/// box that does not fit.
fn top_level_boxes(bytes: &[u8]) -> Vec<([u8; 4], usize, usize)> {
    let mut boxes = Vec::new();
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let size = u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
        let kind = [bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]];
        if size < 8 || at + size > bytes.len() {
            break;
        }
        boxes.push((kind, at, size));
        at += size;
    }
    boxes
}

/// The length of the longest prefix of `bytes` that is `ftyp` + `moov` and
/// whole `moof` + `mdat` pairs: where a torn file is cut. 0 when not even
/// the header is whole.
pub fn valid_length(bytes: &[u8]) -> usize {
    let boxes = top_level_boxes(bytes);
    let mut kinds = boxes.iter();
    match (kinds.next(), kinds.next()) {
        (Some((a, _, _)), Some((b, start, size))) if a == b"ftyp" && b == b"moov" => {
            let mut valid = start + size;
            let rest: Vec<_> = boxes[2..].to_vec();
            for pair in rest.chunks(2) {
                match pair {
                    [(m, _, _), (d, start, size)] if m == b"moof" && d == b"mdat" => valid = start + size,
                    _ => break,
                }
            }
            valid
        }
        _ => 0,
    }
}

fn child(payload: &[u8], kind: &[u8; 4]) -> Option<(usize, usize)> {
    top_level_boxes(payload).into_iter().find(|(k, _, _)| k == kind).map(|(_, start, size)| (start, size))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// A segment's samples with their decode times (ticks from the segment's
/// start), from its whole fragments.
pub fn read_samples(bytes: &[u8]) -> Result<Vec<(u64, Sample)>, Mp4Error> {
    let valid = valid_length(bytes);
    if valid == 0 {
        return Err(Mp4Error::Malformed("no ftyp and moov at the start"));
    }
    let boxes = top_level_boxes(&bytes[..valid]);
    let mut out = Vec::new();
    for pair in boxes[2..].chunks(2) {
        let [(_, moof_start, moof_size), (_, mdat_start, _)] = pair else { break };
        let moof = &bytes[moof_start + 8..moof_start + moof_size];
        let (traf_start, traf_size) = child(moof, b"traf").ok_or(Mp4Error::Malformed("moof without traf"))?;
        let traf = &moof[traf_start + 8..traf_start + traf_size];
        let (tfdt_start, _) = child(traf, b"tfdt").ok_or(Mp4Error::Malformed("traf without tfdt"))?;
        let base = traf
            .get(tfdt_start + 12..tfdt_start + 20)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
            .ok_or(Mp4Error::Malformed("short tfdt"))?;
        let (trun_start, _) = child(traf, b"trun").ok_or(Mp4Error::Malformed("traf without trun"))?;
        let count = u32_at(traf, trun_start + 12).ok_or(Mp4Error::Malformed("short trun"))? as usize;
        let mut data_at = mdat_start + 8;
        let mut time = base;
        for i in 0..count {
            let entry = trun_start + 20 + 12 * i;
            let duration = u32_at(traf, entry).ok_or(Mp4Error::Malformed("short trun"))?;
            let size = u32_at(traf, entry + 4).ok_or(Mp4Error::Malformed("short trun"))? as usize;
            let flags = u32_at(traf, entry + 8).ok_or(Mp4Error::Malformed("short trun"))?;
            let data = bytes.get(data_at..data_at + size).ok_or(Mp4Error::Malformed("sample beyond its mdat"))?;
            out.push((time, Sample { data: data.to_vec(), duration, keyframe: flags == SYNC_SAMPLE }));
            data_at += size;
            time = time.saturating_add(u64::from(duration));
        }
    }
    Ok(out)
}

/// What a segment file holds, as every reader of recordings sees it
/// (`recordings verify` and `info`, replay): one function decides, so they
/// cannot disagree about a segment.
#[derive(Debug, Clone, PartialEq)]
pub enum SegmentContents {
    /// Whole fragments with pictures.
    Whole {
        /// The SPS from its `avcC`.
        sps: Vec<u8>,
        /// The PPS from its `avcC`.
        pps: Vec<u8>,
        /// The samples with their decode times, ticks from the segment's start.
        samples: Vec<(u64, Sample)>,
        /// Bytes after the last whole fragment (a torn tail).
        torn_bytes: usize,
    },
    /// A header and no whole fragment (a kill right after the segment was
    /// opened): no picture, left out by every reader.
    NoWholeFragment,
    /// Not readable as a segment, with why.
    Broken(String),
}

/// Reads a segment file's bytes (see [`SegmentContents`]).
pub fn read_segment(bytes: &[u8]) -> SegmentContents {
    let samples = match read_samples(bytes) {
        Ok(samples) if samples.is_empty() => return SegmentContents::NoWholeFragment,
        Ok(samples) => samples,
        Err(e) => return SegmentContents::Broken(e.to_string()),
    };
    let Some((sps, pps)) = stored_parameter_sets(bytes) else {
        return SegmentContents::Broken("no SPS/PPS in its avcC".into());
    };
    SegmentContents::Whole { sps, pps, samples, torn_bytes: bytes.len() - valid_length(bytes) }
}

/// An AVCC sample back to Annex B, with `sps` and `pps` in front when it is a keyframe.
pub fn annex_b(sample: &Sample, sps: &[u8], pps: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(sample.data.len() + 64);
    if sample.keyframe {
        for set in [sps, pps] {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(set);
        }
    }
    let mut at = 0;
    while let Some(length) = u32_at(&sample.data, at) {
        let Some(nal) = sample.data.get(at + 4..at + 4 + length as usize) else { break };
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal);
        at += 4 + length as usize;
    }
    out
}

/// The SPS and PPS stored in a segment's `avcC`.
pub fn stored_parameter_sets(bytes: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let at = bytes.windows(4).position(|w| w == b"avcC")? + 4;
    let sps_len = u16::from_be_bytes(bytes.get(at + 6..at + 8)?.try_into().ok()?) as usize;
    let sps = bytes.get(at + 8..at + 8 + sps_len)?.to_vec();
    let pps_at = at + 8 + sps_len + 1;
    let pps_len = u16::from_be_bytes(bytes.get(pps_at..pps_at + 2)?.try_into().ok()?) as usize;
    let pps = bytes.get(pps_at + 2..pps_at + 2 + pps_len)?.to_vec();
    Some((sps, pps))
}

/// Writes `bytes` and makes them durable (data, not metadata, for speed).
pub fn write_durably(file: &mut std::fs::File, bytes: &[u8]) -> std::io::Result<()> {
    file.write_all(bytes)?;
    file.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Sample> {
        vec![
            Sample { data: vec![0, 0, 0, 2, 0x65, 0xaa], duration: 3000, keyframe: true },
            Sample { data: vec![0, 0, 0, 3, 0x41, 0xbb, 0xcc], duration: 3000, keyframe: false },
        ]
    }

    /// Readers of files from disk (replay, verify, repair) meet damaged and
    /// crafted segments: 20 000 mutations of a valid one (bytes flipped,
    /// lengths and counts set to extremes, cut anywhere; a fixed-seed
    /// xorshift) must never panic, and whatever they read stays within the file.
    #[test]
    fn damaged_and_crafted_segments_never_panic_the_readers() {
        let mut valid = init_segment(640, 360, &[0x67, 0x42, 0xc0, 0x1e], &[0x68, 0xce]);
        valid.extend(fragment(1, 0, &samples()));
        valid.extend(fragment(2, 6000, &samples()));
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let mut bytes = valid.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() % bytes.len() as u64) as usize;
                match next() % 3 {
                    0 => bytes[at] ^= 1 << (next() % 8),
                    1 => bytes[at] = 0xff,
                    _ => bytes[at] = 0,
                }
            }
            bytes.truncate((next() % (bytes.len() as u64 + 1)) as usize);
            let valid_len = valid_length(&bytes);
            assert!(valid_len <= bytes.len());
            if let Ok(read) = read_samples(&bytes) {
                assert!(read.iter().map(|(_, s)| s.data.len()).sum::<usize>() <= bytes.len());
                for (_, sample) in &read {
                    let _ = annex_b(sample, &[0x67], &[0x68]);
                }
            }
            let _ = stored_parameter_sets(&bytes);
        }
    }

    #[test]
    fn fragments_read_back_with_times_and_a_torn_tail_is_cut_at_the_last_whole_fragment() {
        let mut file = init_segment(640, 360, &[0x67, 0x42, 0xc0, 0x1e], &[0x68, 0xce]);
        for (offset, bytes) in duration_patches(&file.clone(), 12_000) {
            file[offset as usize..offset as usize + bytes.len()].copy_from_slice(&bytes);
        }
        let mvhd = file.windows(4).position(|w| w == b"mvhd").expect("mvhd");
        assert_eq!(file[mvhd + 8 + 8..mvhd + 8 + 12], 1000u32.to_be_bytes(), "timescale before duration");
        assert_eq!(file[mvhd + 8 + 12..mvhd + 8 + 16], 133u32.to_be_bytes(), "12 000 ticks = 133 ms");
        let mehd = file.windows(4).position(|w| w == b"mehd").expect("mehd");
        assert_eq!(file[mehd + 8..mehd + 16], 133u64.to_be_bytes());
        let header = file.len();
        file.extend(fragment(1, 0, &samples()));
        let one = file.len();
        file.extend(fragment(2, 6000, &samples()));
        assert_eq!(valid_length(&file), file.len());
        let read = read_samples(&file).expect("valid");
        assert_eq!(read.iter().map(|(t, _)| *t).collect::<Vec<_>>(), [0, 3000, 6000, 9000]);
        assert_eq!(read[1].1, samples()[1]);
        // Cut anywhere inside the second fragment: back to the first.
        for cut in [one + 1, one + 20, file.len() - 1] {
            assert_eq!(valid_length(&file[..cut]), one, "cut at {cut}");
        }
        assert_eq!(valid_length(&file[..header - 1]), 0);
        assert_eq!(stored_parameter_sets(&file), Some((vec![0x67, 0x42, 0xc0, 0x1e], vec![0x68, 0xce])));
        assert!(read_samples(b"garbage!garbage!").is_err());
    }

    #[test]
    fn one_reader_decides_whole_header_only_and_broken_segments() {
        let init = init_segment(640, 360, &[0x67, 0x42, 0xc0, 0x1e], &[0x68, 0xce]);
        assert_eq!(read_segment(&init), SegmentContents::NoWholeFragment, "a header alone has no picture");
        let mut whole = init.clone();
        whole.extend(fragment(1, 0, &samples()));
        whole.extend_from_slice(b"torn");
        match read_segment(&whole) {
            SegmentContents::Whole { sps, samples: read, torn_bytes, .. } => {
                assert_eq!((sps, read.len(), torn_bytes), (vec![0x67, 0x42, 0xc0, 0x1e], 2, 4));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(read_segment(b"not an mp4 at all"), SegmentContents::Broken(_)));
    }

    #[test]
    fn annex_b_round_trips_through_avcc() {
        let au = [0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 9, 9, 9];
        let (sps, pps) = parameter_sets(&au).expect("SPS and PPS");
        let sample = Sample { data: avcc_sample(&au), duration: 1, keyframe: true };
        assert_eq!(sample.data, [0, 0, 0, 4, 0x65, 9, 9, 9]);
        let four_byte_codes = [0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 9, 9, 9];
        assert_eq!(annex_b(&sample, &sps, &pps), four_byte_codes);
    }
}
