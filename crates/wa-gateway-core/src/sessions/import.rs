//! `sessions import`: JSON Lines in the documented Session shape, upserted in
//! one transaction. All or nothing: the first bad line is reported by its
//! number and nothing is written. The input is streamed in chunks, so memory
//! does not grow with the file.
//!
//! Upsert rules: a line that omits `createdAt` keeps the stored one; a line
//! that would move a session to another organization is an error unless the
//! caller allows it; a line whose `updatedAt` is older than the stored row's
//! is skipped and counted; an id twice in one input is an error.

use std::collections::HashSet;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use super::model::SessionId;
use super::record::{ParsedLine, parse_line};
use super::writes::SessionWrite;
use crate::store::error::StoreError;
use crate::store::port::{SessionImport, Store};
use crate::time::{UnixMillis, now_millis};

/// Longest line accepted; a session record is well under 4 KiB.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// Lines looked up and written per round trip.
const CHUNK_LINES: usize = 500;

#[derive(Debug, Clone, Copy, Default)]
pub struct ImportOptions {
    /// Let a line move an existing session to another organization.
    pub allow_org_change: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub inserted: u64,
    pub updated: u64,
    /// Lines whose `updatedAt` is older than the stored row's.
    pub skipped_older: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("line {line}: {message}")]
    Line { line: usize, message: String },
    #[error("cannot read the input: {0}")]
    Read(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Reads lines of at most [`MAX_LINE_BYTES`], counting them from 1.
struct Lines<R> {
    input: R,
    number: usize,
}

impl<R: AsyncBufRead + Unpin> Lines<R> {
    /// Fills `line` with the next line (without its line break); `None` at the end.
    async fn next(&mut self, line: &mut Vec<u8>) -> Result<Option<usize>, ImportError> {
        line.clear();
        loop {
            let available = self.input.fill_buf().await?;
            if available.is_empty() {
                if line.is_empty() {
                    return Ok(None);
                }
                break;
            }
            let (taken, ended) = match available.iter().position(|b| *b == b'\n') {
                Some(i) => (i, true),
                None => (available.len(), false),
            };
            if line.len() + taken > MAX_LINE_BYTES {
                let message = format!("line is longer than {MAX_LINE_BYTES} bytes");
                return Err(ImportError::Line { line: self.number + 1, message });
            }
            line.extend_from_slice(&available[..taken]);
            self.input.consume(taken + usize::from(ended));
            if ended {
                break;
            }
        }
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        self.number += 1;
        Ok(Some(self.number))
    }
}

/// Streams `input` into the store under the rules above.
pub async fn import<R: AsyncBufRead + Unpin>(
    store: &Store,
    input: R,
    options: ImportOptions,
) -> Result<ImportSummary, ImportError> {
    let mut lines = Lines { input, number: 0 };
    let mut import = store.begin_import().await?;
    let mut summary = ImportSummary::default();
    let mut chunk: Vec<(usize, ParsedLine)> = Vec::with_capacity(CHUNK_LINES);
    let mut ids_in_chunk: HashSet<SessionId> = HashSet::with_capacity(CHUNK_LINES);
    let mut raw = Vec::new();
    let now = now_millis();
    while let Some(number) = lines.next(&mut raw).await? {
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let parsed = parse_line(&raw, now).map_err(|message| ImportError::Line { line: number, message })?;
        if !ids_in_chunk.insert(parsed.session.id.clone()) {
            return Err(repeated(number, &parsed.session.id));
        }
        chunk.push((number, parsed));
        if chunk.len() == CHUNK_LINES {
            apply(&mut *import, &mut chunk, options, now, &mut summary).await?;
            ids_in_chunk.clear();
        }
    }
    apply(&mut *import, &mut chunk, options, now, &mut summary).await?;
    import.commit().await?;
    Ok(summary)
}

fn repeated(line: usize, id: &SessionId) -> ImportError {
    ImportError::Line { line, message: format!("session id {id} appears earlier in this input") }
}

async fn apply(
    import: &mut dyn SessionImport,
    chunk: &mut Vec<(usize, ParsedLine)>,
    options: ImportOptions,
    now: UnixMillis,
    summary: &mut ImportSummary,
) -> Result<(), ImportError> {
    if chunk.is_empty() {
        return Ok(());
    }
    let ids: Vec<&SessionId> = chunk.iter().map(|(_, parsed)| &parsed.session.id).collect();
    let inspections = import.inspect(&ids).await?;
    let mut writes = Vec::with_capacity(chunk.len());
    let mut inserting: HashSet<String> = HashSet::new();
    for ((line, parsed), inspection) in chunk.drain(..).zip(inspections) {
        let ParsedLine { mut session, created_at_given, updated_at_given } = parsed;
        if inspection.repeated {
            return Err(repeated(line, &session.id));
        }
        let Some(stored) = inspection.stored else {
            summary.inserted += 1;
            inserting.insert(session.id.as_str().to_owned());
            writes.push(SessionWrite { session, keep_stored_created_at: false });
            continue;
        };
        if stored.organization_id != session.organization_id && !options.allow_org_change {
            let message = format!(
                "session {} belongs to organization {}; this line would move it to {} (pass --allow-org-change to allow)",
                session.id, stored.organization_id, session.organization_id
            );
            return Err(ImportError::Line { line, message });
        }
        if updated_at_given && session.updated_at < stored.updated_at {
            summary.skipped_older += 1;
            continue;
        }
        if !updated_at_given {
            session.updated_at = now;
        }
        summary.updated += 1;
        writes.push(SessionWrite { session, keep_stored_created_at: !created_at_given });
    }
    // A row stored newer since the inspection (by the feed) stays as it is.
    for id in import.write(&writes).await? {
        match inserting.contains(id.as_str()) {
            true => summary.inserted -= 1,
            false => summary.updated -= 1,
        }
        summary.skipped_older += 1;
    }
    Ok(())
}
