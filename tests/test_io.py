"""cryprint.io: outputs whole or not at all, only over regular files, with the umask's modes, and
one writer per folder (issue #10 items 1, 4-6, 13)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cryprint.errors import OutputError
from cryprint.io import (
    OUTPUT_MANIFEST,
    atomic_write_text,
    check_replaceable_folder,
    folder_lock,
    replace_folder,
    staging_folder,
)


def _special_files(tmp_path: Path) -> dict[str, Path]:
    """A character device (a copy of /dev/null's numbers, made in tmp — never /dev itself), a
    FIFO and a socket."""
    nodes = {}
    device = tmp_path / "null-device"
    try:
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        nodes["character device"] = device
    except PermissionError:
        pass  # not root: the FIFO and socket still cover "not a regular file"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    nodes["FIFO"] = fifo
    import socket

    sock_path = tmp_path / "sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock_path))
    server.close()
    nodes["socket"] = sock_path
    return nodes


def test_atomic_write_never_replaces_a_special_file(tmp_path: Path) -> None:
    for kind, node in _special_files(tmp_path).items():
        before = node.lstat()
        with pytest.raises(OutputError, match="writes only regular files"):
            atomic_write_text(node, "scores\n")
        after = node.lstat()
        assert stat.S_IFMT(after.st_mode) == stat.S_IFMT(before.st_mode), kind
        assert after.st_ino == before.st_ino, kind
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_cli_submit_refuses_a_device_as_its_output(small_corpus: Path, tmp_path: Path) -> None:
    nodes = _special_files(tmp_path)
    node = nodes.get("character device", nodes["FIFO"])
    result = subprocess.run(
        [sys.executable, "-m", "cryprint.cli", "submit", "--model", "random",
         "--data", str(small_corpus), "--out", str(node)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 7, result.stderr
    assert "regular files" in result.stderr
    assert not stat.S_ISREG(node.lstat().st_mode)


def test_atomic_write_follows_the_umask_and_keeps_a_replaced_files_mode(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        assert stat.S_IMODE(atomic_write_text(tmp_path / "a.csv", "x").stat().st_mode) == 0o644
        os.umask(0o077)
        assert stat.S_IMODE(atomic_write_text(tmp_path / "b.csv", "x").stat().st_mode) == 0o600
        (tmp_path / "a.csv").chmod(0o640)
        atomic_write_text(tmp_path / "a.csv", "y")
        assert stat.S_IMODE((tmp_path / "a.csv").stat().st_mode) == 0o640
    finally:
        os.umask(old)


def test_a_symlink_is_followed_and_kept(tmp_path: Path) -> None:
    target = tmp_path / "real.csv"
    target.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    atomic_write_text(link, "new")
    assert link.is_symlink() and target.read_text() == "new"


def test_a_folder_is_replaced_only_when_cryprint_marked_it(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "report.json").write_text('{"cryprint_version": "0.1.0"}')  # a 0.1 evaluation
    (mine / "scores.csv").write_text("old")
    check_replaceable_folder(mine, "report.json", "an evaluation")
    with staging_folder(mine) as staging:
        (staging / "report.json").write_text('{"new": 1}')
        replace_folder(staging, mine, "report.json")
    assert sorted(p.name for p in mine.iterdir()) == [OUTPUT_MANIFEST, "report.json"]
    check_replaceable_folder(mine, "report.json", "an evaluation")  # its own mark now
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("precious")
    with pytest.raises(OutputError, match="holds what cryprint did not write"):
        check_replaceable_folder(theirs, "report.json", "an evaluation")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "theirs"]


@pytest.mark.parametrize("report", ["{}", "not json", '{"cryprint_version": "0.1.0"}'])
def test_a_folder_that_merely_holds_a_report_is_not_cryprints(tmp_path: Path, report: str) -> None:
    """The reliability review's reproducer: `score --out proj` emptied a project folder that
    held a report.json beside a thesis and a source tree."""
    project = tmp_path / "proj"
    (project / "src").mkdir(parents=True)
    (project / "report.json").write_text(report)
    (project / "thesis.txt").write_text("draft")
    (project / "src" / "main.py").write_text("x")
    with pytest.raises(OutputError, match=r"did not write as an evaluation \(.*src, thesis\.txt\)"):
        check_replaceable_folder(project, "report.json", "an evaluation")
    # A copied manifest does not help: it lists only what cryprint wrote.
    (project / OUTPUT_MANIFEST).write_text(json.dumps({"files": ["report.json"]}))
    with pytest.raises(OutputError, match="did not write"):
        check_replaceable_folder(project, "report.json", "an evaluation")
    assert (project / "thesis.txt").read_text() == "draft"


def test_a_folder_that_gains_a_file_after_the_check_is_not_replaced(tmp_path: Path) -> None:
    target = tmp_path / "out"
    with staging_folder(target) as staging:
        (staging / "report.json").write_text("{}")
        replace_folder(staging, target, "report.json")
    check_replaceable_folder(target, "report.json", "an evaluation")
    (target / "notes.txt").write_text("written meanwhile")
    with pytest.raises(OutputError, match=r"notes\.txt"), staging_folder(target) as staging:
        (staging / "report.json").write_text("{}")
        replace_folder(staging, target, "report.json")
    assert (target / "notes.txt").read_text() == "written meanwhile"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging or retired folder left


def test_a_failed_staging_leaves_nothing_and_the_old_folder_whole(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "report.json").write_text("old")
    with pytest.raises(RuntimeError), staging_folder(target) as staging:
        (staging / "report.json").write_text("new")
        raise RuntimeError("disk full, say")
    assert (target / "report.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def _hold_lock_in_another_process(folder: Path) -> subprocess.Popen:
    code = (
        "import sys, time\nfrom cryprint.io import folder_lock\n"
        f"with folder_lock({str(folder)!r}, 'test'):\n"
        "    print('locked', flush=True)\n    time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def test_a_second_writer_fails_at_once_naming_the_first(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    holder = _hold_lock_in_another_process(folder)
    try:
        started = time.perf_counter()
        with pytest.raises(OutputError, match=f"process {holder.pid}"), folder_lock(folder, "x"):
            pass
        assert time.perf_counter() - started < 5
    finally:
        holder.kill()
        holder.wait()
    with folder_lock(folder, "x"):  # released when its holder died, however it died
        pass
    assert list(folder.iterdir()) == []  # no lock file left behind


def test_a_lock_says_whether_it_made_the_folder(tmp_path: Path) -> None:
    with folder_lock(tmp_path / "new" / "run", "x") as created:
        assert created
    with folder_lock(tmp_path / "new" / "run", "x") as created:
        assert not created  # there already: never this call's to remove


def test_a_lock_on_a_file_path_is_an_output_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="not a folder"), folder_lock(tmp_path / "file", "x"):
        pass


def test_read_json_names_the_file_and_the_problem(tmp_path: Path) -> None:
    from cryprint.errors import ModelError
    from cryprint.io import read_json

    (tmp_path / "ok.json").write_text('{"a": [1, 2]}')
    assert read_json(tmp_path / "ok.json", "thing", ModelError) == {"a": [1, 2]}
    with pytest.raises(ModelError, match=r"could not read thing .*missing\.json"):
        read_json(tmp_path / "missing.json", "thing", ModelError)
    (tmp_path / "bad.json").write_bytes(b"\xff{")
    with pytest.raises(ModelError, match=r"thing .*bad\.json is not valid JSON"):
        read_json(tmp_path / "bad.json", "thing", ModelError)
    with pytest.raises(ModelError, match="is not a regular file"):
        read_json(tmp_path, "thing", ModelError)  # a folder (or a FIFO: never waited on)
