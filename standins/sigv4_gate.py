"""A reverse proxy that lets through only requests signed with AWS Signature Version 4, in
front of a real Prometheus: the shape of Amazon Managed Service for Prometheus (or of any
SigV4-guarded HTTP API) for tests that must prove a client signs correctly.

    python standins/sigv4_gate.py --upstream http://127.0.0.1:9090 --port 9091 \\
        --region us-west-2 --service aps [--service monitoring ...] \\
        --credential AKIDEXAMPLE:SECRET [--credential AKID:SECRET:SESSIONTOKEN ...] \\
        [--moto http://127.0.0.1:5000] [--strip-prefix '^/workspaces/[^/]+'] \\
        [--log FILE] [--verbose]

Every request's signature is recomputed independently with botocore's SigV4 signer
(`SigV4Auth.canonical_request`, `string_to_sign` and `signature`, the timestamp pinned to
the request's X-Amz-Date) over the request as received: its method, `http://<Host><path>`,
its query string in SigV4 canonical form (each name and value percent-decoded, `+` read as
a space as form encoding has it, then re-encoded leaving only A-Za-z0-9-_.~ bare and sorted),
exactly the headers its SignedHeaders names, and the raw body. The signatures are compared
with hmac.compare_digest.

The secret of an access key comes from --credential, or, with --moto, from the temporary
credentials moto's STS issued through AssumeRole (read from moto's `/moto-api/data.json`,
`sts.AssumedRole[]`, whenever an unknown key shows up); a key with a session token must
carry it in X-Amz-Security-Token.

A refused request gets HTTP 403, `Content-Type: application/json`, an `x-amzn-ErrorType`
header and a body `{"message":"..."}` in AWS's words:

* no Authorization header: "Missing Authentication Token"
  (MissingAuthenticationTokenException);
* an unknown access key, or a session token that is missing, extra or wrong: "The security
  token included in the request is invalid." (UnrecognizedClientException);
* a signature that does not match: "The request signature we calculated does not match the
  signature you provided. Check your AWS Secret Access Key and signing method. Consult the
  service documentation for details." (InvalidSignatureException);
* an X-Amz-Date more than 5 minutes from now: "Signature expired: ..." or "Signature not
  yet current: ..." (InvalidSignatureException);
* a credential scope with another region or service than the gate's, a malformed
  Authorization header, no X-Amz-Date, an unsigned Host: AWS's messages for those.

An accepted request is forwarded to --upstream (its path less the --strip-prefix match),
and the upstream's status, Content-Type and body are the answer. `--log FILE` appends one
JSON line per request: method, path, service, region, accessKeyId, sessionToken (whether
one was sent), verified, reason, bodyLength and the status answered; a signature mismatch
adds the canonical request the gate computed (session token redacted), to compare with the
client's.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import re
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote, unquote_to_bytes, urlsplit
from urllib.request import urlopen

sys.path.insert(0, str(Path(__file__).resolve().parent))

from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest, HTTPHeaders  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402

from common import Handler, serve  # noqa: E402

MISSING_TOKEN = "Missing Authentication Token"
INVALID_TOKEN = "The security token included in the request is invalid."
MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)
MAX_SKEW = timedelta(minutes=5)
AMZ_DATE = "%Y%m%dT%H%M%SZ"
UNRESERVED = "-_.~"


class Refusal(Exception):
    def __init__(self, error_type: str, message: str, reason: str):
        super().__init__(reason)
        self.error_type = error_type
        self.message = message
        self.reason = reason


def canonical_query(raw: str) -> str:
    """The SigV4 canonical form of a raw query string: each name and value percent-decoded
    (`+` is a space), re-encoded with only unreserved characters left bare, pairs sorted."""
    pairs = []
    for part in raw.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        name_b = unquote_to_bytes(name.replace("+", " "))
        value_b = unquote_to_bytes(value.replace("+", " "))
        pairs.append((quote(name_b, safe=UNRESERVED), quote(value_b, safe=UNRESERVED)))
    return "&".join(f"{n}={v}" for n, v in sorted(pairs))


class ExactHeadersSigV4(SigV4Auth):
    """botocore's SigV4 with the signed headers chosen by the client (its SignedHeaders),
    their values taken from the request as received (repeated headers joined by `,`)."""

    def __init__(self, credentials, service, region, signed_names, received_headers):
        super().__init__(credentials, service, region)
        self.signed_names = signed_names
        self.received_headers = received_headers

    def headers_to_sign(self, request):
        header_map = HTTPHeaders()
        for name in self.signed_names:
            for value in self.received_headers.get_all(name) or []:
                header_map[name] = value
        return header_map


def parse_authorization(value: str) -> dict[str, str]:
    scheme, _, rest = value.strip().partition(" ")
    if scheme != "AWS4-HMAC-SHA256":
        raise Refusal("IncompleteSignatureException", f"Unsupported authorization type: {scheme}",
                      f"authorization scheme {scheme!r}")
    fields = {}
    for part in rest.split(","):
        part = part.strip()
        if not part:
            continue
        key, eq, val = part.partition("=")
        if not eq:
            raise Refusal("IncompleteSignatureException",
                          "Invalid key=value pair (missing equal-sign) in Authorization header "
                          f"(hashed with SHA-256 and encoded with Base64): '{part}'.",
                          "malformed Authorization header")
        fields[key.strip()] = val.strip()
    missing = [k for k in ("Credential", "Signature", "SignedHeaders") if not fields.get(k)]
    if missing:
        raise Refusal("IncompleteSignatureException",
                      " ".join(f"Authorization header requires '{k}' parameter." for k in missing),
                      f"Authorization header lacks {', '.join(missing)}")
    return fields


class Gate:
    def __init__(self, args):
        self.upstream = urlsplit(args.upstream)
        self.region = args.region
        self.services = args.service
        self.strip = re.compile(args.strip_prefix) if args.strip_prefix else None
        self.moto = args.moto.rstrip("/") if args.moto else None
        self.verbose = args.verbose
        self.log_path = args.log
        self.lock = threading.Lock()
        # access key id -> (secret, session token or None)
        self.static: dict[str, tuple[str, str | None]] = {}
        for c in args.credential:
            parts = c.split(":", 2)
            if len(parts) < 2 or not parts[0] or not parts[1]:
                raise SystemExit(f"--credential must be AKID:SECRET[:SESSIONTOKEN], not {c!r}")
            self.static[parts[0]] = (parts[1], parts[2] if len(parts) == 3 else None)
        self.from_moto: dict[str, tuple[str, str | None]] = {}

    # ---- credentials -----------------------------------------------------------------------

    def secret_for(self, akid: str) -> tuple[str, str | None] | None:
        if akid in self.static:
            return self.static[akid]
        if not self.moto:
            return None
        with self.lock:
            if akid not in self.from_moto:
                self.refresh_moto()
            return self.from_moto.get(akid)

    def refresh_moto(self) -> None:
        """Reads the credentials moto's STS has issued (AssumeRole and its web identity and
        SAML variants all land in `sts.AssumedRole`) from moto's state dump."""
        try:
            with urlopen(f"{self.moto}/moto-api/data.json", timeout=10) as r:
                data = json.loads(r.read())
        except Exception as e:  # moto down or its dump failing: the key stays unknown
            print(f"sigv4-gate: could not read moto's credentials: {e!r}", file=sys.stderr, flush=True)
            return
        for role in (data.get("sts") or {}).get("AssumedRole") or []:
            akid, secret = role.get("access_key_id"), role.get("secret_access_key")
            if akid and secret:
                self.from_moto[akid] = (secret, role.get("session_token"))

    # ---- verification ----------------------------------------------------------------------

    def verify(self, h: Handler, body: bytes, record: dict) -> None:
        """Returns when the request is correctly signed; raises Refusal otherwise."""
        authorization = h.headers.get("Authorization")
        if not authorization:
            raise Refusal("MissingAuthenticationTokenException", MISSING_TOKEN, "no Authorization header")
        fields = parse_authorization(authorization)
        scope = fields["Credential"].split("/")
        if len(scope) != 5:
            raise Refusal("IncompleteSignatureException",
                          "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, "
                          f"got '{fields['Credential']}'", "malformed credential scope")
        if scope[4] != "aws4_request":
            raise Refusal("IncompleteSignatureException",
                          f"Credential should be scoped with a valid terminator: 'aws4_request', not '{scope[4]}'. ",
                          "malformed credential scope")
        akid, scope_date, region, service, _ = scope
        record.update(accessKeyId=akid, region=region, service=service)

        amz_date = h.headers.get("X-Amz-Date")
        if not amz_date:
            raise Refusal("IncompleteSignatureException",
                          "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
                          "no X-Amz-Date header")
        try:
            signed_at = datetime.strptime(amz_date, AMZ_DATE).replace(tzinfo=timezone.utc)
        except ValueError:
            raise Refusal("IncompleteSignatureException", f"Invalid X-Amz-Date: {amz_date}",
                          f"malformed X-Amz-Date {amz_date!r}") from None
        now = datetime.now(timezone.utc)
        if signed_at < now - MAX_SKEW:
            raise Refusal("InvalidSignatureException",
                          f"Signature expired: {amz_date} is now earlier than {(now - MAX_SKEW).strftime(AMZ_DATE)} "
                          f"({now.strftime(AMZ_DATE)} - 5 min.)", "X-Amz-Date more than 5 minutes old")
        if signed_at > now + MAX_SKEW:
            raise Refusal("InvalidSignatureException",
                          f"Signature not yet current: {amz_date} is still later than {(now + MAX_SKEW).strftime(AMZ_DATE)} "
                          f"({now.strftime(AMZ_DATE)} + 5 min.)", "X-Amz-Date more than 5 minutes ahead")
        if scope_date != amz_date[:8]:
            raise Refusal("InvalidSignatureException",
                          "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
                          f"'{scope_date}' != '{amz_date[:8]}', from 'X-Amz-Date'.", "credential scope date is not X-Amz-Date's")
        if region != self.region:
            raise Refusal("InvalidSignatureException", f"Credential should be scoped to a valid region, not '{region}'. ",
                          f"credential scoped to region {region!r}, not {self.region!r}")
        if service not in self.services:
            raise Refusal("InvalidSignatureException", f"Credential should be scoped to correct service: '{self.services[0]}'. ",
                          f"credential scoped to service {service!r}, not one of {self.services}")

        known = self.secret_for(akid)
        if known is None:
            raise Refusal("UnrecognizedClientException", INVALID_TOKEN, f"unknown access key {akid}")
        secret, token = known
        sent_token = h.headers.get("X-Amz-Security-Token")
        if not hmac.compare_digest((token or "").encode(), (sent_token or "").encode()):
            raise Refusal("UnrecognizedClientException", INVALID_TOKEN,
                          "session token missing" if token and not sent_token else
                          "session token sent for a key that has none" if sent_token and not token else "wrong session token")

        signed_names = [n.strip().lower() for n in fields["SignedHeaders"].split(";") if n.strip()]
        if "host" not in signed_names:
            raise Refusal("InvalidSignatureException",
                          "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.", "Host not signed")
        body_hash = hashlib.sha256(body).hexdigest()
        claimed = h.headers.get("X-Amz-Content-SHA256")
        if claimed is not None and claimed != body_hash:
            raise Refusal("InvalidSignatureException", MISMATCH, "X-Amz-Content-SHA256 is not the body's SHA-256")

        target = h.path.encode("latin-1")
        try:
            target_s = target.decode("utf-8")
        except UnicodeDecodeError:
            target_s = h.path
        path, _, query = target_s.partition("?")
        host = h.headers.get("Host", "")
        provided = fields["Signature"].encode("ascii", "replace")

        def signature_for(query_form: str) -> tuple[str, str]:
            url = f"http://{host}{path}" + (f"?{query_form}" if query_form else "")
            request = AWSRequest(method=h.command, url=url, data=body, headers={})
            request.context["timestamp"] = amz_date
            signer = ExactHeadersSigV4(Credentials(akid, secret, token), service, region, signed_names, h.headers)
            canonical = signer.canonical_request(request)
            return signer.signature(signer.string_to_sign(request, canonical), request), canonical

        expected, canonical = signature_for(canonical_query(query))
        if hmac.compare_digest(expected.encode(), provided):
            return
        reason = "signature mismatch"
        if query:
            as_sent, _ = signature_for(query)
            if hmac.compare_digest(as_sent.encode(), provided):
                reason = ("signature mismatch: the client signed its query string as sent, not in SigV4 canonical form "
                          "(every byte outside A-Za-z0-9-_.~ percent-encoded, spaces as %20)")
        # For whoever debugs the client; the session token, a credential, is left out.
        canonical = re.sub(r"(?m)^(x-amz-security-token:).*$", r"\1<redacted>", canonical)
        record["canonicalRequest"] = canonical
        if self.verbose:
            print(f"sigv4-gate: {reason}; the canonical request the gate computed:\n{canonical}", file=sys.stderr, flush=True)
        raise Refusal("InvalidSignatureException", MISMATCH, reason)

    # ---- forwarding ------------------------------------------------------------------------

    def forward(self, h: Handler, body: bytes) -> tuple[int, str | None, bytes]:
        path, sep, query = h.path.partition("?")
        if self.strip:
            m = self.strip.match(path)
            if m:
                path = path[m.end():] or "/"
                if not path.startswith("/"):
                    path = "/" + path
        base = self.upstream.path.rstrip("/")
        headers = {name: h.headers[name] for name in ("Content-Type", "Accept") if h.headers.get(name)}
        conn_class = http.client.HTTPSConnection if self.upstream.scheme == "https" else http.client.HTTPConnection
        conn = conn_class(self.upstream.netloc, timeout=60)
        try:
            send_body = body if body or h.command in ("POST", "PUT", "PATCH") else None
            conn.request(h.command, f"{base}{path}{sep}{query}", body=send_body, headers=headers)
            r = conn.getresponse()
            return r.status, r.getheader("Content-Type"), r.read()
        finally:
            conn.close()

    def log(self, record: dict) -> None:
        if not self.log_path:
            return
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self.lock, open(self.log_path, "a", encoding="utf-8") as f:
            f.write(line)


def make_handler(gate: Gate):
    class GateHandler(Handler):
        def handle_any(self):
            body = self.body_or_refusal()
            if body is None:
                return
            record = {
                "time": time.time(),
                "method": self.command,
                "path": self.path.partition("?")[0],
                "service": None,
                "region": None,
                "accessKeyId": None,
                "sessionToken": bool(self.headers.get("X-Amz-Security-Token")),
                "verified": False,
                "reason": None,
                "bodyLength": len(body),
            }
            try:
                gate.verify(self, body, record)
            except Refusal as refusal:
                record.update(reason=refusal.reason, status=403)
                gate.log(record)
                self.send_bytes(403, json.dumps({"message": refusal.message}, separators=(",", ":")).encode(),
                                "application/json",
                                {"x-amzn-ErrorType": refusal.error_type, "x-amzn-RequestId": str(uuid.uuid4())})
                return
            record.update(verified=True, reason="signature verified")
            try:
                status, content_type, answer = gate.forward(self, body)
            except OSError as e:
                record.update(status=502, reason=f"signature verified; upstream failed: {e!r}")
                gate.log(record)
                self.send_json(502, {"message": f"upstream unreachable: {e}"})
                return
            record["status"] = status
            gate.log(record)
            self.send_bytes(status, answer, content_type)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = handle_any

    return GateHandler


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--upstream", required=True, help="the service behind the gate, e.g. http://127.0.0.1:9090")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--region", required=True, help="the region credential scopes must name")
    p.add_argument("--service", action="append", required=True, help="a service credential scopes may name (repeatable)")
    p.add_argument("--credential", action="append", default=[], metavar="AKID:SECRET[:TOKEN]",
                   help="an accepted access key (repeatable)")
    p.add_argument("--moto", help="moto server URL whose STS-issued credentials are also accepted")
    p.add_argument("--strip-prefix", help="regex; the path prefix it matches is removed before forwarding")
    p.add_argument("--log", help="append one JSON line per request to this file")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    if not args.credential and not args.moto:
        p.error("give at least one --credential or --moto")
    return serve(make_handler(Gate(args)), args.port, "sigv4-gate", args.verbose)


if __name__ == "__main__":
    sys.exit(main())
