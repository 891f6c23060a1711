use std::path::PathBuf;

use clap::Args;

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Where to write the copy: a new file (an existing one is never
    /// overwritten). The copy is written beside it under a temporary name
    /// readable by its owner alone, checked with `PRAGMA integrity_check`,
    /// synced, and linked into place. Exit 0 means a complete, durable copy
    /// is at FILE; any failure leaves nothing there.
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
    if let Some(warning) = copied.warning {
        eprintln!("warning: {warning}");
    }
    Ok(())
}
