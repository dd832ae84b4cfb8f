//! `DeviceConfig::from_yaml_str`: never panics; whatever parses writes back
//! (`to_yaml_string`) to YAML that re-parses to the same identity.

use std::path::Path;

use onesoidc_core::DeviceConfig;

/// One input: never panics; successes respect their invariants.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("device.yml");
    let Ok(config) = DeviceConfig::from_yaml_str(text, path) else {
        return;
    };
    let _ = config.registration();
    let written = config
        .to_yaml_string()
        .unwrap_or_else(|e| panic!("cannot write back {config:?}: {e}"));
    let again = DeviceConfig::from_yaml_str(&written, path)
        .unwrap_or_else(|e| panic!("written YAML does not re-parse: {e}\n---\n{written}"));
    assert_eq!(again.id, config.id, "id\n---\n{written}");
    assert_eq!(
        again.client_id, config.client_id,
        "client_id\n---\n{written}"
    );
    assert_eq!(again.host, config.host, "host\n---\n{written}");
    assert_eq!(again.key_type, config.key_type, "key_type\n---\n{written}");
    assert_eq!(again.key_security, config.key_security);
    assert_eq!(again.is_managed, config.is_managed);
}
