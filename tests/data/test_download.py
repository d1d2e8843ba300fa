"""Tests for cryprint.data.download, offline: a fake hub serves a tiny corpus from a folder."""

from __future__ import annotations

import errno
import hashlib
import importlib
import inspect
import io
import logging
import os
import shutil
import stat
import tempfile
import traceback
import zipfile
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
import soundfile
from huggingface_hub import constants as hub_constants
from huggingface_hub import errors as hub_errors
from huggingface_hub import hf_hub_download
from huggingface_hub import utils as hub_utils
from hypothesis import given, settings
from hypothesis import strategies as st

from cryprint.data import download
from cryprint.data.archive import extract_zip
from cryprint.data.download import DATASET_FILES, DownloadReport, download_cryceleb
from cryprint.errors import DataError, HubError, OutputError

REPO_ID = "Ubenwa/CryCeleb2023"
SAMPLE_RATE = 16_000
# (split, baby_id, period): one segment each.
RECORDINGS = [
    ("train", "0001", "B"),
    ("train", "0001", "D"),
    ("dev", "0002", "B"),
    ("dev", "0002", "D"),
]
METADATA_HEADER = "baby_id,period,duration,split,chronological_index,file_name,file_id\n"
FAKE_TOKEN = "hf_FakeTokenMustNeverAppear_7c1e9"


# --- a tiny corpus and a fake hub ------------------------------------------------------------


def wav_bytes(samples: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def make_corpus(seed: int = 0, extra_zip_files: int = 0) -> tuple[dict[str, bytes], dict]:
    """The five repo files (name -> bytes) and the audio each file_name should hold."""
    rng = np.random.default_rng(seed)
    audio: dict[str, np.ndarray] = {}
    rows = []
    for split, baby_id, period in RECORDINGS:
        file_id = f"{baby_id}_{period}_000"
        file_name = f"audio/{split}/{baby_id}/{period}/{file_id}.wav"
        audio[file_name] = rng.uniform(-0.5, 0.5, size=1600).astype(np.float32)
        rows.append(f"{baby_id},{period},0.1,{split},000,{file_name},{file_id}\n")
    for index in range(extra_zip_files):
        audio[f"audio/train/0001/B/0001_B_{index + 1:03d}.wav"] = np.zeros(800, np.float32)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for file_name, samples in audio.items():
            zipped.writestr(file_name, wav_bytes(samples))
    files = {
        "metadata.csv": (METADATA_HEADER + "".join(rows)).encode(),
        "dev_pairs.csv": b"baby_id_B,baby_id_D,id,label\n0002,0002,0002B_0002D,1\n",
        "test_pairs.csv": b"baby_id_B,baby_id_D,id\n0002,0002,0002B_0002D\n",
        "sample_submission.csv": b"id,score\n0002B_0002D,0.0\n",
        "audio.zip": archive.getvalue(),
    }
    return files, audio


class FakeHub:
    """Stands in for ``hf_hub_download``: serves files from a folder laid out like the hub cache
    (snapshot entries are symlinks to blobs), records every call, or raises ``error``."""

    def __init__(self, root: Path, files: dict[str, bytes]):
        self.root = root
        self.calls: list[dict] = []
        self.error: Exception | None = None
        self.progress_disabled: list[bool] = []
        for name, data in files.items():
            self.publish(name, data)

    def publish(self, name: str, data: bytes) -> None:
        blob = self.root / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        snapshot = self.root / "snapshots" / "main" / name
        snapshot.parent.mkdir(parents=True, exist_ok=True)
        snapshot.unlink(missing_ok=True)
        snapshot.symlink_to(blob)

    def __call__(self, *args, **kwargs) -> str:
        # The call must be one the real hf_hub_download accepts.
        bound = inspect.signature(hf_hub_download).bind(*args, **kwargs)
        call = dict(bound.arguments)
        self.calls.append(call)
        self.progress_disabled.append(hub_utils.are_progress_bars_disabled())
        if self.error is not None:
            raise self.error
        assert call["repo_id"] == REPO_ID and call.get("repo_type") == "dataset"
        return str(self.root / "snapshots" / "main" / call["filename"])

    def blob_bytes(self, name: str) -> bytes:
        return (self.root / "snapshots" / "main" / name).read_bytes()


@pytest.fixture
def corpus() -> tuple[dict[str, bytes], dict]:
    return make_corpus()


@pytest.fixture
def hub(tmp_path: Path, corpus) -> FakeHub:
    return FakeHub(tmp_path / "hub", corpus[0])


def hub_http_error(error_class: type, status: int, message: str) -> Exception:
    """A real huggingface_hub HTTP error, built with the HTTP library this version uses."""
    response_class = hub_errors.Response  # requests, httpx or httpx2, depending on the version
    http = importlib.import_module(response_class.__module__.split(".")[0])
    url = f"https://huggingface.co/datasets/{REPO_ID}/resolve/main/metadata.csv"
    try:
        response = response_class(status, request=http.Request("GET", url))
    except TypeError:  # requests.Response() takes no arguments
        response = response_class()
        response.status_code = status
        response.url = url
    return error_class(message, response=response)


def files_under(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


def zip_with(entries: list[tuple[zipfile.ZipInfo | str, bytes]], path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zipped:
        for info, data in entries:
            zipped.writestr(info, data)
    return path


def symlink_entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # unix, so external_attr carries the file type
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


# --- happy path and reruns -------------------------------------------------------------------


def test_download_fetches_unpacks_and_verifies(tmp_path: Path, hub: FakeHub, corpus) -> None:
    dest = tmp_path / "data"
    report = download_cryceleb(dest, token=FAKE_TOKEN, fetch=hub, progress=False)

    assert report == DownloadReport(
        dest=dest, fetched=DATASET_FILES, skipped=(), extracted=True, n_audio_files=4
    )
    assert "4 audio files" in report.describe()
    assert [call["filename"] for call in hub.calls] == list(DATASET_FILES)
    assert all(call["token"] == FAKE_TOKEN for call in hub.calls)
    for name in DATASET_FILES:
        assert (dest / name).read_bytes() == corpus[0][name]
    for file_name, samples in corpus[1].items():
        read, rate = soundfile.read(dest / file_name, dtype="float32")
        assert rate == SAMPLE_RATE
        np.testing.assert_allclose(read, samples, atol=1 / 2**15)
    # No temporary names left behind.
    assert not [name for name in os.listdir(dest) if name.endswith((".partial", ".old"))]


def test_rerun_skips_complete_files_and_extraction(tmp_path: Path, hub: FakeHub, monkeypatch):
    dest = tmp_path / "data"
    download_cryceleb(dest, fetch=hub, progress=False)
    wav = dest / "audio/train/0001/B/0001_B_000.wav"
    before = wav.stat()

    def no_extraction(*args, **kwargs):
        raise AssertionError("audio.zip unpacked again")

    monkeypatch.setattr(download, "extract_zip", no_extraction)
    report = download_cryceleb(dest, fetch=hub, progress=False)

    assert len(hub.calls) == len(DATASET_FILES)  # no new call to the hub
    assert report.fetched == () and report.skipped == DATASET_FILES
    assert report.extracted is False and report.n_audio_files == 4
    after = wav.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_rerun_refetches_only_an_incomplete_file(tmp_path: Path, hub: FakeHub, corpus) -> None:
    dest = tmp_path / "data"
    download_cryceleb(dest, fetch=hub, progress=False)
    # A truncated file (e.g. someone edited or cut it) must not count as complete.
    (dest / "dev_pairs.csv").unlink()
    (dest / "dev_pairs.csv").write_bytes(b"baby_id_B")

    report = download_cryceleb(dest, fetch=hub, progress=False)

    assert report.fetched == ("dev_pairs.csv",)
    assert report.extracted is False
    assert (dest / "dev_pairs.csv").read_bytes() == corpus[0]["dev_pairs.csv"]
    assert [call["filename"] for call in hub.calls[len(DATASET_FILES) :]] == ["dev_pairs.csv"]


def test_rerun_reunpacks_a_new_zip(tmp_path: Path, hub: FakeHub) -> None:
    dest = tmp_path / "data"
    download_cryceleb(dest, fetch=hub, progress=False)
    new_files, new_audio = make_corpus(seed=1, extra_zip_files=1)
    hub.publish("audio.zip", new_files["audio.zip"])
    (dest / "audio.zip").unlink()

    report = download_cryceleb(dest, fetch=hub, progress=False)

    assert report.fetched == ("audio.zip",) and report.extracted is True
    for file_name, samples in new_audio.items():
        read, _ = soundfile.read(dest / file_name, dtype="float32")
        np.testing.assert_allclose(read, samples, atol=1 / 2**15)


def test_rerun_reunpacks_when_the_audio_folder_is_gone(tmp_path: Path, hub: FakeHub) -> None:
    dest = tmp_path / "data"
    download_cryceleb(dest, fetch=hub, progress=False)
    shutil.rmtree(dest / "audio")

    report = download_cryceleb(dest, fetch=hub, progress=False)

    assert report.fetched == () and report.extracted is True and report.n_audio_files == 4


@pytest.mark.skipif(
    hub_constants.HF_HUB_DISABLE_PROGRESS_BARS is not None,
    reason="HF_HUB_DISABLE_PROGRESS_BARS overrides the programmatic switch",
)
def test_progress_false_hides_hub_bars_and_restores_them(tmp_path: Path, hub: FakeHub) -> None:
    hub_utils.enable_progress_bars()
    download_cryceleb(tmp_path / "quiet", fetch=hub, progress=False)
    assert hub.progress_disabled == [True] * len(DATASET_FILES)
    assert not hub_utils.are_progress_bars_disabled()

    download_cryceleb(tmp_path / "loud", fetch=hub, progress=True)
    assert hub.progress_disabled[len(DATASET_FILES) :] == [False] * len(DATASET_FILES)


# --- hub errors ------------------------------------------------------------------------------


def test_gated_repo_says_accept_terms_and_log_in(tmp_path: Path, hub: FakeHub) -> None:
    hub.error = hub_http_error(hub_errors.GatedRepoError, 403, "403 Client Error. Cannot access")
    with pytest.raises(HubError) as raised:
        download_cryceleb(tmp_path / "data", fetch=hub, progress=False)
    message = str(raised.value)
    assert "accept the terms at https://huggingface.co/datasets/Ubenwa/CryCeleb2023" in message
    assert "login" in message and "HF_TOKEN" in message
    assert len(hub.calls) == 1  # fails fast, on the first (small) file
    assert files_under(tmp_path / "data") == set()


def test_repo_not_found_names_the_repo(tmp_path: Path, hub: FakeHub) -> None:
    hub.error = hub_http_error(hub_errors.RepositoryNotFoundError, 404, "404 Repository Not Found")
    with pytest.raises(HubError) as raised:
        download_cryceleb(tmp_path / "data", repo_id="Ubenwa/NoSuchRepo", fetch=hub)
    message = str(raised.value)
    assert "Ubenwa/NoSuchRepo not found" in message
    assert "check the repo id" in message and "HF_TOKEN" in message


@pytest.mark.parametrize("offline_mode", [True, False])
def test_offline_with_nothing_cached(tmp_path: Path, hub: FakeHub, monkeypatch, offline_mode):
    monkeypatch.setattr(download.hub_constants, "HF_HUB_OFFLINE", offline_mode)
    hub.error = hub_errors.LocalEntryNotFoundError(
        "Cannot find the requested files in the disk cache and outgoing traffic has been disabled."
    )
    with pytest.raises(HubError) as raised:
        download_cryceleb(tmp_path / "data", fetch=hub, progress=False)
    message = str(raised.value)
    assert "not in the hub cache" in message
    if offline_mode:
        assert "unset HF_HUB_OFFLINE" in message
    else:
        assert "could not be reached" in message and "connection" in message


def test_other_hub_http_error_is_a_hub_error(tmp_path: Path, hub: FakeHub) -> None:
    hub.error = hub_http_error(hub_errors.HfHubHTTPError, 503, "503 Server Error: unavailable")
    with pytest.raises(HubError, match=r"503 Server Error.*try again later"):
        download_cryceleb(tmp_path / "data", fetch=hub, progress=False)


def test_disk_full_in_the_hub_cache_is_an_output_error(tmp_path: Path, hub: FakeHub) -> None:
    hub.error = OSError(errno.ENOSPC, "No space left on device", "/cache/blobs/abc.incomplete")
    with pytest.raises(OutputError, match=r"/cache/blobs/abc\.incomplete: disk full"):
        download_cryceleb(tmp_path / "data", fetch=hub, progress=False)


@pytest.mark.parametrize("echoing_hub", [False, True])
def test_token_never_printed_logged_or_written(
    tmp_path: Path, hub: FakeHub, capsys, caplog, echoing_hub: bool
) -> None:
    caplog.set_level(logging.DEBUG)
    dest = tmp_path / "data"
    # A successful run first: the state files written to dest must not hold the token either.
    download_cryceleb(dest, token=FAKE_TOKEN, fetch=hub, progress=True)
    (dest / "metadata.csv").write_bytes(b"changed")  # forces a fetch on the next run
    if echoing_hub:  # a server message that quotes the token back must not leak it
        hub.error = hub_http_error(
            hub_errors.HfHubHTTPError, 401, f"401 Client Error: bad token {FAKE_TOKEN}"
        )
    else:
        hub.error = hub_http_error(hub_errors.GatedRepoError, 403, "403 Client Error.")
    with pytest.raises(HubError) as raised:
        download_cryceleb(dest, token=FAKE_TOKEN, fetch=hub, progress=True)

    assert hub.calls[-1]["token"] == FAKE_TOKEN  # it did reach the hub call
    captured = capsys.readouterr()
    shown = [
        str(raised.value),
        "".join(traceback.format_exception(raised.value)),
        captured.out,
        captured.err,
        caplog.text,
        *(str(record.args) for record in caplog.records),
    ]
    assert not [text for text in shown if FAKE_TOKEN in text]
    written = [path for path in dest.rglob("*") if path.is_file()]
    assert written and not [path for path in written if FAKE_TOKEN.encode() in path.read_bytes()]


# --- broken data -----------------------------------------------------------------------------


def test_broken_zip_is_a_data_error_saying_delete_and_rerun(tmp_path: Path, corpus) -> None:
    files = dict(corpus[0], **{"audio.zip": b"this is not a zip archive"})
    hub = FakeHub(tmp_path / "hub", files)
    dest = tmp_path / "data"
    with pytest.raises(DataError) as raised:
        download_cryceleb(dest, fetch=hub, progress=False)
    message = str(raised.value)
    assert str(dest / "audio.zip") in message and "delete it" in message
    assert not (dest / "audio").exists()


def test_damaged_zip_member_is_refused_and_nothing_is_kept(tmp_path: Path) -> None:
    payload = bytes(range(256)) * 64
    path = zip_with([("audio/a.wav", b"fine"), ("audio/b.wav", payload)], tmp_path / "audio.zip")
    data = bytearray(path.read_bytes())
    data[data.find(payload) + 1000] ^= 0xFF  # stored, so this flips one byte of b.wav
    path.write_bytes(bytes(data))
    dest = tmp_path / "data"
    with pytest.raises(DataError, match=r"audio/b\.wav"):
        extract_zip(path, dest)
    assert files_under(dest) == set()


def test_metadata_naming_a_missing_audio_file(tmp_path: Path, corpus) -> None:
    files = dict(corpus[0])
    files["metadata.csv"] += b"0001,B,0.1,train,001,audio/train/0001/B/0001_B_001.wav,0001_B_001\n"
    hub = FakeHub(tmp_path / "hub", files)
    with pytest.raises(DataError, match=r"0001_B_001\.wav") as raised:
        download_cryceleb(tmp_path / "data", fetch=hub, progress=False)
    assert "audio file missing" in str(raised.value)


# --- safe extraction -------------------------------------------------------------------------


# case -> (entry name, the reason the refusal must give)
UNSAFE_ENTRIES = {
    "parent": ("../evil.txt", "'..'"),
    "nested parent": ("audio/../../evil.txt", "'..'"),
    "absolute": ("/ABSOLUTE/evil.txt", "absolute"),  # the test swaps in a path under tmp_path
    "drive letter": ("C:/evil.txt", "drive letter"),
    "backslash parent": ("..\\evil.txt", "backslash"),
    "backslash nested": ("audio\\..\\..\\evil.txt", "backslash"),
    "symlink": ("audio/link.wav", "symbolic link"),
    "file and directory": ("audio", "also the directory"),
}


@pytest.mark.parametrize("case", UNSAFE_ENTRIES)
def test_unsafe_entries_are_refused_before_writing(tmp_path: Path, case: str) -> None:
    outer = tmp_path / "outer"
    dest = outer / "dest"
    dest.mkdir(parents=True)
    name, reason = UNSAFE_ENTRIES[case]
    name = name.replace("/ABSOLUTE", str(tmp_path))
    entry = symlink_entry(name) if case == "symlink" else name
    entries = [("audio/good.wav", b"written first if unpacking were not checked first")]
    if case == "file and directory":
        entries.append(("audio/x/y.wav", b"y"))
    entries.append((entry, b"../../../../evil.txt"))
    path = zip_with(entries, tmp_path / "crafted.zip")

    with pytest.raises(DataError) as raised:
        extract_zip(path, dest)

    assert f"'{name}'" in str(raised.value) and reason in str(raised.value)
    assert files_under(dest) == set() and os.listdir(dest) == []
    assert files_under(tmp_path) == {"crafted.zip"}


@settings(max_examples=60, deadline=None)
@given(name=st.text(alphabet="ab./\\:C", min_size=1, max_size=12))
def test_any_entry_name_is_refused_or_lands_inside_dest(name: str) -> None:
    with tempfile.TemporaryDirectory() as root_name:
        root = Path(root_name)
        dest = root / "outer" / "dest"
        path = zip_with([(name, b"x")], root / "crafted.zip")
        try:
            written = extract_zip(path, dest)
        except DataError:
            written = []
        resolved_dest = dest.resolve()
        for target in written:
            assert target.resolve().is_relative_to(resolved_dest)
        outside = files_under(root) - {"crafted.zip"}
        assert all(Path(root, name).resolve().is_relative_to(resolved_dest) for name in outside)


def test_extract_zip_returns_the_unpacked_files_and_replaces_old_ones(tmp_path: Path) -> None:
    dest = tmp_path / "data"
    (dest / "audio" / "old").mkdir(parents=True)
    (dest / "audio" / "old" / "stale.wav").write_bytes(b"from an older extraction")
    path = zip_with(
        [("audio/", b""), ("audio/a/1.wav", b"1"), ("audio/2.wav", b"2")], tmp_path / "z.zip"
    )

    written = extract_zip(path, dest)

    assert written == [dest / "audio/a/1.wav", dest / "audio/2.wav"]
    assert (dest / "audio/a/1.wav").read_bytes() == b"1"
    assert files_under(dest) == {"audio/a/1.wav", "audio/2.wav"}


def test_zip_larger_than_free_space_is_refused_before_writing(tmp_path: Path, monkeypatch):
    path = zip_with([("audio/a.wav", b"\0" * 10_000)], tmp_path / "audio.zip")
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(10**6, 10**6 - 100, 100))
    dest = tmp_path / "data"
    with pytest.raises(OutputError, match="free"):
        extract_zip(path, dest)
    assert files_under(dest) == set()


# --- interruptions and a full disk -----------------------------------------------------------


def test_interrupted_unpacking_leaves_nothing_and_rerun_completes(
    tmp_path: Path, hub: FakeHub, monkeypatch
) -> None:
    dest = tmp_path / "data"
    real_copy = shutil.copyfileobj
    copies = []

    def interrupted_copy(*args, **kwargs):
        copies.append(1)
        if len(copies) == 2:
            raise KeyboardInterrupt
        return real_copy(*args, **kwargs)

    monkeypatch.setattr(shutil, "copyfileobj", interrupted_copy)
    with pytest.raises(KeyboardInterrupt):
        download_cryceleb(dest, fetch=hub, progress=False)
    assert not (dest / "audio").exists() and not (dest / ".audio.partial").exists()

    monkeypatch.setattr(shutil, "copyfileobj", real_copy)
    report = download_cryceleb(dest, fetch=hub, progress=False)
    assert report.fetched == () and report.extracted is True and report.n_audio_files == 4


def test_killed_reunpacking_is_cleaned_and_redone(tmp_path: Path, hub: FakeHub) -> None:
    dest = tmp_path / "data"
    download_cryceleb(dest, fetch=hub, progress=False)
    # What a run killed while re-unpacking leaves: no marker, partial and set-aside folders,
    # and a file in audio/ that the current zip does not hold.
    (dest / ".audio.zip.extracted.json").unlink()
    for stale in (dest / ".audio.partial/audio/x.wav", dest / ".audio.old/audio/y.wav"):
        stale.parent.mkdir(parents=True)
        stale.write_bytes(b"stale")
    (dest / "audio/train/0001/B/stale.wav").write_bytes(b"stale")

    report = download_cryceleb(dest, fetch=hub, progress=False)

    assert report.extracted is True and report.fetched == ()
    assert not (dest / ".audio.partial").exists() and not (dest / ".audio.old").exists()
    assert not (dest / "audio/train/0001/B/stale.wav").exists()
    assert not (dest / "audio/x.wav").exists() and not (dest / "audio/y.wav").exists()
    assert (dest / "audio/train/0001/B/0001_B_000.wav").is_file()


def test_disk_full_while_unpacking(tmp_path: Path, hub: FakeHub, monkeypatch) -> None:
    dest = tmp_path / "data"

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copyfileobj", full_disk)
    with pytest.raises(OutputError) as raised:
        download_cryceleb(dest, fetch=hub, progress=False)
    assert "disk full" in str(raised.value) and str(dest / ".audio.partial") in str(raised.value)
    for name in DATASET_FILES:  # what was fetched before is intact
        assert (dest / name).read_bytes() == hub.blob_bytes(name)
    assert not (dest / ".audio.partial").exists() and not (dest / "audio").exists()

    monkeypatch.undo()
    report = download_cryceleb(dest, fetch=hub, progress=False)
    assert report.fetched == () and report.extracted is True


def test_disk_full_while_copying_the_zip(tmp_path: Path, hub: FakeHub, monkeypatch) -> None:
    dest = tmp_path / "data"
    real_copyfile = shutil.copyfile

    def no_link(*args, **kwargs):  # as when the hub cache is on another file system
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    def copyfile(source, target, *args, **kwargs):
        if "audio.zip" in str(target):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_copyfile(source, target, *args, **kwargs)

    monkeypatch.setattr(os, "link", no_link)
    monkeypatch.setattr(shutil, "copyfile", copyfile)
    with pytest.raises(OutputError) as raised:
        download_cryceleb(dest, fetch=hub, progress=False)
    assert str(dest / "audio.zip") in str(raised.value) and "disk full" in str(raised.value)
    assert files_under(dest) == {*DATASET_FILES[:-1], download.STATE_FILE}
    for name in DATASET_FILES[:-1]:
        assert (dest / name).read_bytes() == hub.blob_bytes(name)

    monkeypatch.undo()
    report = download_cryceleb(dest, fetch=hub, progress=False)
    assert report.fetched == ("audio.zip",) and report.skipped == DATASET_FILES[:-1]


def test_dest_that_is_a_file_is_an_output_error(tmp_path: Path, hub: FakeHub) -> None:
    dest = tmp_path / "data"
    dest.write_text("not a directory")
    with pytest.raises(OutputError, match="not a directory"):
        download_cryceleb(dest, fetch=hub, progress=False)
