//! Tests for CONNECT (version and heart-beat negotiation, login) and frames before it.

use super::*;
use crate::protocol::stomp::session::connect::SERVER_NAME;

#[test]
fn connect_negotiates_version_and_heart_beats() {
    let mut s = session_with(1, BrokerSettings::default());
    s.on_frame(frame(
        Command::Stomp,
        &[
            ("accept-version", "1.0,1.1,1.2"),
            ("host", "/"),
            ("heart-beat", "1000,20000"),
        ],
    ));
    let a = s.take_actions();
    assert!(matches!(
        a[0],
        Action::Negotiated {
            version: Version::V1_2,
            send_every: Some(d1),
            receive_timeout: Some(d2),
        } if d1 == Duration::from_secs(20) && d2 == Duration::from_secs(20)
    ));
    let w = writes(&a);
    assert_eq!(w[0].command, Command::Connected);
    assert_eq!(
        headers(w[0]),
        vec![
            ("version", "1.2"),
            ("server", SERVER_NAME),
            ("heart-beat", "20000,10000"),
            ("session", "ID:tandem-abc-0-7"),
        ]
    );
    assert_eq!(s.version(), Version::V1_2);
}

#[test]
fn connect_without_accept_version_is_1_0_without_heart_beats() {
    let mut s = session_with(1, BrokerSettings::default());
    s.on_frame(frame(Command::Connect, &[("heart-beat", "1000,1000")]));
    let a = s.take_actions();
    assert!(matches!(
        a[0],
        Action::Negotiated {
            version: Version::V1_0,
            send_every: None,
            receive_timeout: None
        }
    ));
    assert_eq!(writes(&a)[0].header("heart-beat"), Some("0,0"));
}

#[test]
fn no_common_version_and_bad_login_are_refused() {
    let mut s = session_with(1, BrokerSettings::default());
    s.on_frame(frame(Command::Connect, &[("accept-version", "2.0")]));
    let a = s.take_actions();
    assert_eq!(writes(&a)[0].command, Command::Error);
    assert!(is_close(&a[1]));

    let settings = BrokerSettings {
        auth_required: true,
        users: vec![crate::broker::User {
            username: "u".into(),
            password: "p".into(),
            groups: vec![],
        }],
        ..BrokerSettings::default()
    };
    let mut s = session_with(1, settings.clone());
    s.on_frame(frame(
        Command::Connect,
        &[("login", "u"), ("passcode", "x")],
    ));
    let a = s.take_actions();
    let e = writes(&a)[0];
    assert_eq!(e.header("message"), Some("Authentication failed"));
    assert_eq!(&e.body[..], b"User name [u] or password is invalid.");
    assert!(is_close(&a[1]));
    assert!(!s.is_connected());

    let mut s = session_with(1, settings);
    s.on_frame(frame(
        Command::Connect,
        &[("login", "u"), ("passcode", "p")],
    ));
    assert!(s.is_connected());
}

#[test]
fn frames_before_connect_error_and_close_then_silence() {
    let mut s = session_with(1, BrokerSettings::default());
    s.on_frame(frame(Command::Send, &[("destination", "/queue/a")]));
    let a = s.take_actions();
    assert_eq!(a.len(), 2);
    assert_eq!(
        writes(&a)[0].header("message"),
        Some("Connection not established")
    );
    assert!(is_close(&a[1]));
    s.on_frame(frame(Command::Connect, &[]));
    assert!(s.take_actions().is_empty());
}

#[test]
fn a_client_id_is_held_by_one_live_connection_at_a_time() {
    let registries = Arc::new(Registries::default());
    let conn = |serial| ConnId { shard: 0, serial };
    let connect = |s: &mut Session<TestEnv>| {
        s.on_frame(frame(
            Command::Connect,
            &[("accept-version", "1.2"), ("client-id", "c1")],
        ));
        s.take_actions()
    };
    let mut first = session_in(registries.clone(), conn(1), 1, BrokerSettings::default());
    connect(&mut first);
    assert!(first.is_connected());

    let mut second = session_in(registries.clone(), conn(2), 1, BrokerSettings::default());
    let a = connect(&mut second);
    let e = writes(&a)[0];
    assert_eq!(e.command, Command::Error);
    assert_eq!(
        e.header("message"),
        Some("Broker: localhost - Client: c1 already connected")
    );
    assert!(is_close(a.last().unwrap()));
    assert!(!second.is_connected());
    // The refused connection never held the id: its close releases nothing.
    second.on_closed();
    assert_eq!(
        registries.client_ids.claim("c1", conn(9), None),
        Err(conn(1))
    );

    // DISCONNECT frees the id at once, before the socket is torn down.
    first.on_frame(frame(Command::Disconnect, &[]));
    let mut third = session_in(registries.clone(), conn(3), 1, BrokerSettings::default());
    connect(&mut third);
    assert!(third.is_connected());
    third.on_closed();
    assert_eq!(registries.client_ids.claim("c1", conn(9), None), Ok(None));
}
