"""A training run killed at any moment and resumed ends exactly like an uninterrupted one.

Two ways of killing it:

- for real: ``python -m cryprint train`` in a subprocess, SIGKILLed during a training step,
  while a checkpoint file is being written, and just after a checkpoint is indexed, then rerun
  with ``--resume`` until it completes;
- in-process at exact points (mid checkpoint write, between checkpoint and index, before the
  ``best/`` folder is written) by raising a ``BaseException`` no ``except Exception`` catches.

After every kill: each checkpoint the index names passes its checksum, no temporary file is
named, and the next run resumes from the newest one. At the end: the same weights (newest
checkpoint and ``best/``) and the same metrics as the uninterrupted reference run.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from reliability_helpers import (
    EPOCHS,
    TINY,
    assert_checkpoints_consistent,
    best_folder_digest,
    last_checkpoint_digest,
    temporary_files,
    tensors_digest,
    tiny_config,
)

import cryprint
from cryprint.data.corpus import Corpus
from cryprint.training import checkpoints, trainer
from cryprint.training.trainer import TrainResult, train

SOURCE_ROOT = Path(cryprint.__file__).resolve().parents[1]
FAKE_TOKEN = "hf_ReliabilityTokenNeverWritten_5d0c2b"
KILL_SEED = 20230607
# What each killed run waits for before its SIGKILL (after its first log line, i.e. once the
# model is built): a random moment during the steps, the first checkpoint temporary file, the
# next change of index.json (a checkpoint just completed; best/ and pruning still to come).
KILL_PLAN = ("step", "checkpoint-write", "after-index", "step")
PROCESS_TIMEOUT_SECONDS = 180


# --- killed for real ---------------------------------------------------------------------------


def _train_command(data: Path, run: Path, config_file: Path, resume: bool) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "cryprint",
        "train",
        "--data",
        str(data),
        "--run",
        str(run),
        "--init",
        TINY["init"],
        "--channels",
        str(TINY["channels"]),
        "--epochs",
        str(EPOCHS),
        "--seed",
        str(TINY["seed"]),
        "--batch-babies",
        str(TINY["batch_babies"]),
        "--crops-per-baby",
        str(TINY["crops_per_baby"]),
        "--config",
        str(config_file),
        "--quiet",
    ]
    return [*command, "--resume"] if resume else command


def _environment() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(SOURCE_ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "HF_TOKEN": FAKE_TOKEN, "HF_HUB_OFFLINE": "1"}


def _log_size(run: Path) -> int:
    log = run / "train.log"
    return log.stat().st_size if log.is_file() else 0


def _new_log(run: Path, offset: int) -> str:
    log = run / "train.log"
    return log.read_bytes()[offset:].decode("utf-8", "replace") if log.is_file() else ""


def _checkpoint_temporaries(run: Path) -> list[Path]:
    return sorted((run / "checkpoints").glob(".*.tmp")) if (run / "checkpoints").is_dir() else []


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _kill_when(
    process: subprocess.Popen, run: Path, log_offset: int, mode: str, rng: random.Random
) -> str | None:
    """SIGKILL ``process`` at the moment ``mode`` names; None when it finished first."""
    deadline = time.monotonic() + PROCESS_TIMEOUT_SECONDS
    while process.poll() is None and _log_size(run) <= log_offset:
        assert time.monotonic() < deadline, "training never started"
        time.sleep(0.01)
    index = run / "checkpoints" / checkpoints.INDEX_NAME
    index_before = _read_or_none(index)
    moment = time.monotonic() + rng.uniform(0.5, 5.0)
    while process.poll() is None:
        now = time.monotonic()
        assert now < deadline, f"no moment for '{mode}' came"
        if mode == "step" and now >= moment:
            break
        if mode == "checkpoint-write" and _checkpoint_temporaries(run):
            break
        if mode == "after-index" and _read_or_none(index) != index_before:
            break
        time.sleep(0.0005)
    else:
        return None
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    left = _checkpoint_temporaries(run)
    return f"{mode}: killed" + (f", mid-write ({left[0].name} left)" if left else "")


def test_sigkill_at_random_moments_then_resume_equals_uninterrupted(
    small_corpus: Path, reference_run: TrainResult, tmp_path: Path
) -> None:
    config_file = tmp_path / "tiny.yaml"
    config_file.write_text(
        yaml.safe_dump(
            {
                key: TINY[key]
                for key in (
                    "crop_min_seconds",
                    "crop_max_seconds",
                    "validation_fraction",
                    "validation_batches",
                )
            }
        )
    )
    run = tmp_path / "run"
    rng = random.Random(KILL_SEED)
    kills: list[str] = []
    outputs: list[str] = []
    expected_resume: int | None = None  # newest complete checkpoint at the last kill
    for attempt in range(len(KILL_PLAN) + 1):
        offset = _log_size(run)
        process = subprocess.Popen(
            _train_command(small_corpus, run, config_file, resume=attempt > 0),
            env=_environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            killed = (
                _kill_when(process, run, offset, KILL_PLAN[attempt], rng)
                if attempt < len(KILL_PLAN)
                else None
            )
            output = process.communicate(timeout=PROCESS_TIMEOUT_SECONDS)[0].decode()
        finally:
            if process.poll() is None:
                process.kill()
        outputs.append(output)
        log = _new_log(run, offset)
        # Each run picks up exactly the newest complete checkpoint the last kill left.
        if attempt > 0:
            if expected_resume is None:
                assert "resumed from" not in log, log
            elif "resumed from" in log or killed is None:
                name = run / "checkpoints" / f"epoch-{expected_resume:04d}.ckpt"
                assert f"resumed from {name} (epoch {expected_resume})" in log, log
        if killed is None:
            assert process.returncode == 0, output
            break
        assert process.returncode == -signal.SIGKILL, output
        kills.append(killed)
        indexed = assert_checkpoints_consistent(run / "checkpoints")
        expected_resume = max(indexed) if indexed else None
    print(f"\n{len(kills)} SIGKILL/resume cycles: " + "; ".join(kills))
    assert len(kills) == len(KILL_PLAN)

    # The same weights, best/ folder and metrics as the uninterrupted run.
    reference = reference_run.run
    assert last_checkpoint_digest(run) == last_checkpoint_digest(reference)
    assert best_folder_digest(run) == best_folder_digest(reference)
    metrics = pd.read_csv(run / "metrics.csv")
    assert list(metrics["epoch"]) == list(range(EPOCHS + 1))
    assert list(metrics["validation_loss"]) == [
        row["validation_loss"] for row in reference_run.history
    ]
    assert temporary_files(run) == []  # what the kills left was cleaned up on resume
    # HF_TOKEN was set for every run: it is in no file of the run folder and no output.
    assert not [p for p in run.rglob("*") if p.is_file() and FAKE_TOKEN.encode() in p.read_bytes()]
    assert not [output for output in outputs if FAKE_TOKEN in output]


# --- killed in-process at exact points ---------------------------------------------------------


class SimulatedKill(BaseException):
    """A kill at an exact point, in-process. A BaseException, so no ``except Exception`` in the
    code under test handles it (``finally`` blocks still run, as they would not under SIGKILL;
    what SIGKILL would leave behind is written by the test itself)."""


def test_crash_at_exact_points_then_resume_equals_uninterrupted(
    small_corpus: Path,
    train_corpus: Corpus,
    reference_run: TrainResult,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reference = reference_run.run
    best_digest, best_epoch = best_folder_digest(reference)
    other = next(epoch for epoch in range(1, EPOCHS + 1) if epoch != best_epoch)
    # Each (point, epoch) crashes once, the first time the run gets there; then the run is
    # resumed. "best-folder" crashes the epoch whose weights must end in best/: a resume that
    # skipped rewriting best/ would keep older weights there.
    schedule = [
        ("checkpoint-write", other),
        ("best-folder", best_epoch),
        ("index-write", best_epoch),
    ]
    pending = list(schedule)
    run = tmp_path / "run"
    folder = run / "checkpoints"
    real_replace = os.replace
    real_save_model_folder = trainer.save_model_folder
    index_after: list[int] = []  # the epoch whose checkpoint file is in place, index next

    def crash(point: tuple[str, int]) -> None:
        pending.remove(point)
        raise SimulatedKill(point)

    def replace(source: str | Path, target: str | Path, *args: object, **kwargs: object) -> None:
        target = Path(target)
        if target.parent == folder and target.name.startswith("epoch-"):
            epoch = int(target.name[len("epoch-") : -len(".ckpt")])
            if ("checkpoint-write", epoch) in pending:
                # What SIGKILL leaves mid-write: a partial temporary file, never renamed.
                data = Path(source).read_bytes()
                (folder / f".{target.name}.killed.tmp").write_bytes(data[: len(data) // 2])
                crash(("checkpoint-write", epoch))
            real_replace(source, target, *args, **kwargs)
            if ("index-write", epoch) in pending:
                index_after.append(epoch)
            return
        if target == folder / checkpoints.INDEX_NAME and index_after:
            crash(("index-write", index_after.pop()))
        real_replace(source, target, *args, **kwargs)

    def save_model_folder(model, best, info):
        if ("best-folder", info["epoch"]) in pending:
            crash(("best-folder", info["epoch"]))
        return real_save_model_folder(model, best, info)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(trainer, "save_model_folder", save_model_folder)
    crashes = []
    for attempt in range(len(schedule) + 1):
        try:
            result = train(
                tiny_config(small_corpus, run, epochs=EPOCHS),
                resume=attempt > 0,
                quiet=True,
                corpus=train_corpus,
            )
            break
        except SimulatedKill as kill:
            point, epoch = kill.args[0]
            crashes.append((point, epoch))
            indexed = assert_checkpoints_consistent(folder)
            if point != "best-folder":
                # The interrupted epoch's checkpoint is not indexed: the run resumes before it.
                assert indexed == list(range(1, epoch)), (point, epoch, indexed)
    assert sorted(crashes) == sorted(schedule) and not pending
    print(f"\n{len(crashes)} in-process crash/resume cycles: {crashes}")

    assert tensors_digest(result.model.embedding_model.state_dict()) == tensors_digest(
        reference_run.model.embedding_model.state_dict()
    )
    assert last_checkpoint_digest(run) == last_checkpoint_digest(reference)
    assert best_folder_digest(run) == (best_digest, best_epoch)
    assert [row["validation_loss"] for row in result.history] == [
        row["validation_loss"] for row in reference_run.history
    ]
    assert temporary_files(run) == []  # the partial temporary the "kill" left was removed
