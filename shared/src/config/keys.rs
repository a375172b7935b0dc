//! The names Greenlight reads and writes outside its own document: keys of ECS
//! `hookDetails`, and the environment variables that hold the function's configuration.

/// The `hookDetails` key holding Greenlight's settings.
pub const CONFIG_KEY: &str = "greenlight";
/// The `hookDetails` key holding state carried between `IN_PROGRESS` invocations.
pub const STATE_KEY: &str = "greenlightState";
/// The `hookDetails` key holding the (trimmed) decision record of the answer.
pub const DECISION_KEY: &str = "greenlightDecision";
pub use crate::services::{ENV_INLINE, ENV_PARAMETER};
