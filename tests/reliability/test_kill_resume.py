"""A training run killed at any moment and resumed ends exactly like an uninterrupted one.

Two ways of killing it:

- for real: ``python -m cryprint train`` in a subprocess, SIGKILLed from outside after a random
  (seeded) delay, and from inside (a test-only ``sitecustomize``) during a random training step,
  halfway through writing a checkpoint, and just after a checkpoint is indexed; then rerun with
  ``--resume`` until it completes;
- in-process at exact points (mid checkpoint write, between checkpoint and index, before the
  ``best/`` folder is written) by raising a ``BaseException`` no ``except Exception`` catches.

After every kill: each checkpoint the index names passes its checksum, no temporary file is
named, and the next run resumes from the newest one. At the end: the same weights (newest
checkpoint and ``best/``) and the same metrics as the uninterrupted reference run, and no
temporary file left.
"""

from __future__ import annotations

import json
import os
import random
import re
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


# --- killed for real ---------------------------------------------------------------------------

# Installed as sitecustomize.py in the killed runs only: SIGKILLs the process from inside at an
# exact point named by CRYPRINT_TEST_KILL (the library has no test hooks). A kill from outside
# cannot reliably hit a checkpoint write: it lasts milliseconds.
KILL_HOOK = """
import os
import re
import signal

_point, _, _count = os.environ.get("CRYPRINT_TEST_KILL", "").partition(":")


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


if _point == "step":  # during the K-th training step: before its backward pass
    import torch

    _steps = [0]
    _backward = torch.Tensor.backward

    def backward(self, *args, **kwargs):
        _steps[0] += 1
        if _steps[0] == int(_count):
            _die()
        return _backward(self, *args, **kwargs)

    torch.Tensor.backward = backward
elif _point == "checkpoint-write":  # half a checkpoint written, never renamed
    _fsync = os.fsync

    def fsync(fd):
        name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        if re.fullmatch(r"[.]epoch-[0-9]{4}[.]ckpt[.].*[.]tmp", name):
            os.ftruncate(fd, os.fstat(fd).st_size // 2)
            _die()
        return _fsync(fd)

    os.fsync = fsync
elif _point == "after-index":  # a checkpoint just indexed; best/, pruning, metrics to come
    _replace = os.replace

    def replace(source, target, *args, **kwargs):
        result = _replace(source, target, *args, **kwargs)
        if os.path.basename(target) == "index.json":
            _die()
        return result

    os.replace = replace
"""
# Each killed run, in order: from inside halfway through writing a checkpoint, just after a
# checkpoint is indexed, during a random (seeded) training step; then from outside after a random
# (seeded) delay. Then a last run completes. (Each comes while the run still has work to do.)
KILL_PLAN = ("checkpoint-write", "after-index", "step", "delay")
PROCESS_TIMEOUT_SECONDS = 180


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


def _environment(hook: Path, kill: str) -> dict[str, str]:
    path = [str(hook), str(SOURCE_ROOT), os.environ.get("PYTHONPATH", "")]
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in path if p),
        "CRYPRINT_TEST_KILL": kill,
        "HF_TOKEN": FAKE_TOKEN,
        "HF_HUB_OFFLINE": "1",
    }


def _log_size(run: Path) -> int:
    log = run / "train.log"
    return log.stat().st_size if log.is_file() else 0


def _new_log(run: Path, offset: int) -> str:
    log = run / "train.log"
    return log.read_bytes()[offset:].decode("utf-8", "replace") if log.is_file() else ""


def _wait_for(process: subprocess.Popen, run: Path, offset: int, text: str) -> float | None:
    """When ``text`` appears in the log this process writes; None if it ends first."""
    deadline = time.monotonic() + PROCESS_TIMEOUT_SECONDS
    while process.poll() is None:
        if text in _new_log(run, offset):
            return time.monotonic()
        assert time.monotonic() < deadline, f"'{text}' never logged"
        time.sleep(0.002)
    return None


def _kill_at_random_moment(
    process: subprocess.Popen, run: Path, offset: int, resumed: bool, rng: random.Random
) -> float | None:
    """SIGKILL ``process`` at a random (seeded) moment of its next epoch; returns the delay, or
    None when the run ended first.

    The delay is a random fraction of a duration measured on this machine now, so that it falls
    inside the epoch however fast or loaded the machine is: of the last epoch's seconds (logged
    by the earlier runs) after a resumed run logs its checkpoint, else of the time a fresh run
    took to its first validation.
    """
    if resumed:
        start = _wait_for(process, run, offset, "resumed from")
        epochs = re.findall(r"epoch \d+/\d+: .*, ([0-9.]+) s$", _new_log(run, 0), re.MULTILINE)
        span = float(epochs[-1]) if epochs else 0.0
    else:
        built = _wait_for(process, run, offset, "initial weights")
        start = _wait_for(process, run, offset, "epoch 0 (initial weights)")
        span = start - built if start is not None and built is not None else 0.0
    if start is None:
        return None
    delay = rng.uniform(0.05, 0.6) * span
    while process.poll() is None and time.monotonic() < start + delay:
        time.sleep(0.001)
    if process.poll() is not None:
        return None
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    return delay


def test_sigkill_at_random_moments_then_resume_equals_uninterrupted(
    small_corpus: Path, reference_run: TrainResult, tmp_path: Path
) -> None:
    config_file = tmp_path / "tiny.yaml"
    options = ("crop_min_seconds", "crop_max_seconds", "validation_fraction", "validation_batches")
    config_file.write_text(yaml.safe_dump({key: TINY[key] for key in options}))
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(KILL_HOOK)
    run = tmp_path / "run"
    rng = random.Random(KILL_SEED)
    environment = json.loads((reference_run.run / "environment.json").read_text())
    steps_per_epoch = environment["train_babies"] // TINY["batch_babies"]
    kills: list[str] = []
    outputs: list[str] = []
    indexed: list[int] = []  # epochs of the complete checkpoints at the last kill
    for attempt in range(len(KILL_PLAN) + 1):
        mode = KILL_PLAN[attempt] if attempt < len(KILL_PLAN) else "none"
        done = max(indexed, default=0)
        if mode == "step" and done < EPOCHS:
            step = rng.randint(1, steps_per_epoch * (EPOCHS - done))
            kill, what = f"step:{step}", f"from inside at training step {step} of this run"
        else:
            kill = mode if mode in ("checkpoint-write", "after-index") else ""
            what = f"from inside: {mode}"
        offset = _log_size(run)
        process = subprocess.Popen(
            _train_command(small_corpus, run, config_file, resume=attempt > 0),
            env=_environment(hook, kill),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            if mode == "delay":
                delay = _kill_at_random_moment(process, run, offset, bool(indexed), rng)
                what = f"from outside after a random delay ({delay or 0:.2f} s)"
            output = process.communicate(timeout=PROCESS_TIMEOUT_SECONDS)[0].decode()
        finally:
            if process.poll() is None:
                process.kill()
        outputs.append(output)
        log = _new_log(run, offset)
        # Each run resumes from exactly the newest complete checkpoint the last kill left.
        if attempt > 0 and ("resumed from" in log or process.returncode == 0):
            if indexed:
                name = run / "checkpoints" / f"epoch-{max(indexed):04d}.ckpt"
                assert f"resumed from {name} (epoch {max(indexed)})" in log, log
            else:
                assert "resumed from" not in log, log
        if process.returncode == 0:
            assert mode in ("delay", "none") or not kill, f"'{kill}' never came: {output}"
            break
        assert process.returncode == -signal.SIGKILL, output
        indexed = assert_checkpoints_consistent(run / "checkpoints")
        left_behind = [path.name for path in temporary_files(run)]
        kills.append(f"{what}: checkpoints {indexed}, temporary files {left_behind}")
    print(f"\n{len(kills)} SIGKILL/resume cycles:\n  " + "\n  ".join(kills))
    assert len(kills) >= 3  # the kills from inside always come; the last delay may come late

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
