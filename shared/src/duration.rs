//! Durations as people write them in configuration: `"30s"`, `"5m"`, `"1h 30m"`.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest duration any setting may have: 24 hours, the longest an ECS lifecycle hook
/// can be waited for (`timeoutInMinutes` is at most 1440, the default).
pub const MAX: Duration = Duration::from_secs(24 * 60 * 60);

/// A duration written as a human string (`"500ms"`, `"30s"`, `"5m"`, `"1h 30m"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub const fn secs(s: u64) -> Self {
        HumanDuration(Duration::from_secs(s))
    }

    pub fn get(self) -> Duration {
        self.0
    }
}

impl From<Duration> for HumanDuration {
    fn from(d: Duration) -> Self {
        HumanDuration(d)
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// Parses a human duration of at most [`MAX`], with a message a person can act on.
pub fn parse(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim()).map_err(|e| {
        format!("invalid duration {s:?} ({e}); write a number with a unit, such as \"500ms\", \"30s\", \"5m\" or \"1h 30m\"")
    })?;
    if d > MAX {
        return Err(format!("duration {s:?} is longer than the maximum, 24h"));
    }
    Ok(d)
}

/// Whole milliseconds, saturating (a `Duration` holds more than `u64` milliseconds).
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"30s\" or \"5m\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<HumanDuration, E> {
                parse(v).map(HumanDuration).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A duration: a number with a unit (ms, s, m, h), e.g. \"500ms\", \"30s\", \"5m\", \"1h 30m\". At most 24h.",
            "pattern": "^\\s*[0-9]+\\s*[a-zµ]+(\\s*[0-9]+\\s*[a-zµ]+)*\\s*$",
            "examples": ["30s", "5m"]
        })
    }
}

/// Now, in milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(millis)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        assert_eq!(parse("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse("1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
    }

    #[test]
    fn rejects_with_example() {
        let e = parse("5 parsecs").unwrap_err();
        assert!(e.contains("\"5 parsecs\"") && e.contains("\"30s\""), "{e}");
        let e = parse("30").unwrap_err();
        assert!(e.contains("unit"), "{e}");
    }

    #[test]
    fn longer_than_a_day_is_refused() {
        assert_eq!(parse("24h").unwrap(), MAX);
        assert_eq!(parse("1day").unwrap(), MAX);
        for s in ["24h 1ms", "25h", "2days", "99999999999h", "500000000000y"] {
            let e = parse(s).unwrap_err();
            assert!(
                e.contains(&format!("{s:?}")) && e.contains("maximum, 24h"),
                "{s}: {e}"
            );
        }
    }

    #[test]
    fn millis_saturate() {
        assert_eq!(millis(Duration::from_millis(1500)), 1500);
        assert_eq!(millis(Duration::MAX), u64::MAX);
    }
}
