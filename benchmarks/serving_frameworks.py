"""FastAPI or Litestar for the scoring service: the same workload on each, measured.

The workload is the service's hottest call, one lead with explanation: both apps expose one route
that takes the lead as JSON and answers with ``ml.serving.api.scoring.LeadScorer`` (mapping,
checks, model, drivers, reason), so only the framework differs. Each runs under uvicorn with one
worker on loopback; wrk drives it with 2 connections for ``--seconds``, the frameworks taking
turns for ``--rounds`` rounds (a loaded machine drifts; turns spread the drift over both).
Litestar is in the ``bench-serving`` dependency group:

    uv run --group bench-serving python benchmarks/serving_frameworks.py

Writes ``benchmarks/results/serving-frameworks.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from serving_load import _free_port, _lua_script, _wrk  # noqa: E402

from ml.core.settings import Settings  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "serving-frameworks.json"


def _score(lead: dict[str, Any]) -> dict[str, Any]:
    from ml.serving.api.app import Service

    service = _SERVICE.get("service")
    if service is None:
        service = _SERVICE["service"] = Service.from_settings(Settings())
    champion = service.champions.get("lead_scoring")
    scored = service.leads.score(champion, [lead]).scores
    row = scored.iloc[0]
    return {
        "lead_id": str(row["lead_id"]),
        "conversion_probability": float(row["conversion_probability"]),
        "grade": str(row["grade"]),
        "top_drivers": json.loads(row["top_drivers"]),
        "reason": str(row["reason"]),
        "model_version": str(row["model_version"]),
    }


_SERVICE: dict[str, Any] = {}


def fastapi_app() -> Any:
    from fastapi import Body, FastAPI

    app = FastAPI()

    @app.post("/lead")
    async def lead(body: dict[str, str | int | float | bool | None] = Body()) -> dict[str, Any]:  # noqa: B008
        return _score(body)

    return app


def litestar_app() -> Any:
    from litestar import Litestar, post

    @post("/lead", status_code=200)
    async def lead(data: dict[str, str | int | float | bool | None]) -> dict[str, Any]:
        return _score(data)

    return Litestar([lead])


def _run(framework: str, body: str, key: str, seconds: float) -> dict[str, Any]:
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            f"serving_frameworks:{framework}_app",
            "--factory",
            "--app-dir",
            str(REPO / "benchmarks"),
            "--port",
            str(port),
            "--workers",
            "1",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while True:
            try:
                if (
                    httpx.post(
                        f"{url}/lead",
                        content=body,
                        timeout=60,
                        headers={"Content-Type": "application/json"},
                    ).status_code
                    == 200
                ):
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(f"{framework} app did not answer")
            time.sleep(0.5)
        return _wrk(url, _lua_script([("POST", "/lead", body)], key, 0, 0), 1, 2, seconds)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    settings = Settings()
    export = pd.read_csv(settings.source_dir / "leads.csv", dtype=str, keep_default_na=False)
    lead = {k: (v if v != "" else None) for k, v in export.iloc[0].to_dict().items()}
    body = json.dumps(lead)
    runs: dict[str, list[dict[str, Any]]] = {"fastapi": [], "litestar": []}
    for _ in range(args.rounds):
        for framework in runs:
            print(f"{framework} ...", flush=True)
            runs[framework].append(_run(framework, body, "unused", args.seconds))
    summary = {
        framework: {
            "p50_ms": statistics.median(r["p50_ms"] for r in results),
            "p99_ms": statistics.median(r["p99_ms"] for r in results),
            "rps": statistics.median(r["rps"] for r in results),
            "errors": sum(r["errors"] for r in results),
            "rounds": results,
        }
        for framework, results in runs.items()
    }
    summary["setup"] = {
        "workload": "POST one lead with explanation (LeadScorer), uvicorn 1 worker, wrk 2 "
        f"connections, {args.seconds:.0f} s per round, {args.rounds} rounds each, taking turns",
        "machine": f"{os.cpu_count()} cores, load average at the end {os.getloadavg()[0]:.1f}",
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(summary, indent=2) + "\n")
    for framework in runs:
        s = summary[framework]
        print(f"{framework}: p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms, {s['rps']} requests/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
