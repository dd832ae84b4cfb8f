//! Inputs found by the fuzz targets in `fuzz/`, kept as regression tests.

use std::path::Path;

use onesoidc_core::DeviceConfig;

/// fuzz/fuzz_targets/device_yml.rs: a multi-line `initiated_on` is written as
/// a block scalar (`|-`); quoting its first line made `to_yaml_string`
/// produce YAML that did not parse.
#[test]
fn multi_line_initiated_on_round_trips() {
    let yaml = "id: 89d9556c-8782-4a81-9878-e0131e137282\n\
                key_type: ECC:p256\n\
                key_security: default\n\
                initiated_on: \"2026-11-26 10:24:02\\nsecond line\"\n\
                title: \"a\\n\\nb\"\n";
    let path = Path::new("device.yml");
    let config = DeviceConfig::from_yaml_str(yaml, path).unwrap();
    let written = config.to_yaml_string().unwrap();
    let again = DeviceConfig::from_yaml_str(&written, path)
        .unwrap_or_else(|e| panic!("{e}\n---\n{written}"));
    assert_eq!(again, config);
    assert_eq!(
        again.initiated_on.as_deref(),
        Some("2026-11-26 10:24:02\nsecond line")
    );
}

/// The single-line case keeps px's quoting.
#[test]
fn single_line_initiated_on_is_quoted() {
    let yaml = "id: d\nkey_type: RSA:2048\nkey_security: default\n\
                initiated_on: 2026-11-26 10:24:02.755069\n";
    let config = DeviceConfig::from_yaml_str(yaml, Path::new("device.yml")).unwrap();
    let written = config.to_yaml_string().unwrap();
    assert!(
        written.contains("initiated_on: '2026-11-26 10:24:02.755069'\n"),
        "{written}"
    );
}
