//! A backend's migrations, embedded in the binary without sqlx's macros.
//!
//! A migration is named and checksummed exactly as `sqlx::migrate!` and
//! sqlx's directory resolver do (`<VERSION>_<DESCRIPTION>.sql`, SHA-384 of
//! the text), so databases migrated by earlier builds match version for
//! version and checksum for checksum. Each backend's tests hold its
//! embedded list against sqlx's own reading of its `migrations/` folder
//! ([`Embedded::check_against`]), so a file added there and not embedded
//! (or the reverse) fails them.

use std::borrow::Cow;
use std::path::Path;

use futures_util::future::BoxFuture;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

use wa_gateway_core::store::error::StoreError;

use crate::errors::from_migrate;

/// One backend's migration files, by file name, in version order.
#[derive(Debug, Clone, Copy)]
pub struct Embedded(pub &'static [(&'static str, &'static str)]);

/// Embeds `migrations/<file>` of the calling crate for each file named.
#[macro_export]
macro_rules! embed {
    ($($file:literal),+ $(,)?) => {
        $crate::Embedded(&[$((
            $file,
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/", $file)),
        )),+])
    };
}

impl Embedded {
    /// The migrations as sqlx runs them.
    pub async fn migrator(self) -> Result<Migrator, StoreError> {
        Migrator::new(self).await.map_err(from_migrate)
    }

    fn migrations(self) -> Result<Vec<Migration>, String> {
        self.0.iter().map(|&(file, sql)| migration(file, sql)).collect()
    }

    /// Whether these are the migrations sqlx reads from `dir`, version,
    /// description, checksum and transaction mode alike; how many if so.
    pub async fn check_against(self, dir: &Path) -> Result<usize, String> {
        let from_dir = Migrator::new(dir).await.map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut from_dir = identity(&from_dir);
        from_dir.sort();
        let embedded = identity(&self.migrator().await.map_err(|e| e.to_string())?);
        if embedded != from_dir {
            return Err(format!("embedded migrations {embedded:?} differ from {}: {from_dir:?}", dir.display()));
        }
        Ok(embedded.len())
    }
}

/// What identifies an applied migration in `_sqlx_migrations`.
fn identity(migrator: &Migrator) -> Vec<(i64, String, Vec<u8>, bool, String)> {
    migrator
        .iter()
        .map(|m| {
            (m.version, m.description.to_string(), m.checksum.to_vec(), m.no_tx, format!("{:?}", m.migration_type))
        })
        .collect()
}

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move { self.migrations().map_err(BoxDynError::from) })
    }
}

/// The migration sqlx makes of `file`: version before the first `_`, the
/// rest without `.sql` and with `_` as spaces for its description.
fn migration(file: &'static str, sql: &'static str) -> Result<Migration, String> {
    let (version, rest) =
        file.split_once('_').ok_or_else(|| format!("migration {file:?}: no `_` after its version"))?;
    let version: i64 = version.parse().map_err(|_| format!("migration {file:?}: its version is not a number"))?;
    let migration_type = MigrationType::from_filename(rest);
    if !rest.ends_with(".sql") {
        return Err(format!("migration {file:?}: not a .sql file"));
    }
    let description = rest.trim_end_matches(migration_type.suffix()).replace('_', " ");
    let no_tx = sql.starts_with("-- no-transaction");
    Ok(Migration::new(version, Cow::Owned(description), migration_type, Cow::Borrowed(sql), no_tx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misnamed_file_is_refused_with_its_name() {
        for (file, expected) in [
            ("0001sessions.sql", "no `_` after its version"),
            ("x_sessions.sql", "its version is not a number"),
            ("0001_sessions.txt", "not a .sql file"),
        ] {
            let error = migration(file, "SELECT 1").unwrap_err();
            assert!(error.contains(file) && error.contains(expected), "{file}: {error}");
        }
    }
}
