//! The query string of a REST call, and the parameters every listing reads.

use std::collections::HashMap;

use axum::extract::Query;

use crate::error::ApiError;

pub(crate) fn limit(query: &HashMap<String, String>) -> Result<Option<i32>, ApiError> {
    let Some(raw) = query.get("limit") else { return Ok(None) };
    // Out-of-range integers saturate: the service clamps large limits and
    // rejects negative ones, so the outcome stays the service's.
    match raw.trim().parse::<i32>() {
        Ok(n) => Ok(Some(n)),
        Err(e) if *e.kind() == std::num::IntErrorKind::PosOverflow => Ok(Some(i32::MAX)),
        Err(e) if *e.kind() == std::num::IntErrorKind::NegOverflow => Ok(Some(i32::MIN)),
        Err(_) => Err(ApiError::invalid_argument("limit", format!("limit must be an integer, got {raw:?}"))),
    }
}

pub(crate) fn text(query: &HashMap<String, String>, name: &str) -> String {
    query.get(name).cloned().unwrap_or_default()
}

/// `cursor` from the query: absent is the first page; present but empty is a
/// mistake (a client that lost its cursor), not the first page.
pub(crate) fn cursor(query: &HashMap<String, String>) -> Result<String, ApiError> {
    match query.get("cursor") {
        Some(c) if c.is_empty() => {
            Err(ApiError::invalid_argument("cursor", "cursor must not be empty; omit it for the first page"))
        }
        other => Ok(other.cloned().unwrap_or_default()),
    }
}

/// The query string as a map; a parameter given twice is ambiguous and refused.
pub(crate) fn query_of(uri: &http::Uri) -> Result<HashMap<String, String>, ApiError> {
    let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map_err(|e| ApiError::invalid_argument("query", e.body_text()))?;
    let mut query = HashMap::with_capacity(pairs.len());
    for (name, value) in pairs {
        if query.contains_key(&name) {
            return Err(ApiError::invalid_argument(&name, format!("{name} is given more than once")));
        }
        query.insert(name, value);
    }
    Ok(query)
}
