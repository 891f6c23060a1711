//! Online backup of a running store: a consistent copy taken with
//! `VACUUM INTO` (one read transaction, so writers go on), written beside
//! the target under a temporary name, checked with `integrity_check`, made
//! durable, and only then linked into place. An existing target is never
//! overwritten.
//!
//! Invariants: the copy is readable by its owner alone from the moment it
//! exists (it holds api-key hashes and the cursor-signing key) until it gets
//! the store's own permissions; and a backup that reports success has put a
//! complete, durable copy at its target, while one that reports failure has
//! left nothing there.

use std::path::{Path, PathBuf};

use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

use crate::errors::from_sqlx;
use wa_gateway_core::store::error::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} already exists: a backup never overwrites a file; choose a new name or remove it first")]
    Exists(PathBuf),
    #[error("there is no SQLite database at {0}")]
    NoSource(PathBuf),
    #[error("the folder of {0} does not exist")]
    NoFolder(PathBuf),
    #[error("writing {path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("the copy failed its integrity check: {0}")]
    Integrity(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a backup copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    pub bytes: u64,
    pub sessions: i64,
    pub api_keys: i64,
    /// Something an operator should tidy, although the backup is complete.
    pub warning: Option<String>,
}

/// Copies the database at `url` (a path or `sqlite://` URL) to `to`.
pub async fn backup(url: &str, to: &Path) -> Result<Backup, BackupError> {
    let source = crate::options(url)?.create_if_missing(false);
    let file = source.get_filename().to_owned();
    if !file.is_file() {
        return Err(BackupError::NoSource(file));
    }
    if to.exists() {
        return Err(BackupError::Exists(to.to_owned()));
    }
    let folder = match to.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    if !folder.is_dir() {
        return Err(BackupError::NoFolder(to.to_owned()));
    }
    let name = to.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temporary = folder.join(format!(".{name}.partial-{}", ulid::Ulid::new()));
    let copied = copy_and_check(source, &file, &temporary).await;
    let placed = copied.and_then(|backup| {
        let warning = place(&temporary, to, &folder, sync_folder)?;
        Ok(Backup { warning, ..backup })
    });
    if placed.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    placed
}

/// Copies the store into `temporary`, a new file that only its owner can
/// read: SQLite writes into the empty file made here instead of creating
/// one with the process's umask.
async fn copy_privately(source: &SqliteConnectOptions, temporary: &Path) -> Result<(), BackupError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |error| BackupError::Io { path: temporary.to_owned(), error };
    std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(temporary).map_err(io)?;
    let target = temporary
        .to_str()
        .ok_or_else(|| io(std::io::Error::new(std::io::ErrorKind::InvalidInput, "the path is not UTF-8")))?;
    let mut conn = SqliteConnection::connect_with(source).await.map_err(from_sqlx)?;
    sqlx::query("VACUUM INTO ?").bind(target).execute(&mut conn).await.map_err(from_sqlx)?;
    conn.close().await.map_err(from_sqlx)?;
    Ok(())
}

async fn copy_and_check(source: SqliteConnectOptions, file: &Path, temporary: &Path) -> Result<Backup, BackupError> {
    copy_privately(&source, temporary).await?;
    // The copy holds what the store does (api-key hashes, the cursor key):
    // it gets the store's permissions, no wider.
    let permissions = std::fs::metadata(file).map(|m| m.permissions());
    permissions
        .and_then(|p| std::fs::set_permissions(temporary, p))
        .map_err(|error| BackupError::Io { path: temporary.to_owned(), error })?;

    let copy = SqliteConnectOptions::new().filename(temporary).create_if_missing(false);
    let mut conn = SqliteConnection::connect_with(&copy).await.map_err(from_sqlx)?;
    let verdict: Vec<String> =
        sqlx::query_scalar("PRAGMA integrity_check").fetch_all(&mut conn).await.map_err(from_sqlx)?;
    if verdict != ["ok"] {
        return Err(BackupError::Integrity(verdict.join("; ")));
    }
    let sessions: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sessions").fetch_one(&mut conn).await.map_err(from_sqlx)?;
    let api_keys: i64 =
        sqlx::query_scalar("SELECT count(*) FROM api_keys").fetch_one(&mut conn).await.map_err(from_sqlx)?;
    conn.close().await.map_err(from_sqlx)?;
    let io = |error| BackupError::Io { path: temporary.to_owned(), error };
    let file = std::fs::File::open(temporary).map_err(io)?;
    file.sync_all().map_err(io)?;
    let bytes = file.metadata().map_err(io)?.len();
    Ok(Backup { bytes, sessions, api_keys, warning: None })
}

/// Links the checked copy in as `to` (failing if `to` appeared meanwhile)
/// and makes the folder's entry durable (`sync_folder`); if that fails, `to`
/// goes again and the backup fails. Dropping the temporary name comes last:
/// the copy at `to` is complete by then, so a failure there is a warning.
fn place(
    temporary: &Path,
    to: &Path,
    folder: &Path,
    sync_folder: impl Fn(&Path) -> std::io::Result<()>,
) -> Result<Option<String>, BackupError> {
    match std::fs::hard_link(temporary, to) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(BackupError::Exists(to.to_owned())),
        Err(error) => return Err(BackupError::Io { path: to.to_owned(), error }),
    }
    if let Err(error) = sync_folder(folder) {
        let _ = std::fs::remove_file(to);
        return Err(BackupError::Io { path: folder.to_owned(), error });
    }
    Ok(std::fs::remove_file(temporary).err().map(|error| {
        format!(
            "the copy at {} is complete, but its temporary name {} could not be removed: {error}",
            to.display(),
            temporary.display()
        )
    }))
}

fn sync_folder(folder: &Path) -> std::io::Result<()> {
    std::fs::File::open(folder).and_then(|dir| dir.sync_all())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    async fn store(dir: &Path) -> SqliteConnectOptions {
        let options = SqliteConnectOptions::new().filename(dir.join("store.db")).create_if_missing(true);
        let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
        sqlx::query("CREATE TABLE secrets (value TEXT)").execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
        options
    }

    #[tokio::test]
    async fn the_copy_is_readable_by_its_owner_alone_from_its_first_byte() {
        let dir = tempfile::tempdir().unwrap();
        let source = store(dir.path()).await;
        let temporary = dir.path().join(".copy.partial");
        copy_privately(&source, &temporary).await.unwrap();
        // Before the store's permissions are given to it: whatever the umask.
        let mode = std::fs::metadata(&temporary).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the copy was readable by others while it was written: {mode:o}");
        assert!(std::fs::metadata(&temporary).unwrap().len() > 0, "the copy holds the store");
    }

    #[test]
    fn a_backup_whose_folder_entry_cannot_be_made_durable_leaves_nothing_at_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let (temporary, to) = (dir.path().join(".copy.partial"), dir.path().join("copy.db"));
        std::fs::write(&temporary, b"a checked copy").unwrap();
        let failing = |_: &Path| Err(std::io::Error::other("no sync"));
        assert!(matches!(place(&temporary, &to, dir.path(), failing), Err(BackupError::Io { .. })));
        assert!(!to.exists(), "a failed backup left a file at its target");

        let placed = place(&temporary, &to, dir.path(), sync_folder).unwrap();
        assert_eq!((placed, to.exists(), temporary.exists()), (None, true, false));
    }
}
