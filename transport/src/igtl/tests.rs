//! The codec's properties: every type round-trips through bytes in header
//! versions 1 and 2, any chunking decodes the same, and hostile input costs
//! the message, never the process or unbounded memory.

use super::header::{HEADER_BYTES, Header, timestamp_from_ns};
use super::message::encode;
use super::*;

fn transform() -> Transform {
    // 30° about z, then (10, -20, 150) mm.
    let (s, c) = (0.5f32, 0.75f32.sqrt());
    Transform { columns: [[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0], [10.0, -20.0, 150.0]] }
}

fn message(version: u16, content: Content, metadata: Vec<(String, String)>) -> Message {
    Message {
        version,
        device_name: "StylusToTracker".into(),
        timestamp_ns: Some(1_700_000_000_250_000_000),
        content,
        metadata: if version >= 2 { metadata } else { Vec::new() },
    }
}

fn close(a: &Transform, b: &Transform) -> bool {
    a.columns.iter().flatten().zip(b.columns.iter().flatten()).all(|(x, y)| (x - y).abs() < 1e-5)
}

#[test]
fn every_type_round_trips_in_versions_1_and_2() {
    let status = vec![("TransformStatus".to_string(), "OK".to_string())];
    for version in [1, 2] {
        let contents = [
            Content::Transform(transform()),
            Content::TrackingData(vec![
                TrackedTool { name: "Stylus".into(), kind: 2, transform: transform() },
                TrackedTool { name: "Reference".into(), kind: 2, transform: Transform::IDENTITY },
            ]),
            Content::Status { code: 1, subcode: -3, error_name: "".into(), message: "tracking".into() },
        ];
        for content in contents {
            let sent = message(version, content, status.clone());
            let mut decoder = Decoder::new();
            let got = decoder.push(&encode(&sent));
            assert_eq!(got.len(), 1);
            let got = got.into_iter().next().expect("one").expect("decodes");
            assert_eq!(got.content, sent.content, "version {version}");
            assert_eq!(got.metadata, sent.metadata);
            assert!(got.timestamp_ns.expect("kept").abs_diff(1_700_000_000_250_000_000) <= 1);
        }
    }
}

#[test]
fn position_is_the_28_byte_form_with_a_quaternion() {
    let sent = message(1, Content::Position(transform()), Vec::new());
    let bytes = encode(&sent);
    assert_eq!(bytes.len(), HEADER_BYTES + 28);
    let got = Decoder::new().push(&bytes).remove(0).expect("decodes");
    let Content::Position(pose) = got.content else { panic!("a position") };
    assert!(close(&pose, &transform()), "{pose:?}");
    // A half turn about x (w = 0) too.
    let half = Transform { columns: [[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [0.0, 0.0, 0.0]] };
    let got = Decoder::new().push(&encode(&message(1, Content::Position(half), Vec::new()))).remove(0).expect("ok");
    assert!(matches!(got.content, Content::Position(p) if close(&p, &half)));
}

#[test]
fn any_chunking_decodes_the_same_and_other_types_are_skipped() {
    let mut stream = encode(&message(2, Content::Transform(transform()), Vec::new()));
    // An IMAGE-like message we do not read, then a status.
    let mut other = Vec::new();
    let body = vec![7u8; 5000];
    Header {
        version: 1,
        type_name: "IMAGE".into(),
        device_name: "Probe".into(),
        timestamp: timestamp_from_ns(1),
        body_size: body.len() as u64,
        crc: crc64::crc64(&body),
    }
    .write(&mut other);
    other.extend_from_slice(&body);
    stream.extend_from_slice(&other);
    stream.extend_from_slice(&encode(&message(
        1,
        Content::Status { code: 1, subcode: 0, error_name: "".into(), message: "ok".into() },
        Vec::new(),
    )));
    let whole: Vec<_> = Decoder::new().push(&stream);
    assert_eq!(whole.len(), 3);
    assert!(
        matches!(&whole[1], Ok(Message { content: Content::Other { type_name, body_size: 5000 }, .. }) if type_name == "IMAGE")
    );
    for chunk in [1, 3, 57, 58, 59, 1000] {
        let mut decoder = Decoder::new();
        let pieces: Vec<_> = stream.chunks(chunk).flat_map(|c| decoder.push(c)).collect();
        assert_eq!(pieces, whole, "chunks of {chunk}");
    }
}

#[test]
fn hostile_input_costs_the_message_not_the_stream() {
    let good = encode(&message(2, Content::Transform(transform()), Vec::new()));
    // A flipped body byte: CRC error, and the next message still decodes.
    let mut bad = good.clone();
    bad[HEADER_BYTES + 20] ^= 0x40;
    let mut decoder = Decoder::new();
    let got = decoder.push(&[bad.as_slice(), good.as_slice()].concat());
    assert!(matches!(got[0], Err(IgtlError::Crc { .. })));
    assert!(got[1].is_ok());
    // NaN in a pose.
    let nan = Transform { columns: [[f32::NAN, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0; 3]] };
    let got = Decoder::new().push(&encode(&message(1, Content::Transform(nan), Vec::new())));
    assert!(matches!(got[0], Err(IgtlError::NotFinite { .. })));
    // Metadata sizes that point past the body.
    let mut lying = encode(&message(2, Content::Transform(transform()), vec![("a".into(), "b".into())]));
    lying[HEADER_BYTES + 4..HEADER_BYTES + 8].copy_from_slice(&u32::MAX.to_be_bytes());
    let body = lying[HEADER_BYTES..].to_vec();
    lying[50..58].copy_from_slice(&crc64::crc64(&body).to_be_bytes());
    let got = Decoder::new().push(&lying);
    assert!(matches!(got[0], Err(IgtlError::Malformed { .. })), "{got:?}");
}

#[test]
fn an_absurd_body_size_breaks_the_stream_without_allocating() {
    let mut header = Vec::new();
    Header {
        version: 1,
        type_name: "TRANSFORM".into(),
        device_name: "X".into(),
        timestamp: 0,
        body_size: 1 << 60,
        crc: 0,
    }
    .write(&mut header);
    let mut decoder = Decoder::new();
    let got = decoder.push(&header);
    assert!(matches!(got[0], Err(IgtlError::TooLarge { body_size, .. }) if body_size == 1 << 60));
    assert!(decoder.is_broken());
    assert!(decoder.push(&[0u8; 4096]).is_empty(), "nothing more is read");
    // A TRANSFORM too large to read but framed is skipped and reported; the stream goes on.
    let mut big = Vec::new();
    let body = vec![0u8; 100_000];
    Header {
        version: 1,
        type_name: "TRANSFORM".into(),
        device_name: "X".into(),
        timestamp: 0,
        body_size: body.len() as u64,
        crc: crc64::crc64(&body),
    }
    .write(&mut big);
    big.extend_from_slice(&body);
    big.extend_from_slice(&encode(&message(1, Content::Transform(transform()), Vec::new())));
    let got = Decoder::new().push(&big);
    assert!(matches!(got[0], Err(IgtlError::TooLarge { limit: decoder::MAX_READ_BODY_BYTES, .. })));
    assert!(got[1].is_ok());
}

#[test]
fn plus_marks_invalid_transforms_in_metadata() {
    let invalid = message(2, Content::Transform(transform()), vec![("TransformStatus".into(), "INVALID".into())]);
    let got = Decoder::new().push(&encode(&invalid)).remove(0).expect("decodes");
    assert!(!got.marked_valid());
    let ok = message(2, Content::Transform(transform()), vec![("TransformStatus".into(), "OK".into())]);
    assert!(Decoder::new().push(&encode(&ok)).remove(0).expect("decodes").marked_valid());
}

#[test]
fn messages_written_by_an_independent_encoder_decode() {
    // The fuzz corpus seeds were written by a Python encoder of the
    // specification (struct + its own CRC-64), not by this codec; each file
    // starts with the fuzz target's chunk-size byte.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/fuzz/corpus/igtl");
    let read = |name: &str| std::fs::read(dir.join(name)).expect("seed")[1..].to_vec();
    let decoded = |name: &str| Decoder::new().push(&read(name)).into_iter().collect::<Result<Vec<_>, _>>().expect(name);
    let t = &decoded("transform_v1")[0];
    assert_eq!(t.device_name, "StylusToTracker");
    let Content::Transform(pose) = t.content else { panic!("a transform") };
    assert_eq!(pose.columns[3], [10.0, -20.0, 150.0]);
    assert_eq!(pose.columns[0], [0.866, 0.5, 0.0]);
    assert_eq!(t.timestamp_ns, Some(1_700_000_000_250_000_000));
    assert!(decoded("transform_v2_plus")[0].marked_valid());
    assert!(!decoded("transform_invalid")[0].marked_valid());
    let Content::Position(p) = decoded("position28")[0].content else { panic!("a position") };
    assert!((p.columns[0][0] - 0.70710677).abs() < 1e-5 && p.columns[3] == [1.0, 2.0, 3.0], "45° about z: {p:?}");
    assert!(
        matches!(&decoded("tdata")[0].content, Content::TrackingData(tools) if tools.len() == 2 && tools[1].name == "Ref")
    );
    assert!(matches!(&decoded("status")[0].content, Content::Status { code: 1, message, .. } if message == "ready"));
    let two = decoded("image_skipped");
    assert!(matches!(&two[0].content, Content::Other { type_name, body_size: 300 } if type_name == "IMAGE"));
    assert!(matches!(two[1].content, Content::Transform(_)));
}
