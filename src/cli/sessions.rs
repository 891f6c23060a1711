use anyhow::Context;
use clap::Subcommand;
use tokio::io::{AsyncBufRead, BufReader};

use crate::sessions::{ImportError, ImportOptions, import};

#[derive(Subcommand, Debug)]
pub enum SessionsCommand {
    /// Upsert sessions from JSON Lines in the documented Session shape.
    ///
    /// All or nothing: the first bad line is reported by its number and
    /// nothing is written. The input is streamed, so any size works. A line
    /// without `createdAt` keeps the stored one; a line whose `updatedAt` is
    /// older than the stored row's is skipped (and counted); a line that
    /// would move a session to another organization is an error unless
    /// --allow-org-change is given.
    Import {
        /// A file path, or `-` for standard input.
        file: String,
        /// Let lines move existing sessions to another organization.
        #[arg(long)]
        allow_org_change: bool,
    },
}

async fn open(file: &str) -> anyhow::Result<Box<dyn AsyncBufRead + Unpin + Send>> {
    if file == "-" {
        return Ok(Box::new(BufReader::with_capacity(256 * 1024, tokio::io::stdin())));
    }
    let handle = tokio::fs::File::open(file).await.with_context(|| format!("cannot open {file}"))?;
    Ok(Box::new(BufReader::with_capacity(256 * 1024, handle)))
}

pub async fn run(
    database_url: &str,
    options: crate::store::StoreOptions,
    command: SessionsCommand,
) -> anyhow::Result<()> {
    match command {
        SessionsCommand::Import { file, allow_org_change } => {
            let input = open(&file).await?;
            let store = crate::store::open_with(database_url, options).await?;
            let result = import(&store, input, ImportOptions { allow_org_change }).await;
            store.close().await;
            let summary = match result {
                Ok(summary) => summary,
                Err(ImportError::Store(e)) => return Err(anyhow::Error::new(e).context("nothing was imported")),
                Err(e) => anyhow::bail!("{file}: {e}; nothing was imported"),
            };
            println!(
                "imported {} sessions ({} new, {} updated); skipped {} lines older than the stored sessions",
                summary.inserted + summary.updated,
                summary.inserted,
                summary.updated,
                summary.skipped_older
            );
            Ok(())
        }
    }
}
