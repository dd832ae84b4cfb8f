//! The one place that touches YAML.
//!
//! `serde_yaml` is deprecated upstream. Every YAML read and write in the
//! workspace goes through these two functions, so a drop-in fork
//! (`serde_norway`, say) replaces it by changing the `use` line below.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_yaml as backend;

/// A YAML syntax or shape error, with the line and column when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    /// What the parser said.
    pub message: String,
    /// 1-based line of the error, when the parser knows it.
    pub line: Option<usize>,
    /// 1-based column of the error, when the parser knows it.
    pub column: Option<usize>,
}

impl std::fmt::Display for YamlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => {
                write!(f, "line {line}, column {column}: {}", self.message)
            }
            _ => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for YamlError {}

impl From<backend::Error> for YamlError {
    fn from(e: backend::Error) -> Self {
        let location = e.location();
        YamlError {
            message: e.to_string(),
            line: location.as_ref().map(|l| l.line()),
            column: location.as_ref().map(|l| l.column()),
        }
    }
}

/// Parses a YAML document into `T`.
pub(crate) fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    Ok(backend::from_str(text)?)
}

/// Writes `value` as a YAML document.
pub(crate) fn to_string<T: Serialize>(value: &T) -> Result<String, YamlError> {
    Ok(backend::to_string(value)?)
}
