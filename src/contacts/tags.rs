//! Tags: labels on contacts (contacts carry `tag_ids`), used as dynamic audiences.

super::sets::set_routes! {
    kind: super::sets::TAGS, tag: "tags", what: "tag", one: "Tag", many: "Tags",
    collection: "/tags", item: "/tags/{id}", members: "/tags/{id}/contacts",
    view: TagView, create: TagRequest, update: UpdateTagRequest,
    extra: color, parse_extra: parse_color
}

/// `#rgb` or `#rrggbb`.
fn parse_color(raw: &str) -> Result<String, &'static str> {
    let s = raw.trim();
    let hex = s.strip_prefix('#').unwrap_or("");
    if (hex.len() == 3 || hex.len() == 6) && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(s.to_lowercase())
    } else {
        Err("must be a hex color like #1e90ff")
    }
}
