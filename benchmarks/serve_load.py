"""Latency of `metalearn serve` under load: adapt and predict with 1 and 20 concurrent clients.

Starts `metalearn serve RUN --port 0` on 127.0.0.1 (or uses --url), gives every client its own
session with 3 classes of 3 drawn examples (circle, cross, bar), then, for each number of
concurrent clients, warms up (one unmeasured adapt and predict per client), sends a fixed
number of adapt requests and then of predict requests (spread over the clients, which start
together) and prints the median and 95th percentile latency per request as a Markdown table.
It stops by itself after those requests.

Usage: python benchmarks/serve_load.py runs/<protonet run> [--clients 1 20] [--requests 200]
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import platform
import re
import statistics
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit

from PIL import Image, ImageDraw

SHAPES = ("circle", "cross", "bar")


def drawing(shape: str, shift: int) -> bytes:
    """A PNG of a black symbol on white, 105 x 105 as Omniglot draws."""
    image = Image.new("L", (105, 105), 255)
    draw = ImageDraw.Draw(image)
    a, b = 25 + shift, 80 + shift
    if shape == "circle":
        draw.ellipse((a, a, b, b), outline=0, width=5)
    elif shape == "bar":
        draw.line((52 + shift, 15, 52 + shift, 90), fill=0, width=5)
    else:
        draw.line((a, a, b, b), fill=0, width=5)
        draw.line((a, b, b, a), fill=0, width=5)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class Client:
    """One browser: a kept-alive connection and a session cookie."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        self.cookie = ""

    def call(self, method: str, path: str, body: bytes | None = None, kind: str = "") -> dict:
        headers = {"Cookie": self.cookie} if self.cookie else {}
        if kind:
            headers["Content-Type"] = kind
        try:
            self.connection.request(method, path, body=body, headers=headers)
            response = self.connection.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # the server closed a connection left idle past its keep-alive time: reconnect
            self.connection.close()
            self.connection.request(method, path, body=body, headers=headers)
            response = self.connection.getresponse()
        data = response.read()
        if cookie := response.getheader("set-cookie"):
            self.cookie = cookie.split(";")[0]
        if response.status >= 400:
            raise RuntimeError(f"{method} {path}: {response.status} {data[:200]!r}")
        return json.loads(data) if data else {}

    def set_up(self) -> None:
        for shape in SHAPES:
            self.call(
                "POST", "/api/classes", json.dumps({"name": shape}).encode(), "application/json"
            )
            for shift in (-6, 0, 6):
                self.call(
                    "POST", f"/api/classes/{shape}/examples", drawing(shape, shift), "image/png"
                )
        self.call("POST", "/api/adapt")

    def warm_up(self) -> None:
        """One unmeasured adapt and predict: the first calls into torch are slower."""
        self.call("POST", "/api/adapt")
        self.call("POST", "/api/predict", drawing("bar", 0), "image/png")


def run_phase(clients: list[Client], requests: int, operation: str) -> list[float]:
    """Send ``requests`` requests of ``operation`` over the clients at once; return latencies."""
    query = drawing("cross", 3)
    latencies: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(len(clients))

    def work(client: Client, count: int) -> None:
        start.wait()
        for _ in range(count):
            began = time.perf_counter()
            if operation == "adapt":
                client.call("POST", "/api/adapt")
            else:
                client.call("POST", "/api/predict", query, "image/png")
            with lock:
                latencies.append(time.perf_counter() - began)

    shares = [requests // len(clients) + (i < requests % len(clients)) for i in range(len(clients))]
    threads = [
        threading.Thread(target=work, args=pair) for pair in zip(clients, shares, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def start_server(run: str) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "metalearn.cli.main", "serve", run, "--port=0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"at (http://\S+/)", line)
    if not match:
        process.kill()
        sys.exit(f"error: `metalearn serve` printed {line!r}")
    return process, match.group(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", help="trained run folder to serve")
    parser.add_argument("--url", help="an already running server instead of RUN")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 20])
    parser.add_argument("--requests", type=int, default=200, help="requests per phase")
    args = parser.parse_args()
    if (args.run is None) == (args.url is None):
        parser.error("give RUN or --url")
    process, url = (None, args.url) if args.url else start_server(args.run)
    try:
        print(
            f"`metalearn serve` at {url}; {platform.processor() or platform.machine()}, "
            f"Python {platform.python_version()}; {args.requests} requests per row\n"
        )
        print("| clients | request | median (ms) | p95 (ms) | requests/s |")
        print("|---:|---|---:|---:|---:|")
        for n_clients in args.clients:
            clients = [Client(url) for _ in range(n_clients)]
            for client in clients:
                client.set_up()
            for client in clients:
                client.warm_up()
            for operation in ("adapt", "predict"):
                began = time.perf_counter()
                latencies = run_phase(clients, args.requests, operation)
                rate = len(latencies) / (time.perf_counter() - began)
                p95 = statistics.quantiles(latencies, n=20, method="inclusive")[-1]
                print(
                    f"| {n_clients} | {operation} | {statistics.median(latencies) * 1e3:.1f} | "
                    f"{p95 * 1e3:.1f} | {rate:.1f} |",
                    flush=True,
                )
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
