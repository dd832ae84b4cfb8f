//! An application that accepts the access tokens devices get for it:
//! `GET /me` answers the person's `sub` and scopes; `GET /records` needs
//! the scope `read`. See `main.rs` for how it is configured.
#![forbid(unsafe_code)]

use axum::routing::get;
use axum::{Json, Router};
use onesoidc_resource::{Authenticated, ResourceServer, require_scope};

/// The application's routes, behind `server`'s checks.
pub fn router(server: &ResourceServer) -> Router {
    Router::new()
        .route("/me", get(me))
        .route(
            "/records",
            get(|| async { "the records" }).route_layer(require_scope("read")),
        )
        .layer(server.layer())
}

/// Who is asking, and what they may do.
async fn me(who: Authenticated) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "sub": who.sub,
        "client_id": who.client_id.to_string(),
        "scopes": who.scopes().collect::<Vec<_>>(),
    }))
}
