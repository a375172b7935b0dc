"""CloudWatch in Smithy RPC v2 CBOR, the protocol aws-sdk-cloudwatch for Rust speaks since
1.100, in front of a moto server that keeps the state (moto speaks only awsQuery).

    python standins/cloudwatch_cbor.py --upstream http://127.0.0.1:5000 --port 4580 [--verbose]

Requests, as the SDK sends them:

    POST /service/GraniteServiceVersion20100801/operation/<Operation>
    smithy-protocol: rpc-v2-cbor
    Content-Type: application/cbor
    Accept: application/cbor
    x-amzn-query-mode: true
    <a CBOR map of the operation's input members; timestamps are tag 1>

The input map is handed to boto3's CloudWatch client (member names are the same) pointed at
the upstream, in the region of the request's SigV4 credential scope (us-west-2 without
one). Signatures are not checked. boto3's answer, without ResponseMetadata and None values,
goes back as a CBOR map with timestamps as tag 1 + float64 epoch seconds, with
`smithy-protocol: rpc-v2-cbor`, `Content-Type: application/cbor` and `x-amzn-requestid`
(moto's request id). An operation without output (PutMetricData, SetAlarmState, ...)
answers 200 with no body and no Content-Type, as the protocol requires.

Errors are shaped as CloudWatch shapes them in this protocol (the service is
awsQueryCompatible): the HTTP status of the error, a CBOR body
`{"__type": "com.amazonaws.cloudwatch#<error shape>", "message": ...}` (the shape's
absolute id, as the protocol requires: `InvalidParameterValueException` for the query code
`InvalidParameterValue`, `ResourceNotFound` for `ResourceNotFound`; the code itself when
the model has no such shape) and the header `x-amzn-query-error: <query error
code>;Sender` (`Receiver` for server faults). The Rust SDK takes the error code from that
header when present, `__type` less its namespace otherwise, and dispatches on query error
codes. botocore's parameter validation failures are 400 `ValidationError`; an unknown
operation or path is 404 `UnknownOperationException`.

`GET /calls` answers the number of calls received per operation as JSON, for tests.
"""

from __future__ import annotations

import argparse
import re
import sys
import threading
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import boto3  # noqa: E402
import botocore  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError  # noqa: E402

import cbor  # noqa: E402
from common import Handler, serve  # noqa: E402

SERVICE = "GraniteServiceVersion20100801"
NAMESPACE = "com.amazonaws.cloudwatch"
# The Smithy spec lets a server accept the service's absolute shape id, `.` for `#`.
SERVICE_NAMES = {SERVICE, f"{NAMESPACE}.{SERVICE}"}
# `{prefix?}/service/{serviceName}/operation/{operationName}`: only the last four segments route.
PATH = re.compile(r"^(?:/[^?]*)?/service/([^/?]+)/operation/([^/?]+)$")
CREDENTIAL = re.compile(r"Credential=[^/,\s]+/[0-9]{8}/([^/,\s]+)/[^/,\s]+/aws4_request")
CBOR_HEADERS = {"smithy-protocol": "rpc-v2-cbor"}


def without_none(value):
    """The value with every None member dropped, recursively (the protocol omits nulls)."""
    if isinstance(value, dict):
        return {k: without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_none(v) for v in value if v is not None]
    return value


class Front:
    def __init__(self, upstream: str):
        self.upstream = upstream
        self.lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.clients: dict[str, object] = {}
        model = botocore.session.get_session().get_service_model("cloudwatch")
        self.operations = set(model.operation_names)
        # Operations without output (PutMetricData, SetAlarmState, ...) answer no body at all.
        self.no_output = {op for op in self.operations if model.operation_model(op).output_shape is None}
        # Query error code -> (error shape name, server fault), from the service model: the
        # CBOR `__type` names the shape, `x-amzn-query-error` the code.
        self.error_shapes: dict[str, tuple[str, bool]] = {}
        for name in model.shape_names:
            shape = model.shape_for(name)
            error = shape.metadata.get("error") if shape.metadata.get("exception") else None
            if error:
                code = error.get("code", name)
                # Two shapes share `ResourceNotFound`; the one of that very name is the general one.
                if code not in self.error_shapes or name == code:
                    self.error_shapes[code] = (name, not error.get("senderFault", False))

    def client(self, region: str):
        with self.lock:
            c = self.clients.get(region)
            if c is None:
                c = boto3.session.Session().client(
                    "cloudwatch",
                    endpoint_url=self.upstream,
                    region_name=region,
                    aws_access_key_id="AKIDTEST",
                    aws_secret_access_key="secret",
                    # One attempt: a throttling or server error upstream is the answer.
                    config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
                )
                self.clients[region] = c
            return c

    def error(self, status: int, code: str, message: str, server_fault: bool | None = None):
        shape, fault = self.error_shapes.get(code, (code, status >= 500))
        if server_fault is not None:
            fault = server_fault
        headers = {"x-amzn-query-error": f"{code};{'Receiver' if fault else 'Sender'}"}
        return status, {"__type": f"{NAMESPACE}#{shape}", "message": message}, headers

    def call(self, operation: str, body: bytes, auth: str):
        """(status, CBOR-able answer, extra headers, request id) of one operation."""
        if operation not in self.operations:
            return (*self.error(404, "UnknownOperationException", f"Unknown operation: {operation}"), None)
        if body:
            try:
                params = cbor.loads(body)
            except ValueError as e:
                return (*self.error(400, "SerializationException", f"malformed CBOR request body: {e}"), None)
            if not isinstance(params, dict):
                return (*self.error(400, "SerializationException", "the request body must be a CBOR map"), None)
        else:
            params = {}
        params = without_none(params)
        m = CREDENTIAL.search(auth)
        region = m.group(1) if m else "us-west-2"
        client = self.client(region)
        try:
            answer = getattr(client, botocore.xform_name(operation))(**params)
        except ParamValidationError as e:
            return (*self.error(400, "ValidationError", str(e).replace("\n", " ")), None)
        except ClientError as e:
            err = e.response.get("Error", {})
            meta = e.response.get("ResponseMetadata", {})
            status = meta.get("HTTPStatusCode") or 400
            code = err.get("Code") or "InternalFailure"
            fault = None
            if err.get("Type") in ("Sender", "Receiver"):
                fault = err["Type"] == "Receiver"
            return (*self.error(status, code, err.get("Message") or code, fault), meta.get("RequestId"))
        except BotoCoreError as e:
            return (*self.error(502, "InternalFailure", f"the CloudWatch upstream failed: {e}", True), None)
        meta = answer.pop("ResponseMetadata", {})
        return 200, None if operation in self.no_output else without_none(answer), {}, meta.get("RequestId")


def make_handler(front: Front):
    class CloudWatchHandler(Handler):
        def do_GET(self):
            if urlsplit(self.path).path == "/calls":
                with front.lock:
                    self.send_json(200, dict(front.calls))
                return
            self.reject_path()

        def do_POST(self):
            body = self.body_or_refusal()
            if body is None:
                return
            m = PATH.match(urlsplit(self.path).path)
            if not m or m.group(1) not in SERVICE_NAMES:
                self.reject_path()
                return
            operation = m.group(2)
            with front.lock:
                front.calls[operation] += 1
            status, answer, headers, request_id = front.call(operation, body, self.headers.get("Authorization", ""))
            self.answer(status, answer, headers, request_id)

        def reject_path(self):
            self.answer(*front.error(404, "UnknownOperationException", f"no operation at {self.command} {self.path}"), None)

        def reject_other(self):
            if self.body_or_refusal() is not None:
                self.reject_path()

        def answer(self, status, answer, headers, request_id):
            """`answer` None: an operation without output, answered without a body or Content-Type."""
            headers = {**CBOR_HEADERS, **headers, "x-amzn-requestid": request_id or str(uuid.uuid4())}
            if answer is None:
                self.send_bytes(status, b"", None, headers)
            else:
                self.send_bytes(status, cbor.dumps(answer), "application/cbor", headers)

        do_PUT = do_DELETE = do_PATCH = reject_other

    return CloudWatchHandler


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--upstream", required=True, help="moto server URL, e.g. http://127.0.0.1:5000")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    front = Front(args.upstream.rstrip("/"))
    return serve(make_handler(front), args.port, "cloudwatch-cbor", args.verbose)


if __name__ == "__main__":
    sys.exit(main())
