#!/usr/bin/env python3
"""A platform-wide rollout: N deployment gates of healthy services start within a few seconds
against one AWS account, and every gate's answer is counted. Each FAILED answer is a false
rollback, since nothing is wrong with any service.

What runs, per simulated rollout (`--gates N`, repeatable; each N is a fresh run):

* A stand-in AWS (`standin.py`): one threaded HTTP/1.1 keep-alive server on 127.0.0.1 that
  every gate reaches through `AWS_ENDPOINT_URL`. It speaks the SDK clients' wire protocols:
  ECS awsJson1_1 (`DescribeServiceRevisions`, `DescribeServiceDeployments`), ELBv2 awsQuery
  (`DescribeTargetHealth`, `DescribeTargetGroups`) and CloudWatch Smithy RPC v2 CBOR
  (`DescribeAlarms`, `GetMetricData`). Each API has a token bucket at AWS's documented
  per-account quota (numbers and sources in `standin.py`), and ELBv2 calls also draw on
  an account-wide ELB bucket. A call finding a bucket empty gets the protocol's real
  throttling error (ECS: HTTP 400 `ThrottlingException`, "Rate exceeded"; ELBv2: HTTP 400
  `<ErrorResponse>` with `<Code>Throttling</Code>`; CloudWatch: HTTP 400, CBOR `__type`
  `com.amazonaws.cloudwatch#Throttling` and `x-amzn-query-error: Throttling;Sender`).
  `--quota-fraction 0.25` shrinks every bucket and refill rate to a quarter: quotas three
  quarters used by other tools. Every answer takes `--latency-ms` (default 20). A call the
  stand-in does not implement is reported on stderr and in the results, and the script
  exits 3.
* A healthy app: one threaded HTTP server answering 200 to every GET, for the `http` check.
* N gates, each its own process of a function binary (built with the `bench-rollout`
  profile by default: release optimisation without fat LTO; `--profile`, `--bin-dir`; a
  debug build spends so much CPU per invocation on this machine that the gates' calls
  spread out over seconds) under its own local Lambda Runtime API
  (`lambda_local.RuntimeApi`, as `coldstart.py` uses), with the environment Lambda sets
  plus `AWS_ENDPOINT_URL`, dummy
  credentials with an access key id of its own (the stand-in tells the gates apart by it),
  region us-west-2 and `GREENLIGHT_CONFIG`. The gates are started at random offsets
  uniform in `[0, --spread)` (default 3 s; `--seed`). Half of them (even indexes) are
  `before-allow-traffic` at TEST_TRAFFIC_SHIFT with a `targetHealth` check (target groups
  discovered from the service revision) and an `http` check of the app; the other half
  are `after-allow-traffic` at POST_PRODUCTION_TRAFFIC_SHIFT with a `metricThreshold`
  check (5xx count of the green target group, `${greenTargetGroup}` and `${loadBalancer}`
  looked up, `> 5`) and an `alarms` check (`alarmNamePrefix` `${service}-`);
  `--bake-for 5m` adds a bake window to both, which reads the stage's start from
  `DescribeServiceDeployments` (the stage began 10 minutes before the run, so the window
  has passed). Each gate gets an ECS event of its own (service `platform/svc-NNN`, its
  service deployment and target/source revision ARNs; the shapes of
  `events/ecs-test-traffic-shift.json` and `events/ecs-post-production-traffic-shift.json`).
  Everything is healthy: every target healthy, every metric datapoint 0 (request counts
  600), every alarm OK.
* One gate is one invocation: its event is handed out once with
  `Lambda-Runtime-Deadline-Ms` `--timeout` (60 s) ahead in epoch milliseconds; its first
  answer is the gate's answer, and the process is then killed (SIGKILL, reaped with
  `os.wait4` for its CPU time). A gate with no answer by its deadline plus 5 s, one that
  posts an error or exits, counts as "no answer", apart from the answers. All
  processes are killed when a run ends, whatever happened.

Outcomes: SUCCEEDED; IN_PROGRESS (not a rollback; ECS calls again, reported apart); FAILED,
a false rollback, with its cause read from the answer's reason (`greenlightDecision`):
"throttled" when it names throttling (`Throttling`, `ThrottlingException`, "Rate
exceeded"), "budget" when a call or check did not finish within the invocation's budget,
"other" otherwise. Time to answer is from the moment the gate's Runtime API handed out the
event to the moment its answer arrived (nearest-rank p50 and p95); the spawn and the
process's start come before it. AWS calls are counted at the stand-in, per gate and API:
HTTP attempts, attempts throttled, operations (one SDK call with its retries, told apart by the
SDK's `amz-sdk-invocation-id` header) and operations whose last attempt was throttled (the
SDK gave up: four attempts, standard retry mode, in `shared/src/services.rs`).

What this does not model: the network and AWS's own latency beyond `--latency-ms`, the
Lambda sandbox, Lambda's concurrency limits and cold starts on Lambda's hardware, other
callers' traffic except through `--quota-fraction`, and the real buckets' exact
refill granularity (refilled continuously here). All gates share this machine's cores,
which a real rollout does not: the CPU the gates used and the load average are reported.

Output: a readable table per run on stdout and every gate's record, the calls by API and
second, the quotas and the machine in JSON (`--json-out`, default
target/bench/rollout.json). `--repeat K` runs each N K times, with seeds `--seed`,
`--seed`+1, ..., so that the spread between runs shows. `--check` runs 5 gates at full
quotas and exits 1 unless every gate answered SUCCEEDED with no call throttled and none
unexpected: the stand-in's own test.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from lambda_local import ACCOUNT, REGION, RuntimeApi, elf_machine, lambda_env, machine_facts
from standin import StandIn, World

ROOT = Path(__file__).resolve().parent.parent
BEFORE, AFTER = "before-allow-traffic", "after-allow-traffic"
CLUSTER = "platform"
GRACE_S = 5.0


# ---- the healthy app ---------------------------------------------------------------------


class AppServer(ThreadingHTTPServer):
    request_queue_size = 1024
    daemon_threads = True


class AppHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format, *args):  # noqa: A002
        pass

    def do_GET(self):
        body = b'{"status":"UP"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET


# ---- one gate ----------------------------------------------------------------------------


class Gate:
    def __init__(self, i: int, rng: random.Random, run_start: float, args, app_url: str, world: World):
        self.index = i
        self.function = BEFORE if i % 2 == 0 else AFTER
        self.service = f"svc-{i:03d}"
        self.name = f"{self.service}/{self.function}"
        self.key = f"AKIDGATE{i:012d}"
        hexid = lambda n: "".join(rng.choice("0123456789abcdef") for _ in range(n))  # noqa: E731
        service_arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/{CLUSTER}/{self.service}"
        cluster_arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{CLUSTER}"
        rev = lambda: f"arn:aws:ecs:{REGION}:{ACCOUNT}:service-revision/{CLUSTER}/{self.service}/{rng.randrange(10**18, 10**19)}"  # noqa: E731
        target, source = rev(), rev()
        deployment_id = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") for _ in range(21))
        deployment_arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:service-deployment/{CLUSTER}/{self.service}/{deployment_id}"
        elb = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}"
        lb_id = hexid(16)
        lb_arn = f"{elb}:loadbalancer/app/{self.service}/{lb_id}"
        groups = {}
        for color in ("green", "blue"):
            arn = f"{elb}:targetgroup/{self.service}-{color}/{hexid(16)}"
            groups[color] = arn
            world.target_groups[arn] = {
                "name": f"{self.service}-{color}",
                "loadBalancerArn": lb_arn,
                "targets": [(f"10.{i // 250}.{i % 250}.{10 + k}", 8080, f"{REGION}{'abc'[k]}") for k in range(2)],
            }
        listener_rule = f"{elb}:listener-rule/app/{self.service}/{lb_id}/{hexid(16)}/{hexid(16)}"
        for arn, tg, tag in ((target, groups["green"], "v2"), (source, groups["blue"], "v1")):
            world.revisions[arn] = {
                "serviceRevisionArn": arn,
                "serviceArn": service_arn,
                "clusterArn": cluster_arn,
                "taskDefinition": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{self.service}:{2 if tag == 'v2' else 1}",
                "launchType": "FARGATE",
                "platformVersion": "1.4.0",
                "platformFamily": "Linux",
                "loadBalancers": [{"targetGroupArn": tg, "containerName": "web", "containerPort": 8080}],
                "networkConfiguration": {
                    "awsvpcConfiguration": {"subnets": ["subnet-0a1b2c3d4e5f60718"], "securityGroups": ["sg-0a1b2c3d4e5f60718"], "assignPublicIp": "DISABLED"}
                },
                "containerImages": [
                    {"containerName": "web", "imageDigest": f"sha256:{hexid(64)}", "image": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{self.service}:{tag}"}
                ],
                "guardDutyEnabled": False,
                "createdAt": run_start - 900,
                "resolvedConfiguration": {"loadBalancers": [{"targetGroupArn": tg, "productionListenerRule": listener_rule}]},
            }
        stage = "TEST_TRAFFIC_SHIFT" if self.function == BEFORE else "POST_PRODUCTION_TRAFFIC_SHIFT"
        stage_started = run_start - 600
        function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.function}"
        running = lambda arn: {"arn": arn, "requestedTaskCount": 2, "runningTaskCount": 2, "pendingTaskCount": 0}  # noqa: E731
        world.deployments[deployment_arn] = {
            "serviceDeploymentArn": deployment_arn,
            "serviceArn": service_arn,
            "clusterArn": cluster_arn,
            "createdAt": stage_started - 300,
            "startedAt": stage_started - 300,
            "updatedAt": stage_started,
            "sourceServiceRevisions": [running(source)],
            "targetServiceRevision": running(target),
            "status": "IN_PROGRESS",
            "lifecycleStage": stage,
            "lifecycleHookDetails": [
                {"hookId": str(uuid.UUID(int=rng.getrandbits(128))), "targetType": "AWS_LAMBDA", "targetArn": function_arn,
                 "status": "IN_PROGRESS", "expiresAt": stage_started + 60 * 60}
            ],
            "deploymentConfiguration": {
                "maximumPercent": 200,
                "minimumHealthyPercent": 100,
                "strategy": "BLUE_GREEN",
                "bakeTimeInMinutes": 5,
                "lifecycleHooks": [
                    {"targetType": "AWS_LAMBDA", "hookTargetArn": function_arn, "roleArn": f"arn:aws:iam::{ACCOUNT}:role/ecs-lifecycle-hooks",
                     "lifecycleStages": [stage], "timeoutConfiguration": {"timeoutInMinutes": 60}}
                ],
            },
        }
        world.keys[self.key] = self.name
        self.stage = stage
        self.event = {
            "executionId": str(uuid.UUID(int=rng.getrandbits(128))),
            "lifecycleStage": stage,
            "resourceArn": deployment_arn,
            "executionDetails": {
                "serviceArn": service_arn,
                "targetServiceRevisionArn": target,
                "testTrafficWeights": {target: 100, source: 0} if self.function == BEFORE else {},
                "productionTrafficWeights": {},
            },
        }
        self.config = gate_config(self.function, app_url, args.bake_for)
        self.api = RuntimeApi(self.function, [json.dumps(self.event).encode()], args.timeout * 1000)
        self.offset = 0.0
        self.proc: subprocess.Popen | None = None
        self.spawned_ns = 0
        self.done = False
        self.end = ""  # answered, error, exited, timeout
        self.answer_seen_ns = 0
        self.rusage = None
        self.log_path: Path | None = None


def gate_config(function: str, app_url: str, bake_for: str | None) -> dict:
    if function == BEFORE:
        return {
            "checks": {
                "targets": {"type": "targetHealth"},
                "health": {"type": "http", "url": app_url + "/health?service=${service}"},
            }
        }
    dims = {"TargetGroup": "${greenTargetGroup}", "LoadBalancer": "${loadBalancer}"}
    checks = {
        "errors": {
            "type": "metricThreshold",
            "label": "5xx of green",
            "query": {"metric": {"namespace": "AWS/ApplicationELB", "name": "HTTPCode_Target_5XX_Count",
                                 "dimensions": dims, "stat": "Sum", "period": "1m"}},
            "comparison": ">",
            "threshold": 5,
        },
        "alarms": {"type": "alarms", "alarmNamePrefix": "${service}-"},
    }
    if bake_for:
        for c in checks.values():
            c["bakeFor"] = bake_for
    return {"checks": checks}


# ---- a run -------------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    s = sorted(values)
    k = -(-p * len(s) // 100)  # ceil
    return s[min(max(int(k) - 1, 0), len(s) - 1)]


def cause_of(reason: str) -> str:
    if re.search(r"Throttling|ThrottlingException|Rate exceeded", reason):
        return "throttled"
    if re.search(r"within the invocation's budget|time budget|time left in this invocation", reason):
        return "budget"
    return "other"


def reap(g: Gate, block: bool) -> bool:
    """Collects the process's exit and rusage; True once it has exited."""
    if g.proc is None or g.proc.returncode is not None:
        return True
    try:
        pid, status, rusage = os.wait4(g.proc.pid, 0 if block else os.WNOHANG)
    except ChildProcessError:
        g.proc.returncode = -1
        return True
    if pid == 0:
        return False
    g.proc.returncode = os.waitstatus_to_exitcode(status)
    g.rusage = rusage
    return True


def kill(g: Gate) -> None:
    if g.proc is not None and g.proc.returncode is None:
        try:
            os.kill(g.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        reap(g, block=True)


def run_once(n: int, args, binaries: dict[str, Path], log_dir: Path, live: list) -> dict:
    rng = random.Random(args.seed * 1_000_003 + n)
    world = World()
    app = AppServer(("127.0.0.1", 0), AppHandler)
    threading.Thread(target=app.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    app_url = "http://127.0.0.1:%d" % app.server_address[1]
    run_start = time.time()
    gates = [Gate(i, rng, run_start, args, app_url, world) for i in range(n)]
    live.extend(gates)
    standin = StandIn(world, args.quota_fraction, args.latency_ms / 1000)
    for g in gates:
        g.offset = rng.uniform(0, args.spread)
        g.api.start()
    order = sorted(gates, key=lambda g: g.offset)
    home = Path(tempfile.mkdtemp(prefix="home-", dir=log_dir))
    cpu0 = os.times()
    load0 = os.getloadavg()
    standin.start()
    t0 = time.perf_counter_ns()

    def spawn_all():
        for g in order:
            wait = t0 + int(g.offset * 1e9) - time.perf_counter_ns()
            if wait > 0:
                time.sleep(wait / 1e9)
            if stop.is_set():
                return
            env = lambda_env(
                g.function, g.api.address, binaries[g.function].parent, "json",
                {
                    "AWS_ENDPOINT_URL": standin.url,
                    "AWS_ACCESS_KEY_ID": g.key,
                    "AWS_SECRET_ACCESS_KEY": "rollout-benchmark",
                    "AWS_SESSION_TOKEN": "rollout-benchmark",
                    "AWS_EC2_METADATA_DISABLED": "true",
                    "HOME": str(home),
                    "GREENLIGHT_CONFIG": json.dumps(g.config),
                },
            )
            g.log_path = log_dir / f"gate-{n}-{g.index:03d}.log"
            with open(g.log_path, "wb") as log:
                g.spawned_ns = time.perf_counter_ns()
                g.proc = subprocess.Popen(
                    [str(binaries[g.function])], env=env, cwd=binaries[g.function].parent,
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                )

    stop = threading.Event()
    spawner = threading.Thread(target=spawn_all, daemon=True)
    spawner.start()
    hard_end = t0 + int((args.spread + args.timeout + 2 * GRACE_S + 10) * 1e9)
    timeout_ns = int((args.timeout + GRACE_S) * 1e9)
    try:
        while True:
            now = time.perf_counter_ns()
            pending = 0
            for g in gates:
                if g.done:
                    continue
                if g.proc is None:
                    pending += 1
                    continue
                with g.api.lock:
                    responses = len(g.api.responses)
                    errors = list(g.api.errors)
                    handed = g.api.handed_at[0] if g.api.handed_at else 0
                if errors:
                    g.end = "error"
                elif responses:
                    g.answer_seen_ns = g.answer_seen_ns or now
                    # Killed once it waits for its next event (or 1 s after answering).
                    if g.api.parked.is_set() or now - g.answer_seen_ns > 1e9:
                        g.end = "answered"
                    else:
                        pending += 1
                        continue
                elif reap(g, block=False):
                    g.end = "exited"
                elif now - (handed or g.spawned_ns) > timeout_ns:
                    g.end = "timeout"
                else:
                    pending += 1
                    continue
                kill(g)
                g.done = True
            if pending == 0 and not spawner.is_alive():
                break
            if now > hard_end:
                for g in gates:
                    if not g.done:
                        g.end = g.end or "timeout"
                        kill(g)
                        g.done = True
                break
            time.sleep(0.02)
    finally:
        stop.set()
        spawner.join()
        for g in gates:
            kill(g)
        wall_s = (time.perf_counter_ns() - t0) / 1e9
        cpu1 = os.times()
        load1 = os.getloadavg()
        stoppers = [threading.Thread(target=g.api.stop) for g in gates]
        for s in stoppers:
            s.start()
        for s in stoppers:
            s.join()
        standin.stop()
        app.shutdown()
        app.server_close()
    return report(n, args, gates, standin, t0, wall_s, cpu0, cpu1, load0, load1)


def report(n, args, gates, standin, t0, wall_s, cpu0, cpu1, load0, load1) -> dict:
    with standin.lock:
        calls = list(standin.calls)
        unexpected = dict(standin.unexpected)
    by_gate: dict[str, list[dict]] = defaultdict(list)
    for c in calls:
        by_gate[c["gate"]].append(c)

    def call_stats(cs: list[dict]) -> dict:
        out: dict[str, dict] = {}
        ops: dict[tuple[str, str], list[dict]] = defaultdict(list)
        for c in cs:
            s = out.setdefault(c["api"], {"attempts": 0, "throttled": 0, "operations": 0, "operationsThrottledOut": 0})
            s["attempts"] += 1
            s["throttled"] += c["throttled"]
            ops[(c["api"], c["invocation"])].append(c)
        for (api, _), attempts in ops.items():
            out[api]["operations"] += 1
            last = max(attempts, key=lambda c: (c["attempt"], c["t"]))
            out[api]["operationsThrottledOut"] += last["throttled"]
        return out

    records = []
    for g in gates:
        rec = {
            "gate": g.name,
            "function": g.function,
            "stage": g.stage,
            "offsetS": round(g.offset, 3),
            "spawnedS": (g.spawned_ns - t0) / 1e9 if g.spawned_ns else None,
            "end": g.end,
            "status": None,
            "outcome": "noAnswer",
            "cause": None,
            "reason": None,
            "checks": None,
            "cpuS": (g.rusage.ru_utime + g.rusage.ru_stime) if g.rusage else None,
            "maxRssKiB": g.rusage.ru_maxrss if g.rusage else None,
            "calls": call_stats(by_gate.get(g.name, [])),
        }
        with g.api.lock:
            handed = list(g.api.handed_at)
            responses = list(g.api.responses)
            errors = list(g.api.errors)
        if handed:
            rec["invokedS"] = (handed[0] - t0) / 1e9
        if errors:
            rec["reason"] = "; ".join(errors)[:2000]
        if responses:
            _, arrived, body = responses[0]
            rec["answeredS"] = (arrived - t0) / 1e9
            rec["answerMs"] = (arrived - handed[0]) / 1e6 if handed else None
            rec["fromSpawnMs"] = (arrived - g.spawned_ns) / 1e6
            try:
                answer = json.loads(body)
                status = answer.get("hookStatus")
                decision = (answer.get("hookDetails") or {}).get("greenlightDecision") or {}
                rec["status"] = status
                rec["reason"] = decision.get("reason")
                rec["checks"] = decision.get("checks")
                rec["callBackDelay"] = answer.get("callBackDelay")
            except (ValueError, AttributeError):
                status = None
                rec["reason"] = f"not a JSON object: {body[:300]!r}"
            if status == "SUCCEEDED":
                rec["outcome"] = "succeeded"
            elif status == "IN_PROGRESS":
                rec["outcome"] = "inProgress"
            elif status == "FAILED":
                rec["outcome"] = "falseRollback"
                rec["cause"] = cause_of(rec["reason"] or "")
        elif g.end == "timeout" and not rec["reason"]:
            rec["reason"] = f"no answer within the deadline ({args.timeout} s) and {GRACE_S:.0f} s more"
        elif g.end == "exited" and not rec["reason"]:
            rec["reason"] = f"the process exited ({g.proc.returncode if g.proc else '?'}) without answering"
        if rec["outcome"] != "succeeded" and g.log_path and g.log_path.exists():
            rec["log"] = str(g.log_path)
            rec["logTail"] = g.log_path.read_bytes()[-1500:].decode(errors="replace")
        records.append(rec)

    outcomes = Counter(r["outcome"] for r in records)
    causes = Counter(r["cause"] for r in records if r["outcome"] == "falseRollback")
    answered = [r["answerMs"] for r in records if r.get("answerMs") is not None]
    by_function = {}
    for f in (BEFORE, AFTER):
        rs = [r for r in records if r["function"] == f]
        ms = [r["answerMs"] for r in rs if r.get("answerMs") is not None]
        apis: dict[str, dict] = {}
        for r in rs:
            for api, s in r["calls"].items():
                a = apis.setdefault(api, {"attempts": 0, "throttled": 0, "operations": 0, "operationsThrottledOut": 0})
                for k in a:
                    a[k] += s[k]
        for a in apis.values():
            a["attemptsPerGate"] = a["attempts"] / len(rs) if rs else 0
            a["operationsPerGate"] = a["operations"] / len(rs) if rs else 0
        by_function[f] = {
            "gates": len(rs),
            "outcomes": dict(Counter(r["outcome"] for r in rs)),
            "falseRollbackCauses": dict(Counter(r["cause"] for r in rs if r["outcome"] == "falseRollback")),
            "answerMs": {"p50": pct(ms, 50), "p95": pct(ms, 95), "max": max(ms) if ms else None},
            "calls": apis,
        }
    totals = call_stats(calls)
    series: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for c in calls:
        cell = series[c["api"]][int(c["t"])]
        cell[0] += 1
        cell[1] += c["throttled"]
    gate_cpu = sum(r["cpuS"] or 0 for r in records)
    return {
        "gates": n,
        "quotaFraction": args.quota_fraction,
        "quotas": standin.quotas(),
        "spreadS": args.spread,
        "timeoutS": args.timeout,
        "latencyMs": args.latency_ms,
        "bakeFor": args.bake_for,
        "seed": args.seed,
        "outcomes": {k: outcomes.get(k, 0) for k in ("succeeded", "inProgress", "falseRollback", "noAnswer")},
        "falseRollbackCauses": {k: causes.get(k, 0) for k in ("throttled", "budget", "other")},
        "answerMs": {"p50": pct(answered, 50), "p95": pct(answered, 95), "max": max(answered) if answered else None},
        "byFunction": by_function,
        "calls": totals,
        "callsPerSecond": {api: {str(s): {"attempts": v[0], "throttled": v[1]} for s, v in sorted(d.items())} for api, d in series.items()},
        "unexpectedCalls": unexpected,
        "wallS": wall_s,
        "cpu": {
            "gateProcessesS": gate_cpu,
            "standInAndHarnessS": (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system),
            "coresAvailable": len(os.sched_getaffinity(0)),
            "loadavgStart": load0,
            "loadavgEnd": load1,
        },
        "records": records,
    }


# ---- output ------------------------------------------------------------------------------


def fmt_ms(v) -> str:
    if v is None:
        return "–"
    return f"{v / 1000:.2f} s" if v >= 1000 else f"{v:.0f} ms"


def table(runs: list[dict]) -> str:
    lines = [
        "| gates | quotas | seed | SUCCEEDED | IN_PROGRESS | false rollbacks (FAILED) | of which throttled / budget / other | no answer | answer p50 / p95 | attempts throttled |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        o, c = r["outcomes"], r["falseRollbackCauses"]
        att = sum(a["attempts"] for a in r["calls"].values())
        thr = sum(a["throttled"] for a in r["calls"].values())
        lines.append(
            f"| {r['gates']} | {r['quotaFraction']:g}× | {r['seed']} | {o['succeeded']} | {o['inProgress']} | **{o['falseRollback']}** | "
            f"{c['throttled']} / {c['budget']} / {c['other']} | {o['noAnswer']} | "
            f"{fmt_ms(r['answerMs']['p50'])} / {fmt_ms(r['answerMs']['p95'])} | {thr} of {att} |"
        )
    return "\n".join(lines)


def generic(reason: str | None) -> str:
    """A reason with the gate's own names and numbers taken out, to count alike ones."""
    reason = re.sub(r"svc-\d+", "svc-NNN", reason or "")
    reason = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", reason)
    return re.sub(r"\b\d+ ms\b", "N ms", reason)


def calls_table(r: dict) -> str:
    lines = [
        f"AWS calls, {r['gates']} gates at {r['quotaFraction']:g}× quotas (per gate of the function that makes them):",
        "",
        "| function | API | operations / gate | attempts / gate | attempts throttled | operations throttled out |",
        "|---|---|---|---|---|---|",
    ]
    for f, d in r["byFunction"].items():
        for api, a in sorted(d["calls"].items()):
            lines.append(
                f"| `{f}` | {api} | {a['operationsPerGate']:.2f} | {a['attemptsPerGate']:.2f} | "
                f"{a['throttled']} of {a['attempts']} | {a['operationsThrottledOut']} of {a['operations']} |"
            )
    cpu = r["cpu"]
    lines += [
        "",
        f"Wall time {r['wallS']:.1f} s; CPU: gate processes {cpu['gateProcessesS']:.1f} s, stand-in and harness "
        f"{cpu['standInAndHarnessS']:.1f} s, on {cpu['coresAvailable']} cores; load average "
        f"{cpu['loadavgStart'][0]:.2f} → {cpu['loadavgEnd'][0]:.2f}.",
    ]
    reasons = Counter((x["function"], x["cause"], generic(x["reason"])) for x in r["records"] if x["outcome"] == "falseRollback")
    if reasons:
        lines += ["", "False rollbacks, by reason:", ""]
        for (f, cause, reason), k in reasons.most_common(12):
            lines.append(f"* {k} × `{f}` ({cause}): {reason}")
    others = Counter((x["function"], x["outcome"], generic(x["reason"])) for x in r["records"] if x["outcome"] in ("noAnswer", "inProgress"))
    for (f, outcome, reason), k in others.most_common(6):
        lines.append(f"* {k} × `{f}` {outcome}: {reason}")
    if r["unexpectedCalls"]:
        lines += ["", f"UNEXPECTED CALLS (not implemented by the stand-in): {r['unexpectedCalls']}"]
    return "\n".join(lines)


def target_dir() -> Path:
    if os.environ.get("CARGO_TARGET_DIR"):
        return Path(os.environ["CARGO_TARGET_DIR"])
    try:
        meta = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=ROOT,
                              capture_output=True, check=True, text=True)
        return Path(json.loads(meta.stdout)["target_directory"])
    except (OSError, subprocess.CalledProcessError, ValueError, KeyError):
        return ROOT / "target"


def git_facts() -> dict:
    def git(*a):
        try:
            return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--", "shared", "functions", "Cargo.lock"))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gates", type=int, action="append", help="gates in one rollout (repeatable; default 50, 100, 200)")
    parser.add_argument("--quota-fraction", type=float, default=1.0,
                        help="share of every AWS quota left to the gates (default 1; 0.25: three quarters used by others)")
    parser.add_argument("--spread", type=float, default=3.0, help="gates start at random offsets within this many s (default 3)")
    parser.add_argument("--timeout", type=int, default=60, help="the function's timeout in s: Lambda-Runtime-Deadline-Ms (default 60)")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="time the stand-in AWS takes to answer a call (default 20)")
    parser.add_argument("--bake-for", help="add bakeFor to the metric checks, e.g. 5m (reads DescribeServiceDeployments)")
    parser.add_argument("--seed", type=int, default=1, help="random start offsets and ids (default 1)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run each --gates this many times, with seeds --seed, --seed+1, ... (default 1)")
    parser.add_argument("--profile", default="bench-rollout",
                        help="the cargo profile whose binaries run: its directory under the target directory (default bench-rollout)")
    parser.add_argument("--bin-dir", type=Path,
                        help="holds before-allow-traffic and after-allow-traffic (default: <target directory>/<profile>)")
    parser.add_argument("--json-out", type=Path, default=ROOT / "target/bench/rollout.json", help="default target/bench/rollout.json")
    parser.add_argument("--log-dir", type=Path, help="keep every gate's output here (default: a temporary directory)")
    parser.add_argument("--check", action="store_true",
                        help="5 gates at full quotas; exit 1 unless all SUCCEEDED, nothing throttled, nothing unexpected")
    args = parser.parse_args()
    if args.check:
        args.gates = [5]
        args.quota_fraction = 1.0
    args.gates = args.gates or [50, 100, 200]

    bin_dir = (args.bin_dir or target_dir() / args.profile).resolve()
    binaries = {f: bin_dir / f for f in (BEFORE, AFTER)}
    for f, b in binaries.items():
        if not os.access(b, os.X_OK):
            print(f"no executable {b}; build first: cargo build --profile {args.profile} -p {BEFORE} -p {AFTER}", file=sys.stderr)
            return 2

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    live: list[Gate] = []
    result = {
        "machine": machine_facts(),
        "binaries": {f: {"path": str(b), "arch": elf_machine(b), "bytes": b.stat().st_size,
                         "mtime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(b.stat().st_mtime))}
                     for f, b in binaries.items()},
        "profile": args.profile,
        "git": git_facts(),
        "runs": [],
    }
    tmp = None
    try:
        if args.log_dir:
            args.log_dir.mkdir(parents=True, exist_ok=True)
            log_root = args.log_dir
        else:
            tmp = tempfile.TemporaryDirectory(prefix="greenlight-rollout-")
            log_root = Path(tmp.name)
        base_seed = args.seed
        for n, k in [(n, k) for n in args.gates for k in range(args.repeat)]:
            args.seed = base_seed + k
            print(f"== {n} gates, quotas ×{args.quota_fraction:g}, started within {args.spread:g} s, seed {args.seed}",
                  file=sys.stderr, flush=True)
            r = run_once(n, args, binaries, log_root, live)
            result["runs"].append(r)
            print(table([r]) + "\n\n" + calls_table(r) + "\n", flush=True)
            live.clear()
            time.sleep(1)
    finally:
        for g in live:
            kill(g)
        if tmp is not None:
            tmp.cleanup()
    result["machine"]["loadavg_end"] = os.getloadavg()
    if len(result["runs"]) > 1:
        print("All runs:\n\n" + table(result["runs"]))
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"JSON: {args.json_out}", file=sys.stderr)
    unexpected = any(r["unexpectedCalls"] for r in result["runs"])
    if args.check:
        r = result["runs"][0]
        bad = [x for x in r["records"] if x["outcome"] != "succeeded"]
        throttled = sum(a["throttled"] for a in r["calls"].values())
        if bad or throttled or unexpected:
            print(f"CHECK FAILED: {len(bad)} gate(s) not SUCCEEDED, {throttled} call(s) throttled, unexpected calls: "
                  f"{r['unexpectedCalls']}", file=sys.stderr)
            for x in bad:
                print(f"  {x['gate']}: {x['outcome']}: {x['reason']}\n{x.get('logTail', '')}", file=sys.stderr)
            return 1
        print("check passed: every gate SUCCEEDED, nothing throttled, no unexpected call", file=sys.stderr)
    return 3 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
