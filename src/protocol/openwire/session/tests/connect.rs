//! Tests for the handshake, ConnectionInfo, keep-alives, RemoveInfo and shutdown.

use super::*;
use crate::broker::User;
use crate::protocol::openwire::{KeepAliveInfo, RemoveInfo, RemoveTarget, ShutdownInfo};

#[test]
fn our_wire_format_goes_first_then_broker_info_after_the_clients() {
    let mut s = fresh(1, BrokerSettings::default());
    let a = s.take_actions();
    match writes(&a).as_slice() {
        [Command::WireFormatInfo(w)] => {
            assert_eq!(w, &WireFormatInfo::tandem(1 << 20));
        }
        other => panic!("{other:?}"),
    }
    assert!(!s.is_negotiated());
    s.on_command(client_wfi());
    assert!(s.is_negotiated());
    assert!(!s.stack_trace_enabled(), "Tandem turns stack traces off");
    let a = s.take_actions();
    assert!(
        matches!(
            a[0],
            Action::Negotiated {
                send_every: Some(KEEP_ALIVE_EVERY),
                receive_timeout: Some(t),
            } if t == Duration::from_secs(60)
        ),
        "{a:?}"
    );
    match writes(&a).as_slice() {
        [Command::BrokerInfo(b)] => {
            assert_eq!(b.broker_name.as_deref(), Some("localhost"));
            assert_eq!(
                b.broker_id.as_ref().map(|i| i.value.as_str()),
                Some("ID:tandem-test-1")
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_client_without_inactivity_monitoring_is_never_timed_out() {
    let mut s = fresh(1, BrokerSettings::default());
    s.take_actions();
    let Command::WireFormatInfo(mut w) = client_wfi() else {
        unreachable!()
    };
    w.options
        .insert("MaxInactivityDuration", PrimitiveValue::Long(0));
    s.on_command(Command::WireFormatInfo(w));
    assert!(matches!(
        s.take_actions()[0],
        Action::Negotiated {
            receive_timeout: None,
            ..
        }
    ));
}

#[test]
fn every_version_negotiates_down_to_the_clients() {
    for (client, negotiated) in [
        (1, 1),
        (2, 2),
        (5, 5),
        (9, 9),
        (10, 10),
        (11, 11),
        (12, 12),
        (13, 12),
        (i32::MAX, 12),
    ] {
        let mut s = fresh(1, BrokerSettings::default());
        s.take_actions();
        assert_eq!(s.version(), 12, "before the client's WireFormatInfo");
        s.on_command(client_wfi_at(client));
        assert!(s.is_negotiated(), "v{client}");
        assert_eq!(s.version(), negotiated, "v{client}");
        let a = s.take_actions();
        assert!(
            matches!(writes(&a).as_slice(), [Command::BrokerInfo(_)]),
            "v{client}: {a:?}"
        );
    }
}

#[test]
fn a_version_below_one_or_another_command_first_closes() {
    for version in [0, -1, i32::MIN] {
        let mut s = fresh(1, BrokerSettings::default());
        s.take_actions();
        s.on_command(client_wfi_at(version));
        let a = s.take_actions();
        assert!(matches!(a.as_slice(), [Action::Close]), "v{version}: {a:?}");
        assert!(!s.is_negotiated());
    }

    let mut s = fresh(1, BrokerSettings::default());
    s.take_actions();
    s.on_command(Command::ConnectionInfo(connection_info(1, "c")));
    let a = s.take_actions();
    assert!(matches!(a.as_slice(), [Action::Close]), "{a:?}");
    // Nothing after a close.
    s.on_command(client_wfi());
    assert!(s.take_actions().is_empty());
}

fn with_users() -> BrokerSettings {
    BrokerSettings {
        auth_required: true,
        users: vec![User {
            username: "app".into(),
            password: "s3cret".into(),
            groups: vec![],
        }],
        ..BrokerSettings::default()
    }
}

#[test]
fn a_wrong_login_gets_a_security_exception_and_a_close() {
    for (user, password) in [
        (Some("app"), Some("guess")),
        (Some("eve"), Some("s3cret")),
        (None, None),
    ] {
        let mut s = fresh(1, with_users());
        s.on_command(client_wfi());
        s.take_actions();
        let mut info = connection_info(1, "c");
        info.user_name = user.map(str::to_owned);
        info.password = password.map(str::to_owned);
        s.on_command(Command::ConnectionInfo(info));
        let a = s.take_actions();
        assert!(matches!(a.last(), Some(Action::Close)), "{a:?}");
        let (corr, class, message) = exception(&a[..a.len() - 1]);
        assert_eq!((corr, class.as_str()), (1, "java.lang.SecurityException"));
        assert!(
            !message.contains("guess") && !message.contains("s3cret"),
            "{message}"
        );
    }
    let mut s = fresh(1, with_users());
    s.on_command(client_wfi());
    s.take_actions();
    let mut info = connection_info(4, "c");
    info.user_name = Some("app".into());
    info.password = Some("s3cret".into());
    s.on_command(Command::ConnectionInfo(info));
    assert_eq!(response(&s.take_actions()), 4);
}

#[test]
fn a_client_id_in_use_is_refused_until_released() {
    let ids: Arc<Registries> = Arc::default();
    let mut first = fresh_with_ids(1, BrokerSettings::default(), ids.clone());
    first.on_command(client_wfi());
    first.take_actions();
    first.on_command(Command::ConnectionInfo(connection_info(1, "shared")));
    assert_eq!(response(&first.take_actions()), 1);

    let mut second = Session::new(
        SessionContext {
            conn: ConnId {
                shard: 1,
                serial: 1,
            },
            ..context(1, BrokerSettings::default(), ids.clone())
        },
        env(),
    );
    second.on_command(client_wfi());
    second.take_actions();
    let mut other = connection_info(1, "shared");
    other.connection_id = Some(ConnectionId::new("ID:other:1"));
    second.on_command(Command::ConnectionInfo(other.clone()));
    let (corr, class, message) = exception(&second.take_actions());
    assert_eq!(
        (corr, class.as_str()),
        (1, "javax.jms.InvalidClientIDException")
    );
    assert!(message.contains("shared"), "{message}");
    // A replay of the first connection's own ConnectionInfo is fine.
    first.on_command(Command::ConnectionInfo(connection_info(9, "shared")));
    assert_eq!(response(&first.take_actions()), 9);
    // Gone: the id is free.
    first.on_closed();
    second.on_command(Command::ConnectionInfo(other));
    assert_eq!(response(&second.take_actions()), 1);
}

#[test]
fn commands_before_connection_info_are_refused() {
    let mut s = fresh(1, BrokerSettings::default());
    s.on_command(client_wfi());
    s.take_actions();
    s.on_command(Command::ProducerInfo(producer_info(3)));
    let (corr, class, _) = exception(&s.take_actions());
    assert_eq!(
        (corr, class.as_str()),
        (3, "javax.jms.IllegalStateException")
    );
    // Without response_required: a ConnectionError.
    s.on_command(text_message(4, false, OwDestination::queue("q"), 1, "x"));
    assert_eq!(
        connection_error(&s.take_actions()),
        "javax.jms.IllegalStateException"
    );
}

#[test]
fn keep_alives_are_answered_only_when_asked() {
    let mut s = open(1);
    s.on_command(Command::KeepAliveInfo(KeepAliveInfo::default()));
    assert!(s.take_actions().is_empty());
    s.on_command(Command::KeepAliveInfo(KeepAliveInfo {
        header: Header::new(0, true),
    }));
    let a = s.take_actions();
    assert!(
        matches!(writes(&a).as_slice(), [Command::KeepAliveInfo(k)] if !k.header.response_required),
        "{a:?}"
    );
}

#[test]
fn removing_the_connection_cascades_and_answers_after_a_barrier() {
    let mut s = open(2);
    let sub = subscribe(&mut s, 1, OwDestination::queue("a"));
    s.on_command(Command::RemoveInfo(RemoveInfo {
        header: Header::new(20, true),
        object_id: Some(RemoveTarget::Connection(connection_id())),
        last_delivered_sequence_id: -1,
    }));
    let a = s.take_actions();
    assert!(writes(&a).is_empty());
    let p = posts(a);
    let unsub = p
        .iter()
        .find(|(_, r)| matches!(r, Request::Unsubscribe { sub: k, .. } if *k == sub))
        .expect("the consumer is removed");
    let barriers: Vec<Reply> = p
        .iter()
        .filter(|(_, r)| matches!(r, Request::Barrier { .. }))
        .map(|(_, r)| reply_of(r))
        .collect();
    assert!(!barriers.is_empty());
    s.on_event(ok(reply_of(&unsub.1)));
    assert!(s.take_actions().is_empty());
    for b in barriers {
        s.on_event(ok(b));
    }
    assert_eq!(response(&s.take_actions()), 20);
    // Then ShutdownInfo closes.
    s.on_command(Command::ShutdownInfo(ShutdownInfo::default()));
    assert!(matches!(s.take_actions().as_slice(), [Action::Close]));
}

#[test]
fn a_decode_error_is_reported_then_closes_and_silence_closes() {
    let mut s = open(1);
    s.on_decode_error(OpenWireError::UnknownType(13));
    let a = s.take_actions();
    assert!(matches!(a.last(), Some(Action::Close)));
    assert_eq!(connection_error(&a[..a.len() - 1]), "java.io.IOException");

    let mut s = open(1);
    s.on_receive_timeout();
    assert!(matches!(s.take_actions().as_slice(), [Action::Close]));
}
