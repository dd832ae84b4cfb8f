//! Replacing a set of files in several directories all or nothing, across
//! crashes: stage every file, then one switch, then the renames.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::atomic::{NewFile, sync_dir, write_new_synced};

/// A step of [`replace_set_with`], passed to its hook before the step's
/// effect is made durable by the next one. Tests fail or stop a write at
/// each step with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetStep<'a> {
    /// This file's new version is written and fsynced beside it.
    Staged(&'a Path),
    /// The switch is on disk: from here on the new set wins.
    Switched,
    /// This file has been replaced by its new version.
    Replaced(&'a Path),
}

/// What [`finish_interrupted_set`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupted {
    /// Nothing was interrupted.
    Nothing,
    /// A write stopped after its switch: it was completed (this many files
    /// replaced now).
    Completed(usize),
    /// A write stopped before its switch: its staged files were removed
    /// (this many) and the old set is as it was.
    Abandoned(usize),
}

/// Where the new version of `path` is staged: `<path>.onesoidc-new`.
pub fn staged_path(path: &Path) -> PathBuf {
    sibling(path, ".onesoidc-new")
}

/// `path` with `suffix` added to its file name.
pub(crate) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Replaces `files` (in any directories) all or nothing, even across a
/// crash or a kill at any point:
///
/// 1. every new file is written beside its target as `<path>.onesoidc-new`,
///    with its mode, and fsynced (missing directories are created 0700),
///    and each directory is fsynced;
/// 2. the switch file `switch` is created (`create_new`, so two writers
///    cannot both switch) and its directory fsynced: from here the new set
///    is the set;
/// 3. each staged file is renamed over its target, in the order given (put
///    the file that makes the set valid last), and the directories fsynced;
/// 4. the switch is removed.
///
/// A failure before step 2 removes the staged files: the old set is
/// untouched. A crash leaves staged files and perhaps the switch; the next
/// [`finish_interrupted_set`] with the same targets completes the write if
/// the switch is there, or removes the staged files if not.
///
/// ```
/// use onesoidc_fs::{NewFile, replace_set};
/// let dir = tempfile::tempdir().unwrap();
/// let (key, config) = (dir.path().join("keys/private.pem"), dir.path().join("device.yml"));
/// let switch = dir.path().join("device.yml.onesoidc-switch");
/// replace_set(&[NewFile::new(&key, b"key", 0o600), NewFile::new(&config, b"id: 1", 0o644)], &switch).unwrap();
/// assert_eq!(std::fs::read(&config).unwrap(), b"id: 1");
/// assert!(!switch.exists());
/// ```
pub fn replace_set(files: &[NewFile<'_>], switch: &Path) -> io::Result<()> {
    replace_set_with(files, switch, &mut |_| Ok(()))
}

/// [`replace_set`], calling `hook` at every [`SetStep`]; an error from the
/// hook stops the write there, as a failing disk would.
pub fn replace_set_with(
    files: &[NewFile<'_>],
    switch: &Path,
    hook: &mut dyn FnMut(SetStep<'_>) -> io::Result<()>,
) -> io::Result<()> {
    // 1. Stage.
    let mut staged: Vec<PathBuf> = Vec::with_capacity(files.len());
    let staging = (|| {
        for file in files {
            let dir = parent(file.path);
            crate::atomic::create_missing_dir(dir)?;
            let temp = staged_path(file.path);
            let _ = fs::remove_file(&temp);
            write_new_synced(&temp, file.bytes, file.mode).map_err(|e| naming(&temp, e))?;
            staged.push(temp);
            hook(SetStep::Staged(file.path))?;
        }
        for dir in directories(files.iter().map(|f| f.path)) {
            sync_dir(dir).map_err(|e| naming(dir, e))?;
        }
        // 2. Switch.
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(switch)
            .and_then(|f| f.sync_all())
            .map_err(|e| naming(switch, e))?;
        sync_dir(parent(switch)).map_err(|e| naming(switch, e))
    })();
    if let Err(e) = staging {
        for temp in &staged {
            let _ = fs::remove_file(temp);
        }
        return Err(e);
    }
    // 3. and 4.: from here a failure is completed by the next recovery.
    hook(SetStep::Switched)?;
    roll_forward(files.iter().map(|f| f.path), switch, hook).map(drop)
}

/// Completes or abandons a [`replace_set`] of `targets` that a crash
/// interrupted (see there); `Interrupted::Nothing` when there was none.
/// Errors name the file and come from a directory this user cannot write.
pub fn finish_interrupted_set(targets: &[&Path], switch: &Path) -> io::Result<Interrupted> {
    if switch.exists() {
        let replaced = roll_forward(targets.iter().copied(), switch, &mut |_| Ok(()))?;
        return Ok(Interrupted::Completed(replaced));
    }
    let mut removed = 0;
    for target in targets {
        let temp = staged_path(target);
        match fs::remove_file(&temp) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(naming(&temp, e)),
        }
    }
    Ok(if removed == 0 {
        Interrupted::Nothing
    } else {
        Interrupted::Abandoned(removed)
    })
}

/// Renames each staged target that is still staged, fsyncs, removes the
/// switch. Idempotent: a crash in here is finished by running it again.
fn roll_forward<'p>(
    targets: impl Iterator<Item = &'p Path> + Clone,
    switch: &Path,
    hook: &mut dyn FnMut(SetStep<'_>) -> io::Result<()>,
) -> io::Result<usize> {
    let mut replaced = 0;
    for target in targets.clone() {
        let temp = staged_path(target);
        match fs::rename(&temp, target) {
            Ok(()) => replaced += 1,
            // Renamed before the interruption.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(naming(target, e)),
        }
        hook(SetStep::Replaced(target))?;
    }
    for dir in directories(targets) {
        sync_dir(dir).map_err(|e| naming(dir, e))?;
    }
    match fs::remove_file(switch) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(naming(switch, e)),
    }
    sync_dir(parent(switch)).map_err(|e| naming(switch, e))?;
    Ok(replaced)
}

fn directories<'p>(paths: impl Iterator<Item = &'p Path>) -> Vec<&'p Path> {
    let mut dirs: Vec<&Path> = Vec::new();
    for path in paths {
        let dir = parent(path);
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs
}

fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn naming(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}
