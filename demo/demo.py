#!/usr/bin/env python3
"""Greenlight's demo: two ECS blue/green deployments rehearsed on this machine.

It starts, on free loopback ports:
  * the moto AWS emulator, seeded with an ECS cluster, service and task definitions, an ALB
    target group with its targets, CloudWatch metrics and an alarm, and an SSM SecureString
    holding the database URL;
  * a throwaway PostgreSQL server (Debian's binaries; run as `postgres` when this is root);
  * the demo app, twice: release 1.5 (healthy) and release 1.6 (its health endpoint
    answers 503);
  * a webhook receiver that prints the notifications it gets;
  * CloudWatch's CBOR protocol in front of moto (standins/cloudwatch_cbor.py);
  * with Debian's `prometheus` installed: an app exposing all three releases' request and
    latency metrics (standins/metrics_app.py) and a Prometheus server scraping it;
  * `cargo lambda watch`, serving the four Greenlight functions and the approval endpoint
    (its function URL), pointed at moto, where the approvals' store (an S3 bucket) and
    signing key (a Secrets Manager secret) live.

Then `greenlight rehearse` plays two CANARY deployments of `checkout`:
  1. release 1.5: migrations applied, health, target health, metrics and the alarm all
     pass; before production traffic an `approval` check waits for a person: the webhook
     receives the request with its signed link, which the demo opens and approves (or,
     with `--approve-by-hand`, prints for you to click); then (with Prometheus, its median
     latency judged no worse than 1.4's) traffic moves 10 % then 100 %: the deployment
     completes;
  2. release 1.6: its one new migration is applied (expand-only), then the test-traffic
     gate finds the health endpoint answering 503 (the `http` probe and the synthetic
     `traffic` run both), and ECS rolls back.

Everything started is stopped at the end, also on Ctrl-C. `--short` compresses the waits
further (for CI); `--check` asserts the outcomes and exits non-zero when one differs.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-west-2"
ACCOUNT = "123456789012"
CLUSTER = "demo"
SERVICE = "checkout"

BOLD, DIM, GREEN, RED, CYAN, RESET = ("\033[1m", "\033[2m", "\033[32m", "\033[31m", "\033[36m", "\033[0m")
if not sys.stdout.isatty():
    BOLD = DIM = GREEN = RED = CYAN = RESET = ""


def say(text=""):
    print(text, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, what, timeout=120, log=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    detail = Path(log).read_text(errors="replace")[-2000:] if log and Path(log).exists() else ""
    raise RuntimeError(f"{what} did not start listening on port {port}\n{detail}")


class Processes:
    """The processes the demo started, stopped (with their process groups) at the end."""

    def __init__(self):
        self.children = []
        self.servers = []

    def start(self, args, log, env=None, user=None):
        if user:
            args = ["runuser", "-u", user, "--"] + args
        out = open(log, "w")
        child = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=ROOT, start_new_session=True,
        )
        self.children.append(child)
        return child

    def serve(self, handler, port):
        server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.servers.append(server)

    def stop(self):
        for server in self.servers:
            server.shutdown()
        for child in reversed(self.children):
            if child.poll() is None:
                try:
                    os.killpg(child.pid, signal.SIGINT)
                except ProcessLookupError:
                    pass
        deadline = time.time() + 10
        for child in self.children:
            try:
                child.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(child.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                child.wait()


# ------------------------------------------------------------------------------ demo app

def app_handler(version, healthy):
    class App(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.startswith("/health"):
                if healthy:
                    self.reply(200, {"status": "UP", "version": version})
                else:
                    self.reply(503, {"status": "DOWN", "version": version, "error": "connection pool exhausted"})
            else:
                self.reply(200, {"service": SERVICE, "version": version})

        def reply(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    return App


# ----------------------------------------------------------------------- webhook receiver

NOTIFICATIONS = []
APPROVE_BY_HAND = False
APPROVALS = []


def click(link):
    """Does what a person does with a signed link: opens it (a confirmation page), then
    presses Approve (a POST of the same parameters, with a comment)."""
    try:
        with urllib.request.urlopen(link, timeout=30) as page:
            shown = page.read().decode()
        if "Approve this deployment?" not in shown:
            APPROVALS.append(f"the link's page did not ask to approve: {shown[:200]}")
            return
        query = link.split("?", 1)[1] + "&comment=approved+in+the+demo"
        request = urllib.request.Request(link.split("?", 1)[0], data=query.encode(), method="POST",
                                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            text = answer.read().decode()
        APPROVALS.append("approved" if "approved by" in text else f"not approved: {text[:200]}")
        say(f"          {GREEN}👍 approved through the signed link{RESET}")
    except Exception as e:  # noqa: BLE001 - reported as a demo failure
        APPROVALS.append(f"the approval link failed: {e}")


class Webhook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            note = json.loads(body)
        except ValueError:
            note = {"event": "?", "title": body[:200].decode(errors="replace")}
        NOTIFICATIONS.append(note)
        colour = {"failed": RED, "rolledBack": RED, "succeeded": GREEN}.get(note.get("event"), CYAN)
        say(f"          {colour}📣 webhook: {note.get('event')}: {note.get('title')}{RESET}")
        link = (note.get("approval") or {}).get("approveUrl")
        if note.get("event") == "approvalRequested" and link:
            say(f"             {DIM}approve: {link}{RESET}")
            if APPROVE_BY_HAND:
                say(f"             {BOLD}open the link above and press Approve; the gate is waiting{RESET}")
            else:
                threading.Thread(target=click, args=(link,), daemon=True).start()
        if note.get("event") in ("failed",):
            say(f"             {DIM}{note.get('reason', '')[:300]}{RESET}")
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


# ------------------------------------------------------------------------------ PostgreSQL

def pg_bin():
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    versions = sorted(
        (int(p.name), p / "bin") for p in Path("/usr/lib/postgresql").glob("*") if p.name.isdigit() and (p / "bin" / "initdb").exists()
    ) if Path("/usr/lib/postgresql").exists() else []
    if not versions:
        raise RuntimeError("PostgreSQL server binaries not found: `make tools` installs Debian's postgresql (or set PG_BIN)")
    return versions[-1][1]


def start_postgres(procs, work, password):
    bin_dir = pg_bin()
    port = free_port()
    pg_dir = Path(work) / "postgres"
    pg_dir.mkdir()
    (pg_dir / "pw").write_text(password)
    user = "postgres" if os.geteuid() == 0 else None
    if user:
        subprocess.run(["chown", "-R", "postgres:postgres", str(pg_dir)], check=True)
        os.chmod(work, 0o755)
    initdb = [str(bin_dir / "initdb"), "-D", str(pg_dir / "data"), "-U", "postgres", "-E", "UTF8", "--no-sync",
              "--auth=scram-sha-256", f"--pwfile={pg_dir / 'pw'}"]
    if user:
        initdb = ["runuser", "-u", user, "--"] + initdb
    subprocess.run(initdb, check=True, stdout=subprocess.DEVNULL)
    procs.start([str(bin_dir / "postgres"), "-D", str(pg_dir / "data"), "-p", str(port), "-k", str(pg_dir),
                 "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"], Path(work) / "postgres.log", user=user)
    for _ in range(300):
        if subprocess.run([str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-q"]).returncode == 0:
            break
        time.sleep(0.1)
    else:
        raise RuntimeError("PostgreSQL did not start: " + (Path(work) / "postgres.log").read_text()[-2000:])
    env = dict(os.environ, PGPASSWORD=password)
    subprocess.run([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "checkout"], check=True, env=env)
    return bin_dir, port


def psql(bin_dir, port, password, sql):
    out = subprocess.run([str(bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "checkout", "-tAc", sql],
                         check=True, capture_output=True, text=True, env=dict(os.environ, PGPASSWORD=password))
    return out.stdout.strip()


# -------------------------------------------------------------------------------- moto seed

def seed(endpoint, db_url, app_ports):
    import boto3

    kw = dict(endpoint_url=endpoint, region_name=REGION, aws_access_key_id="demo", aws_secret_access_key="demo")
    ec2 = boto3.client("ec2", **kw)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    elb = boto3.client("elbv2", **kw)
    groups = {}
    for colour in ("blue", "green"):
        tg = elb.create_target_group(Name=f"{SERVICE}-{colour}", Protocol="HTTP", Port=8080, VpcId=vpc,
                                     TargetType="ip", HealthCheckPath="/health")["TargetGroups"][0]["TargetGroupArn"]
        elb.register_targets(TargetGroupArn=tg, Targets=[{"Id": "10.0.1.17", "Port": 8080}, {"Id": "10.0.1.18", "Port": 8080}])
        groups[colour] = tg
    ecs = boto3.client("ecs", **kw)
    ecs.create_cluster(clusterName=CLUSTER)
    defs = {}
    for version in ("1.4", "1.5", "1.6"):
        defs[version] = ecs.register_task_definition(
            family=SERVICE, networkMode="bridge",
            containerDefinitions=[{"name": "app", "image": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{SERVICE}:{version}.0",
                                   "essential": True, "memoryReservation": 256,
                                   "portMappings": [{"containerPort": 8080}]}],
        )["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(cluster=CLUSTER, serviceName=SERVICE, taskDefinition=defs["1.4"], desiredCount=2, launchType="EC2",
                       loadBalancers=[{"targetGroupArn": groups["blue"], "containerName": "app", "containerPort": 8080}])
    cw = boto3.client("cloudwatch", **kw)
    import datetime
    now = datetime.datetime.now(datetime.timezone.utc).replace(second=0, microsecond=0)
    values = [0.2, 0.1, 0.3, 0.0, 0.2, 0.1, 0.4, 0.2, 0.1, 0.2]
    cw.put_metric_data(Namespace="Demo/Checkout", MetricData=[
        {"MetricName": "ErrorRate", "Dimensions": [{"Name": "Service", "Value": SERVICE}],
         "Timestamp": now - datetime.timedelta(minutes=len(values) - i), "Value": v, "Unit": "Percent"}
        for i, v in enumerate(values)
    ])
    cw.put_metric_alarm(AlarmName=f"{SERVICE}-error-rate", Namespace="Demo/Checkout", MetricName="ErrorRate",
                        Dimensions=[{"Name": "Service", "Value": SERVICE}], Statistic="Average", Period=60,
                        EvaluationPeriods=3, Threshold=5, ComparisonOperator="GreaterThanThreshold")
    ssm = boto3.client("ssm", **kw)
    ssm.put_parameter(Name=f"/demo/{SERVICE}/database-url", Type="SecureString", Value=db_url)
    # The approvals' store and signing key, as the construct's `approvals` option makes them.
    boto3.client("s3", **kw).create_bucket(Bucket="demo-approvals",
                                           CreateBucketConfiguration={"LocationConstraint": REGION})
    key = boto3.client("secretsmanager", **kw).create_secret(
        Name="greenlight/approval-signing-key", SecretString=os.urandom(32).hex())["ARN"]
    return {"targetGroups": groups, "taskDefinitions": defs, "approvalKey": key}


# --------------------------------------------------------------------------- service files

def hook(function, stages, checks):
    return {
        "hookTargetArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function}",
        "roleArn": f"arn:aws:iam::{ACCOUNT}:role/ecs-lifecycle-hooks",
        "lifecycleStages": stages,
        "hookDetails": {"greenlight": {"checks": checks}},
    }


def prometheus_latency(prometheus, version):
    """The demo canary's judge on Prometheus: the new version's median latency against the
    current one's (1.4.0), every second over the last minute, by the `revision` label."""
    def p50(revision):
        return {"prometheus": {"url": prometheus, "step": "1s", "query":
                f'histogram_quantile(0.5, sum by (le) (rate(http_request_duration_seconds_bucket{{revision="{revision}"}}[5s])))'}}
    return {"type": "canary", "label": "median latency", "unit": "s", "window": "1m",
            "canary": p50(f"{version}.0"), "baseline": p50("1.4.0"),
            "series": {"direction": "increase"}, "interval": "1s"}


def service_file(version, app_port, migrations, green_tg, prometheus=None, approval=False):
    migrate = {
        "type": "postgresMigrations",
        "source": str(migrations),
        "connection": {"url": {"ssmParameter": f"/demo/{SERVICE}/database-url"}},
        "tls": "disable",
        "lockPollInterval": "500ms",
    }
    health = {
        "type": "http",
        "url": f"http://127.0.0.1:{app_port}/health",
        "headers": {"x-amzn-ecs-bluegreen-test": "green"},
        "expectStatus": ["200"],
        "expectBody": {"jsonPointer": "/status", "equals": "UP"},
        "interval": "1s",
        "consecutiveSuccesses": 2,
        "failureLimit": 2,
    }
    targets = {"type": "targetHealth", "targetGroups": [green_tg], "interval": "1s"}
    # Evidence the gate makes itself: 60 requests through the test route, judged on errors
    # and latency.
    load = {
        "type": "traffic",
        "scenarios": {"health": {"url": f"http://127.0.0.1:{app_port}/health",
                                 "headers": {"x-amzn-ecs-bluegreen-test": "green"},
                                 "expectBody": {"jsonPointer": "/status", "equals": "UP"}}},
        "requests": 60,
        "concurrency": 4,
        "maxErrorRate": 1,
        "latency": {"p99": "500ms"},
    }
    errors = {
        "type": "metricThreshold",
        "label": "error rate of checkout",
        "query": {"metric": {"namespace": "Demo/Checkout", "name": "ErrorRate", "dimensions": {"Service": "${service}"}, "stat": "Average"}},
        "comparison": ">",
        "threshold": 1,
        "datapoints": 5,
        "toBreach": 2,
        "interval": "1s",
    }
    alarm = {"type": "alarms", "alarmNames": [f"{SERVICE}-error-rate"], "interval": "1s"}
    production = {"errors": errors, "alarm": alarm}
    # A person says go before production traffic: anyone holding the link sent to the demo's
    # webhook channel.
    go_ahead = {"go-ahead": {"type": "approval", "approvers": ["link:demo"], "timeout": "10m", "interval": "2s",
                             "message": "Release 1.5.0 passed the test-traffic gate; approve to shift production traffic."}}
    if prometheus:
        production["latency"] = prometheus_latency(prometheus, version)
    return {
        "cluster": CLUSTER,
        "serviceName": SERVICE,
        "taskDefinition": f"{SERVICE}:{version}",
        "deploymentController": {"type": "ECS"},
        "deploymentConfiguration": {
            "strategy": "CANARY",
            "bakeTimeInMinutes": 1,
            "canaryConfiguration": {"canaryPercent": 10, "canaryBakeTimeInMinutes": 2},
            "lifecycleHooks": [
                hook("before-install", ["PRE_SCALE_UP"], {}),
                hook("after-install", ["POST_SCALE_UP"], {"migrate": migrate}),
                hook("before-allow-traffic", ["TEST_TRAFFIC_SHIFT"], {"health": health, "targets": targets, "load": load}),
            ] + ([hook("before-allow-traffic", ["PRE_PRODUCTION_TRAFFIC_SHIFT"], go_ahead)] if approval else []) + [
                hook("after-allow-traffic", ["PRODUCTION_TRAFFIC_SHIFT", "POST_PRODUCTION_TRAFFIC_SHIFT"],
                     production),
            ],
        },
    }


# ---------------------------------------------------------------------------------- main

def rehearse(cli, service, endpoint, scale, log):
    args = [str(cli), "rehearse", str(service), "--endpoint", endpoint, "--region", REGION, "--account", ACCOUNT,
            "--time-scale", str(scale), "--invoke-timeout", "2m"]
    out = []
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT) as p:
        for line in p.stdout:
            out.append(line)
            print("   " + line, end="", flush=True)
        code = p.wait()
    Path(log).write_text("".join(out))
    return code, "".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--short", action="store_true", help="compress waits further (CI)")
    parser.add_argument("--check", action="store_true", help="assert the expected outcomes")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, service files)")
    parser.add_argument("--approve-by-hand", action="store_true",
                        help="print the approval link of release 1.5.0 for you to click, instead of clicking it")
    opts = parser.parse_args()
    global APPROVE_BY_HAND
    APPROVE_BY_HAND = opts.approve_by_hand
    scale = 0.02 if opts.short else 0.1

    for tool in ("moto_server", "cargo"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found: run `make demo` (it installs the tools into .tools/)")
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    cli = target / "debug" / "greenlight"
    if not cli.exists():
        raise SystemExit(f"{cli} not found: run `make demo` (it builds the functions and the rehearse tool)")

    work = tempfile.mkdtemp(prefix="greenlight-demo-")
    procs = Processes()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    failures = []
    started = time.time()
    try:
        say(f"{BOLD}Greenlight demo{RESET}: two ECS canary deployments of `{SERVICE}`, rehearsed on this machine")
        say(f"{DIM}work directory: {work}{RESET}")

        moto_port = free_port()
        procs.start(["moto_server", "-H", "127.0.0.1", "-p", str(moto_port)], Path(work) / "moto.log")
        password = "demo-" + os.urandom(6).hex()
        bin_dir, pg_port = start_postgres(procs, work, password)
        healthy, broken, hook_port = free_port(), free_port(), free_port()
        procs.serve(app_handler("1.5.0", True), healthy)
        procs.serve(app_handler("1.6.0", False), broken)
        procs.serve(Webhook, hook_port)
        wait_for_port(moto_port, "moto", log=Path(work) / "moto.log")
        endpoint = f"http://127.0.0.1:{moto_port}"
        # CloudWatch's SDK speaks Smithy RPC v2 CBOR, which moto does not: a CBOR front
        # answers it from moto's data (AWS_ENDPOINT_URL_CLOUDWATCH points the functions at it).
        cloudwatch_port = free_port()
        procs.start([sys.executable, str(ROOT / "standins" / "cloudwatch_cbor.py"), "--upstream", endpoint,
                     "--port", str(cloudwatch_port)], Path(work) / "cloudwatch.log")
        wait_for_port(cloudwatch_port, "the CloudWatch front", log=Path(work) / "cloudwatch.log")
        seeded = seed(endpoint, f"postgres://postgres:{password}@127.0.0.1:{pg_port}/checkout",
                      {"healthy": healthy, "broken": broken})
        say(f"  moto            {endpoint}  (ECS cluster `{CLUSTER}`, service, 3 task definitions, 2 target groups, metrics, an alarm, an SSM SecureString)")
        say(f"  PostgreSQL      127.0.0.1:{pg_port}  (database `checkout`)")
        say(f"  demo app 1.5.0  http://127.0.0.1:{healthy}/health  (healthy)")
        say(f"  demo app 1.6.0  http://127.0.0.1:{broken}/health  (answers 503)")
        say(f"  webhook         http://127.0.0.1:{hook_port}/")

        # With Debian's prometheus installed, the production gate also judges the new
        # version's latency against the current one's on Prometheus, which scrapes an app
        # serving all three versions' metrics every second.
        prometheus = None
        if shutil.which("prometheus") or os.path.exists("/usr/bin/prometheus"):
            metrics_port, prom_port = free_port(), free_port()
            procs.start([sys.executable, str(ROOT / "standins" / "metrics_app.py"), "--port", str(metrics_port),
                         "--revision", "1.4.0=0,40", "--revision", "1.5.0=0,42", "--revision", "1.6.0=0.25,300"],
                        Path(work) / "metrics-app.log")
            procs.start([sys.executable, str(ROOT / "standins" / "prometheus_server.py"), "--port", str(prom_port),
                         "--target", f"127.0.0.1:{metrics_port}", "--data-dir", str(Path(work) / "prometheus")],
                        Path(work) / "prometheus.log")
            wait_for_port(prom_port, "prometheus", log=Path(work) / "prometheus.log")
            prometheus = f"http://127.0.0.1:{prom_port}"
            say(f"  prometheus      {prometheus}  (scraping the app's metrics of 1.4.0, 1.5.0 and 1.6.0 every second)")

        watch_port = free_port()
        config = {"notifications": {"channels": {"demo": {
            "type": "webhook", "url": f"http://127.0.0.1:{hook_port}/greenlight",
            "events": ["started", "failed", "rolledBack", "succeeded", "approvalRequested"]}}}}
        env_vars = [f"AWS_ENDPOINT_URL={endpoint}", f"AWS_ENDPOINT_URL_CLOUDWATCH=http://127.0.0.1:{cloudwatch_port}",
                    f"AWS_REGION={REGION}", "AWS_ACCESS_KEY_ID=demo",
                    "AWS_SECRET_ACCESS_KEY=demo", f"GREENLIGHT_CONFIG={json.dumps(config)}",
                    "GREENLIGHT_APPROVAL_BUCKET=demo-approvals", f"GREENLIGHT_APPROVAL_KEY={seeded['approvalKey']}",
                    f"GREENLIGHT_APPROVAL_URL=http://127.0.0.1:{watch_port}/lambda-url/approvals/"]
        watch = ["cargo", "lambda", "watch", "--invoke-address", "127.0.0.1", "-P", str(watch_port),
                 "--timeout", "300", "--ignore-changes"]
        env_file = Path(work) / "functions.env"
        env_file.write_text("".join(f"{k}='{v}'\n" for k, v in (e.split("=", 1) for e in env_vars)))
        watch += ["--env-file", str(env_file)]
        procs.start(watch, Path(work) / "functions.log")
        wait_for_port(watch_port, "cargo lambda watch", timeout=600, log=Path(work) / "functions.log")
        say(f"  functions       http://127.0.0.1:{watch_port}  (cargo lambda watch: the four Greenlight functions and the approval endpoint)")

        # Release 1.5: the sample migrations. Release 1.6: the same and one more (expand-only).
        release_15 = ROOT / "examples" / "migrations"
        release_16 = Path(work) / "migrations-1.6"
        shutil.copytree(release_15, release_16)
        (release_16 / "20250410090000_add_order_notes.sql").write_text(
            "-- Expand-only: a nullable column; release 1.5 keeps working if 1.6 is rolled back.\n"
            "ALTER TABLE orders ADD COLUMN notes text;\n")
        good = Path(work) / "checkout-1.5.json"
        bad = Path(work) / "checkout-1.6.json"
        good.write_text(json.dumps(service_file("1.5", healthy, release_15, seeded["targetGroups"]["green"], prometheus,
                                                approval=True), indent=2))
        bad.write_text(json.dumps(service_file("1.6", broken, release_16, seeded["targetGroups"]["green"], prometheus), indent=2))
        functions = f"http://127.0.0.1:{watch_port}"

        say()
        say(f"{BOLD}1. Release 1.5.0{RESET} {DIM}({good}){RESET}")
        code, text = rehearse(cli, good, functions, scale, Path(work) / "rehearse-1.5.log")
        time.sleep(0.5)
        notes_15 = [n.get("event") for n in NOTIFICATIONS]
        ledger_15 = psql(bin_dir, pg_port, password, "SELECT count(*) FROM _sqlx_migrations")
        say(f"   {GREEN if code == 0 else RED}exit {code}{RESET}; migrations in the ledger: {ledger_15}")
        if code != 0:
            failures.append(f"release 1.5.0 should complete (exit 0), got exit {code}")
        for want in ("applied 3 migration(s)", "health:", "targets:", "load: 60 requests in", "errors:", "alarm:") + (("latency:",) if prometheus else ()):
            if want not in text:
                failures.append(f"release 1.5.0: the timeline lacks {want!r}")
        if APPROVALS != ["approved"] and not opts.approve_by_hand:
            failures.append(f"release 1.5.0: the approval link was not approved once: {APPROVALS}")
        if "approved by the signed link sent to channel demo" not in text:
            failures.append("release 1.5.0: the timeline does not show the approval")
        for event in ("started", "approvalRequested", "succeeded"):
            if event not in notes_15:
                failures.append(f"release 1.5.0: no {event!r} notification (got {notes_15})")
        if ledger_15 != "3":
            failures.append(f"release 1.5.0: 3 migrations expected in the ledger, found {ledger_15}")

        NOTIFICATIONS.clear()
        say()
        say(f"{BOLD}2. Release 1.6.0{RESET} {DIM}({bad}){RESET}")
        code, text = rehearse(cli, bad, functions, scale, Path(work) / "rehearse-1.6.log")
        time.sleep(0.5)
        notes_16 = [n.get("event") for n in NOTIFICATIONS]
        ledger_16 = psql(bin_dir, pg_port, password, "SELECT count(*) FROM _sqlx_migrations")
        say(f"   {GREEN if code == 1 else RED}exit {code}{RESET} (rolled back); migrations in the ledger: {ledger_16}")
        if code != 1:
            failures.append(f"release 1.6.0 should roll back (exit 1), got exit {code}")
        for want in ("applied 1 migration(s)", "answered 503", "TEST_TRAFFIC_SHIFT", "load (traffic): blocked: 60 requests"):
            if want not in text:
                failures.append(f"release 1.6.0: the timeline lacks {want!r}")
        for event in ("started", "failed", "rolledBack"):
            if event not in notes_16:
                failures.append(f"release 1.6.0: no {event!r} notification (got {notes_16})")
        if "succeeded" in notes_16:
            failures.append("release 1.6.0: a 'succeeded' notification for a rolled back deployment")
        if ledger_16 != "4":
            failures.append(f"release 1.6.0: 4 migrations expected in the ledger, found {ledger_16}")

        say()
        say(f"{BOLD}Done{RESET} in {time.time() - started:.0f}s: release 1.5.0 deployed, release 1.6.0 stopped at the test-traffic gate and rolled back.")
        if opts.keep:
            say(f"{DIM}Logs of every process and the service files: {work} (functions.log has each decision record){RESET}")
    except KeyboardInterrupt:
        say("\ninterrupted: stopping everything the demo started")
        failures.append("interrupted")
    except Exception as e:  # a component that did not start: say which, keep the logs
        failures.append(f"{type(e).__name__}: {e}")
    finally:
        procs.stop()
        if not opts.keep and not failures:
            shutil.rmtree(work, ignore_errors=True)
    if failures:
        for f in failures:
            say(f"{RED}✗ {f}{RESET}")
        say(f"{DIM}logs kept in {work}{RESET}")
        sys.exit(1)
    if opts.check:
        say(f"{GREEN}✓ both scenarios ended as expected{RESET}")


if __name__ == "__main__":
    main()
