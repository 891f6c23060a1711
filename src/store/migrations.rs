//! Each backend's migrations, embedded in the binary without sqlx's macros.
//!
//! A migration is named and checksummed exactly as `sqlx::migrate!` and
//! sqlx's directory resolver do (`<VERSION>_<DESCRIPTION>.sql`, SHA-384 of
//! the text), so databases migrated by earlier builds match version for
//! version and checksum for checksum. The tests hold the embedded lists
//! against sqlx's own reading of `migrations/<backend>/`, so a file added
//! there and not here (or the reverse) fails them.

use std::borrow::Cow;

use futures_util::future::BoxFuture;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

use crate::store::error::StoreError;

/// One backend's migration files, by file name, in version order.
#[derive(Debug, Clone, Copy)]
pub struct Embedded(pub &'static [(&'static str, &'static str)]);

/// Embeds `migrations/<backend>/<file>` for each file named.
macro_rules! embed {
    ($backend:literal: $($file:literal),+ $(,)?) => {
        $crate::store::migrations::Embedded(&[$((
            $file,
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/", $backend, "/", $file)),
        )),+])
    };
}
pub(crate) use embed;

impl Embedded {
    /// The migrations as sqlx runs them.
    pub async fn migrator(self) -> Result<Migrator, StoreError> {
        Ok(Migrator::new(self).await?)
    }

    fn migrations(self) -> Result<Vec<Migration>, String> {
        self.0.iter().map(|&(file, sql)| migration(file, sql)).collect()
    }
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
    use std::path::Path;

    use super::*;

    /// What identifies an applied migration in `_sqlx_migrations`.
    fn identity(migrator: &Migrator) -> Vec<(i64, String, Vec<u8>, bool, String)> {
        migrator
            .iter()
            .map(|m| {
                (m.version, m.description.to_string(), m.checksum.to_vec(), m.no_tx, format!("{:?}", m.migration_type))
            })
            .collect()
    }

    async fn assert_same_as_sqlx_reads(embedded: Embedded, backend: &str) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(backend);
        let mut from_dir = identity(&Migrator::new(dir.as_path()).await.unwrap());
        from_dir.sort();
        let embedded = identity(&embedded.migrator().await.unwrap());
        assert!(embedded.len() >= 4, "{backend}: {} migrations", embedded.len());
        assert_eq!(embedded, from_dir, "{backend}: embedded migrations differ from {}", dir.display());
    }

    #[tokio::test]
    async fn embedded_migrations_are_the_directories_as_sqlx_reads_them() {
        assert_same_as_sqlx_reads(crate::store::sqlite::MIGRATIONS, "sqlite").await;
        #[cfg(feature = "postgres")]
        assert_same_as_sqlx_reads(crate::store::postgres::MIGRATIONS, "postgres").await;
    }

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
