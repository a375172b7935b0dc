#!/usr/bin/env python3
"""Cold start, warm invocation and peak memory of the four release `bootstrap` binaries
under a local Lambda Runtime API.

For every run of every function a fresh Runtime API server (HTTP/1.1, keep-alive, on
127.0.0.1 and a free port) is started, then the function's `bootstrap` is spawned with the
environment Lambda sets for a `provided.al2023` function (`AWS_LAMBDA_RUNTIME_API`,
`AWS_LAMBDA_FUNCTION_NAME`, `AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128`,
`AWS_LAMBDA_FUNCTION_VERSION=$LATEST`, `AWS_REGION=us-west-2`, dummy credentials,
`AWS_LAMBDA_LOG_FORMAT=JSON` as the CDK construct configures, `_HANDLER=bootstrap`, ...)
and nothing from the calling shell: no `GREENLIGHT_CONFIG`, so the function runs with no
configuration. The server hands out the function's sample event twice, each with a new
request id, `Lambda-Runtime-Deadline-Ms` 300 s ahead (`--timeout`), an invoked function
ARN and a trace id; the third `GET .../invocation/next` is held open, the function is then
idle, and it is killed.

All times are wall-clock (CLOCK_MONOTONIC, `time.perf_counter_ns`) in this process:

* init: from just before the process is spawned (fork/exec included) to the moment the
  server has read the headers of its first `GET /2018-06-01/runtime/invocation/next`:
  the dynamic loader, the Rust runtime, tokio, logging and the function's process-wide
  services (`Services::from_env`: the HTTP client, which loads the system's CA
  certificates, on Debian the bundle and every file in /etc/ssl/certs; AWS clients are
  built lazily, and not at all for these events);
* first answer: from the same instant to the moment the body of the first
  `POST .../invocation/{id}/response` has been read: init, plus handing out the event,
  plus the first invocation (parse, decide, answer, log the decision record);
* warm: from the arrival of the second `/next` (answered at once with the second event)
  to the body of its response: one invocation in a process that has already served one.

The answers are checked: each must be a JSON object whose `hookStatus` is `SUCCEEDED`
(the events need no AWS access and no configuration), for the request id it was given;
a posted `/error` or `/init/error`, an exit, or a hang fails the run and the script.

Peak RSS is the kernel's high-water mark of the bootstrap's own address space, `VmHWM` in
`/proc/PID/status`, read after the second answer while the process waits on its third
`/next` (it does nothing after that point but wait), before it is killed with SIGKILL and
reaped with `os.wait4`. `ru_maxrss` from `os.wait4` is recorded as well (`ru_maxrss_kib`
in the JSON) but is not the figure: Linux starts a child's `ru_maxrss` at the peak RSS of
the address space it had before `execve`, and Python spawns with vfork, so that value is
never below this Python process's own peak.

What this does not measure: fetching and unpacking the code (the binary is in the page
cache; one untimed warm-up run per function precedes the timed ones, `--warmup`), the
Lambda sandbox itself, or an arm64 CPU: the binaries timed are whatever `--lambda-dir`
holds, normally the x86_64 build, since arm64 binaries do not run on an x86_64 machine.
Runs are interleaved (run 1 of every function, then run 2, ...) so that background load
is spread over the functions alike. p90 is the nearest-rank percentile.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lambda_local import RunFailed, RuntimeApi, check_answer, elf_machine, lambda_env, machine_facts, proc_status

ROOT = Path(__file__).resolve().parent.parent

FUNCTIONS = [
    ("before-install", "events/ecs-pre-scale-up.json"),
    ("after-install", "events/ecs-post-scale-up.json"),
    ("before-allow-traffic", "events/ecs-test-traffic-shift.json"),
    ("after-allow-traffic", "events/ecs-post-production-traffic-shift.json"),
]

def one_run(function: str, bootstrap: Path, event: bytes, args, log_path: Path) -> dict:
    api = RuntimeApi(function, [event, event], args.timeout * 1000)
    api.start()
    env = lambda_env(function, api.address, bootstrap.parent, args.log_format, args.extra_env)
    proc = None
    try:
        with open(log_path, "wb") as log:
            spawned = time.perf_counter_ns()
            proc = subprocess.Popen(
                [str(bootstrap)], env=env, cwd=bootstrap.parent, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT,
            )
            deadline = time.monotonic() + args.run_timeout
            while not api.parked.wait(0.05):
                with api.lock:
                    errors = list(api.errors)
                if errors:
                    raise RunFailed("; ".join(errors))
                if proc.poll() is not None:
                    raise RunFailed(f"the process exited with {proc.returncode} before its third /next")
                if time.monotonic() > deadline:
                    raise RunFailed(f"no third /next within {args.run_timeout} s")
            memory = proc_status(proc.pid)
            os.kill(proc.pid, signal.SIGKILL)
            _, status, rusage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        with api.lock:
            errors = list(api.errors)
            arrivals = list(api.next_arrivals)
            responses = list(api.responses)
            handed_out = list(api.handed_out)
        if errors:
            raise RunFailed("; ".join(errors))
        if [r[0] for r in responses] != handed_out:
            raise RunFailed(f"answers for {[r[0] for r in responses]}, events {handed_out}")
        statuses = [check_answer(r[2]) for r in responses]
        if any(s != args.expect for s in statuses):
            raise RunFailed(f"answered {statuses}, expected {args.expect}: {responses[0][2][:300]!r}")
        ms = lambda ns: ns / 1e6  # noqa: E731
        return {
            "init_ms": ms(arrivals[0] - spawned),
            "first_answer_ms": ms(responses[0][1] - spawned),
            "first_invocation_ms": ms(responses[0][1] - arrivals[0]),
            "warm_ms": ms(responses[1][1] - arrivals[1]),
            "peak_rss_kib": memory["VmHWM"],
            "rss_after_kib": memory["VmRSS"],
            "rss_anon_after_kib": memory["RssAnon"],
            "rss_file_after_kib": memory["RssFile"],
            "threads": memory["Threads"],
            "ru_maxrss_kib": rusage.ru_maxrss,
            "minor_faults": rusage.ru_minflt,
            "major_faults": rusage.ru_majflt,
            "hook_status": statuses,
        }
    finally:
        if proc is not None and proc.returncode is None:
            proc.kill()
            proc.wait()
        api.stop()


def p90(values: list[float]) -> float:
    s = sorted(values)
    k = max(0, -(-9 * len(s) // 10) - 1)
    return s[k]


def summary(values: list[float]) -> dict:
    return {
        "median": statistics.median(values),
        "p90": p90(values),
        "min": min(values),
        "max": max(values),
    }


def fmt_ms(v: float) -> str:
    return f"{v:.2f}" if v < 1 else f"{v:.1f}" if v < 100 else f"{v:.0f}"


def fmt_mib(kib: float) -> str:
    return f"{kib / 1024:.1f}"


def markdown(result: dict) -> str:
    m = result["machine"]
    events = ", ".join(f"`{n}` ← `{f['event']}`" for n, f in result["functions"].items())
    lines = [
        f"Machine: {m['nproc']} cores ({m['cpu']}), Linux {m['kernel']}, {m['machine']}; "
        f"load average {m['loadavg_start'][0]:.2f} at the start, {m['loadavg_end'][0]:.2f} at the end.",
        f"Binaries: {result['arch']} `bootstrap` from `{result['lambda_dir']}/<function>/`"
        + ("; Lambda runs the arm64 build, which cannot run on this machine." if result["arch"] != "aarch64" else "."),
        f"{result['runs']} timed runs per function after {result['warmup']} untimed warm-up run(s), "
        f"interleaved; AWS_LAMBDA_LOG_FORMAT={'JSON' if result['log_format'] == 'json' else '(unset)'}; "
        f"every answer checked: `hookStatus` {result['expect']}."
        + (f" Added to the environment: {result['extra_env']}." if result["extra_env"] else ""),
        f"Events: {events}.",
        "",
    ]
    tables = [
        ("Init: spawn to first `/next` (ms)", "init_ms", fmt_ms),
        ("Cold start: spawn to the first answer posted (ms)", "first_answer_ms", fmt_ms),
        ("First invocation: first `/next` to its answer (ms)", "first_invocation_ms", fmt_ms),
        ("Warm invocation: second `/next` to its answer (ms)", "warm_ms", fmt_ms),
        ("Peak RSS, `VmHWM` (MiB)", "peak_rss_kib", fmt_mib),
    ]
    for title, key, fmt in tables:
        lines += [f"**{title}**", "", "| function | median | p90 | min | max |", "|---|---|---|---|---|"]
        for name, f in result["functions"].items():
            s = f["summary"][key]
            lines.append(f"| `{name}` | {fmt(s['median'])} | {fmt(s['p90'])} | {fmt(s['min'])} | {fmt(s['max'])} |")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="timed runs per function (default 20)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per function first (default 1)")
    parser.add_argument("--lambda-dir", type=Path, default=ROOT / "target/bench/x86_64",
                        help="holds <function>/bootstrap (default target/bench/x86_64)")
    parser.add_argument("--json-out", type=Path, help="write every run and the summary here")
    parser.add_argument("--function", action="append", choices=[f for f, _ in FUNCTIONS],
                        help="only this function (repeatable)")
    parser.add_argument("--log-format", choices=["json", "text"], default="json",
                        help="json sets AWS_LAMBDA_LOG_FORMAT=JSON (default), text leaves it unset")
    parser.add_argument("--timeout", type=int, default=300, help="function timeout in s, for Lambda-Runtime-Deadline-Ms")
    parser.add_argument("--run-timeout", type=float, default=30.0, help="give up on a run after this many s")
    parser.add_argument("--expect", default="SUCCEEDED", help="the hookStatus every answer must have")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="add to the function's environment (repeatable), e.g. for comparisons")
    args = parser.parse_args()
    args.extra_env = dict(e.split("=", 1) for e in args.env)

    chosen = [(f, e) for f, e in FUNCTIONS if not args.function or f in args.function]
    lambda_dir = args.lambda_dir.resolve()
    binaries = {}
    for function, event_file in chosen:
        bootstrap = lambda_dir / function / "bootstrap"
        if not os.access(bootstrap, os.X_OK):
            print(f"no executable {bootstrap}; build first (bench/run.sh)", file=sys.stderr)
            return 2
        event = (ROOT / event_file).read_bytes()
        json.loads(event)
        binaries[function] = (bootstrap, event, event_file)
    arches = {elf_machine(b) for b, _, _ in binaries.values()}

    result = {
        "machine": machine_facts(),
        "lambda_dir": os.path.relpath(lambda_dir, ROOT),
        "arch": ", ".join(sorted(arches)),
        "runs": args.runs,
        "warmup": args.warmup,
        "log_format": args.log_format,
        "expect": args.expect,
        "timeout_s": args.timeout,
        "extra_env": args.extra_env,
        "functions": {},
    }
    runs = {f: [] for f in binaries}
    with tempfile.TemporaryDirectory(prefix="greenlight-coldstart-") as tmp:
        for i in range(args.warmup + args.runs):
            for function, (bootstrap, event, _) in binaries.items():
                log_path = Path(tmp) / f"{function}.log"
                try:
                    r = one_run(function, bootstrap, event, args, log_path)
                except RunFailed as e:
                    print(f"{function}, run {i + 1}: {e}", file=sys.stderr)
                    print(f"--- the function's output ---\n{log_path.read_text(errors='replace')[-4000:]}", file=sys.stderr)
                    return 1
                if i >= args.warmup:
                    runs[function].append(r)
            print(f"run {i + 1}/{args.warmup + args.runs} done" + (" (warm-up)" if i < args.warmup else ""),
                  file=sys.stderr)
    result["machine"]["loadavg_end"] = os.getloadavg()

    keys = ["init_ms", "first_answer_ms", "first_invocation_ms", "warm_ms", "peak_rss_kib", "ru_maxrss_kib"]
    for function, (bootstrap, _, event_file) in binaries.items():
        result["functions"][function] = {
            "bootstrap": os.path.relpath(bootstrap, ROOT),
            "bootstrap_bytes": bootstrap.stat().st_size,
            "event": event_file,
            "summary": {k: summary([r[k] for r in runs[function]]) for k in keys},
            "runs": runs[function],
        }
    print(markdown(result))
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"JSON: {args.json_out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
