//! A huge or endless token file is ignored, not read whole.

use onesoidc_tokens::{FileTokenStore, MAX_TOKEN_FILE_BYTES, TokenStore};

#[test]
fn a_token_file_over_the_limit_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileTokenStore::new(dir.path());
    let path = store.path_for("device").unwrap();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(50 * 1024 * 1024).unwrap(); // sparse: 50 MiB of zeros
    assert!(store.load("device").unwrap().is_none());
    file.set_len(MAX_TOKEN_FILE_BYTES + 1).unwrap();
    assert!(store.load("device").unwrap().is_none());
}

#[cfg(unix)]
#[test]
fn an_endless_token_file_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileTokenStore::new(dir.path());
    let path = store.path_for("device").unwrap();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
    assert!(store.load("device").unwrap().is_none());
}
