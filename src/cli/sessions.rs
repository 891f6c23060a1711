use std::io::Read;

use anyhow::Context;
use clap::Subcommand;

use crate::sessions::parse_json_lines;
use crate::store::Store;

#[derive(Subcommand, Debug)]
pub enum SessionsCommand {
    /// Upsert sessions from JSON Lines in the documented Session shape.
    ///
    /// All or nothing: the first bad line is reported by its number and
    /// nothing is written.
    Import {
        /// A file path, or `-` for standard input.
        file: String,
    },
}

/// Largest import accepted, to keep a mistaken input from exhausting memory.
const MAX_IMPORT_BYTES: u64 = 512 * 1024 * 1024;

fn read_input(file: &str) -> anyhow::Result<String> {
    let mut text = String::new();
    let read = if file == "-" {
        std::io::stdin().take(MAX_IMPORT_BYTES + 1).read_to_string(&mut text)
    } else {
        std::fs::File::open(file)
            .with_context(|| format!("cannot open {file}"))?
            .take(MAX_IMPORT_BYTES + 1)
            .read_to_string(&mut text)
    };
    read.with_context(|| format!("cannot read {file} as UTF-8 text"))?;
    anyhow::ensure!(text.len() as u64 <= MAX_IMPORT_BYTES, "{file} is larger than {MAX_IMPORT_BYTES} bytes");
    Ok(text)
}

pub async fn run(database_url: &str, command: SessionsCommand) -> anyhow::Result<()> {
    match command {
        SessionsCommand::Import { file } => {
            let text = read_input(&file)?;
            let sessions = parse_json_lines(&text).with_context(|| format!("{file}: nothing was imported"))?;
            let store = Store::open(database_url).await?;
            store.upsert_sessions(&sessions).await?;
            store.close().await;
            println!("imported {} sessions", sessions.len());
            Ok(())
        }
    }
}
