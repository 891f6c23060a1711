//! What backfills stored, page by page: contacts, groups (with member
//! counts) and the members of one group.
//!
//! A cursor names the generation (the backfill) its walk reads, so a walk
//! never mixes two backfills: once a newer backfill is published, the old
//! cursor is answered with [`BackfillError::StaleCursor`] and the client
//! starts again. Rows and their generation are read in one statement.

use std::future::Future;

use super::{BackfillError, Backfills};
use crate::auth::SuperAdmin;
use crate::directory::{Contact, GroupSummary, Participant};
use crate::paging::{CursorCodec, Page};
use crate::sessions::model::SessionId;
use crate::store::error::StoreError;
use crate::store::port::Slice;

/// The raw paging fields of a listing request.
pub struct PageArgs<'a> {
    pub limit: Option<i64>,
    pub cursor: Option<&'a str>,
}

/// A cursor's position: `generation/key`. Generations are ULIDs, never
/// containing `/`.
fn split(position: &str) -> Result<(&str, &str), BackfillError> {
    position.split_once('/').ok_or(BackfillError::Paging(crate::paging::PagingError::InvalidCursor))
}

impl Backfills {
    /// One page of stored rows: validates paging, requires the session,
    /// fetches `limit + 1` rows after the cursor's key, and refuses a cursor
    /// whose generation is no longer the visible one.
    async fn stored_page<T, Fut>(
        &self,
        codec: &CursorCodec,
        scope: String,
        session: &SessionId,
        args: PageArgs<'_>,
        key_of: fn(&T) -> &str,
        fetch: impl FnOnce(Option<String>, u32) -> Fut,
    ) -> Result<(Page<T>, Option<String>), BackfillError>
    where
        Fut: Future<Output = Result<Slice<T>, StoreError>>,
    {
        let request = codec.page_request(&scope, args.limit, args.cursor)?;
        let after = request.after.as_deref().map(split).transpose()?;
        if self.store().get_session(session).await?.is_none() {
            return Err(BackfillError::SessionNotFound { session: session.to_string() });
        }
        let slice = fetch(after.map(|(_, key)| key.to_owned()), request.limit.get()).await?;
        let generation = match slice.generation {
            Some(generation) => Some(generation),
            None => self.store().current_generation(session).await?,
        };
        if let Some((walked, _)) = after {
            if generation.as_deref() != Some(walked) {
                return Err(BackfillError::StaleCursor);
            }
        }
        let read = generation.clone().unwrap_or_default();
        let page = codec.page(&scope, request.limit, slice.rows, |row| format!("{read}/{}", key_of(row)));
        Ok((page, generation))
    }

    /// Contacts stored by the session's last successful backfill, by jid.
    pub async fn contacts(
        &self,
        _admin: &SuperAdmin,
        codec: &CursorCodec,
        session: &SessionId,
        args: PageArgs<'_>,
    ) -> Result<Page<Contact>, BackfillError> {
        let store = self.store();
        let scope = format!("contacts|{session}");
        let fetch =
            |after: Option<String>, limit| async move { store.contacts_page(session, after.as_deref(), limit).await };
        Ok(self.stored_page(codec, scope, session, args, |c: &Contact| &c.jid, fetch).await?.0)
    }

    /// Groups stored by the session's last successful backfill, by jid, each
    /// with its member count (members are paged by [`Backfills::participants`]).
    pub async fn groups(
        &self,
        _admin: &SuperAdmin,
        codec: &CursorCodec,
        session: &SessionId,
        args: PageArgs<'_>,
    ) -> Result<Page<GroupSummary>, BackfillError> {
        let store = self.store();
        let scope = format!("groups|{session}");
        let fetch =
            |after: Option<String>, limit| async move { store.groups_page(session, after.as_deref(), limit).await };
        Ok(self.stored_page(codec, scope, session, args, |g: &GroupSummary| &g.info.jid, fetch).await?.0)
    }

    /// Members of one stored group, by jid.
    pub async fn participants(
        &self,
        _admin: &SuperAdmin,
        codec: &CursorCodec,
        session: &SessionId,
        group: &str,
        args: PageArgs<'_>,
    ) -> Result<Page<Participant>, BackfillError> {
        let store = self.store();
        let scope = format!("participants|{session}|{group}");
        let first_page = args.cursor.is_none_or(str::is_empty);
        let fetch = |after: Option<String>, limit| async move {
            store.participants_page(session, group, after.as_deref(), limit).await
        };
        let (page, generation) = self.stored_page(codec, scope, session, args, |p: &Participant| &p.jid, fetch).await?;
        // An empty first page is either an empty group or no such group.
        if first_page && page.items.is_empty() {
            let exists = match &generation {
                Some(generation) => store.group_exists(session, generation, group).await?,
                None => false,
            };
            if !exists {
                return Err(BackfillError::GroupNotFound { session: session.to_string(), group: group.to_owned() });
            }
        }
        Ok(page)
    }
}
