//! Schema helpers for the OpenAPI document that domain modules use in their
//! `#[schema(...)]` attributes; kept apart from [`super::openapi`], which imports every
//! route module, so that using one never ties a domain module to the whole API.

use utoipa::openapi::schema::Type;

/// A string schema with exactly `values`, for fields kept as text that take a closed set
/// (`#[schema(schema_with = …)]`).
pub fn string_enum(values: &[&str]) -> utoipa::openapi::schema::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.iter().copied()))
        .build()
}
