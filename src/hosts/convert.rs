//! Host proto -> domain, validating everything a host sends: a bad row fails
//! the job with a precise reason instead of storing junk.

use crate::backfill::{Contact, Group, MAX_PARTICIPANTS, Participant, check_jid, optional_text};
use crate::proto::host as pb;

fn contact(c: pb::Contact) -> Result<Contact, String> {
    check_jid("contact", &c.jid)?;
    Ok(Contact {
        lid: optional_text("contact lid", c.lid)?,
        phone_number: optional_text("contact phone_number", c.phone_number)?,
        push_name: optional_text("contact push_name", c.push_name)?,
        full_name: optional_text("contact full_name", c.full_name)?,
        first_name: optional_text("contact first_name", c.first_name)?,
        business_name: optional_text("contact business_name", c.business_name)?,
        jid: c.jid,
    })
}

fn participant(p: pb::Participant) -> Result<Participant, String> {
    check_jid("group participant", &p.jid)?;
    Ok(Participant {
        lid: optional_text("participant lid", p.lid)?,
        phone_number: optional_text("participant phone_number", p.phone_number)?,
        is_admin: p.is_admin,
        is_super_admin: p.is_super_admin,
        display_name: optional_text("participant display_name", p.display_name)?,
        jid: p.jid,
    })
}

fn group(g: pb::Group) -> Result<Group, String> {
    check_jid("group", &g.jid)?;
    if g.participants.len() > MAX_PARTICIPANTS {
        return Err(format!("group {} has more than {MAX_PARTICIPANTS} participants", g.jid));
    }
    if g.created_at_ms < 0 {
        return Err(format!("group {} has a negative created_at_ms", g.jid));
    }
    Ok(Group {
        name: optional_text("group name", g.name)?,
        topic: optional_text("group topic", g.topic)?,
        owner_jid: optional_text("group owner_jid", g.owner_jid)?,
        created_at: Some(g.created_at_ms).filter(|ms| *ms > 0),
        is_announce: g.is_announce,
        is_locked: g.is_locked,
        addressing_mode: optional_text("group addressing_mode", g.addressing_mode)?,
        participants: g.participants.into_iter().map(participant).collect::<Result<_, _>>()?,
        jid: g.jid,
    })
}

pub fn contacts(batch: pb::StreamContactsResponse) -> Result<Vec<Contact>, String> {
    batch.contacts.into_iter().map(contact).collect()
}

pub fn groups(batch: pb::StreamJoinedGroupsResponse) -> Result<Vec<Group>, String> {
    batch.groups.into_iter().map(group).collect()
}
