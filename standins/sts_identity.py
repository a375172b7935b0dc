"""AWS STS's `GetCallerIdentity`, answered only for requests whose Signature Version 4
truly verifies, presigned (query-string) requests as well as Authorization-header ones:
the STS that Greenlight's approval endpoint forwards an approver's presigned
`sts:GetCallerIdentity` to (the Vault / aws-iam-authenticator technique), the approver's
CLI having bound an `x-greenlight-approval` header into the signature.

    python standins/sts_identity.py --port 5601 --region us-west-2 \\
        --identity AKIDALICE:SECRETALICE:arn:aws:iam::123456789012:user/alice \\
        --identity AKIDBOB:SECRETBOB:arn:aws:sts::123456789012:assumed-role/Deployer/bob \\
        [--enforce-expires] [--log FILE] [--verbose]

An --identity is AKID:SECRET:ARN, split at the first two colons (the ARN keeps its own).
The answer names that ARN, its account (the ARN's fifth field) and a made-up UserId, shaped
as AWS shapes it: `AIDA<akid>` for a user, `AROA<akid>:<session>` for an assumed role, the
account for `:root`.

Accepted: `GET /?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=...` presigned,
and `POST /` with the form body `Action=GetCallerIdentity&Version=2011-06-15` (or the same in
the query string) signed in an Authorization header. Every signature is recomputed
independently with botocore's SigV4 signer, as standins/sigv4_gate.py does (its
`ExactHeadersSigV4` and `canonical_query`): the method, `http://<Host><path>`, the query
string in SigV4 canonical form (for a presigned request, every parameter but
X-Amz-Signature), exactly the headers the client's SignedHeaders / X-Amz-SignedHeaders
names with their values as received (lower-cased names, trimmed values; a signed header
that is absent refuses the request), and the SHA-256 of the body. For a presigned request
that is the SHA-256 of the empty body, `e3b0c442...b855`, not `UNSIGNED-PAYLOAD`: botocore's
`SigV4QueryAuth` hashes the (emptied) body, only S3's presigners use `UNSIGNED-PAYLOAD`, and
the canonical request real STS reports for a presigned GetCallerIdentity ends in the empty
body's hash (boto/boto3#756). The signatures are compared with hmac.compare_digest.

A session token (X-Amz-Security-Token) is accepted for any key, but only signed: in the
query string of a presigned request (which the signature covers), or as a header named in
SignedHeaders. Which token a key must carry is not checked.

Time. Real STS does not honour X-Amz-Expires: a presigned non-S3 request lives for a fixed
window of about 15 minutes around its X-Amz-Date whatever X-Amz-Expires says (aws-sdk-go
#2167 and PR #2224, "all other AWS services will use a fixed request signature expiration of
about 15 minutes"; aws-iam-authenticator PR #753, "this value is ignored by STS"), and STS's
clock-skew refusal is SignatureDoesNotMatch "Signature expired: ... (... - 15 min.)"
(aws/aws-cli#6676, for GetCallerIdentity). So by default this stand-in does the same: an
X-Amz-Date more than 15 minutes old or ahead is refused, X-Amz-Expires is ignored, and
whoever relies on a shorter lifetime must check X-Amz-Date + X-Amz-Expires itself, as
aws-iam-authenticator does. `--enforce-expires` makes it stricter than STS: X-Amz-Expires
(an integer, 1 to 604800) must be present, and a presigned request is also refused once
X-Amz-Date + X-Amz-Expires has passed, with the same code and a message of the same form
("Signature expired: <X-Amz-Date> is now earlier than <now - expires> (<now> - <n> sec.)";
that wording is this stand-in's, modelled on STS's).

A refused request gets `Content-Type: text/xml` and STS's error document,
`<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>
<Code>...</Code><Message>...</Message></Error><RequestId>...</RequestId></ErrorResponse>`:

* 403 MissingAuthenticationToken "Request is missing Authentication Token": neither an
  Authorization header nor X-Amz-* query parameters;
* 403 InvalidClientTokenId "The security token included in the request is invalid.": an
  unknown access key;
* 403 SignatureDoesNotMatch "The request signature we calculated does not match the
  signature you provided. Check your AWS Secret Access Key and signing method. Consult the
  service documentation for details.": any mismatch, including a changed or missing signed
  header, a changed query parameter or body, an unsigned session token, an
  X-Amz-Content-SHA256 that is not the body's hash (real STS has been seen to append "The
  Canonical String for this request should have been ..."; that goes to the log instead);
* 403 SignatureDoesNotMatch "Credential should be scoped to a valid region." and
  "Credential should be scoped to correct service: 'sts'." (STS's wording, from
  hashicorp/terraform-provider-aws#35860), and for a scope date that is not X-Amz-Date's,
  "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from
  HTTP: ..." (as sigv4_gate.py words it);
* 403 SignatureDoesNotMatch "Signature expired: <X-Amz-Date> is now earlier than
  <now - 15 min> (<now> - 15 min.)" and "Signature not yet current: <X-Amz-Date> is still
  later than <now + 15 min> (<now> + 15 min.)";
* 400 IncompleteSignature: a malformed Authorization header or credential scope, a missing
  or repeated X-Amz-* query parameter ("AWS query-string parameters must include
  'X-Amz-Signature'. Re-examine the query-string parameters."), another algorithm, a
  malformed X-Amz-Date, both an Authorization header and query-string authentication, an
  unsigned Host, and with --enforce-expires a missing or out-of-range X-Amz-Expires (these
  messages are AWS's as best known, not verified against STS);
* 400 MissingAction "Missing Action" without an Action, and 400 InvalidAction "Could not
  find operation <Action> for version <Version>" (NO_VERSION_SPECIFIED when there is none)
  for any other action or version (other STS actions included; wording as best known);
  only a correctly signed request gets this far.

The success answer is HTTP 200, `Content-Type: text/xml`, an `x-amzn-RequestId` header and
the document of the STS API reference's example:

    <GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
      <GetCallerIdentityResult>
        <Arn>arn:aws:iam::123456789012:user/alice</Arn>
        <UserId>AIDAAKIDALICE</UserId>
        <Account>123456789012</Account>
      </GetCallerIdentityResult>
      <ResponseMetadata>
        <RequestId>...</RequestId>
      </ResponseMetadata>
    </GetCallerIdentityResponse>

`--log FILE` appends one JSON line per request: time, method, path, presigned, accessKeyId,
region, service, signedHeaders, sessionToken (whether one was sent, never its value),
approval (the x-greenlight-approval header as received, or null), action, verified, reason,
status, and arn when answered; a signature mismatch adds the canonical request computed
(session token redacted), and its reason says so when the signature would have matched the
other method (a URL presigned for POST sent as GET), the query string as sent rather than
canonical, or the payload hash UNSIGNED-PAYLOAD. Secrets are never logged.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import re
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, unquote
from xml.sax.saxutils import escape

sys.path.insert(0, str(Path(__file__).resolve().parent))

from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402

import sigv4_gate  # noqa: E402
from common import Handler, serve  # noqa: E402
from sigv4_gate import AMZ_DATE, INVALID_TOKEN, MISMATCH, ExactHeadersSigV4, canonical_query  # noqa: E402

NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"
VERSION = "2011-06-15"
SERVICE = "sts"
APPROVAL_HEADER = "x-greenlight-approval"
MISSING_TOKEN = "Request is missing Authentication Token"
MAX_SKEW = timedelta(minutes=15)
MAX_EXPIRES = 604800
# Query-string authentication: the required parameters, then the optional ones.
QUERY_AUTH = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Signature")
QUERY_AUTH_OPTIONAL = ("X-Amz-Expires", "X-Amz-Security-Token")
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


class Refusal(Exception):
    def __init__(self, status: int, code: str, message: str, reason: str):
        super().__init__(reason)
        self.status = status
        self.code = code
        self.message = message
        self.reason = reason


def incomplete(message: str, reason: str) -> Refusal:
    return Refusal(400, "IncompleteSignature", message, reason)


def mismatch(reason: str, message: str = MISMATCH) -> Refusal:
    return Refusal(403, "SignatureDoesNotMatch", message, reason)


def error_document(code: str, message: str, request_id: str) -> bytes:
    return (
        f'<ErrorResponse xmlns="{NAMESPACE}">\n'
        "  <Error>\n"
        "    <Type>Sender</Type>\n"
        f"    <Code>{escape(code)}</Code>\n"
        f"    <Message>{escape(message)}</Message>\n"
        "  </Error>\n"
        f"  <RequestId>{request_id}</RequestId>\n"
        "</ErrorResponse>\n"
    ).encode()


def identity_document(identity: "Identity", request_id: str) -> bytes:
    return (
        f'<GetCallerIdentityResponse xmlns="{NAMESPACE}">\n'
        "  <GetCallerIdentityResult>\n"
        f"    <Arn>{escape(identity.arn)}</Arn>\n"
        f"    <UserId>{escape(identity.user_id)}</UserId>\n"
        f"    <Account>{escape(identity.account)}</Account>\n"
        "  </GetCallerIdentityResult>\n"
        "  <ResponseMetadata>\n"
        f"    <RequestId>{request_id}</RequestId>\n"
        "  </ResponseMetadata>\n"
        "</GetCallerIdentityResponse>\n"
    ).encode()


class Identity:
    def __init__(self, spec: str):
        parts = spec.split(":", 2)
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"--identity must be AKID:SECRET:ARN, not {spec!r}")
        self.akid, self.secret, self.arn = parts
        fields = self.arn.split(":", 5)
        if len(fields) != 6 or fields[0] != "arn" or not fields[4] or not fields[5]:
            raise ValueError(f"--identity {self.akid}: {self.arn!r} is not an ARN like arn:aws:iam::123456789012:user/alice")
        self.account = fields[4]
        resource = fields[5]
        if resource == "root":
            self.user_id = self.account
        elif fields[2] == "sts" and resource.startswith("assumed-role/") and resource.count("/") >= 2:
            self.user_id = f"AROA{self.akid}:{resource.rsplit('/', 1)[1]}"
        else:
            self.user_id = f"AIDA{self.akid}"


def split_query(raw: str) -> list[tuple[str, str, str]]:
    """(decoded name, decoded value, raw pair) of each pair of a raw query string."""
    pairs = []
    for part in raw.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((unquote(name.replace("+", " ")), unquote(value.replace("+", " ")), part))
    return pairs


def parse_date(amz_date: str) -> datetime:
    try:
        return datetime.strptime(amz_date, AMZ_DATE).replace(tzinfo=timezone.utc)
    except ValueError:
        raise incomplete(f"Invalid X-Amz-Date: {amz_date}", f"malformed X-Amz-Date {amz_date!r}") from None


class Sts:
    def __init__(self, args):
        self.region = args.region
        self.enforce_expires = args.enforce_expires
        self.verbose = args.verbose
        self.log_path = args.log
        self.lock = threading.Lock()
        self.identities: dict[str, Identity] = {}
        for spec in args.identity:
            identity = Identity(spec)
            if identity.akid in self.identities:
                raise ValueError(f"--identity {identity.akid} given twice")
            self.identities[identity.akid] = identity

    # ---- verification ----------------------------------------------------------------------

    def verify(self, h: Handler, body: bytes, record: dict) -> Identity:
        """The identity whose key correctly signed the request; raises Refusal otherwise."""
        try:
            target = h.path.encode("latin-1").decode("utf-8")
        except UnicodeError:
            target = h.path
        path, _, query = target.partition("?")
        pairs = split_query(query)
        names = [name for name, _, _ in pairs]
        authorization = h.headers.get("Authorization")
        presigned = any(n in names for n in ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature"))
        record["presigned"] = presigned
        if presigned and authorization:
            raise incomplete("Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the "
                             "Authorization header should be specified",
                             "both an Authorization header and query-string authentication")
        if not presigned and not authorization:
            raise Refusal(403, "MissingAuthenticationToken", MISSING_TOKEN, "neither an Authorization header nor X-Amz-* query parameters")

        expires = None
        if presigned:
            params = {}
            for name, value, _ in pairs:
                if name in QUERY_AUTH or name in QUERY_AUTH_OPTIONAL:
                    if name in params:
                        raise incomplete(f"AWS query-string parameter '{name}' must appear only once.", f"{name} repeated")
                    params[name] = value
            missing = [n for n in QUERY_AUTH if not params.get(n)]
            if missing:
                raise incomplete(" ".join(f"AWS query-string parameters must include '{n}'." for n in missing)
                                 + " Re-examine the query-string parameters.", f"query string lacks {', '.join(missing)}")
            if params["X-Amz-Algorithm"] != "AWS4-HMAC-SHA256":
                raise incomplete(f"Unsupported AWS 'algorithm': '{params['X-Amz-Algorithm']}'",
                                 f"X-Amz-Algorithm {params['X-Amz-Algorithm']!r}")
            credential = params["X-Amz-Credential"]
            signed_headers = params["X-Amz-SignedHeaders"]
            provided = params["X-Amz-Signature"]
            amz_date = params["X-Amz-Date"]
            token = params.get("X-Amz-Security-Token")
            expires = params.get("X-Amz-Expires")
            # The canonical query string is every parameter but the signature, as received.
            signed_query = "&".join(raw for name, _, raw in pairs if name != "X-Amz-Signature")
        else:
            try:
                fields = sigv4_gate.parse_authorization(authorization)
            except sigv4_gate.Refusal as r:
                raise incomplete(r.message, r.reason) from None
            credential, signed_headers, provided = fields["Credential"], fields["SignedHeaders"], fields["Signature"]
            amz_date = h.headers.get("X-Amz-Date")
            if not amz_date:
                raise incomplete("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
                                 "no X-Amz-Date header")
            token = h.headers.get("X-Amz-Security-Token")
            signed_query = query
        signed_names = [n.strip().lower() for n in signed_headers.split(";") if n.strip()]
        record.update(signedHeaders=signed_names, sessionToken=bool(token))

        scope = credential.split("/")
        if len(scope) != 5:
            raise incomplete("Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, "
                             f"got '{credential}'", "malformed credential scope")
        if scope[4] != "aws4_request":
            raise incomplete(f"Credential should be scoped with a valid terminator: 'aws4_request', not '{scope[4]}'. ",
                             "malformed credential scope")
        akid, scope_date, region, service, _ = scope
        record.update(accessKeyId=akid, region=region, service=service)

        signed_at = parse_date(amz_date)
        self.check_time(amz_date, signed_at, presigned, expires)
        if scope_date != amz_date[:8]:
            raise mismatch("credential scope date is not X-Amz-Date's",
                           "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
                           f"'{scope_date}' != '{amz_date[:8]}', from 'X-Amz-Date'.")
        if region != self.region:
            raise mismatch(f"credential scoped to region {region!r}, not {self.region!r}",
                           "Credential should be scoped to a valid region.")
        if service != SERVICE:
            raise mismatch(f"credential scoped to service {service!r}, not 'sts'",
                           "Credential should be scoped to correct service: 'sts'.")

        identity = self.identities.get(akid)
        if identity is None:
            raise Refusal(403, "InvalidClientTokenId", INVALID_TOKEN, f"unknown access key {akid}")

        if "host" not in signed_names:
            raise incomplete("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.", "Host not signed")
        if token and not presigned and "x-amz-security-token" not in signed_names:
            raise mismatch("X-Amz-Security-Token header sent but not signed")
        absent = [n for n in signed_names if h.headers.get(n) is None]
        if absent:
            raise mismatch(f"signed header {', '.join(absent)} not sent")
        body_hash = hashlib.sha256(body).hexdigest()
        claimed = h.headers.get("X-Amz-Content-SHA256")
        if claimed is not None and claimed != body_hash:
            raise mismatch("X-Amz-Content-SHA256 is not the body's SHA-256")

        host = h.headers.get("Host", "")

        def signature_for(query_form: str, payload: str | None = None, method: str | None = None) -> tuple[str, str]:
            url = f"http://{host}{path}" + (f"?{query_form}" if query_form else "")
            headers = {"X-Amz-Content-SHA256": payload} if payload else {}
            request = AWSRequest(method=method or h.command, url=url, data=body, headers=headers)
            request.context["timestamp"] = amz_date
            signer = ExactHeadersSigV4(Credentials(akid, identity.secret, token), service, region, signed_names, h.headers)
            canonical = signer.canonical_request(request)
            return signer.signature(signer.string_to_sign(request, canonical), request), canonical

        expected, canonical = signature_for(canonical_query(signed_query))
        if hmac.compare_digest(expected.encode(), provided.encode("ascii", "replace")):
            return identity
        reason = "signature mismatch"
        other_method = {"GET": "POST", "POST": "GET"}.get(h.command)
        if other_method and hmac.compare_digest(signature_for(canonical_query(signed_query), method=other_method)[0].encode(),
                                                provided.encode("ascii", "replace")):
            reason = f"signature mismatch: the client signed the request for {other_method}, it was sent as {h.command}"
        elif signed_query and hmac.compare_digest(signature_for(signed_query)[0].encode(), provided.encode("ascii", "replace")):
            reason = ("signature mismatch: the client signed its query string as sent, not in SigV4 canonical form "
                      "(every byte outside A-Za-z0-9-_.~ percent-encoded, spaces as %20)")
        elif hmac.compare_digest(signature_for(canonical_query(signed_query), UNSIGNED_PAYLOAD)[0].encode(),
                                 provided.encode("ascii", "replace")):
            reason = ("signature mismatch: the client signed with the payload hash UNSIGNED-PAYLOAD (S3's presign form); "
                      "STS wants the SHA-256 of the body, of the empty body for a presigned GET")
        canonical = re.sub(r"(?m)^(x-amz-security-token:).*$", r"\1<redacted>", canonical)
        canonical = re.sub(r"(X-Amz-Security-Token=)[^&\n]*", r"\1<redacted>", canonical)
        record["canonicalRequest"] = canonical
        if self.verbose:
            print(f"sts-identity: {reason}; the canonical request computed:\n{canonical}", file=sys.stderr, flush=True)
        raise mismatch(reason)

    def check_time(self, amz_date: str, signed_at: datetime, presigned: bool, expires: str | None) -> None:
        now = datetime.now(timezone.utc)
        if signed_at < now - MAX_SKEW:
            raise mismatch("X-Amz-Date more than 15 minutes old",
                           f"Signature expired: {amz_date} is now earlier than {(now - MAX_SKEW).strftime(AMZ_DATE)} "
                           f"({now.strftime(AMZ_DATE)} - 15 min.)")
        if signed_at > now + MAX_SKEW:
            raise mismatch("X-Amz-Date more than 15 minutes ahead",
                           f"Signature not yet current: {amz_date} is still later than {(now + MAX_SKEW).strftime(AMZ_DATE)} "
                           f"({now.strftime(AMZ_DATE)} + 15 min.)")
        if not (presigned and self.enforce_expires):
            return  # STS itself ignores X-Amz-Expires
        if expires is None or not expires.isdigit() or not 1 <= int(expires) <= MAX_EXPIRES:
            raise incomplete(f"X-Amz-Expires must be an integer from 1 to {MAX_EXPIRES}, not '{expires}'."
                             if expires is not None else
                             "AWS query-string parameters must include 'X-Amz-Expires'. Re-examine the query-string parameters.",
                             f"X-Amz-Expires {expires!r}" if expires is not None else "no X-Amz-Expires")
        seconds = int(expires)
        if now > signed_at + timedelta(seconds=seconds):
            raise mismatch(f"presigned request past X-Amz-Date + X-Amz-Expires ({seconds} s)",
                           f"Signature expired: {amz_date} is now earlier than "
                           f"{(now - timedelta(seconds=seconds)).strftime(AMZ_DATE)} ({now.strftime(AMZ_DATE)} - {seconds} sec.)")

    def log(self, record: dict) -> None:
        if not self.log_path:
            return
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self.lock, open(self.log_path, "a", encoding="utf-8") as f:
            f.write(line)

    # ---- the operation ---------------------------------------------------------------------

    def operation(self, h: Handler, body: bytes, record: dict) -> None:
        """Raises Refusal unless the request asks for GetCallerIdentity, version 2011-06-15."""
        query = h.path.partition("?")[2]
        params = {k: v for k, v in parse_qs(query, keep_blank_values=True).items() if not k.startswith("X-Amz-")}
        content_type = (h.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if h.command == "POST" and body and content_type in ("", "application/x-www-form-urlencoded"):
            for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items():
                params.setdefault(k, []).extend(v)
        actions, versions = params.get("Action") or [], params.get("Version") or []
        action = ",".join(actions)
        version = ",".join(versions) or "NO_VERSION_SPECIFIED"
        record["action"] = action or None
        if not action:
            raise Refusal(400, "MissingAction", "Missing Action", "no Action")
        if action != "GetCallerIdentity" or version != VERSION:
            raise Refusal(400, "InvalidAction", f"Could not find operation {action} for version {version}",
                          f"Action {action!r}, Version {version!r}")


def make_handler(sts: Sts):
    class StsHandler(Handler):
        def handle_any(self):
            body = self.body_or_refusal()
            if body is None:
                return
            request_id = str(uuid.uuid4())
            record = {
                "time": time.time(),
                "method": self.command,
                "path": self.path.partition("?")[0],
                "presigned": False,
                "accessKeyId": None,
                "region": None,
                "service": None,
                "signedHeaders": None,
                "sessionToken": False,
                "approval": self.headers.get(APPROVAL_HEADER),
                "action": None,
                "verified": False,
                "reason": None,
            }
            try:
                identity = sts.verify(self, body, record)
                record.update(verified=True, reason="signature verified")
                sts.operation(self, body, record)
            except Refusal as refusal:
                record.update(reason=refusal.reason if not record["verified"] else f"signature verified; {refusal.reason}",
                              status=refusal.status)
                sts.log(record)
                self.send_bytes(refusal.status, error_document(refusal.code, refusal.message, request_id), "text/xml",
                                {"x-amzn-RequestId": request_id})
                return
            record.update(status=200, arn=identity.arn)
            sts.log(record)
            self.send_bytes(200, identity_document(identity, request_id), "text/xml", {"x-amzn-RequestId": request_id})

        do_GET = do_POST = handle_any

    return StsHandler


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--region", required=True, help="the region credential scopes must name")
    p.add_argument("--identity", action="append", required=True, metavar="AKID:SECRET:ARN",
                   help="an access key, its secret and the ARN it answers for (repeatable)")
    p.add_argument("--enforce-expires", action="store_true",
                   help="also refuse a presigned request past X-Amz-Date + X-Amz-Expires (real STS does not)")
    p.add_argument("--log", help="append one JSON line per request to this file")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    try:
        sts = Sts(args)
    except ValueError as e:
        p.error(str(e))
    return serve(make_handler(sts), args.port, "sts-identity", args.verbose)


if __name__ == "__main__":
    sys.exit(main())
