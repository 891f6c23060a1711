//! Host proto -> domain, validating everything a host sends: a bad item
//! fails the job with the item and field it was found in, instead of storing
//! junk.

use crate::directory::{
    Contact, Group, GroupInfo, JidKind, MAX_ITEMS_PER_MESSAGE, MAX_PARTICIPANTS, Participant, check_jid, optional_jid,
    optional_text,
};
use crate::proto::host as pb;

/// Where in one host message validation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Index of the item within its message; `None` for the message itself.
    pub index: Option<usize>,
    /// The field, e.g. `jid` or `participants[3].lid`.
    pub field: String,
    pub problem: String,
}

/// A converted item, or the field that failed and why.
pub(super) type Checked<T> = Result<T, (String, String)>;

fn field<T>(name: &str, result: Result<T, String>) -> Checked<T> {
    result.map_err(|problem| (name.to_owned(), problem))
}

pub(super) fn contact(c: pb::Contact) -> Checked<Contact> {
    field("jid", check_jid(JidKind::User, &c.jid))?;
    Ok(Contact {
        lid: field("lid", optional_jid(JidKind::Lid, c.lid))?,
        phone_number: field("phone_number", optional_text(c.phone_number))?,
        push_name: field("push_name", optional_text(c.push_name))?,
        full_name: field("full_name", optional_text(c.full_name))?,
        first_name: field("first_name", optional_text(c.first_name))?,
        business_name: field("business_name", optional_text(c.business_name))?,
        jid: c.jid,
    })
}

fn participant(p: pb::Participant) -> Result<Participant, String> {
    check_jid(JidKind::User, &p.jid).map_err(|e| format!("jid: {e}"))?;
    Ok(Participant {
        lid: optional_jid(JidKind::Lid, p.lid).map_err(|e| format!("lid: {e}"))?,
        phone_number: optional_text(p.phone_number).map_err(|e| format!("phone_number: {e}"))?,
        is_admin: p.is_admin,
        is_super_admin: p.is_super_admin,
        display_name: optional_text(p.display_name).map_err(|e| format!("display_name: {e}"))?,
        jid: p.jid,
    })
}

pub(super) fn group(g: pb::Group) -> Checked<Group> {
    field("jid", check_jid(JidKind::Group, &g.jid))?;
    if g.participants.len() > MAX_PARTICIPANTS {
        return Err((
            "participants".into(),
            format!("{} exceed the limit of {MAX_PARTICIPANTS}", g.participants.len()),
        ));
    }
    if g.created_at_ms < 0 {
        return Err(("created_at_ms".into(), format!("negative ({})", g.created_at_ms)));
    }
    let participants = g
        .participants
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            participant(p).map_err(|e| {
                let (name, problem) = e.split_once(": ").unwrap_or(("", &e));
                (format!("participants[{i}].{name}"), problem.to_owned())
            })
        })
        .collect::<Checked<Vec<_>>>()?;
    Ok(Group {
        info: GroupInfo {
            name: field("name", optional_text(g.name))?,
            topic: field("topic", optional_text(g.topic))?,
            owner_jid: field("owner_jid", optional_jid(JidKind::User, g.owner_jid))?,
            created_at: Some(g.created_at_ms).filter(|ms| *ms > 0),
            is_announce: g.is_announce,
            is_locked: g.is_locked,
            addressing_mode: field("addressing_mode", optional_text(g.addressing_mode))?,
            jid: g.jid,
        },
        participants,
    })
}

fn convert_all<M, T>(items: Vec<M>, one: fn(M) -> Checked<T>) -> Result<Vec<T>, Invalid> {
    if items.len() > MAX_ITEMS_PER_MESSAGE {
        return Err(Invalid {
            index: None,
            field: "message".into(),
            problem: format!("{} items exceed the limit of {MAX_ITEMS_PER_MESSAGE} per message", items.len()),
        });
    }
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| one(item).map_err(|(field, problem)| Invalid { index: Some(index), field, problem }))
        .collect()
}

pub fn contacts(batch: pb::StreamContactsResponse) -> Result<Vec<Contact>, Invalid> {
    convert_all(batch.contacts, contact)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_failing_field_is_named() {
        let mut g = pb::Group { jid: "1@g.us".into(), ..Default::default() };
        g.participants = vec![
            pb::Participant { jid: "1@s.whatsapp.net".into(), ..Default::default() },
            pb::Participant { jid: "2@s.whatsapp.net".into(), lid: "2@g.us".into(), ..Default::default() },
        ];
        let (field, _) = group(g).unwrap_err();
        assert_eq!(field, "participants[1].lid");
        let err = contacts(pb::StreamContactsResponse {
            contacts: vec![pb::Contact { jid: "1@lid".into(), ..Default::default() }, pb::Contact::default()],
        })
        .unwrap_err();
        assert_eq!((err.index, err.field.as_str(), err.problem.as_str()), (Some(1), "jid", "must not be empty"));
    }
}
