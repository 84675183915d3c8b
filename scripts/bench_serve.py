"""zoo serve under concurrent clients, beside a hand-written minimal FastAPI endpoint over the same model and
preprocessing (one picture a request, decided at once, no batching): requests/s, p50 and p99 latency, errors; zoo
serve both as it runs by default (batching) and with --max-batch 1 (no batching: the like-for-like comparison).

    python scripts/bench_serve.py runs/lenet5_digits/<time> [--clients 16] [--requests 2000] [--rounds 3]

The three servers take turns, --rounds times (A B C A B C ...); each figure is the median over the rounds, and each
ratio the median of the rounds' ratios to the hand-written one (the machine may be shared and noisy).

Each server is its own process (OMP_NUM_THREADS=1) on a free port; the clients are threads of this one, each posting
one 64 x 64 digit PNG (scikit-learn's digits) a request, multipart, and checking its top-1 against zoo.load's.
`--plain PORT` is the hand-written server itself (the script starts it so)."""

import argparse
import collections
import io
import json
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def plain(source: str, port: int) -> None:
    """The hand-written endpoint: decode, prepare, decide one picture, in a thread; what zoo serve is weighed
    against. (No `from __future__ import annotations` in this script: FastAPI reads `UploadFile`, imported here,
    from the endpoint's annotation.)"""
    import uvicorn
    from fastapi import FastAPI, UploadFile
    from PIL import Image
    from starlette.concurrency import run_in_threadpool

    import zoo

    predictor, app = zoo.load(source), FastAPI()

    def one(data: bytes) -> dict:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            batch = predictor.prepare(image)[None]
        return predictor.decide(batch, 5)[0].to_dict()

    @app.post("/predict")
    async def predict(file: UploadFile) -> dict:
        return {"predictions": [await run_in_threadpool(one, await file.read())]}

    print(f"serving {source} on http://127.0.0.1:{port}", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def pictures() -> list[bytes]:
    from PIL import Image
    from sklearn.datasets import load_digits

    encoded = []
    for image in load_digits().images[-64:]:
        buffer = io.BytesIO()
        Image.fromarray((image * 255 / 16).astype(np.uint8)).resize((64, 64)).convert("RGB").save(buffer, "PNG")
        encoded.append(buffer.getvalue())
    return encoded


def start(command: list[str]) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    found = re.search(r"on (http://[\d.]+:\d+)", process.stdout.readline())
    if not found:
        process.kill()
        raise SystemExit(f"{command} printed no address")
    return process, found[1]


def load(url: str, images: list[bytes], expected: list[str], clients: int, requests: int) -> dict:
    boundary = "bench-boundary"

    def ask(number: int) -> tuple[float, str | None]:
        data = images[number % len(images)]
        body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="d{number}.png"\r\n'
                f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
        request = urllib.request.Request(f"{url}/predict", data=body,
                                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        began = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                top = json.loads(answer.read())["predictions"][0]["top_k"][0]["class"]
            problem = None if top == expected[number % len(images)] else "wrong top-1"
        except Exception as error:  # a timeout, a refused or reset connection, an HTTP error
            problem = type(error).__name__
        return time.perf_counter() - began, problem

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(ask, range(clients * 4)))  # warm-up
        began = time.perf_counter()
        results = list(pool.map(ask, range(requests)))
        took = time.perf_counter() - began
    latencies = np.array([latency for latency, _ in results]) * 1000
    problems = collections.Counter(problem for _, problem in results if problem)
    return {"requests_per_s": requests / took, "p50_ms": float(np.percentile(latencies, 50)),
            "p99_ms": float(np.percentile(latencies, 99)), "errors": problems}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--plain", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain is not None:
        return plain(args.source, args.plain)
    import zoo

    images = pictures()
    from PIL import Image

    predictor = zoo.load(args.source)
    expected = [predictor.predict([Image.open(io.BytesIO(data))], top_k=1)[0].label for data in images]
    from socket import socket

    with socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    zoo_serve = [sys.executable, "-m", "zoo", "serve", args.source, "--port", "0"]
    servers = {"hand-written FastAPI": [sys.executable, __file__, args.source, "--plain", str(port)],
               "zoo serve --max-batch 1": [*zoo_serve, "--max-batch", "1"], "zoo serve": zoo_serve}
    rounds: dict[str, list[dict]] = {name: [] for name in servers}
    for _ in range(args.rounds):
        for name, command in servers.items():
            process, url = start(command)
            try:
                rounds[name].append(load(url, images, expected, args.clients, args.requests))
            finally:
                process.terminate()
                process.wait(30)
    base = [row["requests_per_s"] for row in rounds["hand-written FastAPI"]]
    print(f"{args.clients} clients, {args.requests} requests each server a round, one picture a request, "
          f"medians of {args.rounds} rounds")
    for name, rows in rounds.items():
        ratio = statistics.median(row["requests_per_s"] / b for row, b in zip(rows, base))
        middle = {key: statistics.median(row[key] for row in rows) for key in ("requests_per_s", "p50_ms", "p99_ms")}
        errors = dict(sum((row["errors"] for row in rows), collections.Counter())) or 0
        print(f"{name:24} {middle['requests_per_s']:8.1f} req/s ({ratio:.2f}x)  p50 {middle['p50_ms']:6.1f} ms  "
              f"p99 {middle['p99_ms']:6.1f} ms  errors {errors}")


if __name__ == "__main__":
    main()
