//! device.yml loading, against px-device-identity's real files and broken ones.

mod common;

use std::path::Path;

use onesoidc_core::{ConfigError, DeviceConfig, KeySecurity, KeyType};

const PROTOCOL_EXAMPLE: &str = r#"client_id: d5fe8500-6003-49fd-9b8f-7adaf102e9a3
config_version: 0.0.3
domain: onesid1.com
host: https://idp-server.ones-now.com
id: 8b477978-c63d-46f5-9492-67fafdd0d68e
initiated_on: "2021-03-08 15:22:00.816527"
is_managed: true
key_security: default      # default | tpm
key_type: RSA:2048         # RSA:2048 | RSA:3072 | ECC:p256 | ECC:p384 | ECC:p521
location: Bangkok
role: server               # lower case: desktop, server, public, admin_terminal, ...
title: ServerName
"#;

fn parse(text: &str) -> Result<DeviceConfig, ConfigError> {
    DeviceConfig::from_yaml_str(text, Path::new("/etc/px-device-identity/device.yml"))
}

#[test]
fn protocol_example_loads() {
    let c = parse(PROTOCOL_EXAMPLE).unwrap();
    assert_eq!(c.id, "8b477978-c63d-46f5-9492-67fafdd0d68e");
    assert_eq!(
        c.client_id.as_ref().map(|c| c.as_str()),
        Some("d5fe8500-6003-49fd-9b8f-7adaf102e9a3")
    );
    assert_eq!(c.key_type, KeyType::Rsa2048);
    assert_eq!(c.key_security, KeySecurity::Default);
    assert!(c.is_managed);
    assert_eq!(
        c.initiated_on.as_deref(),
        Some("2021-03-08 15:22:00.816527")
    );
    assert_eq!(c.role.as_deref(), Some("server"));
    let reg = c.registration().unwrap();
    assert_eq!(reg.issuer.as_str(), "https://idp-server.ones-now.com/oidc");
    assert!(c.extra.is_empty());
}

#[test]
fn bool_spellings() {
    for (spelling, expected) in [
        ("true", true),
        ("True", true),
        ("\"true\"", true),
        ("'True'", true),
        ("false", false),
        ("False", false),
        ("\"false\"", false),
    ] {
        let text = PROTOCOL_EXAMPLE.replace("is_managed: true", &format!("is_managed: {spelling}"));
        assert_eq!(
            parse(&text).unwrap().is_managed,
            expected,
            "is_managed: {spelling}"
        );
    }
    let text = PROTOCOL_EXAMPLE.replace("is_managed: true", "is_managed: maybe");
    let err = parse(&text).unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::InvalidField {
                field: "is_managed",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn unknown_fields_are_kept_and_written_back() {
    let text = format!("{PROTOCOL_EXAMPLE}future_field: 42\nnested:\n  a: b\n");
    let c = parse(&text).unwrap();
    assert_eq!(c.extra["future_field"], serde_json::json!(42));
    assert_eq!(c.extra["nested"], serde_json::json!({"a": "b"}));
    let again = parse(&c.to_yaml_string().unwrap()).unwrap();
    assert_eq!(again.extra, c.extra);
    assert_eq!(again.id, c.id);
    assert_eq!(again.client_id, c.client_id);
    assert_eq!(again.is_managed, c.is_managed);
}

#[test]
fn missing_required_fields_are_named() {
    for field in ["id", "key_type", "key_security"] {
        let text: String = PROTOCOL_EXAMPLE
            .lines()
            .filter(|l| !l.starts_with(&format!("{field}:")))
            .map(|l| format!("{l}\n"))
            .collect();
        let err = parse(&text).unwrap_err();
        match &err {
            ConfigError::MissingField { field: f, path } => {
                assert_eq!(*f, field);
                assert_eq!(path, Path::new("/etc/px-device-identity/device.yml"));
            }
            other => panic!("{field}: {other}"),
        }
        let message = err.to_string();
        assert!(
            message.contains(field) && message.contains("/etc/px-device-identity/device.yml"),
            "{message}"
        );
    }
}

#[test]
fn malformed_fields_are_named() {
    let cases = [
        ("key_type: RSA:2048", "key_type: RSA:1024", "key_type"),
        ("key_security: default", "key_security: hsm", "key_security"),
        (
            "host: https://idp-server.ones-now.com",
            "host: not a url",
            "host",
        ),
        (
            "host: https://idp-server.ones-now.com",
            "host: ftp://idp",
            "host",
        ),
        (
            "id: 8b477978-c63d-46f5-9492-67fafdd0d68e",
            "id: [1, 2]",
            "id",
        ),
    ];
    for (from, to, field) in cases {
        let err = parse(&PROTOCOL_EXAMPLE.replace(from, to)).unwrap_err();
        assert!(
            matches!(&err, ConfigError::InvalidField { field: f, .. } if *f == field),
            "{to}: {err}"
        );
        assert!(err.to_string().contains(field));
    }
}

#[test]
fn bad_yaml_names_the_file_and_line() {
    let err = parse("id: x\nkey_type: [unclosed\n").unwrap_err();
    assert!(matches!(err, ConfigError::Yaml { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("device.yml") && message.contains("line"),
        "{message}"
    );
    assert!(matches!(
        parse("just a string").unwrap_err(),
        ConfigError::NotAMapping { .. }
    ));
    assert!(matches!(
        parse("").unwrap_err(),
        ConfigError::NotAMapping { .. }
    ));
}

#[test]
fn written_yaml_quotes_initiated_on_like_px() {
    let c = parse(PROTOCOL_EXAMPLE).unwrap();
    let text = c.to_yaml_string().unwrap();
    assert!(
        text.contains("initiated_on: '2021-03-08 15:22:00.816527'\n"),
        "{text}"
    );
    assert!(text.contains("is_managed: true\n"));
    assert_eq!(parse(&text).unwrap().initiated_on, c.initiated_on);
}

/// The error of an unregistered identity names exactly the fields it lacks
/// (before, a file without `host` was said to lack both).
#[test]
fn not_registered_names_exactly_the_missing_fields() {
    let without = |field: &str| {
        let text: String = PROTOCOL_EXAMPLE
            .lines()
            .filter(|line| !line.starts_with(&format!("{field}:")))
            .map(|line| format!("{line}\n"))
            .collect();
        parse(&text)
            .unwrap()
            .registration()
            .unwrap_err()
            .to_string()
    };
    let no_host = without("host");
    assert!(no_host.contains("(`host` is null or missing)"), "{no_host}");
    assert!(!no_host.contains("client_id"), "{no_host}");
    let no_client = without("client_id");
    assert!(
        no_client.contains("(`client_id` is null or missing)"),
        "{no_client}"
    );
    let neither = parse(
        &PROTOCOL_EXAMPLE
            .replace(
                "client_id: d5fe8500-6003-49fd-9b8f-7adaf102e9a3",
                "client_id: null",
            )
            .replace("host: https://idp-server.ones-now.com", "host: null"),
    )
    .unwrap()
    .registration()
    .unwrap_err();
    assert!(matches!(
        &neither,
        ConfigError::NotRegistered { missing, .. } if missing == &["client_id", "host"]
    ));
    assert!(
        neither
            .to_string()
            .contains("(`client_id` and `host` are null or missing)"),
        "{neither}"
    );
}
