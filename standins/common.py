"""What every stand-in server shares: a threaded HTTP/1.1 server on 127.0.0.1 that is quiet
unless asked, reads request bodies with a size bound, and stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# A request body larger than this is refused with 413 before it is read.
MAX_BODY = 1 << 20


class BodyTooLarge(Exception):
    pass


class BadRequest(Exception):
    pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # Tests and the bench open many connections at once; the default backlog of 5 would
    # drop some of them for a second.
    request_queue_size = 256
    verbose = False

    def handle_error(self, request, client_address):
        # A client hanging up mid-answer is routine for a test server; say so only when asked.
        if self.verbose:
            super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    """Base handler: keep-alive HTTP/1.1, an answer always carries Content-Length."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format, *args):  # noqa: A002
        if self.server.verbose:
            sys.stderr.write(f"{self.server.name} {self.address_string()} {format % args}\n")

    def read_body(self, limit: int = MAX_BODY) -> bytes:
        """The request body, sized by Content-Length or chunked; BodyTooLarge past `limit`."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks, size = [], 0
            while True:
                line = self.rfile.readline(1024)
                try:
                    n = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise BadRequest("malformed chunk size") from None
                if n == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                size += n
                if size > limit:
                    raise BodyTooLarge()
                chunks.append(self.rfile.read(n))
                self.rfile.readline(1024)
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            n = int(length)
        except ValueError:
            raise BadRequest("malformed Content-Length") from None
        if n < 0:
            raise BadRequest("negative Content-Length")
        if n > limit:
            raise BodyTooLarge()
        return self.rfile.read(n)

    def body_or_refusal(self) -> bytes | None:
        """The body, or None after answering 413/400 (and closing the connection, since
        the unread body would otherwise be taken for the next request)."""
        try:
            return self.read_body()
        except BodyTooLarge:
            self.close_connection = True
            self.send_bytes(413, json.dumps({"message": f"request body larger than {MAX_BODY} bytes"}).encode(),
                            "application/json", {"Connection": "close"})
        except BadRequest as e:
            self.close_connection = True
            self.send_bytes(400, json.dumps({"message": str(e)}).encode(), "application/json", {"Connection": "close"})
        return None

    def send_bytes(self, status: int, body: bytes, content_type: str | None, headers: dict | None = None) -> None:
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, str(value))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status: int, obj, headers: dict | None = None) -> None:
        self.send_bytes(status, json.dumps(obj).encode(), "application/json", headers)


def serve(handler_class, port: int, name: str, verbose: bool, setup=None) -> int:
    """Binds 127.0.0.1:`port`, serves until SIGTERM or SIGINT, then closes and returns 0.
    `setup(server)` runs after the bind, before the first request."""
    server = Server(("127.0.0.1", port), handler_class)
    server.verbose = verbose
    server.name = name
    if setup is not None:
        setup(server)

    def stop(signum, frame):
        # shutdown() waits for serve_forever() to return, which runs in this very thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if verbose:
        print(f"{name} listening on http://127.0.0.1:{port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever(poll_interval=0.25)
    finally:
        server.server_close()
    return 0
