//! Groups: static lists of contacts.

super::sets::set_routes! {
    kind: super::sets::GROUPS, tag: "groups", what: "group", one: "Group", many: "Groups",
    collection: "/groups", item: "/groups/{id}", members: "/groups/{id}/contacts",
    view: GroupView, create: GroupRequest, update: UpdateGroupRequest,
    extra: description, parse_extra: parse_description
}

fn parse_description(raw: &str) -> Result<String, &'static str> {
    if raw.chars().count() > 1000 {
        Err("must have at most 1000 characters")
    } else {
        Ok(raw.trim().to_owned())
    }
}
