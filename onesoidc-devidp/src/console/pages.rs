//! The pages: the console at `/` and the phone page at a QR code's
//! `cb_url`, rendered with askama (every value HTML-escaped; no template
//! marks provider data as safe), and their sections, which the live stream
//! sends again when they change.

use std::hash::{Hash, Hasher};

use askama::Template;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::view::{ConsoleView, PhoneStep, PhoneView};
use crate::error::ApiError;
use crate::routes::Shared;

/// What the pages may load: only their own script, style and icon; no
/// inline script, no framing (no clickjacking of the buttons).
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One part of a page that the live stream may replace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rendered {
    /// The element id.
    pub id: &'static str,
    /// Its content.
    pub html: String,
    /// A hash of `html`, so the page replaces only what changed.
    pub hash: String,
}

impl Rendered {
    fn new(id: &'static str, html: String) -> Self {
        let mut hasher = std::hash::DefaultHasher::new();
        html.hash(&mut hasher);
        let hash = format!("{:016x}", hasher.finish());
        Rendered { id, html, hash }
    }
}

fn hash_of<'a>(sections: &'a [Rendered], id: &str) -> &'a str {
    sections
        .iter()
        .find(|s| s.id == id)
        .map_or("", |s| s.hash.as_str())
}

#[derive(Template)]
#[template(path = "console/registrations.html")]
struct Registrations<'a> {
    view: &'a ConsoleView,
}

#[derive(Template)]
#[template(path = "console/ciba.html")]
struct Ciba<'a> {
    view: &'a ConsoleView,
}

#[derive(Template)]
#[template(path = "console/qr.html")]
struct Qr<'a> {
    view: &'a ConsoleView,
}

#[derive(Template)]
#[template(path = "console/events.html")]
struct Events<'a> {
    view: &'a ConsoleView,
}

#[derive(Template)]
#[template(path = "console/devices.html")]
struct Devices<'a> {
    view: &'a ConsoleView,
}

#[derive(Template)]
#[template(path = "console/directory.html")]
struct Directory<'a> {
    view: &'a ConsoleView,
}

/// The console's sections, in page order.
pub(crate) fn console_sections(view: &ConsoleView) -> Result<Vec<Rendered>, askama::Error> {
    Ok(vec![
        Rendered::new("registrations", Registrations { view }.render()?),
        Rendered::new("ciba", Ciba { view }.render()?),
        Rendered::new("qr", Qr { view }.render()?),
        Rendered::new("events", Events { view }.render()?),
        Rendered::new("devices", Devices { view }.render()?),
        Rendered::new("directory", Directory { view }.render()?),
    ])
}

#[derive(Template)]
#[template(path = "console.html")]
struct ConsolePage<'a> {
    view: &'a ConsoleView,
    token: &'a str,
    sections: &'a [Rendered],
}

impl ConsolePage<'_> {
    fn hash(&self, id: &str) -> &str {
        hash_of(self.sections, id)
    }
}

/// The parts of the phone page that say which device and which user.
trait PhoneParts {
    fn phone_view(&self) -> &PhoneView;

    /// The device's name, or a placeholder for an unknown session.
    fn device_name(&self) -> &str {
        self.phone_view()
            .device
            .as_ref()
            .map_or("the device", |d| d.name())
    }

    /// The first letter of `user`, upper case, for the avatar.
    fn initial(&self, user: &str) -> String {
        user.chars()
            .next()
            .map(char::to_uppercase)
            .into_iter()
            .flatten()
            .collect()
    }
}

#[derive(Template)]
#[template(path = "phone/body.html")]
struct PhoneBody<'a> {
    view: &'a PhoneView,
}

impl PhoneParts for PhoneBody<'_> {
    fn phone_view(&self) -> &PhoneView {
        self.view
    }
}

/// The phone page's one live section.
pub(crate) fn phone_sections(view: &PhoneView) -> Result<Vec<Rendered>, askama::Error> {
    Ok(vec![Rendered::new("phone", PhoneBody { view }.render()?)])
}

#[derive(Template)]
#[template(path = "phone.html")]
struct PhonePage<'a> {
    view: &'a PhoneView,
    token: &'a str,
    sections: &'a [Rendered],
}

impl PhonePage<'_> {
    fn hash(&self, id: &str) -> &str {
        hash_of(self.sections, id)
    }
}

impl PhoneParts for PhonePage<'_> {
    fn phone_view(&self) -> &PhoneView {
        self.view
    }
}

/// The headers every console page and stream carries.
pub(crate) fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let pairs = [
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ];
    for (name, value) in pairs {
        headers.insert(name, value);
    }
    response
}

/// An HTML page, or a 500 when a template fails (it cannot, short of a bug).
fn html(status: StatusCode, rendered: Result<String, askama::Error>) -> Response {
    match rendered {
        Ok(body) => secure(
            (
                status,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                body,
            )
                .into_response(),
        ),
        Err(e) => {
            tracing::error!(%e, "a console template failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "the page could not be rendered",
            )
            .into_response()
        }
    }
}

/// `GET /`: the console.
pub(crate) async fn console(axum::extract::State(p): Shared, headers: HeaderMap) -> Response {
    if let Err(e) = p.console.check_host(&headers) {
        return e.into_response();
    }
    let view = p.console_view();
    let rendered = console_sections(&view).and_then(|sections| {
        ConsolePage {
            view: &view,
            token: p.console.token(),
            sections: &sections,
        }
        .render()
    });
    html(StatusCode::OK, rendered)
}

/// `GET {cb_url}`: the phone page (the phone app `POST`s the same URL).
pub(crate) async fn phone(
    axum::extract::State(p): Shared,
    Path(session_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = p.console.check_host(&headers) {
        return e.into_response();
    }
    let view = p.phone_view(&session_id);
    let status = match view.step {
        PhoneStep::Unknown => StatusCode::NOT_FOUND,
        _ => StatusCode::OK,
    };
    let rendered = phone_sections(&view).and_then(|sections| {
        PhonePage {
            view: &view,
            token: p.console.token(),
            sections: &sections,
        }
        .render()
    });
    html(status, rendered)
}
