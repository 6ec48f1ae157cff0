//! Request extractors that turn every kind of bad input into a problem+json 4xx:
//! JSON bodies (syntax 400, types/fields 422 with the JSON path, size 413, media type 415),
//! query strings (422 naming the parameter), text hygiene for both ([`crate::text`]), pagination bounds and bearer tokens.

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpMessage, HttpRequest};
use futures_util::{future::LocalBoxFuture, StreamExt};
use serde::{de::DeserializeOwned, Deserialize};

use crate::error::{AppError, FieldError};
use crate::state::AppState;
use crate::text;

/// A JSON body no larger than `server.json_limit_bytes`.
pub struct ApiJson<T>(pub T);

/// A JSON body no larger than `server.bulk_json_limit_bytes` (bulk routes).
pub struct BulkJson<T>(pub T);

macro_rules! json_extractor {
    ($ty:ident, $limit:ident) => {
        impl<T: DeserializeOwned + 'static> FromRequest for $ty<T> {
            type Error = AppError;
            type Future = LocalBoxFuture<'static, Result<Self, AppError>>;

            fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
                let limit = state(req).map(|s| s.settings.server.$limit);
                let checked = limit.and_then(|limit| check_json_request(req, limit).map(|_| limit));
                let payload = payload.take();
                Box::pin(async move {
                    let limit = checked?;
                    let bytes = read_body(payload, limit).await?;
                    parse_json(&bytes).map($ty)
                })
            }
        }
    };
}
json_extractor!(ApiJson, json_limit_bytes);
json_extractor!(BulkJson, bulk_json_limit_bytes);

pub(crate) fn state(req: &HttpRequest) -> Result<web::Data<AppState>, AppError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("application state is missing")))
}

/// Content type (absent or JSON) and declared length, before reading anything.
fn check_json_request(req: &HttpRequest, limit: usize) -> Result<(), AppError> {
    if req.headers().contains_key(header::CONTENT_TYPE) {
        let ok = req
            .mime_type()
            .ok()
            .flatten()
            .is_some_and(|m| m.subtype() == "json" || m.suffix().is_some_and(|s| s == "json"));
        if !ok {
            return Err(AppError::UnsupportedMediaType(
                "the body must be application/json".into(),
            ));
        }
    }
    check_declared_length(req, limit)
}

pub(crate) fn check_declared_length(req: &HttpRequest, limit: usize) -> Result<(), AppError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    match declared {
        Some(n) if n > limit => Err(too_large(limit)),
        _ => Ok(()),
    }
}

fn too_large(limit: usize) -> AppError {
    AppError::PayloadTooLarge(format!("the body is larger than {limit} bytes"))
}

async fn read_body(mut payload: Payload, limit: usize) -> Result<web::BytesMut, AppError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| AppError::BadRequest(format!("could not read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Parses JSON: any syntax error anywhere is a 400; a body that is not an object (every
/// body of the API is one; serde would otherwise read a struct from an array) is a 422; then
/// every string that breaks the text rule ([`crate::text`]: NUL and other controls,
/// noncharacters, over 4,096 characters) is a 422 naming its path, before any typed
/// deserialisation; then shape and type errors name the offending field by its path (422).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| AppError::BadRequest(format!("malformed JSON: {e}")))?;
    if !value.is_object() {
        return Err(AppError::field("body", "must be a JSON object"));
    }
    let bad_text = text::check_json(&value);
    if !bad_text.is_empty() {
        return Err(AppError::Validation(bad_text));
    }
    from_value(value).map_err(|e| AppError::Validation(vec![e]))
}

/// Deserialises a JSON value already checked by [`parse_json`] (a whole body, or one item
/// of a bulk body checked item by item): a shape or type error names the field by its path.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(value).map_err(|err| data_error(&err.path().to_string(), err.inner()))
}

/// A serde data error as a field error: the path, completed with the field that a
/// "missing field" or "unknown field" message names, and the message without its position.
fn data_error(path: &str, err: &dyn std::fmt::Display) -> FieldError {
    let text = err.to_string();
    let message = text.split(" at line ").next().unwrap_or(&text).to_owned();
    let named = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|p| message.strip_prefix(p))
        .and_then(|rest| rest.split('`').next());
    let base = if path == "." { "" } else { path };
    let field = match named {
        Some(name) if !base.ends_with(name) => FieldError::new(name, &message).under(base).field,
        _ if base.is_empty() => "body".to_owned(),
        _ => base.to_owned(),
    };
    FieldError::new(field, message)
}

/// Query parameters; wrong types answer 422 naming the parameter. Unknown parameters are
/// ignored, so filters and pagination can be read from one query string.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned> FromRequest for ApiQuery<T> {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(parse_query(req.query_string()).map(ApiQuery))
    }
}

/// Parses a query string: a parameter breaking the text rule ([`crate::text`], values up to
/// 1,000 characters) is a 422 naming it; then wrong types are a 422 naming the parameter.
pub fn parse_query<T: DeserializeOwned>(qs: &str) -> Result<T, AppError> {
    let pairs: Vec<_> = form_urlencoded::parse(qs.as_bytes()).collect();
    let bad_text = text::check_query(pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref())));
    if !bad_text.is_empty() {
        return Err(AppError::Validation(bad_text));
    }
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(qs.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        AppError::Validation(vec![data_error(&path, err.inner())])
    })
}

pub use crate::pagination::{Page, Pagination, DEFAULT_PER_PAGE, MAX_PER_PAGE};

impl FromRequest for Pagination {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let parsed = parse_query::<Pagination>(req.query_string()).and_then(|p| {
            let mut errors = vec![];
            if p.page == 0 || p.page > 1_000_000 {
                errors.push(FieldError::new("page", "must be between 1 and 1000000"));
            }
            if p.per_page == 0 || p.per_page > MAX_PER_PAGE {
                errors.push(FieldError::new("per_page", "must be between 1 and 500"));
            }
            if errors.is_empty() {
                Ok(p)
            } else {
                Err(AppError::Validation(errors))
            }
        });
        std::future::ready(parsed)
    }
}

/// For PATCH bodies: absent → `None`, `null` → `Some(None)`, a value → `Some(Some(v))`.
/// Use with `#[serde(default, deserialize_with = "nullable")]`.
pub fn nullable<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

/// The scheme and host this request reached (`https://api.example.com`), as the connection
/// info has them (honouring `Forwarded` / `X-Forwarded-*` from a proxy): the base of the URLs
/// Arauto gives out about itself when `server.public_url` is not set.
pub fn base_url(req: &HttpRequest) -> String {
    let info = req.connection_info();
    format!("{}://{}", info.scheme(), info.host())
}
