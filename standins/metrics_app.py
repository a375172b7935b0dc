"""An application under deployment, as Prometheus sees it: per revision, a request counter by
status code and a latency histogram, driven by simulated traffic.

    python standins/metrics_app.py --port 8080 --revision blue=0.01,80 --revision green=0.2,300 \\
        [--rps 40] [--seed 1] [--verbose]

`--revision NAME=ERROR_RATE,LATENCY_MS`: NAME's requests fail (code 500) with probability
ERROR_RATE and take a log-normal time whose median is LATENCY_MS. A background thread
simulates --rps requests a second for every revision, each revision with its own
random.Random seeded from --seed and its name, so runs repeat.

    GET /metrics    Prometheus text exposition format 0.0.4:
                      http_requests_total{revision="NAME",code="200"|"500"}   counter
                      http_request_duration_seconds{revision="NAME"}          histogram
                        (_bucket{le=...} for 0.005 ... 10 and +Inf, _sum, _count)
    POST /control   {"revision": "green", "errorRate": 0.2, "latencyMs": 300}: changes a
                    revision, or adds one (errorRate 0 and latencyMs 50 unless given);
                    answers the state of every revision
    GET /control    the state of every revision
    GET /           200 "ok"
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Handler, serve  # noqa: E402

# Upper bounds, written as Go's client writes them (`le="1"`, not `le="1.0"`).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Spread of the log-normal latency: about 1 in 20 requests is 2.3 times the median or more.
LATENCY_SIGMA = 0.5
TICK = 0.1


def label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Revision:
    def __init__(self, name: str, error_rate: float, latency_ms: float, seed: int):
        self.name = name
        self.error_rate = error_rate
        self.latency_ms = latency_ms
        self.rng = random.Random(f"{seed}:{name}")
        self.ok = 0
        self.errors = 0
        self.bucket_counts = [0] * len(BUCKETS)
        self.total_seconds = 0.0
        self.simulated = 0  # requests simulated since the revision appeared
        self.since = time.monotonic()

    def request(self) -> None:
        if self.rng.random() < self.error_rate:
            self.errors += 1
        else:
            self.ok += 1
        seconds = self.rng.lognormvariate(math.log(self.latency_ms / 1000.0), LATENCY_SIGMA)
        self.total_seconds += seconds
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                self.bucket_counts[i] += 1

    def state(self) -> dict:
        return {"revision": self.name, "errorRate": self.error_rate, "latencyMs": self.latency_ms,
                "requests": self.ok + self.errors, "errors": self.errors}


class App:
    def __init__(self, revisions: list[tuple[str, float, float]], rps: float, seed: int):
        self.rps = rps
        self.seed = seed
        self.lock = threading.Lock()
        self.revisions: dict[str, Revision] = {}
        for name, error_rate, latency_ms in revisions:
            self.revisions[name] = Revision(name, error_rate, latency_ms, seed)
        self.stopped = threading.Event()

    def run(self) -> None:
        """Simulates traffic at --rps per revision, catching up after any late tick."""
        while not self.stopped.wait(TICK):
            now = time.monotonic()
            with self.lock:
                for rev in self.revisions.values():
                    due = int((now - rev.since) * self.rps)
                    for _ in range(due - rev.simulated):
                        rev.request()
                    rev.simulated = due

    def control(self, req: dict) -> None:
        name = req.get("revision")
        if not isinstance(name, str) or not name:
            raise ValueError("'revision' (a name) is required")
        error_rate = req.get("errorRate")
        latency_ms = req.get("latencyMs")
        if error_rate is not None and (isinstance(error_rate, bool) or not isinstance(error_rate, (int, float))
                                       or not 0 <= error_rate <= 1):
            raise ValueError("'errorRate' must be a number from 0 to 1")
        if latency_ms is not None and (isinstance(latency_ms, bool) or not isinstance(latency_ms, (int, float))
                                       or not 0 < latency_ms < 1e6):
            raise ValueError("'latencyMs' must be a positive number of milliseconds")
        with self.lock:
            rev = self.revisions.get(name)
            if rev is None:
                rev = self.revisions[name] = Revision(name, 0.0, 50.0, self.seed)
            if error_rate is not None:
                rev.error_rate = float(error_rate)
            if latency_ms is not None:
                rev.latency_ms = float(latency_ms)

    def state(self) -> list[dict]:
        with self.lock:
            return [r.state() for r in self.revisions.values()]

    def exposition(self) -> str:
        out = [
            "# HELP http_requests_total Requests served, by revision and status code.",
            "# TYPE http_requests_total counter",
        ]
        with self.lock:
            revs = list(self.revisions.values())
            for r in revs:
                n = label(r.name)
                out.append(f'http_requests_total{{revision="{n}",code="200"}} {r.ok}')
                out.append(f'http_requests_total{{revision="{n}",code="500"}} {r.errors}')
            out += [
                "# HELP http_request_duration_seconds Time to serve a request, by revision.",
                "# TYPE http_request_duration_seconds histogram",
            ]
            for r in revs:
                n = label(r.name)
                for bound, count in zip(BUCKETS, r.bucket_counts):
                    out.append(f'http_request_duration_seconds_bucket{{revision="{n}",le="{bound:g}"}} {count}')
                total = r.ok + r.errors
                out.append(f'http_request_duration_seconds_bucket{{revision="{n}",le="+Inf"}} {total}')
                out.append(f'http_request_duration_seconds_sum{{revision="{n}"}} {r.total_seconds!r}')
                out.append(f'http_request_duration_seconds_count{{revision="{n}"}} {total}')
        return "\n".join(out) + "\n"


def make_handler(app: App):
    class AppHandler(Handler):
        def do_GET(self):
            path = urlsplit(self.path).path
            if path == "/metrics":
                self.send_bytes(200, app.exposition().encode(), "text/plain; version=0.0.4; charset=utf-8")
            elif path == "/control":
                self.send_json(200, app.state())
            elif path == "/":
                self.send_bytes(200, b"ok", "text/plain; charset=utf-8")
            else:
                self.send_bytes(404, b"not found", "text/plain; charset=utf-8")

        do_HEAD = do_GET

        def do_POST(self):
            body = self.body_or_refusal()
            if body is None:
                return
            if urlsplit(self.path).path != "/control":
                self.send_bytes(404, b"not found", "text/plain; charset=utf-8")
                return
            try:
                req = json.loads(body or b"{}")
                if not isinstance(req, dict):
                    raise ValueError("the body must be a JSON object")
                app.control(req)
            except ValueError as e:
                self.send_json(400, {"error": str(e)})
                return
            self.send_json(200, app.state())

    return AppHandler


def revision_arg(text: str) -> tuple[str, float, float]:
    try:
        name, _, rest = text.partition("=")
        error_rate, latency_ms = (float(x) for x in rest.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NAME=ERROR_RATE,LATENCY_MS, not {text!r}") from None
    if not name or not 0 <= error_rate <= 1 or latency_ms <= 0:
        raise argparse.ArgumentTypeError(
            f"expected NAME=ERROR_RATE,LATENCY_MS with 0 <= ERROR_RATE <= 1 and LATENCY_MS > 0, not {text!r}")
    return name, error_rate, latency_ms


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--revision", type=revision_arg, action="append", default=[], metavar="NAME=ERROR_RATE,LATENCY_MS")
    p.add_argument("--rps", type=float, default=40.0, help="simulated requests a second, per revision (default 40)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    app = App(args.revision, args.rps, args.seed)
    threading.Thread(target=app.run, name="traffic", daemon=True).start()
    try:
        return serve(make_handler(app), args.port, "metrics-app", args.verbose)
    finally:
        app.stopped.set()


if __name__ == "__main__":
    sys.exit(main())
