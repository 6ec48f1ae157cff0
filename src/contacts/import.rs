//! `POST /contacts/import`: a CSV file as spreadsheets write it (`telefone;nome;…`, see
//! [`super::csv_format`]), parsed as it streams in and upserted in batches inside one
//! transaction, so memory stays flat and a broken upload writes nothing.

use actix_web::{http::header, post, web, HttpMessage, HttpRequest, HttpResponse};
use csv_async::{AsyncReaderBuilder, ByteRecord, Trim};
use futures_util::StreamExt;
use sea_orm::TransactionTrait;
use serde::Serialize;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};
use utoipa::ToSchema;

use super::csv_format::{sniff_delimiter, Charset, Columns, CsvFormat};
use super::csv_lines::LineTracking;
use super::domain::describe;
use super::domain::NewContact;
use super::repo;
use super::repo::default_country;
use crate::error::{AppError, AppResult, FieldError};
use crate::state::AppState;
use crate::tenancy::auth::AuthUser;

/// A row that was not written, and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvalidRow {
    /// Bulk: the 0-based index in `contacts`. Import: the 1-based line in the file (the
    /// header is line 1).
    pub row: u64,
    pub error: String,
}

#[derive(Debug, Default, Serialize, ToSchema)]
pub struct ImportResult {
    pub created: u64,
    pub updated: u64,
    pub invalid: Vec<InvalidRow>,
    /// CSV import only: how the file was read (encoding, delimiter, column mapping).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<CsvFormat>,
}

/// Rows upserted per statement.
const BATCH: usize = 2_000;
/// Largest import accepted, in data rows.
pub const MAX_ROWS: u64 = 2_000_000;
/// Longest header line, in bytes.
const MAX_HEADER_BYTES: u64 = 64 * 1024;

/// A CSV media type (or none), and the charset it declares.
fn csv_charset(req: &HttpRequest) -> AppResult<Charset> {
    let mime = req.mime_type().ok().flatten();
    let is_csv = mime
        .as_ref()
        .is_some_and(|m| m.subtype() == "csv" || m.essence_str() == "application/vnd.ms-excel");
    if !is_csv && req.headers().contains_key(header::CONTENT_TYPE) {
        return Err(AppError::UnsupportedMediaType("the body must be text/csv".into()));
    }
    let label = mime
        .as_ref()
        .and_then(|m| m.get_param("charset"))
        .map(|v| v.as_str().to_owned());
    Charset::declared(label.as_deref()).map_err(AppError::UnsupportedMediaType)
}

/// The header line (up to 64 KiB), read to sniff the byte-order mark and the delimiter.
async fn read_head(reader: &mut (impl AsyncBufRead + Unpin)) -> AppResult<Vec<u8>> {
    let mut head = Vec::new();
    reader
        .take(MAX_HEADER_BYTES)
        .read_until(b'\n', &mut head)
        .await
        .map_err(|e| AppError::BadRequest(format!("could not read the body: {e}")))?;
    if head.len() as u64 >= MAX_HEADER_BYTES && !head.ends_with(b"\n") {
        return Err(AppError::field(
            "header",
            format!("the first line must be shorter than {MAX_HEADER_BYTES} bytes"),
        ));
    }
    Ok(head)
}

/// Imports contacts from CSV, upserting by phone, as spreadsheets write it: `,` `;` or tab,
/// UTF-8 (with or without BOM) or Windows-1252, Portuguese headers (see
/// [`super::csv_format`]). `invalid` lists the rows not written (`row` is the 1-based line in
/// the file; the header is line 1); `format` says how the file was read.
#[utoipa::path(operation_id = "importContacts", tag = "contacts",
    request_body(content = String, content_type = "text/csv",
        description = "A header line naming a phone column (`phone`, `telefone`, `celular`, `whatsapp`, `número`, `fone`), optionally a name column (`name`, `nome`) and any other columns, which become contact fields keyed by their normalised header. Delimiter `,`, `;` or tab (sniffed from the header). UTF-8 with or without BOM, or the `charset` declared (`windows-1252`, `iso-8859-1`); with none declared, rows that are not UTF-8 are read as Windows-1252."),
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
    let declared = csv_charset(&req)?;
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
    let mut reader = tokio::io::BufReader::new(tokio_util::io::StreamReader::new(Box::pin(chunks)));
    let work = async move {
        let head = read_head(&mut reader).await?;
        let (charset, bom) = declared.with_bom(&head).map_err(AppError::UnsupportedMediaType)?;
        let delimiter = sniff_delimiter(&head[bom..]);
        // The header line again, without its byte-order mark, then the rest of the stream.
        let mut head = std::io::Cursor::new(head);
        head.set_position(bom as u64);
        let mut csv = AsyncReaderBuilder::new()
            .flexible(true)
            .trim(Trim::All)
            .delimiter(delimiter)
            .create_reader(LineTracking::new(head.chain(reader)));
        let mut fell_back = false;
        let header = csv
            .byte_headers()
            .await
            .map_err(|e| AppError::BadRequest(format!("could not read the CSV header: {e}")))?
            .clone();
        let header = charset
            .decode(&header, &mut fell_back)
            .map_err(|e| AppError::field("header", e))?;
        let columns = Columns::from_header(&header).map_err(|e| AppError::Validation(vec![e]))?;
        let txn = state.db.begin().await?;
        let mut result = ImportResult::default();
        let mut batch = Vec::with_capacity(BATCH);
        let mut record = ByteRecord::new();
        let mut rows = 0u64;
        let flush = |batch: &mut Vec<NewContact>, result: &mut ImportResult| {
            let repeated = repo::dedup_by_phone(batch);
            result.updated += repeated;
            std::mem::take(batch)
        };
        loop {
            match csv.read_byte_record(&mut record).await {
                Ok(false) => break,
                Ok(true) => {
                    rows += 1;
                    if rows > MAX_ROWS {
                        return Err(AppError::PayloadTooLarge(format!(
                            "an import may have at most {MAX_ROWS} rows"
                        )));
                    }
                    let line = record
                        .position()
                        .and_then(|p| csv.get_ref().line_at(p.byte()))
                        .unwrap_or(rows + 1);
                    let parsed = charset
                        .decode(&record, &mut fell_back)
                        .map_err(|e| vec![FieldError::new("row", e)])
                        .and_then(|cells| columns.contact(&cells))
                        .and_then(|request| NewContact::parse(request, &country));
                    match parsed {
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
                    let line = e
                        .position()
                        .and_then(|p| csv.get_ref().line_at(p.byte()))
                        .unwrap_or(rows + 1);
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
        result.format = Some(CsvFormat {
            encoding: charset.report(fell_back),
            delimiter: char::from(delimiter).to_string(),
            columns: columns.report(),
        });
        Ok::<_, AppError>(result)
    };
    let ((), result) = futures_util::join!(pump, work);
    Ok(HttpResponse::Ok().json(result?))
}
