"""Helpers of the ward station's tests: the corpus's files, and a station in its own process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def cry_files(corpus: Path, baby: str, period: str) -> list[Path]:
    """The segment files of one recording of the small corpus."""
    (folder,) = corpus.glob(f"audio/*/{baby}/{period}")
    return sorted(folder.glob("*.wav"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_station(
    model: Path, gallery: Path, environment: dict[str, str | None] | None = None,
    timeout: float = 90,
) -> Iterator[tuple[str, subprocess.Popen]]:  # fmt: skip
    """``cryprint serve`` on a free loopback port, in its own process: (its URL, the process).
    ``environment`` adds variables to this process's (None: removed). Stopped with SIGTERM at
    the end (killed if it does not stop within 10 s)."""
    port = free_port()
    command = [
        sys.executable, "-m", "cryprint", "serve", "--gallery", str(gallery), "--model",
        str(model), "--port", str(port), "--device", "cpu",
    ]  # fmt: skip
    variables = {**os.environ, **(environment or {})}
    variables = {name: value for name, value in variables.items() if value is not None}
    process = subprocess.Popen(
        command, env=variables, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise AssertionError(f"the station stopped: {process.stderr.read()[-2000:]}")
            try:
                if httpx.get(url + "/api/model", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("the station did not start in time")
            time.sleep(0.3)
        yield url, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
