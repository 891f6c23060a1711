//! Online backup of a running store: a consistent copy taken with
//! `VACUUM INTO` (one read transaction, so writers go on), written beside
//! the target under a temporary name, checked with `integrity_check`, made
//! durable, and only then linked into place. An existing target is never
//! overwritten, and a failed backup leaves nothing behind.

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
        place(&temporary, to, &folder)?;
        Ok(backup)
    });
    if placed.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    placed
}

async fn copy_and_check(source: SqliteConnectOptions, file: &Path, temporary: &Path) -> Result<Backup, BackupError> {
    let mut conn = SqliteConnection::connect_with(&source).await.map_err(from_sqlx)?;
    let target = temporary.to_str().ok_or_else(|| BackupError::Io {
        path: temporary.to_owned(),
        error: std::io::Error::new(std::io::ErrorKind::InvalidInput, "the path is not UTF-8"),
    })?;
    sqlx::query("VACUUM INTO ?").bind(target).execute(&mut conn).await.map_err(from_sqlx)?;
    conn.close().await.map_err(from_sqlx)?;
    // The copy holds what the store does (api-key hashes, the cursor key):
    // no one who cannot read the store may read it.
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
    Ok(Backup { bytes, sessions, api_keys })
}

/// Links the checked copy in as `to` (failing if `to` appeared meanwhile),
/// drops the temporary name, and makes the folder's entry durable.
fn place(temporary: &Path, to: &Path, folder: &Path) -> Result<(), BackupError> {
    match std::fs::hard_link(temporary, to) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(BackupError::Exists(to.to_owned())),
        Err(error) => return Err(BackupError::Io { path: to.to_owned(), error }),
    }
    std::fs::remove_file(temporary).map_err(|error| BackupError::Io { path: temporary.to_owned(), error })?;
    std::fs::File::open(folder)
        .and_then(|dir| dir.sync_all())
        .map_err(|error| BackupError::Io { path: folder.to_owned(), error })
}
