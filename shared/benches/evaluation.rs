//! In-process cost of one whole evaluation: the after-allow-traffic hook with a `canary`
//! check (60 datapoints a side, Mann-Whitney + Hodges-Lehmann) and a `metricThreshold`
//! check, CloudWatch answered by recorded replies (no network): event parsing, config
//! validation, query building, the SDK's request and response handling, the judge, the
//! decision record and the answer.

use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::operation::get_metric_data::GetMetricDataOutput;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::MetricDataResult;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use criterion::{Criterion, criterion_group, criterion_main};
use greenlight::Role;
use greenlight::Services;
use greenlight::handle;
use greenlight::services::BaseConfig;
use serde_json::json;

fn series(id: &str, base: f64) -> MetricDataResult {
    let now = SystemTime::now();
    let mut r = MetricDataResult::builder().id(id);
    for i in 0..60u64 {
        r = r
            .timestamps(DateTime::from(now - Duration::from_secs(60 * (60 - i))))
            .values(base + ((i * 7919) % 23) as f64);
    }
    r.build()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rule = mock!(aws_sdk_cloudwatch::Client::get_metric_data)
        .sequence()
        .output(|| {
            GetMetricDataOutput::builder()
                .metric_data_results(series("q0", 50.0))
                .metric_data_results(series("q1", 51.0))
                .build()
        })
        .repeatedly()
        .build();
    let services = Services::new(Ok(BaseConfig::None), None);
    services.set_cloudwatch(mock_client!(
        aws_sdk_cloudwatch,
        RuleMode::MatchAny,
        &[&rule]
    ));
    let metric = |tg: &str| json!({"metric": {"namespace": "AWS/ApplicationELB", "name": "TargetResponseTime", "dimensions": {"TargetGroup": tg}, "stat": "p99"}});
    let mut event: serde_json::Value = serde_json::from_str(include_str!(
        "../../events/ecs-post-production-traffic-shift.json"
    ))
    .unwrap();
    event["hookDetails"] = json!({"greenlight": {"checks": {
        "latency": {"type": "canary", "label": "p99 latency", "unit": "ms", "window": "1h",
                    "canary": metric("targetgroup/green/1"), "baseline": metric("targetgroup/blue/2")},
        "ceiling": {"type": "metricThreshold", "query": metric("targetgroup/green/1"), "comparison": ">", "threshold": 500, "minDatapoints": 1}
    }}});
    c.bench_function(
        "evaluation: canary 60 vs 60 + threshold, recorded CloudWatch replies",
        |b| {
            b.iter(|| {
                let answer = rt
                    .block_on(handle(
                        &services,
                        Role::AfterAllowTraffic,
                        &event,
                        SystemTime::now() + Duration::from_secs(60),
                    ))
                    .unwrap();
                assert_eq!(answer["hookStatus"], "SUCCEEDED", "{answer}");
            })
        },
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
