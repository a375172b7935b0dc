//! The library's integration tests, in one binary: each module is one area (the answers'
//! shapes, CodeDeploy, health checks, metrics, migrations, notifications, the runner, the
//! judge, the sample events, the documented examples, end to end under `cargo lambda`).
//! One binary links the AWS SDK once. Two others stand apart: `no_ca_certificates` changes
//! the process's environment, and `logs` reads what functions log under scoped
//! subscribers.

mod support;

mod answers;
mod approvals;
mod codedeploy;
mod datadog;
mod documented_examples;
mod e2e_cargo_lambda;
mod events;
mod health;
mod judge_normal;
mod judge_properties;
mod judge_reference;
mod judge_verdicts;
mod layers;
mod metrics;
mod migration_task;
mod migrations;
mod notify;
mod prometheus;
mod properties;
mod runner;
mod runtime_api;
mod traffic;
