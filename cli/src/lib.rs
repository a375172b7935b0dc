//! `greenlight rehearse`: plays an ECS native blue/green deployment through its lifecycle
//! stages and invokes each stage's Lambda hooks with the events ECS would send, honouring
//! `IN_PROGRESS` and rolling back on a failure as ECS does. `greenlight approve`: decides an
//! approval from a terminal, as the caller's IAM identity.

pub mod answer;
pub mod approve;
pub mod event;
pub mod explain;
pub mod invoke;
pub mod plan;
pub mod rehearse;
pub mod report;
pub mod service;
pub mod validate;
