//! Tags and the catalog: `GET /v2/<name>/tags/list` and `GET /v2/_catalog`, paginated with
//! `n` and `last` as the distribution spec says.

use std::collections::{BTreeSet, HashMap};

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use cairn_protocol::{LogId, PackageName};
use serde::Serialize;

use super::*;

/// `n` and `last` of a paged listing.
pub(super) fn page_params(
    query: &HashMap<String, String>,
) -> Result<(Option<usize>, Option<&str>), OciError> {
    let n = match query.get("n") {
        None => None,
        Some(text) => Some(text.parse::<usize>().map_err(|_| {
            OciError::new(
                StatusCode::BAD_REQUEST,
                "PAGINATION_NUMBER_INVALID",
                "invalid number of results requested",
            )
            .with_detail(serde_json::json!({ "n": text }))
        })?),
    };
    Ok((n, query.get("last").map(String::as_str)))
}

/// One page of the sorted `all` after `last`, at most `n` long, and whether more follow.
pub(super) fn page(all: Vec<String>, n: Option<usize>, last: Option<&str>) -> (Vec<String>, bool) {
    let after: Vec<String> = all
        .into_iter()
        .filter(|item| last.is_none_or(|last| item.as_str() > last))
        .collect();
    let limit = n.unwrap_or(usize::MAX).min(MAX_PAGE);
    let more = after.len() > limit;
    (after.into_iter().take(limit).collect(), more)
}

/// A JSON listing with a `Link` header to the next page when there is one.
pub(super) fn listing<T: Serialize>(body: &T, next: Option<String>) -> Response {
    let json = serde_json::to_vec(body).expect("listings serialise");
    let mut response = ([(header::CONTENT_TYPE, "application/json")], json).into_response();
    if let Some(next) = next {
        response.headers_mut().insert(
            header::LINK,
            header_value(&format!("<{next}>; rel=\"next\"")),
        );
    }
    response
}

#[derive(Serialize)]
pub(super) struct TagList {
    pub(super) name: String,
    pub(super) tags: Vec<String>,
}

pub(super) async fn tags_list(
    State(oci): State<Oci>,
    Path((ns, name)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, OciError> {
    let (n, last) = page_params(&query)?;
    let tags = match package_of(&oci, &ns, &name) {
        Ok(package) => {
            let mut tags: Vec<String> = releases(&oci, &package)
                .into_iter()
                .filter(ReleaseView::tagged)
                .map(|release| release.version)
                .collect();
            // And the tags of artifacts referring to releases (never versions).
            let repository = format!("{ns}/{name}");
            for tag in oci
                .app
                .store
                .oci_tags(&repository)
                .await
                .map_err(OciError::internal)?
            {
                if semver::Version::parse(&tag).is_err()
                    && referrer_by_tag(&oci, &repository, &tag).await?.is_some()
                {
                    tags.push(tag);
                }
            }
            tags.sort();
            tags
        }
        Err(e) if e.code == "NAME_UNKNOWN" => push::tags(&oci, &ns, &name).await?,
        Err(e) => return Err(e),
    };
    let (tags, more) = page(tags, n, last);
    let next = match (more, tags.last()) {
        (true, Some(last)) => Some(format!(
            "/v2/{ns}/{name}/tags/list?n={}&last={last}",
            tags.len()
        )),
        _ => None,
    };
    Ok(listing(
        &TagList {
            name: format!("{ns}/{name}"),
            tags,
        },
        next,
    ))
}

#[derive(Serialize)]
pub(super) struct CatalogList {
    pub(super) repositories: Vec<String>,
}

/// Brings the catalog up to the latest checkpoint: new package logs among the leaves since
/// the last scan, named by the store.
pub(super) async fn refresh_catalog(oci: &Oci) -> Result<(), OciError> {
    let (from, to, new) = {
        let state = oci.app.state.read().expect("state lock poisoned");
        let catalog = oci.catalog.lock().expect("catalog poisoned");
        let to = state.served_length();
        let from = catalog.scanned;
        let operator = LogId::operator_log();
        let mut new = BTreeSet::new();
        for index in from..to {
            if let Some((log_id, _)) = state.leaf(index) {
                if *log_id != operator && !catalog.seen.contains(log_id) {
                    new.insert(*log_id);
                }
            }
        }
        (from, to, new)
    };
    let mut named = Vec::new();
    for log_id in &new {
        if let Some(Some(name)) = oci
            .app
            .store
            .log_name(log_id)
            .await
            .map_err(OciError::internal)?
        {
            if let Ok(package) = name.parse::<PackageName>() {
                named.push(format!("{}/{}", package.namespace(), package.name()));
            }
        }
    }
    let mut catalog = oci.catalog.lock().expect("catalog poisoned");
    if catalog.scanned == from {
        catalog.scanned = to;
        catalog.seen.extend(new);
        catalog.repositories.extend(named);
    }
    Ok(())
}

pub(super) async fn catalog(
    State(oci): State<Oci>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, OciError> {
    let (n, last) = page_params(&query)?;
    refresh_catalog(&oci).await?;
    let scratch = push::repositories(&oci).await?;
    let all: Vec<String> = {
        let catalog = oci.catalog.lock().expect("catalog poisoned");
        let mut all = catalog.repositories.clone();
        all.extend(scratch);
        all.into_iter().collect()
    };
    let (repositories, more) = page(all, n, last);
    let next = match (more, repositories.last()) {
        (true, Some(last)) => Some(format!("/v2/_catalog?n={}&last={last}", repositories.len())),
        _ => None,
    };
    Ok(listing(&CatalogList { repositories }, next))
}
