//! Groups: static lists of contacts.

super::sets::set_routes! {
    kind: super::sets::GROUPS, tag: "groups", what: "group", one: "Group", many: "Groups",
    collection: "/groups", item: "/groups/{id}", members: "/groups/{id}/contacts",
    view: GroupView, create: GroupRequest, update: UpdateGroupRequest,
    extra: description, parse_extra: parse_description
}

fn parse_description(raw: &str) -> Result<String, String> {
    crate::text::check(raw, crate::text::MAX_NOTE).map_err(|e| e.to_string())?;
    Ok(raw.trim().to_owned())
}
