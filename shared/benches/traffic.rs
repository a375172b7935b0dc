//! The `traffic` check as a load generator, side by side with `wrk` and `hey` (Debian
//! packages) in one run, against one local server (in this process, on loopback), at the
//! same concurrency:
//!
//! 1. throughput: a server that answers at once, so the client is the bottleneck: requests
//!    per second of each, and the time per request that implies (1 / rate × concurrency);
//! 2. fidelity: a server that takes 2 ms (a timer) per request, at a paced 500 requests
//!    per second: each tool's p50 and p99 beside the server's own view of the same
//!    requests (handler entered to answer ready), and the gap between them.
//!
//! `cargo bench -p greenlight --bench traffic --profile bench-rollout` (`make bench` runs
//! it: release optimisation without fat LTO's long link); `TRAFFIC_SECONDS`
//! (default 5) sets each run's length and `TRAFFIC_CONCURRENCY` (default 16) the
//! concurrency. Machine-bound figures: the server and the client share the cores.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use greenlight::Role;
use greenlight::Services;
use greenlight::handle;
use greenlight::services::BaseConfig;
use serde_json::{Value, json};

#[derive(Clone, Default)]
struct Server {
    service: Duration,
    /// Handler times (ms) since the last reset: the server's own view.
    times: Arc<Mutex<Vec<f64>>>,
}

async fn answer(State(s): State<Server>) -> &'static str {
    let t = Instant::now();
    if !s.service.is_zero() {
        tokio::time::sleep(s.service).await;
    }
    s.times
        .lock()
        .unwrap()
        .push(t.elapsed().as_secs_f64() * 1000.0);
    "ok"
}

async fn start(service: Duration) -> (String, Server) {
    let server = Server {
        service,
        ..Default::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/", get(answer))
        .with_state(server.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/"), server)
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// One tool's run: requests per second, p50 and p99 (ms).
struct Figures {
    rate: f64,
    p50: f64,
    p99: f64,
}

/// `12.34ms`, `567.00us`, `1.2s` (wrk's units) in ms.
fn wrk_ms(s: &str) -> f64 {
    let s = s.trim();
    for (unit, f) in [("us", 0.001), ("ms", 1.0), ("s", 1000.0)] {
        if let Some(n) = s.strip_suffix(unit).and_then(|n| n.parse::<f64>().ok()) {
            return n * f;
        }
    }
    f64::NAN
}

fn wrk(url: &str, c: u32, secs: u64, rate: Option<u32>) -> Option<Figures> {
    // wrk has no pacing; the paced run is left to hey and the check.
    if rate.is_some() {
        return None;
    }
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{c}"),
            &format!("-d{secs}s"),
            "--latency",
            url,
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |prefix: &str| {
        text.lines().find_map(|l| {
            l.trim()
                .strip_prefix(prefix)
                .map(str::trim)
                .map(str::to_string)
        })
    };
    Some(Figures {
        rate: field("Requests/sec:")?.parse().ok()?,
        p50: wrk_ms(&field("50%")?),
        p99: wrk_ms(&field("99%")?),
    })
}

fn hey(url: &str, c: u32, secs: u64, rate: Option<u32>) -> Option<Figures> {
    let mut args = vec![
        "-z".to_string(),
        format!("{secs}s"),
        "-c".into(),
        c.to_string(),
    ];
    if let Some(r) = rate {
        // hey's -q is per worker.
        args.extend([
            "-q".into(),
            format!("{}", (f64::from(r) / f64::from(c)).max(1.0)),
        ]);
    }
    let out = Command::new("hey").args(&args).arg(url).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let pct = |p: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{p}% in ")))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse::<f64>().ok())
            .map(|s| s * 1000.0)
    };
    Some(Figures {
        rate: text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
            .and_then(|r| r.trim().parse().ok())?,
        p50: pct("50")?,
        p99: pct("99")?,
    })
}

async fn check(url: &str, c: u32, secs: u64, rate: Option<u32>) -> Option<Figures> {
    let mut ev: Value =
        serde_json::from_str(include_str!("../../events/ecs-test-traffic-shift.json")).unwrap();
    let mut load = json!({"type": "traffic", "scenarios": {"root": {"url": url}},
        "duration": format!("{secs}s"), "concurrency": c, "maxErrorRate": 100, "within": "1h"});
    if let Some(r) = rate {
        load["rate"] = json!(r);
    }
    ev["hookDetails"] = json!({"greenlight": {"checks": {"load": load}}});
    let services = Services::new(Ok(BaseConfig::None), None);
    let deadline = std::time::SystemTime::now() + Duration::from_secs(secs * 4 + 30);
    let answer = handle(&services, Role::BeforeAllowTraffic, &ev, deadline)
        .await
        .ok()?;
    let reason = answer["hookDetails"]["greenlightDecision"]["reason"]
        .as_str()?
        .to_string();
    // "load: N requests in X s: … p50 A ms, p90 B ms, p99 C ms …"
    let after = |key: &str| {
        reason
            .split(key)
            .nth(1)?
            .split_whitespace()
            .next()?
            .trim_end_matches(',')
            .parse::<f64>()
            .ok()
    };
    let requests = reason
        .split("load: ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse::<f64>()
        .ok()?;
    let seconds = after(" requests in ")?;
    Some(Figures {
        rate: requests / seconds,
        p50: after(" p50 ")?,
        p99: after(" p99 ")?,
    })
}

fn row(tool: &str, f: &Option<Figures>, server: Option<(f64, f64)>, c: u32) {
    match f {
        None => println!("  {tool:<9} (not run)"),
        Some(f) => {
            let per = 1000.0 * f64::from(c) / f.rate;
            match server {
                Some((s50, s99)) => println!(
                    "  {tool:<9} {:>9.0} req/s  {:>7.3} ms/request  p50 {:>7.3} ms  p99 {:>7.3} ms   server p50 {:>7.3} p99 {:>7.3}   gap p50 {:+.3} p99 {:+.3} ms",
                    f.rate,
                    per,
                    f.p50,
                    f.p99,
                    s50,
                    s99,
                    f.p50 - s50,
                    f.p99 - s99
                ),
                None => println!(
                    "  {tool:<9} {:>9.0} req/s  {:>7.3} ms/request  p50 {:>7.3} ms  p99 {:>7.3} ms",
                    f.rate, per, f.p50, f.p99
                ),
            }
        }
    }
}

fn server_view(s: &Server) -> Option<(f64, f64)> {
    let mut v = std::mem::take(&mut *s.times.lock().unwrap());
    (!v.is_empty()).then(|| (quantile(&mut v, 0.5), quantile(&mut v, 0.99)))
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("traffic: bench");
        return;
    }
    let secs: u64 = std::env::var("TRAFFIC_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let c: u32 = std::env::var("TRAFFIC_CONCURRENCY")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        for (title, service, rate) in [
            (
                "throughput: a server that answers at once",
                Duration::ZERO,
                None,
            ),
            (
                "fidelity: 2 ms per request, 500 requests per second",
                Duration::from_millis(2),
                Some(500),
            ),
        ] {
            let (url, server) = start(service).await;
            println!("{title}; concurrency {c}, {secs} s each");
            for tool in ["wrk", "hey", "traffic"] {
                server_view(&server);
                let f = match tool {
                    "wrk" => {
                        let url = url.clone();
                        tokio::task::spawn_blocking(move || wrk(&url, c, secs, rate))
                            .await
                            .unwrap()
                    }
                    "hey" => {
                        let url = url.clone();
                        tokio::task::spawn_blocking(move || hey(&url, c, secs, rate))
                            .await
                            .unwrap()
                    }
                    _ => check(&url, c, secs, rate).await,
                };
                let view = if service.is_zero() {
                    None
                } else {
                    server_view(&server)
                };
                row(tool, &f, view, c);
            }
        }
    });
}
