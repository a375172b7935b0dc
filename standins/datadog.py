"""Datadog's v2 metrics query API ("Query timeseries data across multiple products",
POST /api/v2/query/timeseries) in the shapes Datadog documents, with canned data.

    python standins/datadog.py --port 4590 --api-key K --app-key K [--unscoped-app-key K] \\
        --data FILE [--log FILE] [--throttle-first N] [--reset SECONDS] [--verbose]

Request (TimeseriesFormulaQueryRequest):

    POST /api/v2/query/timeseries
    DD-API-KEY: ...
    DD-APPLICATION-KEY: ...
    {"data": {"type": "timeseries_request", "attributes": {
        "from": <ms>, "to": <ms>, "interval": <ms, optional>,
        "queries": [{"data_source": "metrics", "query": "sum:trace.http.request.errors{service:web}.as_count()", "name": "a"}],
        "formulas": [{"formula": "a"}]}}}

Answer 200 (TimeseriesResponse):

    {"data": {"id": "0", "type": "timeseries_response", "attributes": {
        "series": [{"group_tags": [], "query_index": 0, "unit": [{"family": "percentage", "name": "percent", ...}, null]}],
        "times": [<ms>, ...],
        "values": [[<number or null>, ...], ...]}}}

One series per formula (`query_index` is the formula's index), or per query when there are
no formulas. `times` is shared by all series; a null in a series' values is a missing point
(a partial series). Nothing matching answers 200 with empty `series`, `times` and `values`.

Data: the --data JSON file, read again on every request so that a test can change it, maps
a query string to `{"values": [v or null, ...], "unit": "percent"}` (unit optional): one value
per `interval` step (60 s when the request gives none), the last value at the latest step at
or before `to`, earlier values a step earlier each; only steps within [from, to] are
answered. A query that is not in the file has no data.

Formulas are evaluated per timestamp over the named queries: numbers, + - * /, unary minus
and parentheses; a null operand or a division by zero gives null. A formula naming a query
without data gives no series, as a query without data does.

Errors, in Datadog's APIErrorResponse shape `{"errors": [...]}`:

* 403 `{"errors":["Forbidden"]}`: DD-API-KEY or DD-APPLICATION-KEY missing or not a key;
* 403 `{"errors":["Forbidden","Failed permission authorization checks"]}`: the
  --unscoped-app-key, a valid key whose scopes lack `timeseries_query`;
* 429 `{"errors":["Too many requests"]}` to the first --throttle-first authenticated
  requests, with `X-RateLimit-Remaining: 0` and `X-RateLimit-Reset: <--reset>`;
* 400 `{"errors":["Error parsing query: ..."]}` for a query that is not metric query syntax
  (`<aggregator>:<metric>{<scope>}[ by {<tags>}][.<function>(...)...]`), and 400
  `{"errors":["Bad Request: ..."]}` for a body that is not a timeseries request.

Every answer to an authenticated request carries Datadog's rate limit headers
(`X-RateLimit-Limit`, `-Period`, `-Remaining`, `-Reset`, `-Name`); the stand-in's limit is
100 requests per 10-second period, counted for real, though only --throttle-first refuses.

`--log FILE` appends one JSON line per request: method, path, status, whether each key
header was present (never the keys), and the request body. `GET /api/v1/validate` checks
the API key as Datadog does.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import re
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Handler, serve  # noqa: E402

RATE_LIMIT = 100
RATE_PERIOD = 10
RATE_NAME = "timeseries_query"
DEFAULT_INTERVAL_MS = 60_000

# `<aggregator>:<metric>{<scope>}`, then optionally ` by {<tags>}` and `.function(args)`s
# (`.as_count()`, `.rollup(sum, 60)`, `.fill(zero)`). Percentile aggregators are for
# distributions (`p95:`).
QUERY_SYNTAX = re.compile(
    r"^\s*(?:avg|sum|min|max|count|p\d{1,2}(?:\.\d+)?)\s*:\s*[A-Za-z][A-Za-z0-9_.]*\s*\{[^{}]*\}"
    r"(?:\s*by\s*\{[^{}]*\})?"
    r"(?:\s*\.\s*[a-z_]+\s*\([^()]*\))*\s*$"
)

# Datadog's unit objects for the units a data file is likely to name.
UNITS = {
    "percent": {"family": "percentage", "name": "percent", "plural": "percent", "scale_factor": 1.0, "short_name": "%"},
    "fraction": {"family": "percentage", "name": "fraction", "plural": "fractions", "scale_factor": 100.0, "short_name": None},
    "millisecond": {"family": "time", "name": "millisecond", "plural": "milliseconds", "scale_factor": 0.001, "short_name": "ms"},
    "second": {"family": "time", "name": "second", "plural": "seconds", "scale_factor": 1.0, "short_name": "s"},
    "request": {"family": "network", "name": "request", "plural": "requests", "scale_factor": 1.0, "short_name": "req"},
    "error": {"family": "general", "name": "error", "plural": "errors", "scale_factor": 1.0, "short_name": None},
    "hit": {"family": "general", "name": "hit", "plural": "hits", "scale_factor": 1.0, "short_name": None},
    "byte": {"family": "bytes", "name": "byte", "plural": "bytes", "scale_factor": 1.0, "short_name": "B"},
}


def unit_object(name: str) -> dict:
    return UNITS.get(name) or {"family": "general", "name": name, "plural": f"{name}s", "scale_factor": 1.0, "short_name": None}


class ApiError(Exception):
    def __init__(self, status: int, errors: list[str]):
        super().__init__(errors[0])
        self.status = status
        self.errors = errors


def bad_request(detail: str) -> ApiError:
    return ApiError(400, [f"Bad Request: {detail}"])


# ---- formulas ----------------------------------------------------------------------------

_ALLOWED_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.Div)
_ALLOWED_UNARY = (ast.UAdd, ast.USub)


def parse_formula(text: str, names: set[str]) -> ast.Expression:
    """The formula's syntax tree, or a 400 when it is more than arithmetic over query names."""
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as e:
        raise ApiError(400, [f"Error parsing formula: {text!r}: {e.msg}"]) from None
    for node in ast.walk(tree):
        if isinstance(node, (ast.Expression, ast.Load)) or isinstance(node, _ALLOWED_BINOPS + _ALLOWED_UNARY):
            continue
        if isinstance(node, ast.BinOp) and isinstance(node.op, _ALLOWED_BINOPS):
            continue
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, _ALLOWED_UNARY):
            continue
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            continue
        if isinstance(node, ast.Name):
            if node.id not in names:
                raise ApiError(400, [f"Error parsing formula: {text!r}: no query named {node.id!r}"])
            continue
        raise ApiError(400, [f"Error parsing formula: {text!r}: the stand-in evaluates only numbers, query names, "
                             "+ - * / and parentheses"])
    return tree


def evaluate(node, env: dict[str, float | None]) -> float | None:
    if isinstance(node, ast.Expression):
        return evaluate(node.body, env)
    if isinstance(node, ast.Constant):
        return float(node.value)
    if isinstance(node, ast.Name):
        return env.get(node.id)
    if isinstance(node, ast.UnaryOp):
        v = evaluate(node.operand, env)
        return None if v is None else (-v if isinstance(node.op, ast.USub) else v)
    left, right = evaluate(node.left, env), evaluate(node.right, env)
    if left is None or right is None:
        return None
    op = node.op
    if isinstance(op, ast.Add):
        result = left + right
    elif isinstance(op, ast.Sub):
        result = left - right
    elif isinstance(op, ast.Mult):
        result = left * right
    else:
        if right == 0:
            return None
        result = left / right
    return result if math.isfinite(result) else None


# ---- the query -----------------------------------------------------------------------------


def integer(attrs: dict, key: str, required: bool = True) -> int | None:
    value = attrs.get(key)
    if value is None:
        if required:
            raise bad_request(f"'{key}' is required")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value != int(value):
        raise bad_request(f"'{key}' must be an integer (milliseconds since the epoch for from and to)")
    return int(value)


def run_query(request: dict, data: dict) -> dict:
    payload = request.get("data") if isinstance(request, dict) else None
    if not isinstance(payload, dict):
        raise bad_request("the body must be {\"data\": {\"type\": \"timeseries_request\", \"attributes\": {...}}}")
    if payload.get("type") != "timeseries_request":
        raise bad_request(f"data.type must be 'timeseries_request', not {payload.get('type')!r}")
    attrs = payload.get("attributes")
    if not isinstance(attrs, dict):
        raise bad_request("data.attributes is required")
    start, end = integer(attrs, "from"), integer(attrs, "to")
    if start > end:
        raise bad_request("'from' must not be later than 'to'")
    interval = integer(attrs, "interval", required=False) or DEFAULT_INTERVAL_MS
    if interval <= 0:
        raise bad_request("'interval' must be positive")
    queries = attrs.get("queries")
    if not isinstance(queries, list) or not queries:
        raise bad_request("'queries' must be a non-empty list")

    names: dict[str, int] = {}
    for i, q in enumerate(queries):
        if not isinstance(q, dict):
            raise bad_request(f"queries[{i}] must be an object")
        if q.get("data_source") != "metrics":
            raise bad_request(f"queries[{i}].data_source {q.get('data_source')!r} is not served by the stand-in (only 'metrics')")
        text = q.get("query")
        if not isinstance(text, str) or not text.strip():
            raise bad_request(f"queries[{i}].query is required")
        if not QUERY_SYNTAX.match(text):
            raise ApiError(400, [f"Error parsing query: unable to parse {text}: expected <aggregator>:<metric>{{<scope>}}"])
        name = q.get("name")
        if name is not None:
            if not isinstance(name, str) or not name.isidentifier():
                raise bad_request(f"queries[{i}].name must be an identifier")
            names[name] = i

    formulas = attrs.get("formulas") or []
    if not isinstance(formulas, list):
        raise bad_request("'formulas' must be a list")
    trees = []
    for i, f in enumerate(formulas):
        if not isinstance(f, dict) or not isinstance(f.get("formula"), str):
            raise bad_request(f"formulas[{i}].formula is required")
        trees.append(parse_formula(f["formula"], set(names)))

    # Each query's points: {time (ms): value or None}, with its unit.
    last_step = end - end % interval
    points: list[dict[int, float | None] | None] = []
    units: list[str | None] = []
    for q in queries:
        entry = data.get(q["query"])
        if entry is None:
            entry = data.get(q["query"].strip())
        if not isinstance(entry, dict) or not isinstance(entry.get("values"), list):
            points.append(None)
            units.append(None)
            continue
        values = entry["values"]
        series = {}
        for k, v in enumerate(values):
            t = last_step - (len(values) - 1 - k) * interval
            if start <= t <= end:
                series[t] = None if v is None else float(v)
        points.append(series or None)
        units.append(entry.get("unit"))

    # (query_index, unit name, {time: value}) of every series answered.
    results: list[tuple[int, str | None, dict]] = []
    if trees:
        for i, tree in enumerate(trees):
            used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
            if any(points[names[n]] is None for n in used):
                continue
            stamps = sorted(set().union(*(points[names[n]] for n in used))) if used else sorted(
                set().union(*(p for p in points if p)))
            if not stamps:
                continue
            series = {t: evaluate(tree, {n: points[names[n]].get(t) for n in used}) for t in stamps}
            unit = units[names[tree.body.id]] if isinstance(tree.body, ast.Name) else None
            results.append((i, unit, series))
    else:
        for i, p in enumerate(points):
            if p is not None:
                results.append((i, units[i], p))

    times = sorted(set().union(*(s for _, _, s in results))) if results else []
    return {
        "data": {
            "id": "0",
            "type": "timeseries_response",
            "attributes": {
                "series": [
                    {"group_tags": [], "query_index": i, "unit": [unit_object(u), None] if u else None}
                    for i, u, _ in results
                ],
                "times": times,
                "values": [[s.get(t) for t in times] for _, _, s in results],
            },
        }
    }


# ---- the server ----------------------------------------------------------------------------


class Datadog:
    def __init__(self, args):
        self.api_key = args.api_key
        self.app_key = args.app_key
        self.unscoped_app_key = args.unscoped_app_key
        self.data_path = Path(args.data)
        self.log_path = args.log
        self.throttle_left = args.throttle_first
        self.reset = args.reset
        self.lock = threading.Lock()
        self.window_start = 0
        self.window_count = 0

    def rate_headers(self, throttled: bool) -> dict:
        now = time.time()
        window = int(now // RATE_PERIOD) * RATE_PERIOD
        with self.lock:
            if window != self.window_start:
                self.window_start, self.window_count = window, 0
            self.window_count += 1
            remaining = 0 if throttled else max(0, RATE_LIMIT - self.window_count)
        reset = self.reset if throttled else max(1, math.ceil(window + RATE_PERIOD - now))
        return {
            "X-RateLimit-Limit": RATE_LIMIT,
            "X-RateLimit-Period": RATE_PERIOD,
            "X-RateLimit-Remaining": remaining,
            "X-RateLimit-Reset": reset,
            "X-RateLimit-Name": RATE_NAME,
        }

    def take_throttle(self) -> bool:
        with self.lock:
            if self.throttle_left > 0:
                self.throttle_left -= 1
                return True
            return False

    def load_data(self) -> dict:
        try:
            data = json.loads(self.data_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ApiError(500, [f"the stand-in's data file {self.data_path} is unreadable: {e}"]) from None
        if not isinstance(data, dict):
            raise ApiError(500, [f"the stand-in's data file {self.data_path} must map query strings to data"])
        return data

    def log(self, record: dict) -> None:
        if not self.log_path:
            return
        with self.lock, open(self.log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


def make_handler(dd: Datadog):
    class DatadogHandler(Handler):
        def respond(self, status: int, obj, body: bytes, headers: dict | None = None):
            raw = body.decode("utf-8", "replace")
            try:
                logged = json.loads(raw) if raw else None
            except ValueError:
                logged = raw
            dd.log({
                "time": time.time(),
                "method": self.command,
                "path": self.path,
                "status": status,
                "apiKeyPresent": bool(self.headers.get("DD-API-KEY")),
                "appKeyPresent": bool(self.headers.get("DD-APPLICATION-KEY")),
                "body": logged,
            })
            self.send_json(status, obj, headers)

        def do_GET(self):
            if urlsplit(self.path).path == "/api/v1/validate":
                if self.headers.get("DD-API-KEY") == dd.api_key:
                    self.respond(200, {"valid": True}, b"")
                else:
                    self.respond(403, {"errors": ["Forbidden"]}, b"")
                return
            self.respond(404, {"errors": ["Not found"]}, b"")

        def do_POST(self):
            body = self.body_or_refusal()
            if body is None:
                return
            if urlsplit(self.path).path != "/api/v2/query/timeseries":
                self.respond(404, {"errors": ["Not found"]}, body)
                return
            app_key = self.headers.get("DD-APPLICATION-KEY")
            if self.headers.get("DD-API-KEY") != dd.api_key or not app_key or app_key not in (dd.app_key, dd.unscoped_app_key):
                self.respond(403, {"errors": ["Forbidden"]}, body)
                return
            if app_key != dd.app_key:  # the unscoped key: valid, but without timeseries_query
                self.respond(403, {"errors": ["Forbidden", "Failed permission authorization checks"]}, body,
                             dd.rate_headers(False))
                return
            if dd.take_throttle():
                self.respond(429, {"errors": ["Too many requests"]}, body, dd.rate_headers(True))
                return
            try:
                try:
                    request = json.loads(body)
                except ValueError as e:
                    raise bad_request(f"the body is not JSON: {e}") from None
                answer = run_query(request, dd.load_data())
            except ApiError as e:
                self.respond(e.status, {"errors": e.errors}, body, dd.rate_headers(False))
                return
            self.respond(200, answer, body, dd.rate_headers(False))

    return DatadogHandler


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--api-key", required=True)
    p.add_argument("--app-key", required=True)
    p.add_argument("--unscoped-app-key", help="a valid application key lacking the timeseries_query scope")
    p.add_argument("--data", required=True, help="JSON file: query string -> {\"values\": [...], \"unit\": ...}")
    p.add_argument("--log", help="append one JSON line per request to this file")
    p.add_argument("--throttle-first", type=int, default=0, metavar="N", help="answer 429 to the first N authenticated requests")
    p.add_argument("--reset", type=int, default=2, metavar="SECONDS", help="X-RateLimit-Reset of a 429 (default 2)")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    return serve(make_handler(Datadog(args)), args.port, "datadog", args.verbose)


if __name__ == "__main__":
    sys.exit(main())
