//! The console: pages for people, served by the provider itself (not part
//! of OnesID).
//!
//! - `GET /`: what is pending (registrations, CIBA logins, QR sessions) with
//!   buttons to answer as the administrator or the person on the phone, and
//!   what happened (users, applications, devices, the last 50 token
//!   endpoint requests), updated live.
//! - `GET {cb_url}` (`/oidc/qr/sessions/{id}/scan`): the phone page a
//!   phone's camera opens from a QR code: pick who you are, confirm, then
//!   approve or deny the device's login.
//! - `POST /console/...`: the buttons, guarded by a per-process token
//!   (see [`guard`]).
//!
//! Pages render with askama templates (`templates/`), which escape every
//! value; nothing secret is shown (tokens, assertions, keys and
//! `login_hint_token`s appear only as kinds and lifetimes).

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::state::Provider;

mod actions;
mod assets;
mod guard;
mod live;
mod pages;
mod view;

pub(crate) use guard::Guard;
pub(crate) use pages::phone as phone_page;
pub(crate) use view::WallClock;

/// The console's routes (the phone page is routed with the QR routes).
pub(crate) fn router() -> Router<Arc<Provider>> {
    Router::new()
        .route("/", get(pages::console))
        .route("/console/events", get(live::console_events))
        .route(
            "/console/phone/{session_id}/events",
            get(live::phone_events),
        )
        .route("/console/assets/{name}", get(assets::asset))
        .route(
            "/console/ciba/{auth_req_id}/approve",
            post(actions::ciba_approve),
        )
        .route("/console/ciba/{auth_req_id}/deny", post(actions::ciba_deny))
        .route("/console/qr/{session_id}/scan", post(actions::qr_scan))
        .route("/console/qr/{session_id}/cancel", post(actions::qr_cancel))
        .route(
            "/console/registrations/{code}/approve",
            post(actions::registration_approve),
        )
        .route(
            "/console/registrations/{code}/reject",
            post(actions::registration_reject),
        )
}
