//! An identity's files replaced all or nothing: a failure at every step
//! before the switch leaves the old set; after it, the new set, completed
//! by the next recovery; a process killed between two renames is completed
//! the same way; a directory that cannot be written changes nothing.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use onesoidc_fs::{
    IdentityPaths, Interrupted, NewFile, SetStep, finish_interrupted_set, replace_set,
    replace_set_with, staged_path,
};

/// An identity whose four files hold `old-<name>`.
fn old_identity(dir: &Path) -> IdentityPaths {
    let paths = IdentityPaths::new(dir.join("etc/device.yml"), dir.join("keys"));
    for path in paths.files() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, format!("old-{name}")).unwrap();
    }
    paths
}

fn contents(paths: &IdentityPaths) -> Vec<String> {
    paths
        .files()
        .iter()
        .map(|p| fs::read_to_string(p).unwrap())
        .collect()
}

fn all(prefix: &str) -> Vec<String> {
    ["public.pem", "public_jwk.json", "private.pem", "device.yml"]
        .iter()
        .map(|n| format!("{prefix}-{n}"))
        .collect()
}

/// Every file in the identity's two directories (to find leftovers).
fn names(paths: &IdentityPaths) -> Vec<String> {
    let mut names = Vec::new();
    for dir in [paths.config.parent().unwrap(), paths.key_dir.as_path()] {
        for entry in fs::read_dir(dir).unwrap() {
            names.push(entry.unwrap().file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    names
}

fn new_bytes(paths: &IdentityPaths) -> Vec<(PathBuf, String)> {
    paths
        .files()
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (p, format!("new-{name}"))
        })
        .collect()
}

fn write_new(
    paths: &IdentityPaths,
    hook: &mut dyn FnMut(SetStep<'_>) -> io::Result<()>,
) -> io::Result<()> {
    let bytes = new_bytes(paths);
    let files: Vec<NewFile<'_>> = bytes
        .iter()
        .map(|(p, b)| NewFile::new(p, b.as_bytes(), 0o600))
        .collect();
    replace_set_with(&files, &paths.switch(), hook)
}

/// Steps in the order they happen for a four-file set.
fn steps(paths: &IdentityPaths) -> Vec<String> {
    let mut seen = Vec::new();
    write_new(paths, &mut |step| {
        seen.push(format!("{step:?}"));
        Ok(())
    })
    .unwrap();
    seen
}

#[test]
fn a_failure_at_each_step_leaves_one_whole_set() {
    let probe = tempfile::tempdir().unwrap();
    let count = steps(&old_identity(probe.path())).len();
    assert_eq!(count, 4 + 1 + 4, "4 staged, the switch, 4 replaced");

    for failing in 0..count {
        let dir = tempfile::tempdir().unwrap();
        let paths = old_identity(dir.path());
        let mut at = 0;
        let mut failed_step = String::new();
        let error = write_new(&paths, &mut |step| {
            let this = at;
            at += 1;
            if this == failing {
                failed_step = format!("{step:?}");
                // A full disk, as the writer would see it.
                return Err(io::Error::from_raw_os_error(28));
            }
            Ok(())
        })
        .unwrap_err();
        assert_eq!(error.raw_os_error(), Some(28));
        let switched = failing >= 4;
        if switched {
            // After the switch: the next recovery completes the new set.
            assert!(paths.switch().exists(), "{failed_step}");
            let done = paths.finish_interrupted_write().unwrap();
            assert!(
                matches!(done, Interrupted::Completed(_)),
                "{failed_step}: {done:?}"
            );
            assert_eq!(contents(&paths), all("new"), "{failed_step}");
        } else {
            // Before the switch: the old set, and nothing staged left.
            assert_eq!(contents(&paths), all("old"), "{failed_step}");
            assert_eq!(
                paths.finish_interrupted_write().unwrap(),
                Interrupted::Nothing,
                "{failed_step}: the failed write cleaned up after itself"
            );
        }
        assert_eq!(
            names(&paths),
            ["device.yml", "private.pem", "public.pem", "public_jwk.json"],
            "{failed_step}: no staged file or switch left"
        );
    }
}

#[test]
fn a_crash_before_the_switch_is_abandoned_by_the_next_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let paths = old_identity(dir.path());
    // What a crash after staging two files leaves (no cleanup ran).
    for (path, bytes) in new_bytes(&paths).iter().take(2) {
        fs::write(staged_path(path), bytes).unwrap();
    }
    assert_eq!(
        paths.finish_interrupted_write().unwrap(),
        Interrupted::Abandoned(2)
    );
    assert_eq!(contents(&paths), all("old"));
    assert_eq!(names(&paths).len(), 4);
}

#[test]
fn a_stale_switch_blocks_a_second_writer_until_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let paths = old_identity(dir.path());
    fs::write(paths.switch(), "").unwrap();
    let error = write_new(&paths, &mut |_| Ok(())).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::AlreadyExists, "{error}");
    assert!(error.to_string().contains("onesoidc-switch"), "{error}");
    assert_eq!(contents(&paths), all("old"), "nothing replaced");
    assert_eq!(names(&paths).len(), 5, "its staged files were removed");
}

/// A directory the new key cannot be written to: the old set is untouched.
/// (As root, permissions do not stop a write; /proc does.)
#[test]
fn a_directory_that_cannot_be_written_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let paths = old_identity(dir.path());
    let mut blocked = paths.clone();
    let root = is_root();
    if root {
        blocked.key_dir = PathBuf::from("/proc/onesoidc-cannot-write-here");
    } else {
        set_mode(&paths.key_dir, 0o500);
    }
    let bytes = new_bytes(&blocked);
    let files: Vec<NewFile<'_>> = bytes
        .iter()
        .map(|(p, b)| NewFile::new(p, b.as_bytes(), 0o600))
        .collect();
    let error = replace_set(&files, &blocked.switch()).unwrap_err();
    if !root {
        set_mode(&paths.key_dir, 0o700);
    }
    assert!(
        error
            .to_string()
            .contains(if root { "/proc" } else { "keys" }),
        "{error}"
    );
    assert_eq!(contents(&paths), all("old"));
    assert_eq!(names(&paths).len(), 4, "nothing staged left behind");
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    tempfile::tempfile().unwrap().metadata().unwrap().uid() == 0
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

const CHILD: &str = "ONESOIDC_REPLACE_SET_CHILD";

/// The process writing the set is killed (SIGKILL) right after its first
/// rename: the next recovery completes the set.
#[test]
fn a_process_killed_between_renames_is_completed_by_the_next_recovery() {
    if let Ok(dir) = std::env::var(CHILD) {
        // The child: write the set, and stop for good after the first rename.
        let paths = IdentityPaths::new(
            Path::new(&dir).join("etc/device.yml"),
            Path::new(&dir).join("keys"),
        );
        let _ = write_new(&paths, &mut |step| {
            if matches!(step, SetStep::Replaced(_)) {
                println!("replaced one");
                let _ = io::Write::flush(&mut io::stdout());
                // Wait to be killed.
                let _ = io::stdin().read_line(&mut String::new());
                std::process::abort();
            }
            Ok(())
        });
        std::process::abort();
    }
    let dir = tempfile::tempdir().unwrap();
    let paths = old_identity(dir.path());
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_process_killed_between_renames_is_completed_by_the_next_recovery",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD, dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut stdout = io::BufReader::new(child.stdout.take().unwrap());
    loop {
        line.clear();
        let read = io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        assert!(read > 0, "the child ended before its first rename");
        if line.contains("replaced one") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let now = contents(&paths);
    assert_eq!(now[0], "new-public.pem", "the first file was renamed");
    assert_eq!(now[3], "old-device.yml", "device.yml was not yet");
    assert!(paths.switch().exists());
    assert_eq!(
        finish_interrupted_set(
            &paths
                .files()
                .iter()
                .map(PathBuf::as_path)
                .collect::<Vec<_>>(),
            &paths.switch()
        )
        .unwrap(),
        Interrupted::Completed(3)
    );
    assert_eq!(contents(&paths), all("new"));
    assert_eq!(names(&paths).len(), 4);
}
