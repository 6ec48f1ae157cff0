//! `POST /contacts/import`: a CSV file (`phone,name,<extra columns become fields>`),
//! parsed as it streams in and upserted in batches inside one transaction, so memory stays
//! flat and a broken upload writes nothing.

use actix_web::{http::header, post, web, HttpMessage, HttpRequest, HttpResponse};
use csv_async::{AsyncReaderBuilder, StringRecord, Trim};
use futures_util::StreamExt;
use sea_orm::TransactionTrait;
use serde_json::{Map, Value};

use super::domain::{is_field_key, ContactRequest, NewContact};
use super::repo;
use super::routes::{default_country, describe, ImportResult, InvalidRow};
use crate::error::{AppError, AppResult, FieldError};
use crate::state::AppState;
use crate::tenancy::auth::AuthUser;

/// Rows upserted per statement.
const BATCH: usize = 2_000;
/// Largest import accepted, in data rows.
pub const MAX_ROWS: u64 = 2_000_000;

/// Where each kind of column is.
struct Columns {
    phone: usize,
    name: Option<usize>,
    fields: Vec<(usize, String)>,
}

impl Columns {
    fn from_header(header: &StringRecord) -> AppResult<Self> {
        let mut phone = None;
        let mut name = None;
        let mut fields = vec![];
        for (i, raw) in header.iter().enumerate() {
            let key = raw.trim().trim_start_matches('\u{feff}');
            match key.to_lowercase().as_str() {
                "phone" | "telefone" => phone = phone.or(Some(i)),
                "name" | "nome" => name = name.or(Some(i)),
                "" => {}
                _ if is_field_key(key) => fields.push((i, key.to_owned())),
                _ => {
                    return Err(AppError::field(
                        format!("header[{i}]"),
                        format!("column {key:?} cannot be a field name: use letters, digits and '_'"),
                    ))
                }
            }
        }
        let phone = phone.ok_or_else(|| AppError::field("header", "the first line must name a phone column"))?;
        Ok(Self { phone, name, fields })
    }

    fn contact(&self, record: &StringRecord) -> ContactRequest {
        let cell = |i: usize| record.get(i).unwrap_or("").trim();
        let fields: Map<String, Value> = self
            .fields
            .iter()
            .filter(|(i, _)| !cell(*i).is_empty())
            .map(|(i, key)| (key.clone(), Value::String(cell(*i).to_owned())))
            .collect();
        ContactRequest {
            phone: cell(self.phone).to_owned(),
            name: self.name.map(|i| cell(i).to_owned()),
            fields: Some(fields),
            tag_ids: None,
        }
    }
}

fn require_csv(req: &HttpRequest) -> AppResult<()> {
    let is_csv = req
        .mime_type()
        .ok()
        .flatten()
        .is_some_and(|m| m.subtype() == "csv" || m.essence_str() == "application/vnd.ms-excel");
    if is_csv || !req.headers().contains_key(header::CONTENT_TYPE) {
        Ok(())
    } else {
        Err(AppError::UnsupportedMediaType("the body must be text/csv".into()))
    }
}

/// Imports contacts from CSV, upserting by phone. `invalid` lists the rows not written
/// (`row` is the 1-based line in the file; the header is line 1).
#[utoipa::path(operation_id = "importContacts", tag = "contacts",
    request_body(content = String, content_type = "text/csv",
        description = "`phone,name,<extra columns become fields>`"),
    responses(
        (status = 200, body = ImportResult),
        (status = 413, body = crate::error::Problem),
        (status = 415, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem),
    ),
    security(("bearer" = []))
)]
#[post("/contacts/import")]
pub async fn import(
    state: web::Data<AppState>,
    user: AuthUser,
    req: HttpRequest,
    mut payload: web::Payload,
) -> AppResult<HttpResponse> {
    require_csv(&req)?;
    let country = default_country(&state.db, user.tenant_id).await?;
    // The csv reader needs a `Send` source and actix's payload is not one: pump the
    // chunks through a small bounded channel (back-pressure keeps memory flat).
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<web::Bytes>>(4);
    let pump = async move {
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| std::io::Error::other(e.to_string()));
            let failed = chunk.is_err();
            if tx.send(chunk).await.is_err() || failed {
                break;
            }
        }
    };
    let chunks = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    let reader = tokio_util::io::StreamReader::new(Box::pin(chunks));
    let work = async move {
        let mut csv = AsyncReaderBuilder::new()
            .flexible(true)
            .trim(Trim::All)
            .create_reader(reader);
        let header = csv
            .headers()
            .await
            .map_err(|e| AppError::BadRequest(format!("could not read the CSV header: {e}")))?
            .clone();
        let columns = Columns::from_header(&header)?;
        let txn = state.db.begin().await?;
        let mut result = ImportResult::default();
        let mut batch = Vec::with_capacity(BATCH);
        let mut record = StringRecord::new();
        let mut rows = 0u64;
        let flush = |batch: &mut Vec<NewContact>, result: &mut ImportResult| {
            let repeated = repo::dedup_by_phone(batch);
            result.updated += repeated;
            std::mem::take(batch)
        };
        loop {
            match csv.read_record(&mut record).await {
                Ok(false) => break,
                Ok(true) => {
                    rows += 1;
                    if rows > MAX_ROWS {
                        return Err(AppError::PayloadTooLarge(format!(
                            "an import may have at most {MAX_ROWS} rows"
                        )));
                    }
                    let line = record.position().map_or(rows + 1, |p| p.line());
                    match NewContact::parse(columns.contact(&record), &country) {
                        Ok(c) => batch.push(c),
                        Err(errors) => result.invalid.push(InvalidRow {
                            row: line,
                            error: describe(&errors),
                        }),
                    }
                }
                Err(e) if matches!(e.kind(), csv_async::ErrorKind::Io(_)) => {
                    return Err(AppError::BadRequest(format!("could not read the body: {e}")));
                }
                Err(e) => {
                    rows += 1;
                    let line = e.position().map_or(rows + 1, |p| p.line());
                    result.invalid.push(InvalidRow {
                        row: line,
                        error: FieldError::new("row", e.to_string()).message,
                    });
                }
            }
            if batch.len() >= BATCH {
                let full = flush(&mut batch, &mut result);
                let (c, u) = repo::upsert_batch(&txn, user.tenant_id, &full, state.clock.now()).await?;
                result.created += c;
                result.updated += u;
            }
        }
        let rest = flush(&mut batch, &mut result);
        let (c, u) = repo::upsert_batch(&txn, user.tenant_id, &rest, state.clock.now()).await?;
        result.created += c;
        result.updated += u;
        txn.commit().await?;
        Ok::<_, AppError>(result)
    };
    let ((), result) = futures_util::join!(pump, work);
    Ok(HttpResponse::Ok().json(result?))
}
