//! Tests of `uri`: parsing, resolution and display of transport and failover URIs.

use super::*;
use std::net::Ipv6Addr;

fn ok(s: &str) -> TransportUri {
    match TransportUri::parse(s) {
        Ok(u) => u,
        Err(e) => panic!("{s}: {e}"),
    }
}

#[test]
fn schemes_and_wires() {
    for (text, scheme, wire) in [
        ("tcp://127.0.0.1:61616", Scheme::Tcp, Wire::OpenWire),
        ("nio://127.0.0.1:61616", Scheme::Nio, Wire::OpenWire),
        ("stomp://127.0.0.1:61613", Scheme::Stomp, Wire::Stomp),
        ("stomp+nio://127.0.0.1:61613", Scheme::StompNio, Wire::Stomp),
        ("auto://127.0.0.1:5671", Scheme::Auto, Wire::Auto),
        ("auto+nio://127.0.0.1:5671", Scheme::AutoNio, Wire::Auto),
        ("STOMP://127.0.0.1:61613", Scheme::Stomp, Wire::Stomp),
        ("ssl://127.0.0.1:61617", Scheme::Ssl, Wire::OpenWire),
        ("nio+ssl://127.0.0.1:61617", Scheme::NioSsl, Wire::OpenWire),
        ("stomp+ssl://127.0.0.1:61612", Scheme::StompSsl, Wire::Stomp),
        (
            "stomp+nio+ssl://127.0.0.1:61612",
            Scheme::StompNioSsl,
            Wire::Stomp,
        ),
        ("auto+ssl://127.0.0.1:5671", Scheme::AutoSsl, Wire::Auto),
        (
            "auto+nio+ssl://127.0.0.1:5671",
            Scheme::AutoNioSsl,
            Wire::Auto,
        ),
        ("SSL://127.0.0.1:61617", Scheme::Ssl, Wire::OpenWire),
    ] {
        let u = ok(text);
        assert_eq!(u.scheme, scheme, "{text}");
        assert_eq!(u.scheme.wire(), wire, "{text}");
        assert_eq!(
            u.scheme.is_tls(),
            text.to_ascii_lowercase().contains("ssl"),
            "{text}"
        );
        // Display round-trips the scheme.
        assert_eq!(ok(&u.to_string()).scheme, scheme, "{text}");
    }
    assert!(Scheme::StompNioSsl.is_tls() && !Scheme::StompNio.is_tls());
    let u = ok("ssl://0.0.0.0:61617?needClientAuth=true&transport.enabledProtocols=TLSv1.3");
    assert_eq!(u.option("needclientauth"), Some("true"));
    assert_eq!(
        u.to_string(),
        "ssl://0.0.0.0:61617?needClientAuth=true&transport.enabledProtocols=TLSv1.3"
    );
}

#[test]
fn hosts() {
    assert_eq!(
        ok("tcp://0.0.0.0:61616").addr,
        "0.0.0.0:61616".parse().unwrap()
    );
    let u = ok("stomp://localhost:61613");
    assert_eq!(u.addr, "127.0.0.1:61613".parse().unwrap());
    assert_eq!(u.host, "localhost");
    assert_eq!(ok("tcp://LOCALHOST:1").addr.ip(), Ipv4Addr::LOCALHOST);
    assert_eq!(ok("tcp://10.1.2.3:0").addr, "10.1.2.3:0".parse().unwrap());
    let v6 = ok("tcp://[::1]:61616");
    assert_eq!(v6.addr.ip(), IpAddr::V6(Ipv6Addr::LOCALHOST));
    assert_eq!(v6.to_string(), "tcp://[::1]:61616");
    assert_eq!(ok("tcp://[::]:5").addr.port(), 5);
}

#[test]
fn trailing_slash_and_options() {
    let u = ok("tcp://0.0.0.0:61616/?maximumConnections=1000&wireFormat.maxFrameSize=104857600");
    assert_eq!(u.addr.port(), 61616);
    assert_eq!(
        u.options,
        vec![
            ("maximumConnections".to_string(), "1000".to_string()),
            (
                "wireFormat.maxFrameSize".to_string(),
                "104857600".to_string()
            ),
        ]
    );
    assert_eq!(u.option("maximumconnections"), Some("1000"));
    assert_eq!(u.option("missing"), None);
    assert_eq!(
        u.to_string(),
        "tcp://0.0.0.0:61616?maximumConnections=1000&wireFormat.maxFrameSize=104857600"
    );
    let d = ok("tcp://1.2.3.4:5?a=%41b&flag");
    assert_eq!(
        d.options,
        vec![("a".into(), "Ab".into()), ("flag".into(), String::new())]
    );
}

#[test]
fn errors() {
    let err = |s: &str| TransportUri::parse(s).expect_err(s);
    assert_eq!(err(""), UriError::Empty);
    assert!(matches!(err("127.0.0.1:61616"), UriError::Syntax(_)));
    // Other protocols over TLS are refused for the protocol, not for the TLS.
    for other in [
        "wss://0.0.0.0:61619",
        "https://0.0.0.0:8443",
        "mqtt+ssl://0.0.0.0:8883",
        "mqtt+nio+ssl://0.0.0.0:8883",
        "amqp+ssl://0.0.0.0:5671",
        "amqp+nio+ssl://0.0.0.0:5671",
    ] {
        let e = err(other);
        assert!(
            matches!(e, UriError::UnsupportedScheme { .. }),
            "{other}: {e}"
        );
        assert!(e.to_string().contains("another protocol"), "{other}: {e}");
    }
    assert!(matches!(
        err("amqp://0.0.0.0:5672"),
        UriError::UnsupportedScheme { .. }
    ));
    assert!(matches!(
        err("mqtt+nio://0.0.0.0:1883"),
        UriError::UnsupportedScheme { .. }
    ));
    assert!(matches!(
        err("ws://0.0.0.0:61614"),
        UriError::UnsupportedScheme { .. }
    ));
    assert_eq!(
        err("gopher://a:1"),
        UriError::UnknownScheme("gopher".into())
    );
    assert!(err("gopher://a:1").to_string().contains("stomp+nio+ssl"));
    assert_eq!(
        err("stomp+ssl+nio://a:1"),
        UriError::UnknownScheme("stomp+ssl+nio".into())
    );
    assert_eq!(err("tcp://127.0.0.1"), UriError::MissingPort);
    assert_eq!(err("tcp://127.0.0.1:"), UriError::MissingPort);
    assert_eq!(err("tcp://[::1]"), UriError::MissingPort);
    assert_eq!(
        err("tcp://127.0.0.1:65536"),
        UriError::BadPort("65536".into())
    );
    assert_eq!(err("tcp://127.0.0.1:-1"), UriError::BadPort("-1".into()));
    assert_eq!(err("tcp://127.0.0.1:+80"), UriError::BadPort("+80".into()));
    assert_eq!(
        err("tcp://127.0.0.1:http"),
        UriError::BadPort("http".into())
    );
    assert!(matches!(err("tcp://::1:61616"), UriError::BadHost { .. }));
    assert!(matches!(err("tcp://[::1:61616"), UriError::Syntax(_)));
    assert!(matches!(err("tcp://:61616"), UriError::Syntax(_)));
    assert!(matches!(err("tcp://a b:1"), UriError::BadHost { .. }));
    assert!(matches!(err("tcp://u:p@h:1"), UriError::Syntax(_)));
    assert!(matches!(err("tcp://1.2.3.4:1/path"), UriError::Syntax(_)));
    assert!(matches!(err("tcp://1.2.3.4:1#frag"), UriError::Syntax(_)));
    assert!(matches!(err("tcp://1.2.3.4:1?a=%zz"), UriError::Syntax(_)));
    assert!(matches!(err("tcp://1.2.3.4:1?=x"), UriError::Syntax(_)));
    // A name that cannot resolve: ".invalid" is reserved and never resolves.
    assert!(matches!(
        err("tcp://no-such-host.invalid:1"),
        UriError::BadHost { .. }
    ));
}

#[test]
fn failover_forms() {
    let forms = [
        "failover:(tcp://127.0.0.1:61616,tcp://127.0.0.1:61626)?randomize=false",
        "failover://(tcp://127.0.0.1:61616,tcp://127.0.0.1:61626)?randomize=false",
        "FAILOVER:( tcp://127.0.0.1:61616 , tcp://127.0.0.1:61626 )?randomize=false",
    ];
    for f in forms {
        let u = FailoverUri::parse(f).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(u.uris.len(), 2, "{f}");
        assert_eq!(u.uris[0].addr.port(), 61616);
        assert_eq!(u.uris[1].addr.port(), 61626);
        assert!(!u.randomize);
        assert_eq!(u.initial_reconnect_delay_ms, 10);
        assert_eq!(u.max_reconnect_delay_ms, 30_000);
        assert_eq!(u.max_reconnect_attempts, -1);
        assert_eq!(u.timeout_ms, -1);
        assert!(u.use_exponential_backoff);
        assert_eq!(u.backoff_multiplier, 2.0);
    }
    // Bare form: no failover options; the query belongs to the last URI.
    let bare = FailoverUri::parse("failover:tcp://localhost:1,stomp://127.0.0.1:2?x=1").unwrap();
    assert_eq!(bare.uris.len(), 2);
    assert!(bare.randomize);
    assert_eq!(bare.uris[1].option("x"), Some("1"));
    // Plain URI: one entry, default policy.
    let single = FailoverUri::parse("stomp://127.0.0.1:61613").unwrap();
    assert_eq!(single.uris.len(), 1);
    assert!(single.randomize);
    // TLS inner URIs, as a client of a TLS pair writes them.
    let tls = FailoverUri::parse(
        "failover:(ssl://127.0.0.1:61617,ssl://127.0.0.1:61627)?randomize=false",
    )
    .unwrap();
    assert_eq!(tls.uris.len(), 2);
    assert!(tls.uris.iter().all(|u| u.scheme == Scheme::Ssl));
    assert!(!tls.randomize);
    let mixed =
        FailoverUri::parse("failover:stomp+ssl://localhost:1,stomp+nio+ssl://localhost:2").unwrap();
    assert_eq!(mixed.uris[1].scheme, Scheme::StompNioSsl);
    // Parentheses without options.
    assert_eq!(
        FailoverUri::parse("failover:(tcp://127.0.0.1:1)")
            .unwrap()
            .uris
            .len(),
        1
    );
}

#[test]
fn failover_options() {
    let u = FailoverUri::parse(
        "failover:(tcp://127.0.0.1:1)?randomize=false&initialReconnectDelay=100\
         &maxReconnectDelay=5000&maxReconnectAttempts=3&timeout=2000\
         &useExponentialBackOff=false&backOffMultiplier=1.5&priorityBackup=true",
    )
    .unwrap();
    assert!(!u.randomize);
    assert_eq!(u.initial_reconnect_delay_ms, 100);
    assert_eq!(u.max_reconnect_delay_ms, 5000);
    assert_eq!(u.max_reconnect_attempts, 3);
    assert_eq!(u.timeout_ms, 2000);
    assert!(!u.use_exponential_backoff);
    assert_eq!(u.backoff_multiplier, 1.5);
    assert_eq!(
        u.other_options,
        vec![("priorityBackup".into(), "true".into())]
    );
}

#[test]
fn failover_errors() {
    let err = |s: &str| FailoverUri::parse(s).expect_err(s);
    assert_eq!(err("failover:()"), UriError::EmptyFailover);
    assert_eq!(err("failover:"), UriError::EmptyFailover);
    assert!(matches!(
        err("failover:(tcp://127.0.0.1:1"),
        UriError::Syntax(_)
    ));
    assert!(matches!(
        err("failover:(tcp://127.0.0.1:1)junk"),
        UriError::Syntax(_)
    ));
    assert_eq!(
        err("failover:(failover:(tcp://127.0.0.1:1))"),
        UriError::NestedFailover
    );
    assert!(matches!(
        err("failover:(wss://127.0.0.1:1)"),
        UriError::UnsupportedScheme { .. }
    ));
    assert!(matches!(
        err("failover:(tcp://127.0.0.1:1)?randomize=maybe"),
        UriError::BadOption { ref key, .. } if key == "randomize"
    ));
    assert!(matches!(
        err("failover:(tcp://127.0.0.1:1)?maxReconnectAttempts=-2"),
        UriError::BadOption { .. }
    ));
    assert!(matches!(
        err("failover:(tcp://127.0.0.1:1)?initialReconnectDelay=-1"),
        UriError::BadOption { .. }
    ));
    assert!(matches!(
        err("failover:(tcp://127.0.0.1:1)?backOffMultiplier=0.5"),
        UriError::BadOption { .. }
    ));
    assert!(matches!(
        err("failover:(tcp://127.0.0.1:1)?timeout=soon"),
        UriError::BadOption { .. }
    ));
}
