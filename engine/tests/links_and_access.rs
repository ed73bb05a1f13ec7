//! Named links and the access log, end to end: the operator invites "Dr A"
//! with `scopecast link`, Dr A's page (headless Chromium) watches and
//! draws, the operator revokes the link, and Dr A's stream stops at once
//! while the link is refused from then on; config tokens keep working. The
//! access log and the recording's timeline say who joined, what they did
//! and why they left, and never hold a token.

mod viewer;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use scopecast_transport::access::{AccessEvent, AccessRecord, Action, LeaveReason};
use viewer::{BIN, addr_and_token, http, send_steps, signal, start_command, status_line};

fn scopecast(state: &Path, args: &[&str]) -> String {
    let output = Command::new(BIN).args(args).env("SCOPECAST_STATE_DIR", state).output().expect("scopecast runs");
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(output.status.success(), "scopecast {args:?}: {text}{}", String::from_utf8_lossy(&output.stderr));
    text
}

fn access_records(state: &Path) -> Vec<AccessRecord> {
    std::fs::read_to_string(state.join("access.log"))
        .unwrap_or_default()
        .lines()
        .map(|line| AccessRecord::parse(line).unwrap_or_else(|| panic!("every line is a record: {line}")))
        .collect()
}

fn is_dr_a(record: &AccessRecord) -> bool {
    let who = match &record.event {
        AccessEvent::Joined { who, .. } | AccessEvent::Left { who, .. } | AccessEvent::Acted { who, .. } => who,
        AccessEvent::Refused { who, .. } => match who {
            Some(who) => who,
            None => return false,
        },
    };
    who.name.as_deref() == Some("Dr A")
}

#[test]
fn a_revoked_link_stops_its_holder_at_once_and_the_access_log_says_who_did_what() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("state");
    let recordings = dir.path().join("recordings");
    let issued = scopecast(&state, &["link", "--role", "annotator", "--name", "Dr A", "--expires", "1h"]);
    let link_token = issued
        .split("#token=")
        .nth(1)
        .and_then(|t| t.split('&').next())
        .unwrap_or_else(|| panic!("a link is printed: {issued}"))
        .to_string();
    let link_id = issued
        .split("(link id ")
        .nth(1)
        .and_then(|t| t.split(')').next())
        .unwrap_or_else(|| panic!("its id is printed: {issued}"))
        .to_string();

    let recordings_arg = recordings.display().to_string();
    let station = start_command(
        Command::new(BIN)
            .args(["demo", "--headless", "--listen", "127.0.0.1:0", "--record", "--recordings", &recordings_arg])
            .args(["--width", "320", "--height", "240", "--fps", "15"])
            .env("SCOPECAST_STATE_DIR", &state)
            .stderr(Stdio::null()),
    );
    let (addr, viewer_token) = addr_and_token(&station.viewer_url);
    let origin = format!("http://{addr}");

    // Dr A's page: watches for 1.5 s (the first frames, even on a loaded machine), draws,
    // hides the anatomy, then watches for 12 s (its player notices the lost connection,
    // waits 3 s, tries again and is told why: 10 s under CI load).
    let steps = serde_json::json!([
        [1500, null],
        [0, { "type": "pen_down", "stroke": 1, "at": [0.3, 0.3], "colour": "#00ff00", "width": 8 }],
        [0, { "type": "pen_up", "stroke": 1 }],
        [0, { "type": "layer", "layer": "anatomy", "visible": false }],
        [1000, null], [1000, null], [1000, null], [1000, null], [1000, null], [1000, null], [1000, null], [1000, null],
        [1000, null], [1000, null], [1000, null], [1000, null]
    ]);
    let page = {
        let (origin, token) = (origin.clone(), link_token.clone());
        std::thread::spawn(move || send_steps(&origin, &token, &steps))
    };
    // Revoke once the log shows Dr A switching the layer (the page is up).
    let deadline = Instant::now() + Duration::from_secs(60);
    while !access_records(&state)
        .iter()
        .any(|r| is_dr_a(r) && matches!(&r.event, AccessEvent::Acted { action: Action::Layer { .. }, .. }))
    {
        assert!(Instant::now() < deadline, "Dr A's page never acted: {:?}", access_records(&state));
        std::thread::sleep(Duration::from_millis(100));
    }
    let presence_before =
        http(&addr, &format!("GET /viewers HTTP/1.1\r\nAuthorization: Bearer {}", station.operator_token), "");
    assert!(presence_before.contains("Dr A"), "the operator sees Dr A by the link's name: {presence_before}");
    let revoked_at = Instant::now();
    let said = scopecast(&state, &["link", "revoke", "Dr A"]);
    assert!(said.contains(&link_id), "{said}");
    let mut left_after = None;
    while left_after.is_none() && revoked_at.elapsed() < Duration::from_secs(5) {
        if access_records(&state)
            .iter()
            .any(|r| is_dr_a(r) && matches!(&r.event, AccessEvent::Left { reason: LeaveReason::Revoked, .. }))
        {
            left_after = Some(revoked_at.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let left_after = left_after.unwrap_or_else(|| panic!("Dr A's session did not end: {:?}", access_records(&state)));
    eprintln!("revocation to session ended: {left_after:?}");
    assert!(left_after < Duration::from_millis(1500), "{left_after:?}");

    let report = page.join().expect("the page's thread");
    eprintln!("Dr A's page: {report}");
    let frames: Vec<u64> =
        report["after"].as_array().expect("steps").iter().map(|s| s["frames"].as_u64().unwrap_or(0)).collect();
    // The first report comes before the drawing and the layer switch, so before the revocation
    // (which waits for the layer switch in the access log).
    assert!(frames[0] >= 3, "Dr A watched before the revocation: {frames:?}");
    // The last 5 s (all after the revocation): at most the one frame the
    // player shows as its stream ends, against 8+ in the first 3 s.
    let n = frames.len();
    assert!(frames[n - 1] <= frames[n - 6] + 1, "frames reached Dr A after the revocation: {frames:?}");
    let last = &report["after"][n - 1]["state"];
    assert!(last.as_str().is_some_and(|s| s.contains("revoked")), "the page says why: {last}");
    assert_eq!(report["after"][3]["errors"], serde_json::json!([]), "drawing and the layer were accepted: {report}");

    // The link is refused from now on, with the reason; config tokens keep working.
    let offer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n";
    let refused = http(
        &addr,
        &format!("POST /whep HTTP/1.1\r\nAuthorization: Bearer {link_token}\r\nContent-Type: application/sdp"),
        offer,
    );
    assert_eq!(status_line(&refused), "HTTP/1.1 401 Unauthorized", "{refused}");
    assert!(refused.contains("revoked"), "{refused}");
    let viewers =
        http(&addr, &format!("GET /viewers HTTP/1.1\r\nAuthorization: Bearer {}", station.operator_token), "");
    assert_eq!(status_line(&viewers), "HTTP/1.1 200 OK");
    assert!(!viewers.contains("Dr A"), "{viewers}");
    let metrics = http(&addr, &format!("GET /metrics HTTP/1.1\r\nAuthorization: Bearer {viewer_token}"), "");
    assert_eq!(status_line(&metrics), "HTTP/1.1 200 OK", "the config's viewer token still works");

    signal(station.child.id(), "INT");
    drop(station);

    // The access log: who, from where, what, why they left; never a token.
    let log = std::fs::read_to_string(state.join("access.log")).expect("the access log");
    eprintln!("access log:\n{log}");
    assert!(!log.contains(&link_token) && !log.contains(&viewer_token) && !log.contains("sc1."), "no token in the log");
    let records = access_records(&state);
    let joined = records
        .iter()
        .find(|r| is_dr_a(r) && matches!(r.event, AccessEvent::Joined { .. }))
        .expect("Dr A's join is logged");
    match &joined.event {
        AccessEvent::Joined { who, address, .. } => {
            assert_eq!(who.credential, format!("link:{link_id}"));
            assert_eq!(format!("{:?}", who.role), "Annotator");
            assert_eq!(address.as_deref(), Some("127.0.0.1"));
        }
        _ => unreachable!(),
    }
    assert!(records.iter().any(|r| is_dr_a(r) && matches!(&r.event, AccessEvent::Acted { action: Action::Drew, .. })));
    assert!(
        records.iter().any(
            |r| matches!(&r.event, AccessEvent::Refused { status: 401, reason, .. } if reason.contains("revoked"))
        )
    );

    // The recording's timeline holds the same events.
    let session = std::fs::read_dir(&recordings).expect("recordings").filter_map(Result::ok).next().expect("a session");
    let bytes = std::fs::read(session.path().join("timeline.bin")).expect("timeline");
    let timeline = scopecast_engine::recorder::timeline::read(&bytes).expect("a timeline");
    let kept: Vec<&AccessEvent> = timeline
        .records
        .iter()
        .filter_map(|r| match r {
            scopecast_engine::recorder::format::TimelineRecord::Access(record) => Some(&record.event),
            _ => None,
        })
        .collect();
    assert!(
        kept.iter().any(|e| matches!(e, AccessEvent::Joined { who, .. } if who.name.as_deref() == Some("Dr A"))),
        "{kept:?}"
    );
    assert!(kept.iter().any(|e| matches!(e, AccessEvent::Left { reason: LeaveReason::Revoked, .. })), "{kept:?}");
}
