//! The payload as it arrives, before it is an event: any JSON document reaches the
//! handler and is answered, however deeply it is nested.
//!
//! serde_json builds a `Value` at most 128 levels deep (its guard against overflowing the
//! stack), and the Lambda runtime reads the payload before the handler runs: an event
//! carrying another tool's deeply nested value in `hookDetails` used to get no answer at
//! all. So the payload is taken as raw JSON text (serde_json checks it without recursion)
//! and read here into an event, with the parts nested too deeply set aside unread. No
//! `Value` is ever built deeper than [`MAX_DEPTH`] (plus the two levels read around
//! it), so nothing recurses without bound: not parsing, cloning, dropping nor writing
//! the answer.

use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::EventError;

/// How deep a value may be nested to be read: serde_json's own limit.
pub const MAX_DEPTH: usize = 128;

/// A payload as it arrived. Reading it as this type never fails, so the handler always
/// runs.
#[derive(Debug)]
pub enum Payload {
    /// A JSON document, unread.
    Json(Box<RawValue>),
    /// Not JSON at all (Lambda's Invoke API refuses such payloads; a local Runtime API
    /// may not): why.
    NotJson(String),
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Box::<RawValue>::deserialize(d) {
            Ok(raw) => Payload::Json(raw),
            Err(e) => Payload::NotJson(e.to_string()),
        })
    }
}

impl Payload {
    /// A payload from JSON text (tests, tools).
    pub fn from_json(text: &str) -> Payload {
        match serde_json::from_str::<Box<RawValue>>(text) {
            Ok(raw) => Payload::Json(raw),
            Err(e) => Payload::NotJson(e.to_string()),
        }
    }
}

/// A part of the event that was not read.
#[derive(Debug)]
pub struct SetAside {
    /// The object it was in: `hookDetails`, `executionDetails`, or `None` for the event.
    pub under: Option<&'static str>,
    pub key: String,
    /// Why it was not read, e.g. `nested more than 128 levels deep`.
    pub why: String,
    /// For an entry of `hookDetails`: the value as it came, to be given back with the
    /// answer (ECS passes `hookDetails` on to the next invocation).
    pub verbatim: Option<Box<RawValue>>,
}

impl SetAside {
    /// Where it was: `hookDetails.<key>`, `executionDetails.<key>` or a top-level key.
    pub fn path(&self) -> String {
        match self.under {
            Some(u) => format!("{u}.{}", self.key),
            None => self.key.clone(),
        }
    }

    /// The key, for an entry of `hookDetails`.
    pub fn hook_details_key(&self) -> Option<&str> {
        (self.under == Some("hookDetails")).then_some(self.key.as_str())
    }

    pub fn describe(&self) -> String {
        format!("{} is {}", self.path(), self.why)
    }
}

/// An event read from a payload: every part that could be read, and what could not.
#[derive(Debug)]
pub struct Event {
    pub value: Value,
    pub set_aside: Vec<SetAside>,
}

/// Why serde_json could not build a `Value`, in words (without its position, which
/// counts in a part of the payload rather than in the payload).
fn why(e: &serde_json::Error) -> String {
    let text = e.to_string();
    if text.starts_with("recursion limit exceeded") {
        return format!("nested more than {MAX_DEPTH} levels deep");
    }
    let text = match text.rfind(" at line ") {
        Some(i) => &text[..i],
        None => &text,
    };
    format!("not readable ({text})")
}

/// Reads an object's entries one by one: those that cannot be read are set aside, with
/// their text. `None` when `text` is not an object.
fn read_object(
    text: &str,
    under: Option<&'static str>,
) -> Option<(Map<String, Value>, Vec<SetAside>)> {
    let entries = serde_json::from_str::<indexmap::IndexMap<String, Box<RawValue>>>(text).ok()?;
    let mut map = Map::new();
    let mut set_aside = Vec::new();
    for (k, raw) in entries {
        match serde_json::from_str::<Value>(raw.get()) {
            Ok(v) => {
                map.insert(k, v);
            }
            Err(e) => set_aside.push(SetAside {
                under,
                key: k,
                why: why(&e),
                verbatim: Some(raw),
            }),
        }
    }
    Some((map, set_aside))
}

/// Reads the event. Parts that cannot be read as a `Value` (nested too deeply, a number
/// out of range) are set aside: a top-level key, an entry of `executionDetails`, an
/// entry of `hookDetails` (kept verbatim, also when `hookDetails` is a string holding
/// JSON). The event is refused only when it is not JSON, or not an object and unreadable.
pub fn read(payload: &Payload) -> Result<Event, EventError> {
    let raw = match payload {
        Payload::NotJson(e) => {
            return Err(EventError(format!("the payload is not JSON ({e})")));
        }
        Payload::Json(raw) => raw,
    };
    let (mut top, mut set_aside) = match serde_json::from_str::<Value>(raw.get()) {
        Ok(Value::Object(top)) => (top, Vec::new()),
        Ok(value) => {
            return Ok(Event {
                value,
                set_aside: Vec::new(),
            });
        }
        Err(e) => read_object(raw.get(), None)
            .ok_or_else(|| EventError(format!("the event is {}", why(&e))))?,
    };
    // The two objects whose entries matter one by one.
    for key in ["hookDetails", "executionDetails"] {
        let Some(i) = set_aside
            .iter()
            .position(|s| s.under.is_none() && s.key == key)
        else {
            continue;
        };
        if let Some(text) = set_aside[i].verbatim.take()
            && let Some((map, inner)) = read_object(text.get(), Some(key))
        {
            set_aside.remove(i);
            top.insert(key.to_string(), Value::Object(map));
            set_aside.extend(inner);
        }
    }
    // `hookDetails` as a string holding JSON: its entries, too.
    if let Some(Value::String(s)) = top.get("hookDetails")
        && serde_json::from_str::<Value>(s).is_err()
        && let Some((map, inner)) = read_object(s, Some("hookDetails"))
    {
        top.insert("hookDetails".into(), Value::Object(map));
        set_aside.extend(inner);
    }
    // Only entries of `hookDetails` are given back.
    for s in &mut set_aside {
        if s.hook_details_key().is_none() {
            s.verbatim = None;
        }
    }
    Ok(Event {
        value: Value::Object(top),
        set_aside,
    })
}

/// What the function returns: the answer, with the entries of `hookDetails` that were
/// set aside given back as they came, after the others.
#[derive(Debug)]
pub struct Answer {
    pub value: Value,
    pub verbatim: Vec<(String, Box<RawValue>)>,
}

impl Answer {
    /// `value`, with `set_aside`'s `hookDetails` entries when `value` has `hookDetails`
    /// (an ECS answer).
    pub fn new(value: Value, set_aside: Vec<SetAside>) -> Answer {
        let verbatim = if value.get("hookDetails").is_some_and(Value::is_object) {
            set_aside
                .into_iter()
                .filter_map(|s| Some((s.hook_details_key()?.to_string(), s.verbatim?)))
                .collect()
        } else {
            Vec::new()
        };
        Answer { value, verbatim }
    }
}

impl From<Value> for Answer {
    fn from(value: Value) -> Answer {
        Answer {
            value,
            verbatim: Vec::new(),
        }
    }
}

/// `hookDetails` and the entries given back verbatim.
struct Merged<'a> {
    details: &'a Map<String, Value>,
    verbatim: &'a [(String, Box<RawValue>)],
}

impl Serialize for Merged<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let extra: Vec<_> = self
            .verbatim
            .iter()
            .filter(|(k, _)| !self.details.contains_key(k))
            .collect();
        let mut map = s.serialize_map(Some(self.details.len() + extra.len()))?;
        for (k, v) in self.details {
            map.serialize_entry(k, v)?;
        }
        for (k, v) in extra {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl Serialize for Answer {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let top = match &self.value {
            Value::Object(top) if !self.verbatim.is_empty() => top,
            other => return other.serialize(s),
        };
        let mut map = s.serialize_map(Some(top.len()))?;
        for (k, v) in top {
            match v {
                Value::Object(details) if k == "hookDetails" => map.serialize_entry(
                    k,
                    &Merged {
                        details,
                        verbatim: &self.verbatim,
                    },
                )?,
                _ => map.serialize_entry(k, v)?,
            }
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn a_shallow_event_is_read_whole() {
        let ev = read(&Payload::from_json(r#"{"a": {"b": [1, 2]}}"#)).unwrap();
        assert_eq!(ev.value, serde_json::json!({"a": {"b": [1, 2]}}));
        assert!(ev.set_aside.is_empty());
    }

    #[test]
    fn deep_entries_are_set_aside_and_given_back_verbatim() {
        let deep = nested(100_000);
        let text = format!(
            r#"{{"executionDetails": {{"serviceArn": "s", "x": {deep}}}, "hookDetails": {{"other": {deep}, "greenlight": {{"checks": {{}}}}}}, "junk": {deep}}}"#
        );
        let ev = read(&Payload::from_json(&text)).unwrap();
        assert_eq!(
            ev.value["executionDetails"],
            serde_json::json!({"serviceArn": "s"})
        );
        assert_eq!(
            ev.value["hookDetails"],
            serde_json::json!({"greenlight": {"checks": {}}})
        );
        assert!(ev.value.get("junk").is_none());
        let paths: Vec<String> = ev.set_aside.iter().map(SetAside::path).collect();
        assert_eq!(paths, ["junk", "hookDetails.other", "executionDetails.x"]);
        assert_eq!(
            ev.set_aside[1].describe(),
            "hookDetails.other is nested more than 128 levels deep"
        );
        let answer = Answer::new(
            serde_json::json!({"hookStatus": "SUCCEEDED", "hookDetails": ev.value["hookDetails"].clone()}),
            ev.set_aside,
        );
        let out = serde_json::to_string(&answer).unwrap();
        assert_eq!(
            out,
            format!(
                r#"{{"hookStatus":"SUCCEEDED","hookDetails":{{"greenlight":{{"checks":{{}}}},"other":{deep}}}}}"#
            )
        );
    }

    #[test]
    fn a_string_hook_details_is_read_entry_by_entry() {
        let inner = format!(r#"{{"other": {}, "greenlight": {{}}}}"#, nested(1000));
        let text = serde_json::json!({"executionId": "e", "hookDetails": inner}).to_string();
        let ev = read(&Payload::from_json(&text)).unwrap();
        assert_eq!(
            ev.value["hookDetails"],
            serde_json::json!({"greenlight": {}})
        );
        assert_eq!(ev.set_aside[0].path(), "hookDetails.other");
        assert!(ev.set_aside[0].verbatim.is_some());
    }

    #[test]
    fn what_cannot_be_read_at_all_is_an_event_error() {
        let e = read(&Payload::from_json(&nested(5000))).unwrap_err();
        assert_eq!(e.0, "the event is nested more than 128 levels deep");
        let e = read(&Payload::from_json("{\"a\": ")).unwrap_err();
        assert!(e.0.starts_with("the payload is not JSON"), "{e}");
    }
}
