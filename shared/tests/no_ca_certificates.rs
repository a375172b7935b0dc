//! Without CA certificates on the system, TLS cannot be set up. The hook still answers: a
//! check that needs HTTP fails with a message that says what to fix, and a hook without one
//! is not affected. (One test in this binary: it changes the process's environment.)

#[path = "suite/support/mod.rs"]
mod support;

use std::time::Duration;

use greenlight::handle;
use greenlight::role::Role;
use serde_json::json;
use support::*;

#[tokio::test]
async fn without_ca_certificates_the_hook_still_answers() {
    let empty = scratch_dir("no-ca");
    std::fs::write(empty.join("none.pem"), "").unwrap();
    // SAFETY: the only test in this binary, before any thread reads the environment.
    unsafe {
        std::env::set_var("SSL_CERT_FILE", empty.join("none.pem"));
        std::env::set_var("SSL_CERT_DIR", &empty);
    }
    let services = services_with(None);
    let mut ev = event("ecs-test-traffic-shift.json");
    ev["hookDetails"] = json!({"greenlight": {"checks": {"health": {"type": "http", "url": "https://127.0.0.1:9/health", "interval": "1s"}}}});
    let a = handle(
        &services,
        Role::BeforeAllowTraffic,
        &ev,
        deadline_in(Duration::from_secs(20)),
    )
    .await
    .unwrap();
    assert_eq!(status(&a), "FAILED", "{a:#}");
    let reason = a["hookDetails"]["greenlightDecision"]["reason"]
        .as_str()
        .unwrap();
    assert!(
        reason.contains("the HTTP client could not be set up"),
        "{reason}"
    );
    assert!(reason.contains("CA certificates"), "{reason}");

    let plain = handle(
        &services,
        Role::BeforeAllowTraffic,
        &event("ecs-test-traffic-shift.json"),
        deadline_in(Duration::from_secs(20)),
    )
    .await
    .unwrap();
    assert_eq!(status(&plain), "SUCCEEDED", "{plain:#}");
}
