"""What the web app costs: its overhead on a training run against the same run from the CLI, the Build page's
summary + lint round trip for a 20-layer model, and the See page's activations for a CIFAR-10 model.

    python bench/serve.py --data-dir ../shared/datasets [--repeats 3]

Prints the machine, then medians. Timings are of a real uvicorn server over HTTP on 127.0.0.1.
"""
from __future__ import annotations

import argparse
import json
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import torch
import uvicorn

from cnnlab.device import cpu_has_bf16
from cnnlab.serve.app import create_app
from cnnlab.serve.templates import TEMPLATES


def machine() -> str:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in flags.splitlines() if line.startswith("model name")), "?")
    have = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in flags]
    return (f"{model}; {torch.get_num_threads()} threads; flags {' '.join(have)}; bf16 {cpu_has_bf16()}; "
            f"torch {torch.__version__}; python {platform.python_version()}")


def serve(app) -> tuple[str, uvicorn.Server]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server


def follow(client: httpx.Client, run_id: str) -> None:
    with client.stream("GET", f"/api/runs/{run_id}/events", timeout=3600) as response:
        for line in response.iter_lines():
            if line.startswith("event: end"):
                return


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", default="../shared/datasets")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=int, default=10000, help="training images for the overhead runs")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    root = Path(tempfile.mkdtemp(prefix="cnnlab-bench-serve-"))
    app = create_app(root / "runs", args.data_dir)
    url, server = serve(app)
    client = httpx.Client(base_url=url, timeout=600)
    config = {"model": "tutorial", "data": {"name": "fashion-mnist", "limit": args.limit}, "epochs": 2,
              "batch_size": 128}

    # 1. the same training, from the CLI and through the server's worker, interleaved
    cli_s, web_s, cli_train, web_train = [], [], [], []
    for r in range(args.repeats):
        run_dir = root / f"cli-{r}"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "cnnlab", "train", "--data", "fashion-mnist", "--data-dir",
                        args.data_dir, "--set", f"data.limit={args.limit}", "--epochs", "2", "--run-dir",
                        str(run_dir), "--no-store", "--quiet"], check=True, capture_output=True)
        cli_s.append(time.perf_counter() - start)
        cli_train.append(json.loads((run_dir / "result.json").read_text())["wall_time_s"])
        start = time.perf_counter()
        run_id = client.post("/api/runs", json={"config": config}).json()["id"]
        follow(client, run_id)
        web_s.append(time.perf_counter() - start)
        web_train.append(json.loads((root / "runs" / run_id / "result.json").read_text())["wall_time_s"])
    ratio = statistics.median(web_train) / statistics.median(cli_train)
    print(f"training time (result.json wall_time_s), median of {args.repeats}: CLI {statistics.median(cli_train):.2f} s, "
          f"server {statistics.median(web_train):.2f} s -> overhead {100 * (ratio - 1):+.1f}%")
    print(f"whole request to end (process start or worker queue included): CLI {statistics.median(cli_s):.2f} s, "
          f"server {statistics.median(web_s):.2f} s")

    # 2. Build: summary + lint of a 20-layer model, over HTTP
    layers = TEMPLATES["keras-cifar10"][:20] + ["global_avgpool", {"dense": 10}]
    times = []
    for _ in range(30):
        start = time.perf_counter()
        body = client.post("/api/check", json={"model": layers, "data": "cifar10"}).json()
        times.append(time.perf_counter() - start)
    print(f"/api/check, {len(body['layers'])} layers (summary + lint), median of 30: "
          f"{1000 * statistics.median(times):.1f} ms")

    # 3. See: every layer's activations for a CIFAR-10 model (the Keras CIFAR-10 template, 1 short epoch)
    run = {"model": TEMPLATES["keras-cifar10"], "data": {"name": "cifar10", "limit": 1024}, "epochs": 1,
           "batch_size": 128}
    run_id = client.post("/api/runs", json={"config": run}).json()["id"]
    follow(client, run_id)
    times = []
    for i in range(20):
        start = time.perf_counter()
        seen = client.post(f"/api/runs/{run_id}/see", json={"test_index": i}).json()
        times.append(time.perf_counter() - start)
    print(f"/api/runs/ID/see, CIFAR-10 Keras model ({len(seen['layers'])} layers), median of 20: "
          f"{1000 * statistics.median(times):.1f} ms (the first, loading the model and test set: "
          f"{1000 * times[0]:.0f} ms)")
    server.should_exit = True


if __name__ == "__main__":
    main()
