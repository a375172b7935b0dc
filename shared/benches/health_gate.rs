//! Time to verdict of the health gate: an app turns healthy at a known instant; how long
//! after that does the hook answer SUCCEEDED? Repeated runs per probe interval; prints the
//! median and the spread. Run with `make bench` (or `cargo bench -p greenlight --bench
//! health_gate`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use greenlight::Role;
use greenlight::Services;
use greenlight::handle;
use greenlight::services::BaseConfig;
use serde_json::json;

async fn app(healthy: Arc<AtomicBool>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = Router::new().route(
        "/health",
        get(move || {
            let h = healthy.load(Ordering::SeqCst);
            async move {
                if h {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                }
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

#[tokio::main]
async fn main() {
    let event: serde_json::Value =
        serde_json::from_str(include_str!("../../events/ecs-test-traffic-shift.json")).unwrap();
    let services = Services::new(Ok(BaseConfig::None), None);
    let runs = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(10);
    println!(
        "health gate: time from the app turning healthy to SUCCEEDED ({runs} runs per interval)"
    );
    println!("| interval | median | min | p90 | max |");
    println!("|---|---|---|---|---|");
    for interval_ms in [5000u64, 1000, 250] {
        let mut samples = Vec::new();
        for run in 0..runs {
            let healthy = Arc::new(AtomicBool::new(false));
            let addr = app(healthy.clone()).await;
            let mut ev = event.clone();
            ev["hookDetails"] = json!({"greenlight": {"checks": {"health": {
                "type": "http", "url": format!("http://{addr}/health"),
                "interval": format!("{interval_ms}ms"), "failureLimit": 1000
            }}}});
            // Turn healthy at a point spread over one interval, so the phase of the polling
            // loop is sampled rather than fixed.
            let delay = Duration::from_millis(1000 + interval_ms * run as u64 / runs as u64);
            let flip = healthy.clone();
            let turned = tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                flip.store(true, Ordering::SeqCst);
                Instant::now()
            });
            let deadline = SystemTime::now() + Duration::from_secs(120);
            let answer = handle(&services, Role::BeforeAllowTraffic, &ev, deadline)
                .await
                .unwrap();
            let done = Instant::now();
            let turned = turned.await.unwrap();
            assert_eq!(answer["hookStatus"], "SUCCEEDED", "{answer}");
            samples.push(done.duration_since(turned).as_secs_f64() * 1000.0);
        }
        samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "| {interval_ms} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms |",
            percentile(&samples, 0.5),
            samples[0],
            percentile(&samples, 0.9),
            samples[samples.len() - 1]
        );
    }
    println!(
        "(a plain IN_PROGRESS loop with ECS's default callBackDelay polls every 30 000 ms: 15 000 ms on average, up to 30 000 ms)"
    );
}
