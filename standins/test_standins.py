"""Tests of the stand-ins, each server started on a free port and stopped afterwards.

    .tools/venv/bin/python -m unittest discover -s standins -p 'test_*.py'

The CloudWatch front and the moto parts of the SigV4 gate need `moto_server` (next to the
running python, or on PATH); the end-to-end Prometheus test needs a prometheus binary.
Either is skipped when absent.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import cbor  # noqa: E402

PY = sys.executable
MOTO = shutil.which("moto_server", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
PROMETHEUS = shutil.which("prometheus") or ("/usr/bin/prometheus" if os.access("/usr/bin/prometheus", os.X_OK) else None)

try:
    import boto3
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    from botocore.exceptions import ClientError
except ImportError:  # the codec tests still run under a bare python
    boto3 = None

# PromQL with every character that needs encoding in a URL or a form.
PROMQL = (
    'sum by (le) (rate(http_request_duration_seconds_bucket{revision=~"green|blue", path!="/health"}[5m]))'
    ' / ignoring(le) group_left sum(rate(http_requests_total{code=~"5.."}[5m])) + 1 * -2 > 0.5 and on() vector(1) # é ✓'
)


# ---- process plumbing ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A stand-in started as a subprocess on a free port, stopped with SIGTERM."""

    def __init__(self, args: list[str], name: str, timeout: float = 20.0, port: int | None = None):
        self.port = port or free_port()
        self.log = tempfile.NamedTemporaryFile(prefix=f"{name}-", suffix=".log", delete=False)
        cmd = [a.replace("{port}", str(self.port)) for a in args]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.name = name
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {self.proc.returncode}: {self.output()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"{name} did not listen on {self.port} within {timeout} s: {self.output()}")
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-2000:]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        os.unlink(self.log.name)
        return self.proc.returncode


def standin(script: str, *args: str, name: str | None = None, **kw) -> Server:
    return Server([PY, str(HERE / script), "--port", "{port}", *args], name or script, **kw)


def request(url: str, method: str = "GET", body: bytes | None = None, headers: dict | None = None):
    """(status, headers with lower-case names, body) of one HTTP request."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request(method, target, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


moto: Server | None = None


def setUpModule():
    global moto
    if MOTO and boto3 is not None:
        moto = Server([MOTO, "-H", "127.0.0.1", "-p", "{port}"], "moto", timeout=40)


def tearDownModule():
    if moto is not None:
        moto.stop()


def needs_moto(cls):
    return unittest.skipUnless(MOTO and boto3 is not None, "moto_server and boto3 are needed")(cls)


# ---- CBOR ----------------------------------------------------------------------------------


class CborTests(unittest.TestCase):
    def test_round_trips(self):
        values = [
            0, 1, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1,
            -1, -24, -25, -256, -257, -(2**32), -(2**64),
            0.0, 0.5, -1.25, 1e300, -1e-300, math.inf, -math.inf,
            "", "a", "ü", "水", "\U0001f600" * 40, "x" * 70000,
            b"", b"\x00\xff", b"y" * 300,
            [], [1, [2, [3, []]]], {}, {"a": {"b": [None, True, False]}}, {1: "int key", b"k": "bytes key"},
            None, True, False,
            datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc),
        ]
        for v in values:
            with self.subTest(v=repr(v)[:40]):
                self.assertEqual(cbor.loads(cbor.dumps(v)), v)
        self.assertEqual(cbor.loads(cbor.dumps((1, 2))), [1, 2])
        self.assertTrue(math.isnan(cbor.loads(cbor.dumps(math.nan))))

    def test_rfc8949_appendix_a_encodings(self):
        for value, hexed in [
            (0, "00"), (10, "0a"), (23, "17"), (24, "1818"), (100, "1864"), (1000, "1903e8"),
            (1000000, "1a000f4240"), (1000000000000, "1b000000e8d4a51000"), (18446744073709551615, "1bffffffffffffffff"),
            (-1, "20"), (-10, "29"), (-100, "3863"), (-1000, "3903e7"), (-18446744073709551616, "3bffffffffffffffff"),
            (1.1, "fb3ff199999999999a"), (False, "f4"), (True, "f5"), (None, "f6"),
            (b"", "40"), (b"\x01\x02\x03\x04", "4401020304"), ("", "60"), ("a", "6161"), ("IETF", "6449455446"),
            ("\u00fc", "62c3bc"), ([], "80"), ([1, [2, 3], [4, 5]], "8301820203820405"), ({}, "a0"),
            ({"a": 1, "b": [2, 3]}, "a26161016162820203"),
        ]:
            with self.subTest(value=value):
                self.assertEqual(cbor.dumps(value).hex(), hexed)
                self.assertEqual(cbor.loads(bytes.fromhex(hexed)), value)

    def test_decodes_what_other_encoders_write(self):
        for hexed, value in [
            ("f93c00", 1.0), ("f97bff", 65504.0), ("f90001", 5.960464477539063e-8), ("f9c400", -4.0),
            ("f97c00", math.inf), ("fa47c35000", 100000.0), ("fa7f7fffff", 3.4028234663852886e38), ("f7", None),
            ("5f42010243030405ff", b"\x01\x02\x03\x04\x05"), ("7f657374726561646d696e67ff", "streaming"),
            ("9fff", []), ("9f018202039f0405ffff", [1, [2, 3], [4, 5]]), ("bf61610161629f0203ffff", {"a": 1, "b": [2, 3]}),
            ("bf6346756ef563416d7421ff", {"Fun": True, "Amt": -2}), ("5fff", b""), ("7fff", ""),
            ("d82076687474703a2f2f7777772e6578616d706c652e636f6d", "http://www.example.com"),
            ("c074323031332d30332d32315432303a30343a30305a", "2013-03-21T20:04:00Z"),
        ]:
            with self.subTest(hexed=hexed):
                self.assertEqual(cbor.loads(bytes.fromhex(hexed)), value)

    def test_timestamps_are_tag_1(self):
        when = datetime(2013, 3, 21, 20, 4, 0, tzinfo=timezone.utc)
        self.assertEqual(cbor.loads(bytes.fromhex("c11a514b67b0")), when)
        self.assertEqual(cbor.loads(bytes.fromhex("c1fb41d452d9ec200000")), when + timedelta(milliseconds=500))
        encoded = cbor.dumps(when)
        self.assertEqual(encoded, b"\xc1\xfb" + struct.pack(">d", 1363896240.0))
        self.assertEqual(cbor.dumps(datetime(2013, 3, 21, 20, 4, 0)), encoded, "a naive datetime is UTC")
        self.assertEqual(cbor.loads(encoded).tzinfo, timezone.utc)

    def test_malformed_input_is_refused(self):
        for hexed, why in [
            ("", "empty"), ("18", "truncated argument"), ("1a0000", "truncated argument"), ("62c3", "truncated string"),
            ("8301", "truncated array"), ("a16161", "map without its value"), ("0000", "trailing byte"),
            ("1c", "reserved additional information 28"), ("5d", "reserved on a byte string"), ("fc", "reserved simple"),
            ("ff", "stray break"), ("1f", "indefinite integer"), ("df00", "indefinite tag"),
            ("5f6161ff", "text chunk in a byte string"), ("5f5f4100ffff", "nested indefinite chunk"),
            ("62c328", "invalid UTF-8"), ("9f01", "unterminated indefinite array"), ("bf6161ff", "break instead of a value"),
            ("a1800000", "array as map key"), ("c16161", "tag 1 on a string"), ("c1f5", "tag 1 on a bool"),
            ("f800", "badly encoded simple value"), ("f820", "unassigned simple value"),
        ]:
            with self.subTest(why=why):
                with self.assertRaises(ValueError):
                    cbor.loads(bytes.fromhex(hexed))

    def test_unencodable_values_are_refused(self):
        with self.assertRaises(ValueError):
            cbor.dumps(2**64)
        with self.assertRaises(ValueError):
            cbor.dumps(-(2**64) - 1)
        with self.assertRaises(TypeError):
            cbor.dumps({1, 2})


# ---- the CloudWatch front ------------------------------------------------------------------

AUTH_US_WEST_2 = ("AWS4-HMAC-SHA256 Credential=AKIDTEST/20260101/us-west-2/monitoring/aws4_request, "
                  "SignedHeaders=host;x-amz-date, Signature=0000")


@needs_moto
class CloudWatchFrontTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.front = standin("cloudwatch_cbor.py", "--upstream", moto.url)
        cls.cw = boto3.client("cloudwatch", endpoint_url=moto.url, region_name="us-west-2",
                              aws_access_key_id="AKIDTEST", aws_secret_access_key="secret")
        cls.now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
        cls.cw.put_metric_data(Namespace="Greenlight/Test", MetricData=[
            {"MetricName": "Errors", "Value": 3.0, "Timestamp": cls.now - timedelta(minutes=3)},
            {"MetricName": "Errors", "Value": 5.0, "Timestamp": cls.now - timedelta(minutes=2)},
        ])
        cls.cw.put_metric_alarm(AlarmName="svc-front-5xx", Namespace="Greenlight/Test", MetricName="Errors",
                                Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=5.0,
                                ComparisonOperator="GreaterThanThreshold")

    @classmethod
    def tearDownClass(cls):
        cls.front.stop()

    def call(self, operation: str, params=None, raw: bytes | None = None, path: str | None = None):
        body = raw if raw is not None else (cbor.dumps(params) if params is not None else b"")
        return request(
            self.front.url + (path or f"/service/GraniteServiceVersion20100801/operation/{operation}"),
            "POST", body,
            {"smithy-protocol": "rpc-v2-cbor", "Content-Type": "application/cbor", "Accept": "application/cbor",
             "x-amzn-query-mode": "true", "Authorization": AUTH_US_WEST_2},
        )

    def test_get_metric_data_answers_cbor_with_tagged_timestamps(self):
        status, headers, body = self.call("GetMetricData", {
            "MetricDataQueries": [{"Id": "e", "ReturnData": True, "MetricStat": {
                "Metric": {"Namespace": "Greenlight/Test", "MetricName": "Errors"}, "Period": 60, "Stat": "Sum"}}],
            "StartTime": self.now - timedelta(minutes=10),
            "EndTime": self.now,
            "ScanBy": "TimestampAscending",
        })
        self.assertEqual(status, 200, body)
        self.assertEqual(headers["content-type"], "application/cbor")
        self.assertEqual(headers["smithy-protocol"], "rpc-v2-cbor")
        self.assertTrue(headers["x-amzn-requestid"])
        self.assertIn(b"\xc1\xfb", body, "timestamps are tag 1 + float64")
        answer = cbor.loads(body)
        self.assertNotIn("ResponseMetadata", answer)
        [result] = answer["MetricDataResults"]
        self.assertEqual(result["Id"], "e")
        self.assertEqual(result["StatusCode"], "Complete")
        self.assertEqual(result["Values"], [3.0, 5.0])
        self.assertTrue(all(isinstance(v, float) for v in result["Values"]))
        self.assertEqual(result["Timestamps"], [self.now - timedelta(minutes=3), self.now - timedelta(minutes=2)])

    def test_an_operation_without_output_answers_no_body(self):
        when = self.now - timedelta(minutes=1)
        status, headers, body = self.call("PutMetricData", {"Namespace": "Greenlight/Front", "MetricData": [
            {"MetricName": "Latency", "Value": 250.0, "Unit": "Milliseconds", "Timestamp": when,
             "Dimensions": [{"Name": "Service", "Value": "web"}]}]})
        self.assertEqual((status, body), (200, b""))
        self.assertNotIn("content-type", headers)
        self.assertEqual(headers["smithy-protocol"], "rpc-v2-cbor")
        stats = self.cw.get_metric_statistics(Namespace="Greenlight/Front", MetricName="Latency",
                                               Dimensions=[{"Name": "Service", "Value": "web"}],
                                               StartTime=when - timedelta(minutes=1), EndTime=self.now,
                                               Period=60, Statistics=["Maximum"])
        self.assertEqual([d["Maximum"] for d in stats["Datapoints"]], [250.0], "the datum reached moto")

    def test_describe_alarms_with_an_empty_body_and_with_members(self):
        for params in (None, {}, {"AlarmNamePrefix": "svc-front-"}):
            with self.subTest(params=params):
                status, _, body = self.call("DescribeAlarms", params)
                self.assertEqual(status, 200)
                answer = cbor.loads(body)
                alarm = next(a for a in answer["MetricAlarms"] if a["AlarmName"] == "svc-front-5xx")
                self.assertEqual(alarm["StateValue"], "OK")
                self.assertIsInstance(alarm["StateUpdatedTimestamp"], datetime)
                self.assertIsInstance(alarm["Threshold"], float)
                self.assertNotIn(None, alarm.values())

    def test_a_service_error_names_its_shape_and_query_code(self):
        status, headers, body = self.call("SetAlarmState", {"AlarmName": "no-such-alarm", "StateValue": "OK",
                                                            "StateReason": "test"})
        self.assertEqual(status, 404)
        self.assertEqual(headers["smithy-protocol"], "rpc-v2-cbor")
        self.assertEqual(headers["x-amzn-query-error"], "ResourceNotFound;Sender")
        answer = cbor.loads(body)
        self.assertEqual(answer["__type"], "com.amazonaws.cloudwatch#ResourceNotFound")
        self.assertIsInstance(answer["message"], str)

    def test_the_type_names_the_error_shape_and_the_header_the_query_code(self):
        status, headers, body = self.call("PutMetricData", {"Namespace": "Greenlight/Front", "MetricData": [
            {"MetricName": "Latency", "Value": math.nan}]})
        self.assertEqual(status, 400)
        self.assertEqual(headers["x-amzn-query-error"], "InvalidParameterValue;Sender")
        self.assertEqual(cbor.loads(body)["__type"], "com.amazonaws.cloudwatch#InvalidParameterValueException")

    def test_invalid_parameters_are_validation_errors(self):
        status, headers, body = self.call("GetMetricData", {"MetricDataQueries": "not a list"})
        self.assertEqual(status, 400)
        self.assertEqual(cbor.loads(body)["__type"], "com.amazonaws.cloudwatch#ValidationError")
        self.assertEqual(headers["x-amzn-query-error"], "ValidationError;Sender")

    def test_unknown_operations_and_paths(self):
        for operation, path in [("NoSuchOperation", None), (None, "/service/OtherService/operation/DescribeAlarms"), (None, "/")]:
            with self.subTest(operation=operation, path=path):
                status, _, body = self.call(operation, {}, path=path)
                self.assertEqual(status, 404)
                self.assertEqual(cbor.loads(body)["__type"], "com.amazonaws.cloudwatch#UnknownOperationException")

    def test_malformed_cbor_is_refused(self):
        status, _, body = self.call("DescribeAlarms", raw=b"\xa1\x61")
        self.assertEqual(status, 400)
        self.assertIn("SerializationException", cbor.loads(body)["__type"])

    def test_an_oversized_body_is_refused_unread(self):
        with socket.create_connection(("127.0.0.1", self.front.port), timeout=10) as s:
            s.sendall(b"POST /service/GraniteServiceVersion20100801/operation/DescribeAlarms HTTP/1.1\r\n"
                      b"Host: x\r\nContent-Type: application/cbor\r\nContent-Length: 2000000\r\n\r\n")
            self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 413"))

    def test_calls_are_counted(self):
        self.call("DescribeAlarms", {})
        status, _, body = request(self.front.url + "/calls")
        self.assertEqual(status, 200)
        self.assertGreaterEqual(json.loads(body)["DescribeAlarms"], 1)


# ---- the bench's stand-in AWS --------------------------------------------------------------


class BenchStandInCborTests(unittest.TestCase):
    """bench/standin.py answers CloudWatch in RPC v2 CBOR with its quotas."""

    @classmethod
    def setUpClass(cls):
        sys.path.insert(0, str(HERE.parent / "bench"))
        from standin import StandIn, World

        world = World()
        world.keys["AKIDGATE1"] = "gate-1"
        # DescribeAlarms' bucket of 9 shrunk to 1.8: the second call in a row is throttled.
        cls.standin = StandIn(world, quota_fraction=0.2)
        cls.standin.start()

    @classmethod
    def tearDownClass(cls):
        cls.standin.stop()

    def call(self, operation, params):
        return request(
            f"{self.standin.url}/service/GraniteServiceVersion20100801/operation/{operation}", "POST", cbor.dumps(params),
            {"smithy-protocol": "rpc-v2-cbor", "Content-Type": "application/cbor",
             "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDGATE1/20260101/us-west-2/monitoring/aws4_request, "
                              "SignedHeaders=host, Signature=00"},
        )

    def test_get_metric_data(self):
        now = datetime.now(timezone.utc)
        status, headers, body = self.call("GetMetricData", {
            "MetricDataQueries": [{"Id": "m0", "MetricStat": {"Metric": {"Namespace": "AWS/ApplicationELB",
                                                                          "MetricName": "RequestCount"},
                                                               "Period": 60, "Stat": "Sum"}}],
            "StartTime": now - timedelta(minutes=5), "EndTime": now, "ScanBy": "TimestampAscending"})
        self.assertEqual(status, 200)
        self.assertEqual((headers["content-type"], headers["smithy-protocol"]), ("application/cbor", "rpc-v2-cbor"))
        [result] = cbor.loads(body)["MetricDataResults"]
        self.assertEqual(result["Values"], [600.0] * len(result["Timestamps"]))
        self.assertGreaterEqual(len(result["Timestamps"]), 4)
        self.assertTrue(all(isinstance(t, datetime) for t in result["Timestamps"]))

    def test_describe_alarms_then_throttling(self):
        answers = [self.call("DescribeAlarms", {"AlarmNamePrefix": "platform-svc-001-"}) for _ in range(3)]
        self.assertEqual(answers[0][0], 200)
        names = [a["AlarmName"] for a in cbor.loads(answers[0][2])["MetricAlarms"]]
        self.assertEqual(names, ["platform-svc-001-5xx", "platform-svc-001-latency-p99"])
        status, headers, body = answers[-1]
        self.assertEqual(status, 400)
        self.assertEqual(headers["x-amzn-query-error"], "Throttling;Sender")
        self.assertEqual(cbor.loads(body), {"__type": "com.amazonaws.cloudwatch#Throttling", "message": "Rate exceeded"})


# ---- the SigV4 gate ------------------------------------------------------------------------


class Upstream:
    """A tiny upstream recording what reaches it."""

    def __init__(self):
        self.seen: list[dict] = []
        upstream = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def handle_any(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                upstream.seen.append({"method": self.command, "path": self.path, "body": body,
                                      "authorization": self.headers.get("Authorization")})
                out = json.dumps({"status": "success", "data": {"resultType": "matrix", "result": []}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = handle_any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


if boto3 is not None:

    class SigV4AtTime(SigV4Auth):
        """botocore's signer with the signing time given rather than read from the clock."""

        def __init__(self, credentials, service, region, when: datetime):
            super().__init__(credentials, service, region)
            self.timestamp = when.strftime("%Y%m%dT%H%M%SZ")

        def add_auth(self, request):
            request.context["timestamp"] = self.timestamp
            self._modify_request_before_signing(request)
            canonical = self.canonical_request(request)
            self._inject_signature_to_request(request, self.signature(self.string_to_sign(request, canonical), request))


@unittest.skipUnless(boto3 is not None, "botocore is needed")
class SigV4GateTests(unittest.TestCase):
    MISMATCH = ("The request signature we calculated does not match the signature you provided. Check your AWS "
                "Secret Access Key and signing method. Consult the service documentation for details.")

    @classmethod
    def setUpClass(cls):
        cls.upstream = Upstream()
        cls.log = tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False)
        args = ["--upstream", cls.upstream.url, "--region", "us-west-2", "--service", "aps", "--service", "monitoring",
                "--credential", "AKIDTEST:secret/with+chars", "--credential", "AKIDSESSION:secret2:token2",
                "--strip-prefix", "^/workspaces/[^/]+", "--log", cls.log.name]
        if moto is not None:
            args += ["--moto", moto.url]
        cls.gate = standin("sigv4_gate.py", *args)
        cls.path = "/workspaces/ws-1/api/v1/query_range"

    @classmethod
    def tearDownClass(cls):
        cls.gate.stop()
        cls.upstream.stop()
        os.unlink(cls.log.name)

    def send(self, method, target, body=b"", headers=None, akid="AKIDTEST", secret="secret/with+chars", token=None,
             service="aps", region="us-west-2", sign=True, when=None, tamper=None):
        """Signs the request with botocore, optionally spoils it, and sends exactly those bytes."""
        url = self.gate.url + target
        headers = dict(headers or {})
        if sign:
            req = AWSRequest(method=method, url=url, data=body, headers=headers)
            creds = Credentials(akid, secret, token)
            auth = SigV4Auth(creds, service, region) if when is None else SigV4AtTime(creds, service, region, when)
            auth.add_auth(req)
            headers = dict(req.headers.items())
        if tamper == "body":
            body = body[:-1] + bytes([body[-1] ^ 1])
        elif tamper == "signature":
            a = headers["Authorization"]
            headers["Authorization"] = a[:-1] + ("0" if a[-1] != "0" else "1")
        elif tamper is not None:
            tamper(headers)
        n = len(self.upstream.seen)
        status, answer_headers, answer = request(url, method, body if method != "GET" else None, headers)
        forwarded = self.upstream.seen[n:]
        return status, answer_headers, answer, forwarded

    def assertRefused(self, result, message, error_type=None):
        status, headers, body, forwarded = result
        self.assertEqual(status, 403, body)
        self.assertEqual(headers["content-type"], "application/json")
        self.assertEqual(json.loads(body), {"message": message})
        if error_type:
            self.assertEqual(headers["x-amzn-errortype"], error_type)
        self.assertEqual(forwarded, [], "a refused request must not reach the upstream")

    def form(self):
        return urllib.parse.urlencode({"query": PROMQL, "start": "1700000000", "end": "1700000300", "step": "15s"}).encode()

    def test_a_signed_form_post_is_forwarded_unchanged(self):
        body = self.form()
        status, headers, answer, forwarded = self.send(
            "POST", self.path, body, {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(status, 200, answer)
        self.assertEqual(headers["content-type"], "application/json")
        self.assertEqual(json.loads(answer)["status"], "success")
        [seen] = forwarded
        self.assertEqual((seen["method"], seen["path"], seen["body"]), ("POST", "/api/v1/query_range", body))
        self.assertIsNone(seen["authorization"], "credentials are not passed upstream")
        self.assertEqual(urllib.parse.parse_qs(seen["body"].decode())["query"], [PROMQL])

    def test_a_signed_get_with_an_encoded_query_string_is_forwarded(self):
        query = urllib.parse.urlencode({"query": PROMQL, "step": "15s", "start": "1700000000", "end": "1700000300"},
                                       quote_via=urllib.parse.quote)
        status, _, answer, forwarded = self.send("GET", f"{self.path}?{query}")
        self.assertEqual(status, 200, answer)
        [seen] = forwarded
        self.assertEqual(seen["path"], f"/api/v1/query_range?{query}")
        self.assertEqual(urllib.parse.parse_qs(seen["path"].split("?", 1)[1])["query"], [PROMQL])

    def test_a_plus_in_the_query_string_is_a_space(self):
        # Signed with %20 (botocore's canonical form), sent with `+` as form encoding has it:
        # the Rust and Go signers canonicalise `+` as a space, and so does the gate.
        query = urllib.parse.urlencode({"query": PROMQL}, quote_via=urllib.parse.quote)
        plus = query.replace("%20", "+")
        url = self.gate.url + f"{self.path}?{query}"
        req = AWSRequest(method="GET", url=url, data=b"", headers={})
        SigV4Auth(Credentials("AKIDTEST", "secret/with+chars"), "aps", "us-west-2").add_auth(req)
        status, _, answer = request(self.gate.url + f"{self.path}?{plus}", "GET", None, dict(req.headers.items()))
        self.assertEqual(status, 200, answer)

    def test_a_query_string_signed_as_sent_but_not_canonical_is_refused(self):
        query = urllib.parse.urlencode({"query": PROMQL})  # quote_plus: `+` for spaces, signed raw by botocore
        self.assertRefused(self.send("GET", f"{self.path}?{query}"), self.MISMATCH, "InvalidSignatureException")
        line = json.loads(Path(self.log.name).read_text().splitlines()[-1])
        self.assertIn("canonical form", line["reason"])

    def test_one_flipped_byte_in_the_body_is_refused(self):
        self.assertRefused(self.send("POST", self.path, self.form(), {"Content-Type": "application/x-www-form-urlencoded"},
                                     tamper="body"), self.MISMATCH, "InvalidSignatureException")

    def test_one_flipped_character_in_the_signature_is_refused(self):
        self.assertRefused(self.send("POST", self.path, self.form(), tamper="signature"), self.MISMATCH)

    def test_a_changed_signed_header_is_refused(self):
        def change_content_type(headers):
            headers["Content-Type"] = "text/plain"

        self.assertRefused(self.send("POST", self.path, self.form(), {"Content-Type": "application/x-www-form-urlencoded"},
                                     tamper=change_content_type), self.MISMATCH)

    def test_the_wrong_secret_is_refused(self):
        self.assertRefused(self.send("POST", self.path, self.form(), secret="not-the-secret"), self.MISMATCH)

    def test_an_unknown_key_is_refused(self):
        self.assertRefused(self.send("POST", self.path, self.form(), akid="AKIDUNKNOWN"),
                           "The security token included in the request is invalid.", "UnrecognizedClientException")

    def test_an_unsigned_request_is_refused(self):
        self.assertRefused(self.send("POST", self.path, self.form(), sign=False), "Missing Authentication Token",
                           "MissingAuthenticationTokenException")

    def test_a_stale_or_future_date_is_refused(self):
        for minutes, start in ((-10, "Signature expired"), (10, "Signature not yet current")):
            with self.subTest(minutes=minutes):
                when = datetime.now(timezone.utc) + timedelta(minutes=minutes)
                status, _, body, forwarded = self.send("POST", self.path, self.form(), when=when)
                self.assertEqual(status, 403)
                self.assertTrue(json.loads(body)["message"].startswith(start), body)
                self.assertEqual(forwarded, [])
        # Four minutes off is within AWS's five.
        when = datetime.now(timezone.utc) - timedelta(minutes=4)
        self.assertEqual(self.send("POST", self.path, self.form(), when=when)[0], 200)

    def test_the_scope_must_name_the_gate_region_and_a_gate_service(self):
        self.assertEqual(self.send("POST", self.path, self.form(), service="monitoring")[0], 200)
        status, _, body, _ = self.send("POST", self.path, self.form(), region="eu-west-1")
        self.assertEqual((status, json.loads(body)["message"]),
                         (403, "Credential should be scoped to a valid region, not 'eu-west-1'. "))
        status, _, body, _ = self.send("POST", self.path, self.form(), service="execute-api")
        self.assertEqual((status, json.loads(body)["message"]), (403, "Credential should be scoped to correct service: 'aps'. "))

    def test_a_static_session_token_must_be_sent(self):
        self.assertEqual(self.send("POST", self.path, self.form(), akid="AKIDSESSION", secret="secret2", token="token2")[0], 200)
        self.assertRefused(self.send("POST", self.path, self.form(), akid="AKIDSESSION", secret="secret2"),
                           "The security token included in the request is invalid.")
        self.assertRefused(self.send("POST", self.path, self.form(), akid="AKIDSESSION", secret="secret2", token="wrong"),
                           "The security token included in the request is invalid.")

    @unittest.skipUnless(MOTO, "moto_server is needed")
    def test_credentials_from_moto_sts_assume_role(self):
        sts = boto3.client("sts", endpoint_url=moto.url, region_name="us-west-2",
                           aws_access_key_id="AKIDTEST", aws_secret_access_key="secret")
        c = sts.assume_role(RoleArn="arn:aws:iam::123456789012:role/greenlight-gate", RoleSessionName="gate")["Credentials"]
        ok = self.send("POST", self.path, self.form(), akid=c["AccessKeyId"], secret=c["SecretAccessKey"],
                       token=c["SessionToken"])
        self.assertEqual(ok[0], 200, ok[2])
        self.assertRefused(self.send("POST", self.path, self.form(), akid=c["AccessKeyId"], secret=c["SecretAccessKey"]),
                           "The security token included in the request is invalid.")
        self.assertRefused(self.send("POST", self.path, self.form(), akid=c["AccessKeyId"], secret="guessed",
                                     token=c["SessionToken"]), self.MISMATCH)
        records = [json.loads(line) for line in Path(self.log.name).read_text().splitlines()]
        mine = [r for r in records if r["accessKeyId"] == c["AccessKeyId"]]
        self.assertEqual([(r["verified"], r["sessionToken"]) for r in mine], [(True, True), (False, False), (False, True)])

    def test_the_log_has_one_line_per_request(self):
        before = len(Path(self.log.name).read_text().splitlines())
        self.send("POST", self.path, self.form())
        self.send("POST", self.path, self.form(), sign=False)
        lines = [json.loads(line) for line in Path(self.log.name).read_text().splitlines()[before:]]
        self.assertEqual(len(lines), 2)
        self.assertEqual({k for k in lines[0]} >= {"method", "path", "service", "region", "accessKeyId", "sessionToken",
                                                   "verified", "reason", "bodyLength"}, True)
        self.assertEqual((lines[0]["verified"], lines[0]["service"], lines[0]["region"], lines[0]["bodyLength"]),
                         (True, "aps", "us-west-2", len(self.form())))
        self.assertEqual((lines[1]["verified"], lines[1]["reason"]), (False, "no Authorization header"))
        self.assertNotIn("secret", Path(self.log.name).read_text())


# ---- the STS GetCallerIdentity stand-in ----------------------------------------------------


if boto3 is not None:
    from botocore.auth import S3SigV4QueryAuth, SigV4QueryAuth

    class SigV4QueryAtTime(SigV4QueryAuth):
        """botocore's presigner with the signing time given rather than read from the clock."""

        def __init__(self, credentials, service, region, expires, when: datetime):
            super().__init__(credentials, service, region, expires=expires)
            self.timestamp = when.strftime("%Y%m%dT%H%M%SZ")

        def add_auth(self, request):
            request.context["timestamp"] = self.timestamp
            self._modify_request_before_signing(request)
            canonical = self.canonical_request(request)
            self._inject_signature_to_request(request, self.signature(self.string_to_sign(request, canonical), request))


STS_NS = {"sts": "https://sts.amazonaws.com/doc/2011-06-15/"}
ALICE_ARN = "arn:aws:iam::123456789012:user/alice"
BOB_ARN = "arn:aws:sts::210987654321:assumed-role/Deployer/bob"
GET_CALLER_IDENTITY = "Action=GetCallerIdentity&Version=2011-06-15"


@unittest.skipUnless(boto3 is not None, "botocore is needed")
class StsIdentityTests(unittest.TestCase):
    MISMATCH = SigV4GateTests.MISMATCH
    INVALID_TOKEN = "The security token included in the request is invalid."

    @classmethod
    def setUpClass(cls):
        cls.log = tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False)
        args = ["--region", "us-west-2", "--identity", f"AKIDALICE:SECRET/alice+1:{ALICE_ARN}",
                "--identity", f"AKIDBOB:SECRETBOB:{BOB_ARN}", "--log", cls.log.name]
        cls.sts = standin("sts_identity.py", *args)
        cls.strict = standin("sts_identity.py", *args, "--enforce-expires", name="sts_identity.py --enforce-expires")

    @classmethod
    def tearDownClass(cls):
        cls.sts.stop()
        cls.strict.stop()
        os.unlink(cls.log.name)

    def presign(self, server=None, query=GET_CALLER_IDENTITY, approval="abc", akid="AKIDALICE", secret="SECRET/alice+1",
                token=None, region="us-west-2", service="sts", expires=60, when=None, method="GET"):
        """A URL presigned with botocore's SigV4QueryAuth, `x-greenlight-approval` bound into it."""
        req = AWSRequest(method=method, url=f"{(server or self.sts).url}/?{query}",
                         headers={"x-greenlight-approval": approval} if approval is not None else {})
        creds = Credentials(akid, secret, token)
        signer = (SigV4QueryAuth(creds, service, region, expires=expires) if when is None
                  else SigV4QueryAtTime(creds, service, region, expires, when))
        signer.add_auth(req)
        return req.url

    def get(self, url, approval="abc", method="GET"):
        return request(url, method, None, {"x-greenlight-approval": approval} if approval is not None else {})

    def post(self, body=GET_CALLER_IDENTITY.encode(), akid="AKIDALICE", secret="SECRET/alice+1", token=None, tamper=None):
        """An Authorization-header POST signed with botocore's SigV4Auth, optionally spoiled."""
        url = self.sts.url + "/"
        req = AWSRequest(method="POST", url=url, data=body,
                         headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
        SigV4Auth(Credentials(akid, secret, token), "sts", "us-west-2").add_auth(req)
        headers = dict(req.headers.items())
        if tamper is not None:
            body = tamper(headers, body)
        return request(url, "POST", body, headers)

    def last_log(self) -> dict:
        return json.loads(Path(self.log.name).read_text().splitlines()[-1])

    def assertIdentity(self, result, arn, user_id, account):
        status, headers, body = result
        self.assertEqual(status, 200, body)
        self.assertEqual(headers["content-type"], "text/xml")
        root = ET.fromstring(body)
        self.assertEqual(root.tag, "{https://sts.amazonaws.com/doc/2011-06-15/}GetCallerIdentityResponse")
        self.assertEqual([e.tag.split("}")[1] for e in root], ["GetCallerIdentityResult", "ResponseMetadata"])
        found = {e.tag.split("}")[1]: e.text for e in root.find("sts:GetCallerIdentityResult", STS_NS)}
        self.assertEqual(found, {"Arn": arn, "UserId": user_id, "Account": account})
        self.assertEqual(root.findtext("sts:ResponseMetadata/sts:RequestId", namespaces=STS_NS), headers["x-amzn-requestid"])

    def assertStsError(self, result, status, code, message=None, message_start=None):
        got_status, headers, body = result
        self.assertEqual(got_status, status, body)
        self.assertEqual(headers["content-type"], "text/xml")
        root = ET.fromstring(body)
        self.assertEqual(root.tag, "{https://sts.amazonaws.com/doc/2011-06-15/}ErrorResponse")
        self.assertEqual(root.findtext("sts:Error/sts:Type", namespaces=STS_NS), "Sender")
        self.assertEqual(root.findtext("sts:Error/sts:Code", namespaces=STS_NS), code)
        got_message = root.findtext("sts:Error/sts:Message", namespaces=STS_NS)
        if message is not None:
            self.assertEqual(got_message, message)
        if message_start is not None:
            self.assertTrue(got_message.startswith(message_start), got_message)
        uuid.UUID(root.findtext("sts:RequestId", namespaces=STS_NS))
        return got_message

    # ---- presigned GET ---------------------------------------------------------------------

    def test_a_presigned_get_sent_with_its_bound_header_answers_the_identity(self):
        url = self.presign()
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
        self.assertEqual(query["X-Amz-SignedHeaders"], ["host;x-greenlight-approval"])
        self.assertIdentity(self.get(url, "abc"), ALICE_ARN, "AIDAAKIDALICE", "123456789012")
        line = self.last_log()
        self.assertEqual((line["method"], line["presigned"], line["accessKeyId"], line["signedHeaders"], line["approval"],
                          line["verified"], line["status"], line["arn"]),
                         ("GET", True, "AKIDALICE", ["host", "x-greenlight-approval"], "abc", True, 200, ALICE_ARN))

    def test_an_assumed_role_answers_its_role_session(self):
        self.assertIdentity(self.get(self.presign(akid="AKIDBOB", secret="SECRETBOB")), BOB_ARN, "AROAAKIDBOB:bob",
                            "210987654321")

    def test_another_approval_value_or_none_is_refused(self):
        url = self.presign(approval="abc")
        self.assertStsError(self.get(url, "abd"), 403, "SignatureDoesNotMatch", self.MISMATCH)
        self.assertEqual((self.last_log()["approval"], self.last_log()["reason"]), ("abd", "signature mismatch"))
        self.assertStsError(self.get(url, None), 403, "SignatureDoesNotMatch", self.MISMATCH)
        self.assertEqual(self.last_log()["reason"], "signed header x-greenlight-approval not sent")
        # Signed header values are compared trimmed, as SigV4 has it.
        self.assertIdentity(self.get(url, "  abc  "), ALICE_ARN, "AIDAAKIDALICE", "123456789012")

    def test_an_altered_query_parameter_is_refused(self):
        url = self.presign()
        for old, new in (("X-Amz-Expires=60", "X-Amz-Expires=3600"), ("Version=2011-06-15", "Version=2011-06-15&Extra=1"),
                         ("X-Amz-SignedHeaders=host%3Bx-greenlight-approval", "X-Amz-SignedHeaders=host"),
                         ("Credential=AKIDALICE", "Credential=AKIDBOB")):
            with self.subTest(new=new):
                self.assertIn(old, url)
                self.assertStsError(self.get(url.replace(old, new)), 403, "SignatureDoesNotMatch", self.MISMATCH)
        flipped = url[:-1] + ("0" if url[-1] != "0" else "1")
        self.assertStsError(self.get(flipped), 403, "SignatureDoesNotMatch", self.MISMATCH)

    def test_the_wrong_secret_or_an_unknown_key_is_refused(self):
        self.assertStsError(self.get(self.presign(secret="guessed")), 403, "SignatureDoesNotMatch", self.MISMATCH)
        self.assertStsError(self.get(self.presign(akid="AKIDMALLORY")), 403, "InvalidClientTokenId", self.INVALID_TOKEN)
        self.assertEqual(self.last_log()["reason"], "unknown access key AKIDMALLORY")

    def test_the_scope_must_name_the_region_and_sts(self):
        self.assertStsError(self.get(self.presign(region="eu-west-1")), 403, "SignatureDoesNotMatch",
                            "Credential should be scoped to a valid region.")
        self.assertStsError(self.get(self.presign(service="iam")), 403, "SignatureDoesNotMatch",
                            "Credential should be scoped to correct service: 'sts'.")

    def test_a_stale_or_future_presigned_request_is_refused(self):
        now = datetime.now(timezone.utc)
        self.assertStsError(self.get(self.presign(when=now - timedelta(minutes=16), expires=3600)), 403,
                            "SignatureDoesNotMatch", message_start="Signature expired: ")
        message = self.assertStsError(self.get(self.presign(when=now + timedelta(minutes=16))), 403,
                                      "SignatureDoesNotMatch", message_start="Signature not yet current: ")
        self.assertTrue(message.endswith(" + 15 min.)"), message)
        # Like real STS, the stand-in ignores X-Amz-Expires: a 60 s URL still works 14 minutes on.
        old = self.presign(when=now - timedelta(minutes=14), expires=60)
        self.assertIdentity(self.get(old), ALICE_ARN, "AIDAAKIDALICE", "123456789012")

    def test_with_enforce_expires_a_presigned_request_expires_after_x_amz_expires(self):
        now = datetime.now(timezone.utc)
        self.assertIdentity(self.get(self.presign(self.strict, expires=60)), ALICE_ARN, "AIDAAKIDALICE", "123456789012")
        message = self.assertStsError(self.get(self.presign(self.strict, when=now - timedelta(seconds=90), expires=60)), 403,
                                      "SignatureDoesNotMatch", message_start="Signature expired: ")
        self.assertTrue(message.endswith(" - 60 sec.)"), message)
        url = self.presign(self.strict, expires=1)
        time.sleep(2.1)
        self.assertStsError(self.get(url), 403, "SignatureDoesNotMatch", message_start="Signature expired: ")
        self.assertStsError(self.get(self.presign(self.strict, expires=0)), 400, "IncompleteSignature")

    def test_unsigned_and_malformed_requests_are_refused(self):
        self.assertStsError(request(f"{self.sts.url}/?{GET_CALLER_IDENTITY}"), 403, "MissingAuthenticationToken",
                            "Request is missing Authentication Token")
        url = self.presign()
        unsigned = url[:url.index("&X-Amz-Signature=")]
        self.assertStsError(self.get(unsigned), 400, "IncompleteSignature",
                            "AWS query-string parameters must include 'X-Amz-Signature'. Re-examine the query-string parameters.")
        self.assertStsError(request(url, "GET", None, {"x-greenlight-approval": "abc", "Authorization": "AWS4-HMAC-SHA256 x"}),
                            400, "IncompleteSignature")
        self.assertStsError(self.get(self.presign(approval=None).replace("X-Amz-SignedHeaders=host", "X-Amz-SignedHeaders=x-a")),
                            400, "IncompleteSignature")

    def test_a_payload_hash_of_unsigned_payload_is_refused(self):
        # botocore's STS presign hashes the empty body; only S3's presigners sign UNSIGNED-PAYLOAD.
        req = AWSRequest(method="GET", url=f"{self.sts.url}/?{GET_CALLER_IDENTITY}", headers={"x-greenlight-approval": "abc"})
        S3SigV4QueryAuth(Credentials("AKIDALICE", "SECRET/alice+1"), "sts", "us-west-2", expires=60).add_auth(req)
        self.assertStsError(self.get(req.url), 403, "SignatureDoesNotMatch", self.MISMATCH)
        self.assertIn("UNSIGNED-PAYLOAD", self.last_log()["reason"])
        self.assertTrue(self.last_log()["canonicalRequest"].endswith(
            "\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"))

    def test_only_get_caller_identity_is_answered(self):
        self.assertStsError(self.get(self.presign(query="Action=AssumeRole&Version=2011-06-15")), 400, "InvalidAction",
                            "Could not find operation AssumeRole for version 2011-06-15")
        self.assertStsError(self.get(self.presign(query="Action=GetCallerIdentity")), 400, "InvalidAction",
                            "Could not find operation GetCallerIdentity for version NO_VERSION_SPECIFIED")
        self.assertStsError(self.get(self.presign(query="Version=2011-06-15")), 400, "MissingAction", "Missing Action")
        self.assertEqual(self.last_log()["reason"], "signature verified; no Action")
        # A forged request learns nothing about the action: the signature comes first.
        self.assertStsError(self.get(self.presign(query="Action=AssumeRole&Version=2011-06-15", secret="guessed")), 403,
                            "SignatureDoesNotMatch")

    def test_boto3_presigned_urls_work_for_the_method_they_were_signed_for(self):
        sts = boto3.client("sts", endpoint_url=self.sts.url, region_name="us-west-2",
                           aws_access_key_id="AKIDBOB", aws_secret_access_key="SECRETBOB")
        post_url = sts.generate_presigned_url("get_caller_identity")  # the operation's own method, POST
        self.assertIdentity(request(post_url, "POST"), BOB_ARN, "AROAAKIDBOB:bob", "210987654321")
        self.assertStsError(request(post_url, "GET"), 403, "SignatureDoesNotMatch", self.MISMATCH)
        self.assertEqual(self.last_log()["reason"], "signature mismatch: the client signed the request for POST, it was sent as GET")
        get_url = sts.generate_presigned_url("get_caller_identity", HttpMethod="GET")
        self.assertIdentity(request(get_url), BOB_ARN, "AROAAKIDBOB:bob", "210987654321")

    # ---- Authorization header --------------------------------------------------------------

    def test_an_authorization_header_post_answers_the_identity(self):
        self.assertIdentity(self.post(), ALICE_ARN, "AIDAAKIDALICE", "123456789012")
        line = self.last_log()
        self.assertEqual((line["method"], line["presigned"], line["signedHeaders"]),
                         ("POST", False, ["content-type", "host", "x-amz-date"]))

        def body_changed(headers, body):
            return b"Action=GetCallerIdentity&Version=2011-06-15&X=1"

        self.assertStsError(self.post(tamper=body_changed), 403, "SignatureDoesNotMatch", self.MISMATCH)
        self.assertStsError(self.post(akid="AKIDMALLORY"), 403, "InvalidClientTokenId", self.INVALID_TOKEN)
        self.assertStsError(self.post(body=b"Action=AssumeRole&Version=2011-06-15"), 400, "InvalidAction",
                            "Could not find operation AssumeRole for version 2011-06-15")

    def test_boto3_reads_the_answer_and_the_errors(self):
        def client(akid, secret):
            return boto3.client("sts", endpoint_url=self.sts.url, region_name="us-west-2",
                                aws_access_key_id=akid, aws_secret_access_key=secret)

        answer = client("AKIDBOB", "SECRETBOB").get_caller_identity()
        self.assertEqual((answer["Arn"], answer["UserId"], answer["Account"]), (BOB_ARN, "AROAAKIDBOB:bob", "210987654321"))
        for akid, secret, code in (("AKIDBOB", "wrong", "SignatureDoesNotMatch"), ("AKIDNONE", "x", "InvalidClientTokenId")):
            with self.subTest(code=code), self.assertRaises(ClientError) as caught:
                client(akid, secret).get_caller_identity()
            self.assertEqual(caught.exception.response["Error"]["Code"], code)
            self.assertEqual(caught.exception.response["ResponseMetadata"]["HTTPStatusCode"], 403)

    # ---- session tokens --------------------------------------------------------------------

    def test_a_session_token_is_accepted_only_signed(self):
        url = self.presign(token="FwoGZXIvYXdzEJr//token+/=")
        self.assertIn("X-Amz-Security-Token=", url)
        self.assertIdentity(self.get(url), ALICE_ARN, "AIDAAKIDALICE", "123456789012")
        self.assertTrue(self.last_log()["sessionToken"])
        changed = url.replace("X-Amz-Security-Token=", "X-Amz-Security-Token=x")
        self.assertStsError(self.get(changed), 403, "SignatureDoesNotMatch", self.MISMATCH)
        self.assertIn("X-Amz-Security-Token=<redacted>", self.last_log()["canonicalRequest"])

        self.assertIdentity(self.post(token="header-token"), ALICE_ARN, "AIDAAKIDALICE", "123456789012")
        self.assertIn("x-amz-security-token", self.last_log()["signedHeaders"])

        def token_added_after_signing(headers, body):
            headers["X-Amz-Security-Token"] = "added-later"
            return body

        self.assertStsError(self.post(tamper=token_added_after_signing), 403, "SignatureDoesNotMatch", self.MISMATCH)
        self.assertEqual(self.last_log()["reason"], "X-Amz-Security-Token header sent but not signed")

    # ---- log and lifecycle -----------------------------------------------------------------

    def test_the_log_has_one_line_per_request_and_no_secret(self):
        before = len(Path(self.log.name).read_text().splitlines())
        self.get(self.presign(approval="f00d"), "f00d")
        self.get(self.presign(approval="f00d"), "beef")
        request(f"{self.sts.url}/?{GET_CALLER_IDENTITY}")
        text = Path(self.log.name).read_text()
        lines = [json.loads(line) for line in text.splitlines()[before:]]
        self.assertEqual(len(lines), 2 + 1)
        for line in lines:
            self.assertLessEqual({"method", "accessKeyId", "signedHeaders", "verified", "reason", "status", "approval"},
                                 set(line))
        self.assertEqual([(line["approval"], line["verified"], line["status"]) for line in lines],
                         [("f00d", True, 200), ("beef", False, 403), (None, False, 403)])
        self.assertEqual(lines[2]["reason"], "neither an Authorization header nor X-Amz-* query parameters")
        for secret in ("SECRET/alice+1", "SECRETBOB", "FwoGZXIvYXdzEJr", "header-token"):
            self.assertNotIn(secret, text)

    def test_sigterm_exits_cleanly_and_bad_identities_are_refused(self):
        self.assertEqual(standin("sts_identity.py", "--region", "us-east-1", "--identity", f"A:S:{ALICE_ARN}").stop(), 0)
        for spec in ("AKIDONLY", "AKID:SECRET", "AKID:SECRET:not-an-arn"):
            with self.subTest(spec=spec):
                r = subprocess.run([PY, str(HERE / "sts_identity.py"), "--port", "1", "--region", "us-east-1",
                                    "--identity", spec], capture_output=True, text=True)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn("--identity", r.stderr)


# ---- the Datadog stand-in ------------------------------------------------------------------


def dd_request(frm: int, to: int, queries, formulas=None, interval=None):
    attributes = {"from": frm, "to": to, "queries": [{"data_source": "metrics", "query": q, "name": n} for n, q in queries]}
    if formulas is not None:
        attributes["formulas"] = [{"formula": f} for f in formulas]
    if interval is not None:
        attributes["interval"] = interval
    return json.dumps({"data": {"type": "timeseries_request", "attributes": attributes}}).encode()


class DatadogTests(unittest.TestCase):
    ERRORS = "sum:trace.http.request.errors{service:web,env:prod}.as_count()"
    HITS = "sum:trace.http.request.hits{service:web,env:prod}.as_count()"
    CPU = "avg:system.cpu.user{service:web} by {host}"

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="datadog-")
        cls.data = Path(cls.dir, "data.json")
        cls.data.write_text(json.dumps({
            cls.ERRORS: {"values": [1, 2, None, 4, 0]},
            cls.HITS: {"values": [100, 100, 100, 0, 50]},
            cls.CPU: {"values": [10.5, 20, 30], "unit": "percent"},
        }))
        cls.log = Path(cls.dir, "requests.jsonl")
        common = ["--api-key", "api-1", "--app-key", "app-1", "--unscoped-app-key", "app-unscoped", "--data", str(cls.data)]
        cls.dd = standin("datadog.py", *common, "--log", str(cls.log))
        cls.throttling = standin("datadog.py", *common, "--throttle-first", "2", "--reset", "3", name="datadog-throttling")
        cls.to = 1_699_999_980_000 + 30_000  # 30 s past a minute

    @classmethod
    def tearDownClass(cls):
        cls.dd.stop()
        cls.throttling.stop()
        shutil.rmtree(cls.dir)

    def post(self, body: bytes, server=None, api="api-1", app="app-1"):
        headers = {"Content-Type": "application/json"}
        if api:
            headers["DD-API-KEY"] = api
        if app:
            headers["DD-APPLICATION-KEY"] = app
        status, headers, answer = request((server or self.dd).url + "/api/v2/query/timeseries", "POST", body, headers)
        return status, headers, json.loads(answer)

    def test_a_formula_over_two_queries_with_nulls(self):
        status, headers, answer = self.post(dd_request(self.to - 600_000, self.to, [("a", self.ERRORS), ("b", self.HITS)],
                                                       ["a / b * 100"]))
        self.assertEqual(status, 200, answer)
        self.assertEqual(answer["data"]["type"], "timeseries_response")
        attrs = answer["data"]["attributes"]
        last = self.to - self.to % 60_000
        self.assertEqual(attrs["times"], [last - 60_000 * k for k in (4, 3, 2, 1, 0)])
        self.assertEqual(attrs["series"], [{"group_tags": [], "query_index": 0, "unit": None}])
        # 1/100, 2/100, null input, 4/0, 0/50.
        self.assertEqual(attrs["values"], [[1.0, 2.0, None, None, 0.0]])
        for name in ("X-RateLimit-Limit", "X-RateLimit-Period", "X-RateLimit-Remaining", "X-RateLimit-Reset", "X-RateLimit-Name"):
            self.assertIn(name.lower(), headers)

    def test_queries_without_formulas_and_units(self):
        status, _, answer = self.post(dd_request(self.to - 150_000, self.to, [("a", self.CPU), ("b", self.ERRORS)],
                                                 interval=60_000))
        self.assertEqual(status, 200)
        attrs = answer["data"]["attributes"]
        self.assertEqual([s["query_index"] for s in attrs["series"]], [0, 1])
        self.assertEqual(attrs["series"][0]["unit"][0]["name"], "percent")
        self.assertIsNone(attrs["series"][0]["unit"][1])
        self.assertEqual(len(attrs["times"]), 3, "steps within [from, to] only")
        self.assertEqual(attrs["times"][-1], self.to - self.to % 60_000, "the last value at the last step at or before `to`")
        self.assertEqual(attrs["values"], [[10.5, 20.0, 30.0], [None, 4.0, 0.0]])

    def test_no_data_is_an_empty_answer(self):
        status, _, answer = self.post(dd_request(self.to - 600_000, self.to, [("a", "sum:nothing.here{*}")], ["a * 2"]))
        self.assertEqual(status, 200)
        self.assertEqual(answer["data"]["attributes"], {"series": [], "times": [], "values": []})

    def test_the_data_file_is_read_on_every_request(self):
        query = "max:changing.metric{*}"
        body = dd_request(self.to - 60_000, self.to, [("a", query)])
        self.assertEqual(self.post(body)[2]["data"]["attributes"]["values"], [])
        data = json.loads(self.data.read_text())
        data[query] = {"values": [7]}
        self.data.write_text(json.dumps(data))
        self.assertEqual(self.post(body)[2]["data"]["attributes"]["values"], [[7.0]])

    def test_keys_are_refused(self):
        body = dd_request(self.to - 60_000, self.to, [("a", self.CPU)])
        for api, app in ((None, "app-1"), ("api-1", None), ("wrong", "app-1"), ("api-1", "wrong"), (None, None)):
            with self.subTest(api=api, app=app):
                self.assertEqual(self.post(body, api=api, app=app)[::2], (403, {"errors": ["Forbidden"]}))

    def test_an_unscoped_application_key_lacks_the_permission(self):
        status, _, answer = self.post(dd_request(self.to - 60_000, self.to, [("a", self.CPU)]), app="app-unscoped")
        self.assertEqual((status, answer), (403, {"errors": ["Forbidden", "Failed permission authorization checks"]}))

    def test_a_query_that_is_not_metric_syntax(self):
        for bad in ("system.cpu.user", "avg:system.cpu.user", "avg system.cpu.user{*}", "avg:{*}", "avg:cpu{*"):
            with self.subTest(query=bad):
                status, _, answer = self.post(dd_request(self.to - 60_000, self.to, [("a", bad)]))
                self.assertEqual(status, 400)
                self.assertTrue(answer["errors"][0].startswith("Error parsing query:"), answer)

    def test_bad_formulas_and_bodies(self):
        status, _, answer = self.post(dd_request(self.to - 60_000, self.to, [("a", self.CPU)], ["__import__('os')"]))
        self.assertEqual(status, 400)
        self.assertTrue(answer["errors"][0].startswith("Error parsing formula"), answer)
        self.assertEqual(self.post(dd_request(self.to - 60_000, self.to, [("a", self.CPU)], ["b + 1"]))[0], 400)
        self.assertEqual(self.post(b"{not json")[0], 400)
        self.assertEqual(self.post(json.dumps({"data": {"type": "scalar_request", "attributes": {}}}).encode())[0], 400)

    def test_throttled_first_then_answered(self):
        body = dd_request(self.to - 60_000, self.to, [("a", self.CPU)])
        self.assertEqual(self.post(body, server=self.throttling, api="wrong")[0], 403, "auth comes before the rate limit")
        for _ in range(2):
            status, headers, answer = self.post(body, server=self.throttling)
            self.assertEqual((status, answer), (429, {"errors": ["Too many requests"]}))
            self.assertEqual(headers["x-ratelimit-remaining"], "0")
            self.assertEqual(headers["x-ratelimit-reset"], "3")
            self.assertTrue(headers["x-ratelimit-limit"] and headers["x-ratelimit-period"] and headers["x-ratelimit-name"])
        status, headers, answer = self.post(body, server=self.throttling)
        self.assertEqual(status, 200, answer)
        self.assertGreater(int(headers["x-ratelimit-remaining"]), 0)

    def test_the_log_records_requests_without_keys(self):
        self.post(dd_request(self.to - 60_000, self.to, [("a", self.CPU)]), app=None)
        text = self.log.read_text()
        self.assertNotIn("api-1", text)
        self.assertNotIn("app-1", text)
        last = json.loads(text.splitlines()[-1])
        self.assertEqual((last["status"], last["apiKeyPresent"], last["appKeyPresent"]), (403, True, False))
        self.assertEqual(last["body"]["data"]["attributes"]["queries"][0]["query"], self.CPU)


# ---- the metrics app -----------------------------------------------------------------------


def parse_exposition(text: str) -> dict[tuple[str, frozenset], float]:
    """{(metric name, labels): value} of a text exposition, checking each line's shape."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, value = line.rsplit(" ", 1)
        name, _, labels = name_labels.partition("{")
        pairs = frozenset()
        if labels:
            assert labels.endswith("}"), line
            pairs = frozenset(tuple(p.split("=", 1)) for p in labels[:-1].split(","))
            assert all(v.startswith('"') and v.endswith('"') for _, v in pairs), line
            pairs = frozenset((k, v[1:-1]) for k, v in pairs)
        samples[(name, pairs)] = float(value)
    return samples


class MetricsAppTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.app = standin("metrics_app.py", "--revision", "blue=0.0,50", "--revision", "green=0.5,400", "--rps", "200")

    @classmethod
    def tearDownClass(cls):
        cls.app.stop()

    def scrape(self):
        status, headers, body = request(self.app.url + "/metrics")
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "text/plain; version=0.0.4; charset=utf-8")
        return parse_exposition(body.decode())

    def test_exposition_and_counts_move(self):
        time.sleep(0.3)
        first = self.scrape()
        blue_ok = first[("http_requests_total", frozenset({("revision", "blue"), ("code", "200")}))]
        self.assertGreater(blue_ok, 0)
        self.assertEqual(first[("http_requests_total", frozenset({("revision", "blue"), ("code", "500")}))], 0)
        for rev in ("blue", "green"):
            buckets = [(k, v) for k, v in first.items()
                       if k[0] == "http_request_duration_seconds_bucket" and ("revision", rev) in k[1]]
            les = [dict(k[1])["le"] for k, _ in buckets]
            self.assertEqual(les, ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"])
            counts = [v for _, v in buckets]
            self.assertEqual(counts, sorted(counts), "cumulative buckets")
            total = first[("http_request_duration_seconds_count", frozenset({("revision", rev)}))]
            self.assertEqual(counts[-1], total)
            self.assertGreater(first[("http_request_duration_seconds_sum", frozenset({("revision", rev)}))], 0)
        time.sleep(0.3)
        second = self.scrape()
        self.assertGreater(second[("http_requests_total", frozenset({("revision", "blue"), ("code", "200")}))], blue_ok)
        self.assertGreater(second[("http_requests_total", frozenset({("revision", "green"), ("code", "500")}))], 0)

    def test_control_changes_and_adds_revisions(self):
        status, _, body = request(self.app.url + "/control", "POST", json.dumps({"revision": "green", "errorRate": 1.0}).encode())
        self.assertEqual(status, 200)
        self.assertEqual([r["errorRate"] for r in json.loads(body) if r["revision"] == "green"], [1.0])
        before = self.scrape()
        time.sleep(0.3)
        after = self.scrape()
        key = lambda code: ("http_requests_total", frozenset({("revision", "green"), ("code", code)}))  # noqa: E731
        self.assertGreater(after[key("500")], before[key("500")])
        self.assertEqual(after[key("200")], before[key("200")])
        request(self.app.url + "/control", "POST", json.dumps({"revision": "green", "errorRate": 0.5}).encode())

        status, _, body = request(self.app.url + "/control", "POST",
                                  json.dumps({"revision": "canary", "errorRate": 0.1, "latencyMs": 30}).encode())
        self.assertIn("canary", [r["revision"] for r in json.loads(body)])
        time.sleep(0.2)
        self.assertIn(("http_requests_total", frozenset({("revision", "canary"), ("code", "200")})), self.scrape())
        self.assertEqual(request(self.app.url + "/control", "POST", b'{"errorRate": 2}')[0], 400)
        self.assertEqual(request(self.app.url + "/")[::2], (200, b"ok"))


# ---- Prometheus, end to end ----------------------------------------------------------------


@unittest.skipUnless(PROMETHEUS, "no prometheus binary")
class PrometheusEndToEndTests(unittest.TestCase):
    def through_the_gate(self, prom: Server, query: str):
        """The same query, signed, through the SigV4 gate in front of this Prometheus."""
        gate = standin("sigv4_gate.py", "--upstream", prom.url, "--region", "us-west-2", "--service", "aps",
                       "--credential", "AKIDTEST:secret", "--strip-prefix", "^/workspaces/[^/]+")
        try:
            end = time.time()
            body = urllib.parse.urlencode({"query": query, "start": end - 10, "end": end, "step": "1s"}).encode()
            url = gate.url + "/workspaces/ws-1/api/v1/query_range"
            req = AWSRequest(method="POST", url=url, data=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
            SigV4Auth(Credentials("AKIDTEST", "secret"), "aps", "us-west-2").add_auth(req)
            status, headers, answer = request(url, "POST", body, dict(req.headers.items()))
            self.assertEqual(status, 200, answer)
            self.assertEqual(headers["content-type"], "application/json")
            self.assertEqual(json.loads(answer)["data"]["resultType"], "matrix")
            self.assertTrue(json.loads(answer)["data"]["result"])
        finally:
            gate.stop()

    def test_query_range_over_scraped_metrics(self):
        app = standin("metrics_app.py", "--revision", "blue=0.0,50", "--revision", "green=0.2,300", "--rps", "40")
        data_dir = tempfile.mkdtemp(prefix="prometheus-")
        try:
            prom = standin("prometheus_server.py", "--target", f"127.0.0.1:{app.port}", "--data-dir", data_dir,
                           "--scrape-interval", "1s", timeout=30)
            try:
                deadline = time.monotonic() + 30
                while request(prom.url + "/-/ready")[0] != 200:  # 503 while the TSDB opens
                    self.assertLess(time.monotonic(), deadline, "Prometheus not ready after 30 s")
                    time.sleep(0.2)
                query = 'sum(rate(http_requests_total{revision="green",code="500"}[5s]))'
                while True:
                    end = time.time()
                    status, _, body = request(prom.url + "/api/v1/query_range", "POST", urllib.parse.urlencode(
                        {"query": query, "start": end - 10, "end": end, "step": "1s"}).encode(),
                        {"Content-Type": "application/x-www-form-urlencoded"})
                    self.assertEqual(status, 200, body)
                    answer = json.loads(body)
                    self.assertEqual(answer["data"]["resultType"], "matrix")
                    if answer["data"]["result"] and answer["data"]["result"][0]["values"]:
                        break
                    self.assertLess(time.monotonic(), deadline, "no data after 30 s of scraping")
                    time.sleep(0.5)
                values = [float(v) for _, v in answer["data"]["result"][0]["values"]]
                self.assertGreater(max(values), 0)
                config = Path(data_dir, "prometheus.yml").read_text()
                self.assertIn(f"127.0.0.1:{app.port}", config)
                if boto3 is not None:
                    self.through_the_gate(prom, query)
            finally:
                self.assertEqual(prom.stop(), 0, "Prometheus stops cleanly on SIGTERM")
        finally:
            app.stop()
            shutil.rmtree(data_dir, ignore_errors=True)


class ServerLifecycleTests(unittest.TestCase):
    def test_sigterm_exits_cleanly(self):
        for script, args in (("metrics_app.py", ["--revision", "a=0,10"]),
                             ("datadog.py", ["--api-key", "k", "--app-key", "k", "--data", os.devnull])):
            with self.subTest(script=script):
                self.assertEqual(standin(script, *args).stop(), 0)

    def test_prometheus_server_without_a_binary_exits_3(self):
        with tempfile.TemporaryDirectory() as d:
            r = subprocess.run([PY, str(HERE / "prometheus_server.py"), "--port", "1", "--target", "127.0.0.1:2",
                                "--data-dir", d, "--binary", "/nonexistent/prometheus"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 3)
        self.assertIn("no prometheus binary", r.stderr)


if __name__ == "__main__":
    unittest.main()
