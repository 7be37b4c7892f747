"""Load test of the scoring service (make bench-serving): bounded, it stops by itself.

Starts ``crm-signals serve`` on loopback against the state of a finished ``make run`` in
``$CRM_HOME`` (running it first when there is no scored warehouse), then drives it with wrk (C,
from Debian; Lua scripts post the JSON bodies) and, for the batch call, a Python client:

1. one lead with explanation: ``--requests`` requests on 2 connections (or ``--seconds``, first
   reached), p99 latency;
2. one customer by id: the same;
3. a batch of 1,000 leads: ``--batches`` calls one after the other, median and worst time;
4. sustained: ``--rate`` requests/s (half leads, half customers; each of ``--connections``
   connections paced to its share) for ``--sustained-seconds``, achieved rate, p99, errors.

The server processes' resident memory is sampled throughout (the sum over its processes, and
the largest worker). Writes ``benchmarks/results/serving.json`` (keys ``lead_p99_ms``,
``customer_p99_ms``, ``batch_1000_ms``, ``sustained_rps``, ``errors``, ``resident_memory_mb``
and the details) and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ml.core.settings import Settings  # noqa: E402
from ml.core.warehouse import connect  # noqa: E402
from ml.serving.api.security import hash_key, new_key  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "serving.json"
TARGETS = {"lead_p99_ms": 25, "customer_p99_ms": 25, "batch_1000_ms": 250}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _lua_string(text: str) -> str:
    return f"[==[{text}]==]"


def _lua_script(
    requests: list[tuple[str, str, str | None]], key: str, stop_after: int, pace_ms: float
) -> str:
    """A wrk script cycling through (method, path, body) requests; each thread stops after
    ``stop_after`` answers (0: never), and waits ``pace_ms`` before each request (0: none)."""
    items = ",\n".join(
        f"  {{{_lua_string(m)}, {_lua_string(p)}, {_lua_string(b) if b is not None else 'nil'}}}"
        for m, p, b in requests
    )
    return f"""
local requests = {{
{items}
}}
local headers = {{["Content-Type"] = "application/json", ["X-API-Key"] = {_lua_string(key)}}}
local i = math.random(#requests)
local answered = 0
request = function()
  i = i % #requests + 1
  local r = requests[i]
  return wrk.format(r[1], r[2], headers, r[3])
end
{"delay = function() return " + str(pace_ms) + " end" if pace_ms > 0 else ""}
response = function(status, headers, body)
  answered = answered + 1
  if {stop_after} > 0 and answered >= {stop_after} then wrk.thread:stop() end
end
"""


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip()).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def _wrk(url: str, script: str, threads: int, connections: int, seconds: float) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        out = subprocess.run(
            [
                "wrk",
                f"-t{threads}",
                f"-c{connections}",
                f"-d{int(seconds)}s",
                "--latency",
                "--timeout",
                "10s",
                "-s",
                handle.name,
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 60,
        ).stdout
    finally:
        os.unlink(handle.name)
    percentiles = {
        m.group(1): _ms(m.group(2)) for m in re.finditer(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M)
    }
    total = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    errors = int(non_2xx.group(1)) if non_2xx else 0
    if socket_errors:
        errors += sum(int(g) for g in socket_errors.groups())
    requests = int(total.group(1)) if total else 0
    elapsed = _ms(total.group(2) + total.group(3)) / 1000 if total else seconds
    return {
        "requests": requests,
        "seconds": round(elapsed, 2),
        "rps": round(requests / elapsed, 1) if elapsed else 0.0,
        "p50_ms": percentiles.get("50"),
        "p90_ms": percentiles.get("90"),
        "p99_ms": percentiles.get("99"),
        "errors": errors,
    }


class MemorySampler(threading.Thread):
    """Peak resident memory of a process and its children, sampled every 0.5 s."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_total_mb = 0.0
        self.peak_largest_mb = 0.0
        self.processes = 0
        self._stop = threading.Event()

    def _tree(self) -> list[int]:
        pids, frontier = [self.pid], [self.pid]
        while frontier:
            parent = frontier.pop()
            children = Path(f"/proc/{parent}/task/{parent}/children")
            found = [int(p) for p in children.read_text().split()] if children.exists() else []
            pids += found
            frontier += found
        return pids

    @staticmethod
    def _rss_mb(pid: int) -> float:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def run(self) -> None:
        while not self._stop.wait(0.5):
            sizes = [self._rss_mb(p) for p in self._tree()]
            self.processes = max(self.processes, len(sizes))
            self.peak_total_mb = max(self.peak_total_mb, sum(sizes))
            self.peak_largest_mb = max(self.peak_largest_mb, max(sizes, default=0.0))

    def stop(self) -> None:
        self._stop.set()


def _inputs(settings: Settings, n: int) -> tuple[list[str], list[dict[str, Any]]]:
    with connect(settings.warehouse_path, read_only=True, threads=1) as con:
        ids = [
            str(r[0])
            for r in con.execute(
                "select customer_id from serving.customer_scores order by hash(customer_id) limit ?",
                [n],
            ).fetchall()
        ]
    export = pd.read_csv(settings.source_dir / "leads.csv", dtype=str, keep_default_na=False)
    leads = [
        {k: (v if v != "" else None) for k, v in row.items()} for row in export.to_dict("records")
    ]
    return ids, leads


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=2000, help="requests per single-call phase")
    parser.add_argument(
        "--seconds", type=float, default=20, help="most seconds per single-call phase"
    )
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--sustained-seconds", type=float, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is missing: apt-get install wrk", file=sys.stderr)
        return 2
    settings = Settings()
    crm = str(Path(sys.executable).parent / "crm-signals")
    if not settings.warehouse_path.is_file():
        print("no scored warehouse in CRM_HOME: running the pipeline first (crm-signals run)")
        subprocess.run([crm, "run"], check=True)
    ids, leads = _inputs(settings, 500)
    key = new_key()
    port = _free_port()
    env = {
        **os.environ,
        "CRM_API_KEY_HASHES": f"bench:{hash_key(key)}",
        "CRM_SERVE_RATE_LIMIT": str(10**9),  # the bench measures the service, not the limiter
    }
    started = time.monotonic()
    log = (settings.logs_dir / "serving_load.log").open("w")
    server = subprocess.Popen(
        [crm, "serve", "--port", str(port), "--workers", str(args.workers)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    memory = MemorySampler(server.pid)
    base = f"http://127.0.0.1:{port}"
    headers = {"X-API-Key": key}
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            while True:
                try:
                    if client.get("/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None or time.monotonic() - started > 300:
                    raise RuntimeError("crm-signals serve did not become ready")
                time.sleep(0.5)
            ready_s = time.monotonic() - started
            memory.start()
            for _ in range(20):  # every worker loads its models on first use
                client.post("/v1/leads/score", json=leads[0])
                client.get(f"/v1/customers/{ids[0]}/score")
            lead_requests = [("POST", "/v1/leads/score", json.dumps(r)) for r in leads[:200]]
            customer_requests = [("GET", f"/v1/customers/{i}/score", None) for i in ids]
            per_thread = args.requests // 2
            print("one lead with explanation ...", flush=True)
            lead = _wrk(base, _lua_script(lead_requests, key, per_thread, 0), 2, 2, args.seconds)
            print("one customer by id ...", flush=True)
            customer = _wrk(
                base, _lua_script(customer_requests, key, per_thread, 0), 2, 2, args.seconds
            )
            print("batches of 1,000 leads ...", flush=True)
            batch_ms, batch_errors = [], 0
            for b in range(args.batches):
                chunk = leads[(b * 1000) % len(leads) :][:1000]
                t0 = time.perf_counter()
                answer = client.post("/v1/leads/score/batch", json={"leads": chunk})
                batch_ms.append((time.perf_counter() - t0) * 1000)
                batch_errors += answer.status_code != 200
            print(
                f"sustained {args.rate:.0f} requests/s for {args.sustained_seconds:.0f} s ...",
                flush=True,
            )
            mixed = [
                r for pair in zip(lead_requests, customer_requests, strict=False) for r in pair
            ]
            pace_ms = 1000 * args.connections / args.rate
            sustained = _wrk(
                base,
                _lua_script(mixed, key, 0, pace_ms),
                2,
                args.connections,
                args.sustained_seconds,
            )
    finally:
        memory.stop()
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    result = {
        "lead_p99_ms": lead["p99_ms"],
        "customer_p99_ms": customer["p99_ms"],
        "batch_1000_ms": round(statistics.median(batch_ms), 1),
        "sustained_rps": sustained["rps"],
        "errors": lead["errors"] + customer["errors"] + batch_errors + sustained["errors"],
        "resident_memory_mb": round(memory.peak_total_mb, 1),
        "details": {
            "lead": lead,
            "customer": customer,
            "batch_1000": {
                "calls": len(batch_ms),
                "median_ms": round(statistics.median(batch_ms), 1),
                "max_ms": round(max(batch_ms), 1),
                "errors": batch_errors,
            },
            "sustained": {**sustained, "target_rps": args.rate, "connections": args.connections},
            "server": {
                "workers": args.workers,
                "processes": memory.processes,
                "peak_resident_mb_all_processes": round(memory.peak_total_mb, 1),
                "peak_resident_mb_largest_process": round(memory.peak_largest_mb, 1),
                "seconds_to_ready": round(ready_s, 1),
            },
            "targets": {
                **TARGETS,
                "sustained_rps": args.rate,
                "sustained_p99_ms": 100,
                "errors": 0,
            },
            "machine": f"{os.cpu_count()} cores, load average at the end "
            f"{os.getloadavg()[0]:.1f} (other processes share the machine)",
        },
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "details"}, indent=2))
    print(
        f"sustained p99 {sustained['p99_ms']} ms; written {args.output.relative_to(REPO) if args.output.is_relative_to(REPO) else args.output}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
