//! Drawing a QR session's `cb_url` as a QR code: for terminals (compact
//! Unicode half blocks, or plain ASCII) and as SVG or PNG files.
//!
//! ```
//! let url = "https://idp.example.com/oidc/qr/sessions/abc/scan";
//! let text = onesoidc_flows::render::terminal(url).unwrap();
//! assert!(text.lines().count() > 10);
//! let svg = onesoidc_flows::render::svg(url).unwrap();
//! assert!(svg.starts_with("<?xml"));
//! # #[cfg(feature = "qr-png")] {
//! let png = onesoidc_flows::render::png(url).unwrap();
//! assert_eq!(&png[1..4], b"PNG");
//! # }
//! ```
//!
//! PNG needs the `qr-png` feature (on by default); the others need none.

use qrcode::QrCode;
use qrcode::render::{svg as svg_render, unicode};

/// The data could not be encoded (too long for a QR code).
#[derive(Debug, thiserror::Error)]
#[error("cannot draw {len} bytes as a QR code: {reason}")]
pub struct RenderError {
    len: usize,
    reason: String,
}

/// So `?` on a rendering works in a function returning the flows' error.
impl From<RenderError> for onesoidc_core::Error {
    fn from(error: RenderError) -> Self {
        onesoidc_core::Error::Other(Box::new(error))
    }
}

fn code(data: &str) -> Result<QrCode, RenderError> {
    QrCode::new(data.as_bytes()).map_err(|e| RenderError {
        len: data.len(),
        reason: e.to_string(),
    })
}

/// Compact Unicode half blocks, two modules per character cell, drawn for a
/// dark terminal background (light modules are the blocks).
pub fn terminal(data: &str) -> Result<String, RenderError> {
    Ok(code(data)?
        .render::<unicode::Dense1x2>()
        .dark_color(unicode::Dense1x2::Light)
        .light_color(unicode::Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

/// Plain ASCII (`#` for dark modules, two characters per module), for
/// terminals and logs without Unicode.
pub fn ascii(data: &str) -> Result<String, RenderError> {
    Ok(code(data)?
        .render::<char>()
        .dark_color('#')
        .light_color(' ')
        .module_dimensions(2, 1)
        .quiet_zone(true)
        .build())
}

/// An SVG document, at least 256 × 256.
pub fn svg(data: &str) -> Result<String, RenderError> {
    Ok(code(data)?
        .render::<svg_render::Color<'_>>()
        .min_dimensions(256, 256)
        .quiet_zone(true)
        .build())
}

/// A PNG image (greyscale, at least 256 × 256), as bytes.
#[cfg(feature = "qr-png")]
#[cfg_attr(docsrs, doc(cfg(feature = "qr-png")))]
pub fn png(data: &str) -> Result<Vec<u8>, RenderError> {
    let image = code(data)?
        .render::<image::Luma<u8>>()
        .min_dimensions(256, 256)
        .quiet_zone(true)
        .build();
    let mut bytes = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageLuma8(image)
        .write_to(&mut bytes, image::ImageFormat::Png)
        .map_err(|e| RenderError {
            len: data.len(),
            reason: e.to_string(),
        })?;
    Ok(bytes.into_inner())
}
