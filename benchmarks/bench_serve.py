"""Benchmark 10: the ward station under several nurses at once.

Starts ``cryprint serve`` on a free loopback port (the model's ONNX export, one worker), enrols
30 test babies through its API, then identifies a 5-second cry 50 times from 1 client and 50
times from each of 4 concurrent clients: p50/p95 latency and throughput, and every answer
compared with the sequential one. Bounded: 250 requests, a time limit per request, and the
station is stopped at the end.

    python benchmarks/bench_serve.py --model demo/runs/triplet/best --data demo/corpus

Goals (issue 20): p95 <= 1 s for one client with the ONNX backend; 4 clients' throughput >= 0.9x
one client's; every answer identical to the sequential one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import soundfile

from common import machine_description, table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "server"))
from station_helpers import running_station

REQUESTS = 50
TIMEOUT_SECONDS = 60


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="demo/runs/triplet/best", help="a model folder")
    parser.add_argument("--data", type=Path, default=Path("demo/corpus"), help="CryCeleb layout")
    parser.add_argument("--babies", type=int, default=30, help="babies on the ward")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients")
    parser.add_argument("--store", action="store_true", help="keep the embedding store on")
    return parser.parse_args()


def five_second_cry(data: Path, baby: str, path: Path) -> Path:
    """The baby's discharge segments joined and repeated to 5 s, written as a WAV."""
    segments = [
        soundfile.read(f, dtype="float32")[0]
        for f in sorted(data.glob(f"audio/test/{baby}/D/*.wav"))
    ]
    joined = np.concatenate(segments)
    soundfile.write(path, np.resize(joined, 5 * 16000), 16000)
    return path


def enrol_ward(url: str, data: Path, babies: list[str]) -> None:
    page = httpx.get(url + "/").text
    csrf = page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    for baby in babies:
        files = [
            ("files", (f.name, f.read_bytes()))
            for f in sorted(data.glob(f"audio/test/{baby}/B/*.wav"))
        ]
        answer = httpx.post(url + "/api/babies", data={"baby_id": baby}, files=files,
                            headers={"x-csrf-token": csrf}, timeout=TIMEOUT_SECONDS)  # fmt: skip
        answer.raise_for_status()


def client_run(url: str, cry: bytes, count: int, into: list, answers: list) -> None:
    with httpx.Client(timeout=TIMEOUT_SECONDS) as client:
        for _ in range(count):
            started = time.perf_counter()
            answer = client.post(url + "/api/identify", files={"file": ("cry.wav", cry)})
            into.append(time.perf_counter() - started)
            answers.append(answer.status_code == 200 and answer.json()["answer"])


def measure(url: str, cry: bytes, clients: int) -> dict[str, float]:
    latencies: list[float] = []
    answers: list = []
    threads = [
        threading.Thread(target=client_run, args=(url, cry, REQUESTS, latencies, answers))
        for _ in range(clients)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "p50": statistics.median(ordered),
        "p95": ordered[int(0.95 * (len(ordered) - 1))],
        "throughput": len(ordered) / seconds,
        "answers": answers,
    }


def main() -> None:
    args = arguments()
    print(machine_description())
    from cryprint.packaging.speechbrain import export_model

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        export = export_model(args.model, folder / "onnx", "onnx")
        babies = sorted(p.name for p in (args.data / "audio" / "test").iterdir())[: args.babies]
        cry = five_second_cry(args.data, babies[0], folder / "cry.wav").read_bytes()
        # No embedding store: the same cry sent 50 times would be embedded once and then read
        # back, while on a ward every cry is new (--store measures the store's hits instead).
        store = str(folder / "store.sqlite") if args.store else "off"
        environment = {"CRYPRINT_STORE": store}
        with running_station(export, folder / "ward.db", environment) as (url, _):
            enrol_ward(url, args.data, babies)
            sequential = measure(url, cry, 1)
            concurrent = measure(url, cry, args.clients)
    reference = sequential["answers"][0]
    same = all(answer == reference for answer in sequential["answers"] + concurrent["answers"])
    rows = [
        [
            f"{n} client(s)",
            f"{r['p50'] * 1000:.0f}",
            f"{r['p95'] * 1000:.0f}",
            f"{r['throughput']:.2f}",
        ]
        for n, r in ((1, sequential), (args.clients, concurrent))
    ]
    stored = "from the embedding store" if args.store else "embedded anew each time"
    print(f"identify a 5 s cry ({stored}) among {len(babies)} babies, ONNX backend, 1 worker")
    print(table(["clients", "p50 ms", "p95 ms", "requests/s"], rows))
    ratio = concurrent["throughput"] / sequential["throughput"]
    print(f"{args.clients} clients' throughput / one client's: {ratio:.2f}x; every answer "
          f"identical to the sequential one: {same}; answer: {reference['answer']}")  # fmt: skip


if __name__ == "__main__":
    main()
