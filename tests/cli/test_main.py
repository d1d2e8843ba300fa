"""The cryprint command: a user's mistake gets its documented exit code and one line, never
exit 70 (issue #10 item 12), and training runs resume from their folder alone."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from cryprint.cli import main
from tiny_recipe import TINY_TRAINING


def cli(*args: object) -> int:
    return main([str(arg) for arg in args])


def _train_args(corpus: Path, run: Path, epochs: int = 1) -> list[object]:
    args: list[object] = ["train", "--data", corpus, "--run", run, "--epochs", epochs, "--quiet"]
    for key, value in TINY_TRAINING.items():
        args += [f"--{key.replace('_', '-')}", value]
    return args


@pytest.mark.parametrize("device", ["cuda", "cuda:9", "foo", "meta", "cpu:x"])
def test_a_device_this_machine_lacks_exits_2(
    device: str, small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    code = cli(*_train_args(small_corpus, tmp_path / "run"), "--device", device)
    if device.startswith("cuda") and __import__("torch").cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert code == 2
    assert "device" in capsys.readouterr().err
    code = cli("verify", "a.wav", "b.wav", "--model", "random", "--threshold", "0.5",
               "--device", device)  # fmt: skip
    assert code == 2


def test_a_run_that_is_a_file_or_unwritable_exits_7(
    small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "file").write_text("not a folder")
    assert cli(*_train_args(small_corpus, tmp_path / "file")) == 7
    assert "not a folder" in capsys.readouterr().err
    assert (tmp_path / "file").read_text() == "not a folder"
    assert cli(*_train_args(small_corpus, Path("/proc/cryprint-run"))) == 7


def test_resume_needs_only_the_run_folder(small_corpus: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert cli(*_train_args(small_corpus, run, epochs=1)) == 0
    assert cli("train", "--run", run, "--resume", "--epochs", 2, "--quiet") == 0
    assert yaml.safe_load((run / "config.yaml").read_text())["epochs"] == 1  # as first written
    metrics = (run / "metrics.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in metrics[1:]] == ["0", "1", "2"]


def test_resume_with_changed_options_exits_2(
    small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "run"
    assert cli(*_train_args(small_corpus, run, epochs=1)) == 0
    assert cli("train", "--run", run, "--resume", "--margin", 0.5, "--quiet") == 2
    assert "margin" in capsys.readouterr().err
    # config.yaml gone: the checkpoint's own record of the config still guards the run.
    (run / "config.yaml").unlink()
    args = _train_args(small_corpus, run, epochs=2)
    args[args.index("--channels") + 1] = 32
    assert cli(*args, "--resume") == 2
    assert "channels" in capsys.readouterr().err


def test_a_corrupt_config_on_resume_exits_2(
    small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "run"
    assert cli(*_train_args(small_corpus, run, epochs=1)) == 0
    (run / "config.yaml").write_text("epochs: [unclosed\n")
    assert cli("train", "--run", run, "--resume", "--quiet") == 2
    assert "config.yaml" in capsys.readouterr().err


def test_a_closed_pipe_ends_quietly(small_corpus: Path) -> None:
    # The reader is gone before cryprint writes (`cryprint info --json | head -c 0`).
    process = subprocess.Popen(
        [sys.executable, "-m", "cryprint.cli", "info", "--json", "--no-check-files", small_corpus],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    process.stdout.close()
    _, stderr = process.communicate(timeout=120)
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    assert process.returncode == 141


def _subcommands(
    parser: argparse.ArgumentParser, path: str = ""
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every subcommand under ``parser``, nested ones (``gallery list``) included."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, command in action.choices.items():
                named = f"{path} {name}".strip()
                yield named, command
                yield from _subcommands(command, named)


def test_every_option_has_help_and_shows_its_default() -> None:
    from cryprint.cli import build_parser

    commands = dict(_subcommands(build_parser()))
    assert {"train", "gallery", "gallery list", "gallery remove"} <= set(commands)
    for name, command in commands.items():
        for action in command._actions:
            assert action.help, (name, action.dest)
        text = command.format_help()
        for action in command._actions:
            if "(default" in action.help:
                continue  # the help states the default in its own words
            default = action.default
            if isinstance(default, bool):
                # A switch's help says what it does; "(default: True)" would say nothing.
                assert f"default: {default}" not in " ".join(text.split()), (name, action.dest)
            elif action.option_strings and not (default is None or default == "==SUPPRESS=="):
                assert f"default: {action.default}" in " ".join(text.split()), (name, action.dest)


def test_a_fifo_given_as_input_is_refused_not_waited_on(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # Found by the CLI fuzz: reading a named pipe nobody writes to blocked forever.
    import os

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert cli("verify", fifo, fifo, "--model", "random", "--threshold", "0.5") == 4
    assert cli("gallery", "list", "--gallery", fifo) == 3
    assert cli("score", "--model", "random", "--trials", fifo) == 3
    assert cli("train", "--config", fifo, "--run", tmp_path / "run") == 2
    assert "not a regular file" in capsys.readouterr().err


@pytest.mark.parametrize(
    "line",
    [
        ["enroll", "--gallery", "\x00", "--model", "random", "--baby", "A", "a.wav"],  # the fuzz's
        ["verify", "a\x00.wav", "b.wav", "--model", "random", "--threshold", "0.5"],
        ["info", "data\x00"],
    ],
)
def test_a_nul_byte_in_a_value_is_a_bad_command_line(
    line: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """A NUL cannot be in a file name (Python raises ValueError deep inside); a shell cannot
    pass one, a program calling main() can. Exit 2 naming it, not 70."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(line)
    assert exit_.value.code == 2
    assert "NUL" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
