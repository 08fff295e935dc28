//! cairn's blob routes: one blob of split content (as it is, in zstd as stored, or as a patch
//! against a blob the client holds), and which blobs the registry lacks.

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;
use axum::Json;
use cairn_split::BlobId;
use serde::{Deserialize, Serialize};

use crate::api::{blob_id, ApiJson};
use crate::app::AppState;
use crate::content::{self, WireEncoding};
use crate::error::ApiError;
use crate::patches::{Patch, MAX_BASES};

/// The response header naming the blob a patch was made against.
pub const PATCH_FROM_HEADER: &str = "cairn-patch-from";

/// The media type of a patch: a zstd frame that decodes with its base as the prefix.
pub const PATCH_MEDIA_TYPE: &str = "application/vnd.cairn.patch.v1+zstd";

/// `GET /v1/cairn/blobs/{blob}`: the blob, in zstd as stored (`Content-Encoding: zstd`) when
/// the request accepts it and the store keeps it so, else as it is.
pub(crate) async fn get_blob(
    State(app): State<AppState>,
    Path(blob): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let digest = blob_id(&blob)?;
    servable(&app, &digest).await?;
    send_blob(&app, digest, WireEncoding::negotiate(&headers)).await
}

/// `GET /v1/cairn/blobs/{blob}/patch?from=BASE[,BASE...]`: the blob as a zstd patch against
/// the first base offered that the registry can use (named by `Cairn-Patch-From`), or, when
/// no base serves or a patch would not be smaller, the blob as `GET /v1/cairn/blobs/{blob}`
/// sends it to a client that accepts zstd.
pub(crate) async fn get_patch(
    State(app): State<AppState>,
    Path(blob): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let digest = blob_id(&blob)?;
    servable(&app, &digest).await?;
    let offered = bases_of(query.as_deref().unwrap_or(""))?;
    // Only bases the registry would serve: a client cannot learn through a patch what it could
    // not download.
    let mut bases = Vec::with_capacity(offered.len());
    for base in offered {
        if app.store.blob_is_published(&base.to_string()).await? {
            bases.push(base);
        }
    }
    let patch = app
        .patches
        .patch(app.blobs.clone(), digest, &bases)
        .await
        .map_err(ApiError::from_io)?;
    match patch {
        Patch::Against { base, bytes } => {
            let mut response = Response::new(axum::body::Body::from(bytes));
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(PATCH_MEDIA_TYPE),
            );
            headers.insert(
                PATCH_FROM_HEADER,
                HeaderValue::from_str(&base.to_string()).expect("a digest is a header value"),
            );
            Ok(response)
        }
        Patch::None => send_blob(&app, digest, WireEncoding::Zstd).await,
    }
}

/// The bases of a patch request's query: `from=` with up to [`MAX_BASES`] digests, comma
/// separated or repeated.
fn bases_of(query: &str) -> Result<Vec<BlobId>, ApiError> {
    let mut bases = Vec::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if key != "from" {
            return Err(ApiError::bad_request(format!(
                "unknown query parameter `{key}`: a patch request takes `from=DIGEST[,DIGEST...]`"
            )));
        }
        for text in value.split(',').filter(|text| !text.is_empty()) {
            let base: BlobId = text.parse().map_err(|_| {
                ApiError::bad_request(format!("`{text}` is not a blob digest (sha256:HEX)"))
            })?;
            if !bases.contains(&base) {
                bases.push(base);
            }
        }
    }
    if bases.len() > MAX_BASES {
        return Err(ApiError::bad_request(format!(
            "a patch request offers at most {MAX_BASES} bases, not {}",
            bases.len()
        )));
    }
    Ok(bases)
}

/// Only blobs of content that is kept are served: not those of content uploaded for records
/// none of which is published (nor OCI scratch blobs, which `/v2/` serves).
async fn servable(app: &AppState, digest: &BlobId) -> Result<(), ApiError> {
    if !app.store.blob_is_published(&digest.to_string()).await? {
        return Err(ApiError::not_found("blob", digest));
    }
    Ok(())
}

/// The blob, in zstd as stored when `zstd` is accepted and the store keeps it so, in gzip
/// when that is accepted and there is a turn for it, else as it is.
async fn send_blob(
    app: &AppState,
    digest: BlobId,
    encoding: WireEncoding,
) -> Result<Response, ApiError> {
    if encoding == WireEncoding::Gzip {
        if let Some(turn) = app.gzip_turn() {
            let rx = content::stream_blob_gzip(app.blobs.clone(), digest.into(), turn);
            return Ok(blob_answer(rx, Some("gzip"), None));
        }
    }
    if encoding == WireEncoding::Zstd {
        let blobs = app.blobs.clone();
        let stored = tokio::task::spawn_blocking(move || blobs.open_zstd(&digest.into())).await??;
        if let Some((reader, length)) = stored {
            let rx = content::stream_reader(reader);
            return Ok(blob_answer(rx, Some("zstd"), Some(length)));
        }
    }
    let blobs = app.blobs.clone();
    let size = tokio::task::spawn_blocking(move || blobs.size(&digest.into()))
        .await??
        .ok_or_else(|| ApiError::not_found("blob", digest))?;
    let rx = content::stream_blob(app.blobs.clone(), digest.into(), None);
    Ok(blob_answer(rx, None, Some(size)))
}

/// An answer streaming a blob's body in `encoding` (`None`: as it is), `length` bytes long
/// when known.
fn blob_answer(
    rx: tokio::sync::mpsc::Receiver<std::io::Result<axum::body::Bytes>>,
    encoding: Option<&'static str>,
    length: Option<u64>,
) -> Response {
    let mut response = Response::new(content::body_of(rx));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Some(encoding) = encoding {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    if let Some(length) = length {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    response
}

/// `POST /v1/cairn/blobs/missing`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MissingBlobsRequest {
    digests: Vec<BlobId>,
}

#[derive(Debug, Serialize)]
pub(crate) struct MissingBlobsResponse {
    missing: Vec<BlobId>,
}

pub(crate) async fn missing_blobs(
    State(app): State<AppState>,
    ApiJson(request): ApiJson<MissingBlobsRequest>,
) -> Result<Json<MissingBlobsResponse>, ApiError> {
    if request.digests.len() > cairn_split::limits::MAX_BLOBS {
        return Err(ApiError::bad_request("too many digests"));
    }
    let mut missing = Vec::new();
    for digest in request.digests {
        if !app.blobs.has(&digest.into())? {
            missing.push(digest);
        }
    }
    Ok(Json(MissingBlobsResponse { missing }))
}
