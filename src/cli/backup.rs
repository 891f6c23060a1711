use std::path::PathBuf;

use clap::Args;

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Where to write the copy: a new file (an existing one is never
    /// overwritten). The copy is written beside it under a temporary name,
    /// checked with `PRAGMA integrity_check`, and renamed into place.
    #[arg(long, value_name = "FILE")]
    pub to: PathBuf,
}

/// Takes a consistent copy of a SQLite store, running or not. PostgreSQL
/// has its own tools for that, and they are the right ones.
pub async fn run(database_url: &str, args: BackupArgs) -> anyhow::Result<()> {
    if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        anyhow::bail!(
            "`wa-gateway backup` copies a SQLite store; back PostgreSQL up with its own tools \
             (pg_dump, or pg_basebackup for a whole server)"
        );
    }
    let copied = wa_gateway_sqlite::backup::backup(database_url, &args.to).await?;
    println!(
        "backed up {} to {} ({} bytes: {} sessions, {} api-keys); integrity_check ok",
        crate::store::redact_url(database_url),
        args.to.display(),
        copied.bytes,
        copied.sessions,
        copied.api_keys
    );
    Ok(())
}
