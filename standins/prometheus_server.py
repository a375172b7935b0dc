"""A real Prometheus (the Debian package's binary), configured to scrape the given targets
every --scrape-interval, for tests and demos that need PromQL answered for real.

    python standins/prometheus_server.py --port 9090 --target 127.0.0.1:8080 [--target ...] \\
        --data-dir DIR [--scrape-interval 1s] [--binary PATH] [--verbose]

Writes DIR/prometheus.yml (global scrape and evaluation interval, one job `app` scraping the
targets at /metrics) and then becomes Prometheus through exec: the caller's process id is
Prometheus's, so its SIGTERM reaches Prometheus directly, which shuts down cleanly. The
TSDB lives in DIR/data. Prometheus listens on 127.0.0.1 only, logs warnings and errors only
(everything with --verbose), and keeps one day of data.

Exits 3 with a message on stderr when no prometheus binary is found (--binary, PATH,
/usr/bin/prometheus): `apt-get install prometheus` provides one.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from pathlib import Path

DURATION = re.compile(r"^(\d+(ms|s|m|h))+$")
TARGET = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")


def find_binary(explicit: str | None) -> str | None:
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    found = shutil.which("prometheus")
    if found:
        return found
    return "/usr/bin/prometheus" if os.access("/usr/bin/prometheus", os.X_OK) else None


def config(targets: list[str], interval: str) -> str:
    listed = "\n".join(f"          - '{t}'" for t in targets)
    return (
        "# Written by standins/prometheus_server.py; rewritten on every start.\n"
        "global:\n"
        f"  scrape_interval: {interval}\n"
        f"  scrape_timeout: {interval}\n"
        f"  evaluation_interval: {interval}\n"
        "scrape_configs:\n"
        "  - job_name: app\n"
        "    metrics_path: /metrics\n"
        "    static_configs:\n"
        "      - targets:\n"
        f"{listed}\n"
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--target", action="append", required=True, metavar="HOST:PORT", help="a scrape target (repeatable)")
    p.add_argument("--data-dir", required=True, help="where prometheus.yml and the TSDB (data/) go")
    p.add_argument("--scrape-interval", default="1s", help="Prometheus duration, e.g. 1s, 500ms (default 1s)")
    p.add_argument("--binary", help="the prometheus binary (default: PATH, then /usr/bin/prometheus)")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)

    if not DURATION.match(args.scrape_interval):
        p.error(f"--scrape-interval {args.scrape_interval!r} is not a Prometheus duration such as 1s or 500ms")
    for t in args.target:
        if not TARGET.match(t):
            p.error(f"--target {t!r} is not HOST:PORT")
    binary = find_binary(args.binary)
    if binary is None:
        print(
            "prometheus_server: no prometheus binary found "
            f"({'--binary ' + args.binary if args.binary else 'PATH and /usr/bin/prometheus'}); "
            "install it with `apt-get install prometheus`",
            file=sys.stderr,
        )
        return 3

    data_dir = Path(args.data_dir).resolve()
    (data_dir / "data").mkdir(parents=True, exist_ok=True)
    config_file = data_dir / "prometheus.yml"
    config_file.write_text(config(args.target, args.scrape_interval), encoding="utf-8")

    argv_out = [
        binary,
        f"--config.file={config_file}",
        f"--storage.tsdb.path={data_dir / 'data'}",
        "--storage.tsdb.retention.time=1d",
        f"--web.listen-address=127.0.0.1:{args.port}",
        f"--log.level={'info' if args.verbose else 'warn'}",
    ]
    if args.verbose:
        print("prometheus_server: exec " + " ".join(argv_out), file=sys.stderr, flush=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(binary, argv_out)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
