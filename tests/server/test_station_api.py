"""The ward station's API and pages with FastAPI's TestClient: the library's answers, the
guards (token, same origin, CSRF, upload cap), the headers, and no path or traceback out."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile
from fastapi.testclient import TestClient
from station_helpers import cry_files

from cryprint.errors import ConfigError
from cryprint.inference.api import CryPrint
from cryprint.server.app import create_app
from cryprint.server.security import SESSION_COOKIE
from cryprint.server.settings import StationSettings
from cryprint.server.station import Station
from cryprint.ward.identify import identify

BABIES = ("anonymous000", "anonymous001", "anonymous002")
TOKEN = "a-long-enough-test-token-0123456789"


@pytest.fixture
def station(station_model: Path, tmp_path: Path) -> tuple[TestClient, Station]:
    settings = StationSettings(gallery=tmp_path / "ward.db", model=str(station_model))
    station = Station(settings, CryPrint(station_model, store=tmp_path / "store.sqlite"))
    return TestClient(create_app(settings, station)), station


def _files(paths: list[Path], field: str = "files") -> list[tuple]:
    return [(field, (path.name, path.read_bytes(), "audio/wav")) for path in paths]


def _enrol(client: TestClient, corpus: Path, baby: str, csrf: str) -> dict:
    files = _files(cry_files(corpus, baby, "B"))
    answer = client.post("/api/babies", data={"baby_id": baby}, files=files,
                         headers={"x-csrf-token": csrf})  # fmt: skip
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_enrol_identify_verify_and_remove_give_the_librarys_answers(
    station: tuple[TestClient, Station], small_corpus: Path
) -> None:
    client, station_ = station
    csrf = client.app.state.guard.csrf
    for baby in BABIES:
        assert _enrol(client, small_corpus, baby, csrf)["added"] == len(
            cry_files(small_corpus, baby, "B")
        )
    cry = cry_files(small_corpus, BABIES[1], "D")[0]
    answer = client.post(
        "/api/identify",
        files=_files([cry], "file")[0:1] and {"file": (cry.name, cry.read_bytes(), "audio/wav")},
    )
    assert answer.status_code == 200, answer.text
    direct = identify(station_.embedder, station_.gallery_path, cry)
    assert answer.json()["answer"] == direct.answer.to_dict()
    assert str(station_.embedder.loaded.folder) not in answer.text  # no server path out
    assert [c["baby_id"] for c in answer.json()["candidates"]] == [
        c.baby_id for c in direct.candidates
    ]
    a, b = cry_files(small_corpus, BABIES[0], "B")[0], cry
    verdict = client.post(
        "/api/verify", files={"a": (a.name, a.read_bytes()), "b": (b.name, b.read_bytes())}
    )
    assert verdict.json()["score"] == pytest.approx(station_.embedder.verify(a, b).score)
    assert "from the model/evaluation.json" in verdict.json()["threshold_source"]
    removed = client.delete(f"/api/babies/{BABIES[2]}", headers={"x-csrf-token": csrf})
    assert removed.json() == {
        "baby_id": BABIES[2],
        "removed": len(cry_files(small_corpus, BABIES[2], "B")),
    }
    ward = client.get("/api/ward").json()
    assert [b["baby_id"] for b in ward["babies"]] == list(BABIES[:2])
    assert [(e["action"], e["baby_id"]) for e in ward["audit"]][:2] == [
        ("remove", BABIES[2]),
        ("enrol", BABIES[2]),
    ]
    assert ward["audit"][0]["client"] == "testclient"
    assert ward["babies"][0]["enrolments"][0]["source"].startswith("upload: ")
    assert "/api/identify" in client.get("/openapi.json").json()["paths"]


def test_the_pages_show_the_answer_in_words_and_escape_every_id(
    station: tuple[TestClient, Station], small_corpus: Path
) -> None:
    client, _ = station
    csrf = client.app.state.guard.csrf
    hostile = "<script>alert(1)</script>"
    files = _files(cry_files(small_corpus, BABIES[0], "B"))
    answer = client.post("/ward/enrol", data={"baby_id": hostile, "csrf": csrf}, files=files)
    assert answer.status_code == 200  # after the redirect to the ward
    page = client.get("/").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page
    cry = cry_files(small_corpus, BABIES[0], "D")[0]
    result = client.post("/identify", data={"csrf": csrf},
                         files={"file": (cry.name, cry.read_bytes(), "audio/wav")})  # fmt: skip
    assert 'id="answer"' in result.text and "&lt;script&gt;" in result.text
    confirm = client.get("/ward/remove", params={"baby": hostile})
    assert "Yes, remove" in confirm.text and "<script>alert" not in confirm.text
    client.post("/ward/remove", data={"baby_id": hostile, "csrf": csrf})
    assert client.get("/api/ward").json()["babies"] == []


def test_every_response_carries_the_security_headers(station: tuple[TestClient, Station]) -> None:
    client, _ = station
    for path in ("/", "/identify", "/api/ward", "/static/style.css", "/no-such-page"):
        headers = client.get(path).headers
        policy = headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy, path
        assert "frame-ancestors 'none'" in policy and headers["x-content-type-options"] == "nosniff"


def test_a_state_change_from_another_site_is_refused(
    station: tuple[TestClient, Station], small_corpus: Path
) -> None:
    client, _ = station
    csrf = client.app.state.guard.csrf
    files = _files(cry_files(small_corpus, BABIES[0], "B"))
    for headers in ({"origin": "https://evil.example"}, {"referer": "https://evil.example/x"}):
        answer = client.post("/api/babies", data={"baby_id": "x"}, files=files,
                             headers={**headers, "x-csrf-token": csrf})  # fmt: skip
        assert answer.status_code == 403
    # A form without this run's CSRF token (another site's page posting blind) is refused too.
    assert client.post("/ward/enrol", data={"baby_id": "x"}, files=files).status_code == 403
    assert (
        client.post("/ward/enrol", data={"baby_id": "x", "csrf": "guess"}, files=files).status_code
        == 403
    )
    assert client.get("/api/ward").json()["babies"] == []


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: np.zeros(32000, np.float32), "no cry"),
        (lambda: np.random.default_rng(0).normal(0, 0.1, 800).astype(np.float32), "too short"),
    ],
)
def test_audio_is_checked_as_the_cli_checks_it(
    station: tuple[TestClient, Station], small_corpus: Path, tmp_path: Path, make, message: str
) -> None:
    client, _ = station
    _enrol(client, small_corpus, BABIES[0], client.app.state.guard.csrf)
    path = tmp_path / "cry.wav"
    soundfile.write(path, make(), 16000)
    answer = client.post("/api/identify", files={"file": ("cry.wav", path.read_bytes())})
    assert answer.status_code == 422 and message in answer.json()["detail"]
    assert str(tmp_path) not in answer.text and "/tmp" not in answer.text
    garbage = client.post("/api/identify", files={"file": ("notes.txt", b"not audio at all")})
    assert garbage.status_code == 422 and "notes.txt" in garbage.json()["detail"]
    assert "/tmp" not in garbage.text


def test_an_upload_beyond_the_cap_is_refused_before_it_is_read(
    station_model: Path, tmp_path: Path
) -> None:
    settings = StationSettings(gallery=tmp_path / "w.db", model=str(station_model),
                               max_upload_bytes=4096)  # fmt: skip
    client = TestClient(create_app(settings))
    declared = client.post("/api/identify", files={"file": ("big.wav", b"\0" * 10_000)})
    assert declared.status_code == 413 and "larger than" in declared.json()["detail"]

    def chunks():  # no Content-Length: counted as it streams
        for _ in range(10):
            yield b"\0" * 1000

    streamed = client.post("/api/identify", content=chunks(),
                           headers={"content-type": "multipart/form-data; boundary=x"})  # fmt: skip
    assert streamed.status_code == 413


def test_no_traceback_or_path_reaches_a_caller(
    station: tuple[TestClient, Station], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, station_ = station

    async def broken(*args, **kwargs):
        raise RuntimeError("/secret/path/inside the server")

    monkeypatch.setattr(station_, "identify", broken)
    client = TestClient(client.app, raise_server_exceptions=False)
    answer = client.post("/api/identify", files={"file": ("a.wav", b"x")})
    assert answer.status_code == 500 and "secret" not in answer.text
    assert "Traceback" not in answer.text


def test_a_full_queue_answers_503_with_retry_after(
    station_model: Path, small_corpus: Path, tmp_path: Path
) -> None:
    settings = StationSettings(gallery=tmp_path / "w.db", model=str(station_model),
                               workers=1, queue=0)  # fmt: skip
    station = Station(settings, CryPrint(station_model, store=False))
    client = TestClient(create_app(settings, station))
    release = threading.Event()
    station.pool.executor.submit(release.wait)  # the only worker is busy...
    assert station.pool.slots.acquire(blocking=False)  # ...and holds the only slot
    try:
        cry = cry_files(small_corpus, BABIES[0], "D")[0]
        answer = client.post("/api/identify", files={"file": (cry.name, cry.read_bytes())})
        assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
    finally:
        station.pool.slots.release()
        release.set()


def test_beyond_loopback_a_token_is_required_and_checked(
    station_model: Path, small_corpus: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(ConfigError, match="without an access token"):
        StationSettings(gallery=tmp_path / "w.db", model=str(station_model), host="0.0.0.0")
    settings = StationSettings(gallery=tmp_path / "w.db", model=str(station_model),
                               host="0.0.0.0", token=TOKEN)  # fmt: skip
    client = TestClient(create_app(settings))
    with caplog.at_level(logging.WARNING, logger="cryprint.station"):
        assert client.get("/api/ward").status_code == 401
        wrong = client.get("/api/ward", headers={"authorization": "Bearer " + TOKEN[:-1] + "x"})
        assert wrong.status_code == 401
    assert TOKEN not in caplog.text and "no valid token" in caplog.text
    assert client.get("/api/ward", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
    page = client.get("/", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login"
    assert "not this station" in client.post("/login", data={"token": "nope"}).text
    logged_in = client.post("/login", data={"token": TOKEN}, follow_redirects=False)
    cookie = logged_in.cookies[SESSION_COOKIE]
    assert TOKEN not in cookie and "httponly" in logged_in.headers["set-cookie"].lower()
    client.cookies.set(SESSION_COOKIE, cookie)
    assert client.get("/").status_code == 200


def test_the_cli_refuses_to_serve_beyond_loopback_without_a_token(
    station_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    from cryprint.cli import main

    monkeypatch.delenv("CRYPRINT_TOKEN", raising=False)
    args = ["serve", "--gallery", str(tmp_path / "w.db"), "--model", str(station_model)]
    assert main([*args, "--host", "0.0.0.0"]) == 2
    assert "--token-file" in capsys.readouterr().err
    short = tmp_path / "token"
    short.write_text("short\n")
    assert main([*args, "--host", "0.0.0.0", "--token-file", str(short)]) == 2
    assert "at least 16 characters" in capsys.readouterr().err
