//! The OpenIGTLink codec against pyigtl (PyPI), an independent
//! implementation: pyigtl serves TRANSFORMs in header versions 1 and 2 (with
//! PLUS's `TransformStatus` metadata), a STRING and its own POSITION form;
//! we decode them off a real TCP socket, then send a TRANSFORM in version 2
//! that pyigtl must read back exactly. The README's test command installs
//! pyigtl into `target/pyenv` and sets `SCOPECAST_PYTHON`; without it this
//! test fails with that instruction.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use scopecast_transport::igtl::message::{Message, encode};
use scopecast_transport::igtl::{Content, Decoder, IgtlError, Transform};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

#[test]
fn pyigtl_and_the_codec_understand_each_other() {
    let python = std::env::var("SCOPECAST_PYTHON").unwrap_or_else(|_| "python3".into());
    let port = free_port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/igtl/pyigtl_peer.py");
    let mut peer = Command::new(&python)
        .args([script, &port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python} ({e}): the README's test command installs pyigtl"));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut stream = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => break stream,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => {
                let _ = peer.kill();
                let mut stderr = String::new();
                let _ = peer.stderr.take().map(|mut s| s.read_to_string(&mut stderr));
                panic!(
                    "pyigtl's server did not listen ({e}); is pyigtl installed in {python}? (the README's test command installs it): {stderr}"
                );
            }
        }
    };
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut decoder = Decoder::new();
    let mut got = Vec::new();
    let mut buffer = [0u8; 4096];
    while got.len() < 4 {
        let n = stream.read(&mut buffer).expect("pyigtl sends");
        assert!(n > 0, "pyigtl closed after {} messages: {got:?}", got.len());
        got.extend(decoder.push(&buffer[..n]));
    }
    let expected = Transform { columns: [[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [12.5, -3.25, 140.0]] };
    let first = got[0].as_ref().expect("version 1 TRANSFORM");
    assert_eq!((first.version, first.device_name.as_str()), (1, "StylusToTracker"));
    assert_eq!(first.content, Content::Transform(expected));
    assert!(first.timestamp_ns.expect("kept").abs_diff(1_700_000_000_250_000_000) < 1_000);
    assert!(first.marked_valid());
    let second = got[1].as_ref().expect("version 2 TRANSFORM");
    assert_eq!((second.version, second.content.clone()), (2, Content::Transform(expected)));
    assert_eq!(second.metadata, [("TransformStatus".to_string(), "INVALID".to_string())]);
    assert!(!second.marked_valid(), "PLUS-style invalid transforms are seen as such");
    assert!(matches!(&got[2], Ok(Message { content: Content::Other { type_name, .. }, .. }) if type_name == "STRING"));
    assert!(
        matches!(&got[3], Err(IgtlError::Malformed { type_name, .. }) if type_name == "POSITION"),
        "pyigtl's list POSITION is not the specification's: {:?}",
        got[3]
    );
    assert!(!decoder.is_broken());

    // Our TRANSFORM, version 2 with metadata, read by pyigtl.
    let ours = Message {
        version: 2,
        device_name: "ScopeToCamera".into(),
        timestamp_ns: Some(1_700_000_001_000_000_000),
        content: Content::Transform(Transform {
            columns: [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0], [-7.0, 8.5, 30.0]],
        }),
        metadata: vec![("TransformStatus".into(), "OK".into())],
    };
    stream.write_all(&encode(&ours)).expect("send");
    let mut line = String::new();
    BufReader::new(peer.stdout.take().expect("stdout")).read_line(&mut line).expect("pyigtl reports");
    let status = peer.wait().expect("pyigtl exits");
    let mut stderr = String::new();
    let _ = peer.stderr.take().map(|mut s| s.read_to_string(&mut stderr));
    assert!(status.success(), "pyigtl failed: {stderr}");
    let report: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?} {stderr}"));
    let matrix: Vec<Vec<f64>> = serde_json::from_value(report["matrix"].clone()).expect("matrix");
    assert_eq!(
        matrix,
        [[1.0, 0.0, 0.0, -7.0], [0.0, 0.0, -1.0, 8.5], [0.0, 1.0, 0.0, 30.0], [0.0, 0.0, 0.0, 1.0]],
        "row-major as pyigtl holds it"
    );
    assert_eq!(report["header_version"], 2);
    assert_eq!(report["metadata"]["TransformStatus"], "OK");
    assert!((report["timestamp"].as_f64().expect("timestamp") - 1_700_000_001.0).abs() < 1e-3);
}
