//! The pages' stylesheet, script and icon, compiled into the binary (no
//! Node build step; the script is plain JavaScript).

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::pages::secure;
use crate::error::ApiError;

const CSS: &str = include_str!("../../assets/console.css");
const JS: &str = include_str!("../../assets/console.js");
const ICON: &str = include_str!("../../assets/icon.svg");

/// `GET /console/assets/{name}`.
pub(crate) async fn asset(Path(name): Path<String>) -> Response {
    let (content_type, body) = match name.as_str() {
        "console.css" => ("text/css; charset=utf-8", CSS),
        "console.js" => ("text/javascript; charset=utf-8", JS),
        "icon.svg" => ("image/svg+xml", ICON),
        _ => return ApiError::not_found(format!("no asset {name:?}")).into_response(),
    };
    let mut response = secure(([(header::CONTENT_TYPE, content_type)], body).into_response());
    // Compiled in: the same for the life of the process; revalidate anyway.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
