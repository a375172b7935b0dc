#!/usr/bin/env bash
# Sizes of the four functions' deployment packages: the arm64 release zip that Lambda loads
# (`cargo lambda build --release --arm64 --output-format zip`, target/lambda/<function>/bootstrap.zip)
# and the uncompressed `bootstrap` inside it, as a Markdown table; with the x86_64 release
# `bootstrap` the cold-start timings ran (target/bench/x86_64/<function>/bootstrap) for
# comparison, when it is there. MB = 10^6 bytes.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 - "$@" <<'PY'
import sys
import zipfile
from pathlib import Path

FUNCTIONS = ["before-install", "after-install", "before-allow-traffic", "after-allow-traffic"]
MACHINES = {0x3E: "x86_64", 0xB7: "aarch64"}


def arch(head: bytes) -> str:
    if head[:4] != b"\x7fELF":
        return "not ELF"
    return MACHINES.get(int.from_bytes(head[18:20], "little"), "other")


def mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


rows, missing = [], []
for f in FUNCTIONS:
    z = Path("target/lambda") / f / "bootstrap.zip"
    if not z.is_file():
        missing.append(str(z))
        continue
    with zipfile.ZipFile(z) as zf:
        info = zf.getinfo("bootstrap")
        with zf.open(info) as b:
            head = b.read(20)
        mode = (info.external_attr >> 16) & 0o777
    if arch(head) != "aarch64":
        sys.exit(f"{z}: the bootstrap inside is {arch(head)}, not aarch64; rebuild with --arm64")
    x86 = Path("target/bench/x86_64") / f / "bootstrap"
    x86_size = mb(x86.stat().st_size) if x86.is_file() else "-"
    rows.append(
        f"| `{f}` | {mb(z.stat().st_size)} ({z.stat().st_size:,} B) "
        f"| {mb(info.file_size)} ({info.file_size:,} B) | {oct(mode)} | {x86_size} |"
    )
if missing:
    sys.exit("missing (build with cargo lambda build --release --arm64 --output-format zip): " + ", ".join(missing))

print("| function | arm64 `bootstrap.zip` | arm64 `bootstrap` (in the zip) | mode | x86_64 `bootstrap` |")
print("|---|---|---|---|---|")
print("\n".join(rows))
PY
