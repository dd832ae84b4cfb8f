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

/// The deepest nesting of flow collections (`[` and `{`) parsed.
///
/// libyaml's scanner does work proportional to the flow depth for every
/// token, so a document of nothing but `[` takes time quadratic in its size
/// (minutes for 200 KB) before serde_yaml's recursion limit (128) is reached.
/// No document this library reads nests at all.
pub const MAX_FLOW_DEPTH: usize = 64;

/// Parses a YAML document into `T`.
pub(crate) fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    check_flow_depth(text)?;
    Ok(backend::from_str(text)?)
}

/// Refuses text whose `[`/`{` nest deeper than [`MAX_FLOW_DEPTH`], in one
/// linear pass. Brackets inside quoted or plain scalars count too: a false
/// alarm would need dozens of unclosed brackets in one file.
fn check_flow_depth(text: &str) -> Result<(), YamlError> {
    let mut depth = 0usize;
    let (mut line, mut column) = (1, 0);
    for c in text.chars() {
        column += 1;
        match c {
            '\n' => (line, column) = (line + 1, 0),
            '[' | '{' => {
                depth += 1;
                if depth > MAX_FLOW_DEPTH {
                    return Err(YamlError {
                        message: format!(
                            "`[` and `{{` nest more than {MAX_FLOW_DEPTH} deep; refusing to parse"
                        ),
                        line: Some(line),
                        column: Some(column),
                    });
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Writes `value` as a YAML document.
pub(crate) fn to_string<T: Serialize>(value: &T) -> Result<String, YamlError> {
    Ok(backend::to_string(value)?)
}
