"""A local Lambda Runtime API for one function process, and the environment Lambda gives
that process: what the benchmarks in this directory share (`coldstart.py`, `rollout.py`).

`RuntimeApi` is an HTTP/1.1 keep-alive server on 127.0.0.1 and a free port that hands out
the events it was given, in order, each with a new request id, `Lambda-Runtime-Deadline-Ms`
(milliseconds since the epoch) `timeout_ms` ahead, an invoked function ARN and a trace id;
it records the answers (`POST .../invocation/{id}/response`) and errors, and holds the
`/next` that follows the last event open (`parked`) until it is stopped.
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

API = "/2018-06-01/runtime"
ACCOUNT = "123456789012"
REGION = "us-west-2"
HOOK_STATUSES = {"SUCCEEDED", "FAILED", "IN_PROGRESS"}
ELF_MACHINES = {0x3E: "x86_64", 0xB7: "aarch64"}


class RunFailed(Exception):
    pass


def read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """The request body, sized by `Content-Length` or chunked."""
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    return handler.rfile.read(int(handler.headers.get("Content-Length", "0")))


class RuntimeApi:
    """One Runtime API: hands out `events` in order, then holds the next `/next` open."""

    def __init__(self, function: str, events: list[bytes], timeout_ms: int):
        self.function = function
        self.timeout_ms = timeout_ms
        self.pending = [(self._request_id(), body) for body in events]
        self.handed_out: list[str] = []
        # When each event was handed out (time.perf_counter_ns), in the order of handed_out.
        self.handed_at: list[int] = []
        self.lock = threading.Lock()
        self.next_arrivals: list[int] = []
        self.responses: list[tuple[str, int, bytes]] = []
        self.errors: list[str] = []
        self.parked = threading.Event()
        self.released = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @staticmethod
    def _request_id() -> str:
        h = secrets.token_hex(16)
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Each reply leaves in one write with Nagle off: a reply split into a header
            # segment and a body segment can wait out the client's delayed ACK (40 ms).
            disable_nagle_algorithm = True
            wbufsize = 1 << 16

            def log_message(self, format, *args):  # noqa: A002
                pass

            def _reply(self, status: int, body: bytes, headers: dict | None = None):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()

            def _body(self) -> bytes:
                return read_body(self)

            def do_GET(self):
                arrived = time.perf_counter_ns()
                if self.path != f"{API}/invocation/next":
                    self._reply(404, b'{"errorType":"NotFound"}')
                    return
                with api.lock:
                    api.next_arrivals.append(arrived)
                    item = api.pending.pop(0) if api.pending else None
                    if item:
                        api.handed_out.append(item[0])
                        api.handed_at.append(arrived)
                if item is None:
                    api.parked.set()
                    api.released.wait()
                    self.close_connection = True
                    return
                request_id, body = item
                now_ms = int(time.time() * 1000)
                trace = f"Root=1-{now_ms // 1000:08x}-{secrets.token_hex(12)};Parent={secrets.token_hex(8)};Sampled=0"
                self._reply(
                    200,
                    body,
                    {
                        "Lambda-Runtime-Aws-Request-Id": request_id,
                        "Lambda-Runtime-Deadline-Ms": str(now_ms + api.timeout_ms),
                        "Lambda-Runtime-Invoked-Function-Arn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{api.function}",
                        "Lambda-Runtime-Trace-Id": trace,
                    },
                )

            def do_POST(self):
                body = self._body()
                received = time.perf_counter_ns()
                parts = self.path.removeprefix(API).strip("/").split("/")
                if parts == ["init", "error"]:
                    with api.lock:
                        api.errors.append(f"init error: {body.decode(errors='replace')}")
                    self._reply(202, b'{"status":"OK"}')
                elif len(parts) == 3 and parts[0] == "invocation" and parts[2] == "response":
                    with api.lock:
                        api.responses.append((parts[1], received, body))
                    self._reply(202, b'{"status":"OK"}')
                elif len(parts) == 3 and parts[0] == "invocation" and parts[2] == "error":
                    with api.lock:
                        api.errors.append(f"invocation {parts[1]} error: {body.decode(errors='replace')}")
                    self._reply(202, b'{"status":"OK"}')
                else:
                    self._reply(404, b'{"errorType":"NotFound"}')

        return Handler


def lambda_env(function: str, api: str, task_root: Path, log_format: str, extra: dict[str, str]) -> dict[str, str]:
    env = {
        "AWS_LAMBDA_RUNTIME_API": api,
        "AWS_LAMBDA_FUNCTION_NAME": function,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/01/01/[$LATEST]00000000000000000000000000000000",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "AKIDBENCHMARK",
        "AWS_SECRET_ACCESS_KEY": "benchmark",
        "AWS_SESSION_TOKEN": "benchmark",
        "_HANDLER": "bootstrap",
        "LAMBDA_TASK_ROOT": str(task_root),
        "LAMBDA_RUNTIME_DIR": str(task_root),
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "PATH": "/usr/local/bin:/usr/bin:/bin",
    }
    if log_format == "json":
        env["AWS_LAMBDA_LOG_FORMAT"] = "JSON"
    env.update(extra)
    return env


def proc_status(pid: int) -> dict[str, int]:
    """Memory lines of /proc/PID/status, in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem", "Threads"):
                out[key] = int(value.split()[0])
    return out


def check_answer(body: bytes) -> str:
    try:
        answer = json.loads(body)
    except ValueError as e:
        raise RunFailed(f"the answer is not JSON ({e}): {body[:300]!r}") from None
    if not isinstance(answer, dict) or answer.get("hookStatus") not in HOOK_STATUSES:
        raise RunFailed(f"the answer is not a {{\"hookStatus\": ...}} object: {body[:300]!r}")
    return answer["hookStatus"]


def elf_machine(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(20)
    if head[:4] != b"\x7fELF":
        return "not ELF"
    return ELF_MACHINES.get(int.from_bytes(head[18:20], "little"), f"e_machine {head[18:20].hex()}")


def machine_facts() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "kernel": platform.release(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "loadavg_start": os.getloadavg(),
    }
