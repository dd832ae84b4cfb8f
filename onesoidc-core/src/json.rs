//! JSON read strictly: an object that names a member twice is refused.
//!
//! serde_json keeps the last of two members with one name, other parsers
//! (a proxy's, a provider's, a browser's) the first: the same bytes would
//! mean two different tokens or claims to two parties (a parser
//! differential). Token responses, introspection answers and ID token
//! claims are read with [`from_slice`], which refuses them instead.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// How the error about a duplicate member starts (see [`duplicate_member`]).
const DUPLICATE_MEMBER: &str = "duplicate member ";

/// The longest member name quoted in an error.
const NAME_CHARS: usize = 64;

/// Parses `bytes` as JSON like `serde_json::from_slice::<Value>`, but an
/// object (at any depth) with two members of one name is an error that
/// names the member ([`duplicate_member`] reads it back): `{"a": 1, "a": 2}`
/// is refused.
pub(crate) fn from_slice(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    serde_json::from_slice::<Strict>(bytes).map(|strict| strict.0)
}

/// The member named twice, when `error` came from [`from_slice`] finding
/// one: printable, at most 64 characters, cut before anything that looks
/// like a token.
pub(crate) fn duplicate_member(error: &serde_json::Error) -> Option<String> {
    let message = error.to_string();
    let rest = message.strip_prefix(DUPLICATE_MEMBER)?;
    let name = rest.rsplit_once(" at line ").map_or(rest, |(name, _)| name);
    Some(name.to_string())
}

/// A JSON value whose objects have no duplicate members.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Strict::deserialize(deserializer).map(|strict| strict.0)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(name) = access.next_key::<String>()? {
            if map.contains_key(&name) {
                return Err(de::Error::custom(format!(
                    "{DUPLICATE_MEMBER}`{}`",
                    printable(&name)
                )));
            }
            let Strict(value) = access.next_value()?;
            map.insert(name, value);
        }
        Ok(Value::Object(map))
    }
}

/// A member name fit for an error: printable ASCII, at most 64
/// characters, cut before anything that looks like a token.
fn printable(name: &str) -> String {
    let cut = crate::response::cut_before_secrets(name);
    let mut out: String = cut
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(NAME_CHARS)
        .collect();
    if cut.len() < name.len() || cut.chars().count() > NAME_CHARS {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_refused_at_any_depth_and_named() {
        for (body, name) in [
            (r#"{"a": 1, "a": 2}"#, "`a`"),
            (r#"{"x": {"sub": "alice", "sub": "bob"}}"#, "`sub`"),
            (r#"[{"k": 1}, {"k": 2, "k": 3}]"#, "`k`"),
        ] {
            let error = from_slice(body.as_bytes()).unwrap_err();
            assert_eq!(duplicate_member(&error).as_deref(), Some(name), "{body}");
        }
    }

    #[test]
    fn everything_else_reads_as_serde_json_reads_it() {
        for body in [
            r#"{"a": 1, "b": [1, 2.5, -3, true, null, "s"], "c": {"a": {}}}"#,
            r#"[]"#,
            r#""text""#,
            r#"18446744073709551615"#,
        ] {
            let strict = from_slice(body.as_bytes()).unwrap();
            let plain: Value = serde_json::from_slice(body.as_bytes()).unwrap();
            assert_eq!(strict, plain, "{body}");
        }
        let error = from_slice(b"{\"a\": ").unwrap_err();
        assert!(duplicate_member(&error).is_none());
    }

    #[test]
    fn a_token_as_a_member_name_is_not_quoted() {
        let token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";
        let body = format!(r#"{{"{token}": 1, "{token}": 2}}"#);
        let error = from_slice(body.as_bytes()).unwrap_err();
        let named = duplicate_member(&error).unwrap();
        assert!(!named.contains("eyJ"), "{named}");
        assert!(!error.to_string().contains("eyJ"), "{error}");
    }
}
