"""How fast `cnnlab serve` and its training worker stop on SIGTERM and on Ctrl-C (SIGINT), with a run training and
a page's event stream open (issue 22: within 5 s). Run from the repository root: python bench/serve_stop.py"""
import signal
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import write_idx
from test_serve_abuse import Server, all_gone
for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGTERM, signal.SIGINT):
    tmp = Path(tempfile.mkdtemp())
    write_idx(tmp / "data" / "mnist")
    server = Server(tmp / "runs", tmp / "data")
    run_id = server.long_run(tmp / "runs")
    stream = urllib.request.urlopen(server.url + f"/api/runs/{run_id}/events", timeout=30)
    workers = server.children()
    start = time.perf_counter()
    server.proc.send_signal(sig)
    server.proc.wait(10)
    gone = all_gone(workers, 5)
    print(f"{signal.Signals(sig).name}: server and worker gone in {time.perf_counter() - start:.2f} s ({gone})", flush=True)
    stream.close()
