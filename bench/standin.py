"""A stand-in AWS for the rollout simulation (`rollout.py`): one threaded HTTP/1.1 keep-alive
server on 127.0.0.1 that every AWS client of the functions reaches through
`AWS_ENDPOINT_URL`, speaking just enough of each service's wire protocol for the Rust SDK,
with AWS's per-account request quotas as token buckets.

Protocols, as the SDK clients the functions use speak them:

* ECS, awsJson1_1: `POST /`, `X-Amz-Target: AmazonEC2ContainerServiceV20141113.<Operation>`,
  a JSON body; JSON answers (`application/x-amz-json-1.1`), timestamps in epoch seconds.
  Errors: HTTP 400 with `{"__type": "<Code>", "message": ...}`.
* ELBv2 (`2015-12-01`), awsQuery: `POST /`, a form body with `Action=<Operation>`; XML
  answers `<OperationResponse xmlns="..."><OperationResult>...`. Errors: HTTP 400 with
  `<ErrorResponse><Error><Type>Sender</Type><Code>...</Code>...</ErrorResponse>`.
* CloudWatch (`2010-08-01`), Smithy RPC v2 CBOR (aws-sdk-cloudwatch since 1.100):
  `POST /service/GraniteServiceVersion20100801/operation/<Operation>`, `smithy-protocol:
  rpc-v2-cbor`, a CBOR map of the input members; CBOR answers (`application/cbor`,
  `smithy-protocol: rpc-v2-cbor`), timestamps as tag 1 + float64 epoch seconds, every
  `double` a CBOR float. Errors: the HTTP status, a CBOR map `{"__type":
  "com.amazonaws.cloudwatch#<Code>", "message": ...}` and, as CloudWatch is awsQuery
  compatible, `x-amzn-query-error: <Code>;Sender`, the header the SDK takes the code from.
  The codec is `standins/cbor.py` (standard library only).

The service is the one named in the SigV4 credential scope of the `Authorization` header
(`Credential=KEY/DATE/REGION/SERVICE/aws4_request`), and the caller is recognised by its
access key id: the simulation gives every gate its own. The SDK's `amz-sdk-invocation-id`
header (the same on every attempt of one operation) and `amz-sdk-request: attempt=N; max=M`
tell attempts of one operation apart. Signatures are not checked.

A throttled call gets the protocol's throttling error: ECS HTTP 400 `ThrottlingException`,
ELBv2 HTTP 400 `<Code>Throttling</Code>`, CloudWatch HTTP 400 `__type` `...#Throttling` with
`x-amzn-query-error: Throttling;Sender`; the message is always "Rate exceeded". The SDK's
retry classifier (aws-runtime, `THROTTLING_ERRORS`) counts both `Throttling` and
`ThrottlingException` as throttling.

Every call is recorded (`StandIn.calls`). A call the stand-in does not implement is
answered with an error (ECS and CloudWatch `UnknownOperationException`, query
`InvalidAction`) and reported on stderr, loudly, once per operation: the simulation must be
told about it.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

from lambda_local import read_body

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "standins"))
import cbor  # noqa: E402

ECS_TARGET_PREFIX = "AmazonEC2ContainerServiceV20141113."
ELB_NS = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"
# RPC v2 CBOR: `{prefix?}/service/{serviceName}/operation/{operationName}`.
CBOR_PATH = re.compile(r"/service/([^/?]+)/operation/([^/?]+)$")
CW_NAMESPACE = "com.amazonaws.cloudwatch"

# Per-account, per-Region request quotas as token buckets: (bucket size = the burst a
# second, refill = tokens added a second = the sustained rate). Every bucket starts full.
# A call takes one token from each bucket it belongs to, or is throttled if one is empty.
QUOTAS: dict[tuple[str, str], tuple[float, float]] = {
    # ECS, "Request throttling for the Amazon ECS API"
    # (docs.aws.amazon.com/AmazonECS/latest/APIReference/request-throttling.html), the
    # Describe* (read) actions of services: bucket 50, refill 20 a second.
    ("ecs", "DescribeServiceRevisions"): (50, 20),
    ("ecs", "DescribeServiceDeployments"): (50, 20),
    # ELB, "Request throttling for the ELB API"
    # (docs.aws.amazon.com/elasticloadbalancing/latest/userguide/elb-api-throttling.html):
    # non-mutating actions (Describe*), bucket 40, refill 10 a second ...
    ("elasticloadbalancing", "DescribeTargetHealth"): (40, 10),
    ("elasticloadbalancing", "DescribeTargetGroups"): (40, 10),
    # CloudWatch service quotas
    # (docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch_limits.html):
    # DescribeAlarms 9 TPS, GetMetricData 50 TPS. A quota of T transactions a second is
    # modelled as a bucket of T tokens refilled at T a second.
    ("monitoring", "DescribeAlarms"): (9, 9),
    ("monitoring", "GetMetricData"): (50, 50),
}
# ... and every ELB API action also draws on one account-level bucket (same page): 40,
# refill 10 a second, shared by DescribeTargetHealth and DescribeTargetGroups.
ACCOUNT_QUOTAS: dict[str, tuple[float, float]] = {
    "elasticloadbalancing": (40, 10),
}

SERVICE_LABEL = {"ecs": "ECS", "elasticloadbalancing": "ELBv2", "monitoring": "CloudWatch"}


class TokenBucket:
    """Starts full; `refill` tokens a second up to `capacity`. Not locked: `StandIn` locks."""

    def __init__(self, capacity: float, refill: float, now: float):
        self.capacity = capacity
        self.refill = refill
        self.tokens = capacity
        self.at = now

    def level(self, now: float) -> float:
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.refill)
        self.at = now
        return self.tokens


def utc(t: float) -> datetime:
    """Epoch seconds as the datetime `cbor.dumps` writes as a tag 1 timestamp."""
    return datetime.fromtimestamp(t, timezone.utc)


def epoch(value) -> float:
    """A CBOR timestamp member (tag 1, read as a datetime; or plain epoch seconds) in seconds."""
    return value.timestamp() if isinstance(value, datetime) else float(value)


def members(form: dict[str, str], prefix: str) -> list[str]:
    """`Prefix.member.1`, `Prefix.member.2`, ... of a query form, in order."""
    out = []
    i = 1
    while f"{prefix}.member.{i}" in form:
        out.append(form[f"{prefix}.member.{i}"])
        i += 1
    return out


class World:
    """What the stand-in knows: the gates' ECS service revisions and deployments, target
    groups and their load balancers, and which access key is which gate. Filled before the
    server starts, read-only afterwards. Everything in it is healthy."""

    def __init__(self):
        self.revisions: dict[str, dict] = {}
        self.deployments: dict[str, dict] = {}
        # ARN → {"name", "loadBalancerArn", "targets": [(ip, port, az)]}
        self.target_groups: dict[str, dict] = {}
        self.keys: dict[str, str] = {}
        # Value of every metric the stand-in is asked for, by metric name; others get 0.
        self.metric_values: dict[str, float] = {"RequestCount": 600.0, "RequestCountPerTarget": 300.0}


class Server(ThreadingHTTPServer):
    # Hundreds of processes connect within a few seconds: the default backlog of 5 would
    # drop connection attempts (the SYN retried a second later), which is not AWS.
    request_queue_size = 1024
    daemon_threads = True


class StandIn:
    def __init__(self, world: World, quota_fraction: float = 1.0, latency_s: float = 0.0):
        self.world = world
        self.quota_fraction = quota_fraction
        self.latency_s = latency_s
        self.t0 = time.monotonic()
        self.lock = threading.Lock()
        self.buckets = {
            k: TokenBucket(c * quota_fraction, r * quota_fraction, self.t0) for k, (c, r) in QUOTAS.items()
        }
        self.account_buckets = {
            k: TokenBucket(c * quota_fraction, r * quota_fraction, self.t0) for k, (c, r) in ACCOUNT_QUOTAS.items()
        }
        # One dict a call: t (s since start), gate, service, op, api, attempt, invocation,
        # status (HTTP), error (code or None), throttled.
        self.calls: list[dict] = []
        self.unexpected: dict[str, int] = {}
        self.server = Server(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        self.t0 = time.monotonic()
        for b in [*self.buckets.values(), *self.account_buckets.values()]:
            b.at = self.t0
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def quotas(self) -> dict:
        """The buckets in force, for the report."""
        f = self.quota_fraction
        out = {f"{SERVICE_LABEL[s]} {op}": {"bucket": c * f, "refillPerSecond": r * f} for (s, op), (c, r) in QUOTAS.items()}
        for s, (c, r) in ACCOUNT_QUOTAS.items():
            out[f"{SERVICE_LABEL[s]} (account-wide)"] = {"bucket": c * f, "refillPerSecond": r * f}
        return out

    def _admit(self, service: str, op: str) -> bool:
        """Takes a token from every bucket the call belongs to; False when one is empty."""
        buckets = [b for b in (self.buckets.get((service, op)), self.account_buckets.get(service)) if b is not None]
        now = time.monotonic()
        with self.lock:
            if any(b.level(now) < 1.0 for b in buckets):
                return False
            for b in buckets:
                b.tokens -= 1.0
            return True

    def _unexpected(self, gate: str, service: str, op: str, detail: str) -> None:
        key = f"{service} {op}"
        with self.lock:
            n = self.unexpected.get(key, 0)
            self.unexpected[key] = n + 1
        if n == 0:
            print(
                f"\n!!! STAND-IN AWS: UNEXPECTED CALL {key} from {gate} ({detail}); "
                "answered with an error. Implement it in bench/standin.py.\n",
                file=sys.stderr,
                flush=True,
            )

    # ---- the server ----------------------------------------------------------------------

    def _handler(self):
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True
            wbufsize = 1 << 16

            def log_message(self, format, *args):  # noqa: A002
                pass

            def _reply(self, status: int, body: bytes, content_type: str, request_id: str, headers: dict | None = None):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("x-amzn-RequestId", request_id)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()

            def do_GET(self):
                body = b"not an AWS API call"
                standin._unexpected("?", "?", f"GET {self.path}", "a GET request")
                self._reply(404, body, "text/plain", str(uuid.uuid4()))

            def do_POST(self):
                body = read_body(self)
                standin._serve(self, body)

        return Handler

    def _serve(self, h: BaseHTTPRequestHandler, body: bytes) -> None:
        request_id = str(uuid.uuid4())
        auth = h.headers.get("Authorization", "")
        m = re.search(r"Credential=([^/,\s]+)/[^/]+/[^/]+/([^/]+)/aws4_request", auth)
        key, service = (m.group(1), m.group(2)) if m else ("?", "?")
        gate = self.world.keys.get(key, f"unknown key {key}")
        target = h.headers.get("X-Amz-Target", "")
        form: dict[str, str] = {}
        cbor_route = CBOR_PATH.search(urlsplit(h.path).path)
        if cbor_route:
            protocol = "cbor"
            op = cbor_route.group(2)
            if service == "?":
                service = "monitoring"
        elif target:
            protocol = "json"
            op = target.split(".", 1)[1] if "." in target else target
            if service == "?" and target.startswith(ECS_TARGET_PREFIX):
                service = "ecs"
        else:
            protocol = "query"
            form = {k: v[0] for k, v in parse_qs(body.decode(errors="replace"), keep_blank_values=True).items()}
            op = form.get("Action", "?")
        attempt = 1
        am = re.search(r"attempt=(\d+)", h.headers.get("amz-sdk-request", ""))
        if am:
            attempt = int(am.group(1))
        record = {
            "t": time.monotonic() - self.t0,
            "gate": gate,
            "service": service,
            "op": op,
            "api": f"{SERVICE_LABEL.get(service, service)} {op}",
            "attempt": attempt,
            "invocation": h.headers.get("amz-sdk-invocation-id", request_id),
        }
        throttled = not self._admit(service, op)
        if self.latency_s:
            time.sleep(self.latency_s)
        if throttled:
            status, error = 400, ("ThrottlingException" if protocol == "json" else "Throttling")
            reply = self._error(protocol, service, error, "Rate exceeded", request_id)
        else:
            try:
                status, error, reply = self._answer(protocol, service, op, target, form, body, gate, request_id)
            except Exception as e:  # a bug here must not look like throttling or a hang
                print(f"!!! STAND-IN AWS: {service} {op} from {gate} raised {e!r}", file=sys.stderr, flush=True)
                status, error = 500, "InternalFailure"
                reply = self._error(protocol, service, error, repr(e), request_id)
        record.update(status=status, error=error, throttled=throttled)
        with self.lock:
            self.calls.append(record)
        headers = None
        if protocol == "cbor":
            content_type = "application/cbor"
            headers = {"smithy-protocol": "rpc-v2-cbor"}
            if error is not None:
                headers["x-amzn-query-error"] = f"{error};{'Receiver' if status >= 500 else 'Sender'}"
        else:
            content_type = "application/x-amz-json-1.1" if protocol == "json" else "text/xml"
        h._reply(status, reply, content_type, request_id, headers)

    def _error(self, protocol: str, service: str, code: str, message: str, request_id: str) -> bytes:
        if protocol == "json":
            return json.dumps({"__type": code, "message": message}).encode()
        if protocol == "cbor":
            return cbor.dumps({"__type": f"{CW_NAMESPACE}#{code}", "message": message})
        return (
            f'<ErrorResponse xmlns="{ELB_NS}"><Error><Type>Sender</Type><Code>{escape(code)}</Code>'
            f"<Message>{escape(message)}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()

    def _answer(self, protocol, service, op, target, form, body, gate, request_id):
        """(status, error code or None, body) for an admitted call."""
        if service == "ecs" and target.startswith(ECS_TARGET_PREFIX):
            handler = {
                "DescribeServiceRevisions": self._describe_service_revisions,
                "DescribeServiceDeployments": self._describe_service_deployments,
            }.get(op)
            if handler:
                return 200, None, json.dumps(handler(json.loads(body or b"{}"), gate)).encode()
        elif service == "elasticloadbalancing" and protocol == "query":
            handler = {
                "DescribeTargetHealth": self._describe_target_health,
                "DescribeTargetGroups": self._describe_target_groups,
            }.get(op)
            if handler:
                result = handler(form, gate)
                if isinstance(result, tuple):  # (code, message): an error of the call
                    return 400, result[0], self._error(protocol, service, *result, request_id)
                return 200, None, self._query_response(ELB_NS, op, result, request_id)
        elif service == "monitoring" and protocol == "cbor":
            try:
                req = cbor.loads(body) if body else {}
            except ValueError as e:
                print(f"!!! STAND-IN AWS: {gate} sent {op} a malformed CBOR body: {e}", file=sys.stderr, flush=True)
                return 400, "SerializationException", self._error(protocol, service, "SerializationException", str(e), request_id)
            handler = {
                "DescribeAlarms": self._describe_alarms,
                "GetMetricData": self._get_metric_data,
            }.get(op)
            if handler and isinstance(req, dict):
                return 200, None, cbor.dumps(handler(req, gate))
            if not handler:
                self._unexpected(gate, service, op, f"members {sorted(req)[:6] if isinstance(req, dict) else type(req).__name__}")
                code = "UnknownOperationException"
                return 404, code, self._error(protocol, service, code, f"the stand-in AWS does not implement {op}", request_id)
            return 400, "SerializationException", self._error(
                protocol, service, "SerializationException", "the request body must be a CBOR map", request_id)
        if protocol == "cbor":  # RPC v2 CBOR for a service other than CloudWatch
            self._unexpected(gate, service, op, "an RPC v2 CBOR request")
            code = "UnknownOperationException"
            return 404, code, self._error(protocol, service, code, f"the stand-in AWS does not implement {op}", request_id)
        self._unexpected(gate, service, op, f"X-Amz-Target {target!r}" if target else f"form {sorted(form)[:6]}")
        code = "UnknownOperationException" if protocol == "json" else "InvalidAction"
        return 400, code, self._error(protocol, service, code, f"the stand-in AWS does not implement {op}", request_id)

    @staticmethod
    def _query_response(ns: str, op: str, result_xml: str, request_id: str) -> bytes:
        return (
            f'<{op}Response xmlns="{ns}"><{op}Result>{result_xml}</{op}Result>'
            f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{op}Response>"
        ).encode()

    # ---- ECS -----------------------------------------------------------------------------

    def _describe_service_revisions(self, req: dict, gate: str) -> dict:
        found, failures = [], []
        for arn in req.get("serviceRevisionArns", []):
            rev = self.world.revisions.get(arn)
            if rev is None:
                print(f"!!! STAND-IN AWS: {gate} asked for an unknown service revision {arn}", file=sys.stderr, flush=True)
                failures.append({"arn": arn, "reason": "MISSING"})
            else:
                found.append(rev)
        return {"serviceRevisions": found, "failures": failures}

    def _describe_service_deployments(self, req: dict, gate: str) -> dict:
        found, failures = [], []
        for arn in req.get("serviceDeploymentArns", []):
            d = self.world.deployments.get(arn)
            if d is None:
                print(f"!!! STAND-IN AWS: {gate} asked for an unknown service deployment {arn}", file=sys.stderr, flush=True)
                failures.append({"arn": arn, "reason": "MISSING"})
            else:
                found.append(d)
        return {"serviceDeployments": found, "failures": failures}

    # ---- ELBv2 ---------------------------------------------------------------------------

    def _describe_target_health(self, form: dict, gate: str):
        arn = form.get("TargetGroupArn", "")
        tg = self.world.target_groups.get(arn)
        if tg is None:
            print(f"!!! STAND-IN AWS: {gate} asked for the health of an unknown target group {arn}", file=sys.stderr, flush=True)
            return ("TargetGroupNotFound", f"Target groups '{arn}' not found")
        out = ["<TargetHealthDescriptions>"]
        for ip, port, az in tg["targets"]:
            out.append(
                f"<member><Target><Id>{ip}</Id><Port>{port}</Port><AvailabilityZone>{az}</AvailabilityZone></Target>"
                f"<HealthCheckPort>{port}</HealthCheckPort><TargetHealth><State>healthy</State></TargetHealth></member>"
            )
        out.append("</TargetHealthDescriptions>")
        return "".join(out)

    def _describe_target_groups(self, form: dict, gate: str):
        arns = members(form, "TargetGroupArns")
        names = members(form, "Names")
        chosen = []
        for arn in arns:
            if arn in self.world.target_groups:
                chosen.append(arn)
            else:
                print(f"!!! STAND-IN AWS: {gate} asked for an unknown target group {arn}", file=sys.stderr, flush=True)
                return ("TargetGroupNotFound", f"Target groups '{arn}' not found")
        for name in names:
            match = [a for a, t in self.world.target_groups.items() if t["name"] == name]
            if not match:
                print(f"!!! STAND-IN AWS: {gate} asked for an unknown target group named {name}", file=sys.stderr, flush=True)
                return ("TargetGroupNotFound", f"One or more target groups not found: '{name}'")
            chosen.extend(match)
        if not arns and not names:
            self._unexpected(gate, "elasticloadbalancing", "DescribeTargetGroups (all, or by load balancer)", str(sorted(form)))
        out = ["<TargetGroups>"]
        for arn in chosen:
            tg = self.world.target_groups[arn]
            port = tg["targets"][0][1] if tg["targets"] else 8080
            out.append(
                f"<member><TargetGroupArn>{escape(arn)}</TargetGroupArn><TargetGroupName>{escape(tg['name'])}</TargetGroupName>"
                f"<Protocol>HTTP</Protocol><Port>{port}</Port><VpcId>vpc-0a1b2c3d4e5f60718</VpcId>"
                "<HealthCheckProtocol>HTTP</HealthCheckProtocol><HealthCheckPort>traffic-port</HealthCheckPort>"
                "<HealthCheckEnabled>true</HealthCheckEnabled><HealthCheckIntervalSeconds>30</HealthCheckIntervalSeconds>"
                "<HealthCheckTimeoutSeconds>5</HealthCheckTimeoutSeconds><HealthyThresholdCount>5</HealthyThresholdCount>"
                "<UnhealthyThresholdCount>2</UnhealthyThresholdCount><HealthCheckPath>/health</HealthCheckPath>"
                "<Matcher><HttpCode>200</HttpCode></Matcher>"
                f"<LoadBalancerArns><member>{escape(tg['loadBalancerArn'])}</member></LoadBalancerArns>"
                "<TargetType>ip</TargetType><IpAddressType>ipv4</IpAddressType></member>"
            )
        out.append("</TargetGroups>")
        return "".join(out)

    # ---- CloudWatch ----------------------------------------------------------------------

    def _describe_alarms(self, req: dict, gate: str) -> dict:
        names = list(req.get("AlarmNames") or [])
        prefix = req.get("AlarmNamePrefix")
        if prefix is not None:
            # Every service has two alarms, both OK.
            names += [f"{prefix}5xx", f"{prefix}latency-p99"]
        if not names:
            self._unexpected(gate, "monitoring", "DescribeAlarms (all alarms)", str(sorted(req)))
        now = time.time()
        alarms = [
            {
                "AlarmName": name,
                "AlarmArn": f"arn:aws:cloudwatch:us-west-2:123456789012:alarm:{name}",
                "AlarmConfigurationUpdatedTimestamp": utc(now - 86400),
                "ActionsEnabled": True,
                "OKActions": [],
                "AlarmActions": [],
                "InsufficientDataActions": [],
                "StateValue": "OK",
                "StateReason": "Threshold Crossed: 3 datapoints [0.0 (01/01/26 00:03:00), 0.0 (01/01/26 00:02:00), "
                "0.0 (01/01/26 00:01:00)] were not greater than the threshold (5.0).",
                "StateUpdatedTimestamp": utc(now - 3600),
                "MetricName": "HTTPCode_Target_5XX_Count",
                "Namespace": "AWS/ApplicationELB",
                "Statistic": "Sum",
                "Dimensions": [],
                "Period": 60,
                "EvaluationPeriods": 3,
                "Threshold": 5.0,
                "ComparisonOperator": "GreaterThanThreshold",
                "TreatMissingData": "notBreaching",
                "StateTransitionedTimestamp": utc(now - 3600),
            }
            for name in names
        ]
        return {"MetricAlarms": alarms, "CompositeAlarms": []}

    def _get_metric_data(self, req: dict, gate: str) -> dict:
        start = epoch(req["StartTime"])
        end = epoch(req["EndTime"])
        results = []
        for q in req.get("MetricDataQueries") or []:
            if q.get("ReturnData", True) is False:
                continue
            stat = q.get("MetricStat") or {}
            period = int(stat.get("Period") or q.get("Period") or 60)
            name = (stat.get("Metric") or {}).get("MetricName", "")
            value = float(self.world.metric_values.get(name, 0.0))
            # Complete datapoints of the window, oldest first (ScanBy=TimestampAscending).
            first = int(-(-start // period) * period)
            stamps = list(range(first, int(end) - period + 1, period))
            results.append({
                "Id": q["Id"],
                "Label": q.get("Label", name),
                "Timestamps": [utc(t) for t in stamps],
                "Values": [value for _ in stamps],
                "StatusCode": "Complete",
            })
        return {"MetricDataResults": results, "Messages": []}
