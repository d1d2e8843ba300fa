"""The station as a process: SIGTERM stops it within seconds with the gallery whole, and on
the ONNX backend it leaves no telemetry or device id behind."""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import httpx
import pytest
from station_helpers import cry_files, running_station

from cryprint.ward.gallery import Gallery


def test_sigterm_stops_the_station_within_seconds_and_the_gallery_is_whole(
    station_model: Path, small_corpus: Path, tmp_path: Path
) -> None:
    gallery = tmp_path / "ward.db"
    store = {"CRYPRINT_STORE": str(tmp_path / "store.sqlite")}
    with running_station(station_model, gallery, store) as (url, process):
        page = httpx.get(url + "/").text
        csrf = page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
        files = [
            ("files", (p.name, p.read_bytes()))
            for p in cry_files(small_corpus, "anonymous000", "B")
        ]
        enrolled = httpx.post(url + "/api/babies", data={"baby_id": "cot-1"}, files=files,
                              headers={"x-csrf-token": csrf}, timeout=60)  # fmt: skip
        assert enrolled.status_code == 200, enrolled.text
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(10)
        assert time.monotonic() - started < 5
    with Gallery.open(gallery) as opened:
        assert [baby.baby_id for baby in opened.babies()] == ["cot-1"]
    with sqlite3.connect(gallery) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_the_onnx_station_leaves_no_identifiers(tiny_export: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    home = tmp_path / "home"
    home.mkdir()
    environment = {"HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"),
                   "CRYPRINT_STORE": "off", "ORT_DISABLE_TELEMETRY": None}  # fmt: skip
    with running_station(tiny_export, tmp_path / "ward.db", environment) as (url, _):
        assert "onnx" in httpx.get(url + "/api/model").json()["embedded_with"]
    assert [p for p in home.rglob("*") if "Microsoft" in str(p)] == []
