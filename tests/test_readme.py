"""The README's Python example runs as written, on a tiny model laid out where the demo puts
its own."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from cryprint import CryPrint
from cryprint.evaluation.calibrate_model import calibrate_model
from cryprint.evaluation.evaluate import evaluate
from cryprint.models.folder import save_model_folder
from readme_examples import quickstart_steps, run_step, shape

README = Path(__file__).resolve().parent.parent / "README.md"


def _python_example() -> str:
    section = README.read_text().split("## Python API", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None, "the README's Python API section has no python block"
    return match.group(1)


def test_the_python_api_example_runs(
    small_corpus: Path,
    make_model,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    corpus = tmp_path / "demo" / "corpus"
    shutil.copytree(small_corpus, corpus, copy_function=os.link)
    model = save_model_folder(make_model(0), tmp_path / "demo" / "runs" / "triplet" / "best")
    # Stores the dev threshold of raw cosine scores (no cohort: the test computes cosines).
    evaluate([model], corpus, "dev", tmp_path / "evaluation", cohort=False)
    monkeypatch.chdir(tmp_path)
    exec(compile(_python_example(), "README.md", "exec"), {})
    printed = capsys.readouterr().out.split(maxsplit=2)
    # What the example must print, computed here another way: the stored dev EER threshold,
    # and the cosine of the two recordings' embeddings.
    threshold = json.loads((model / "evaluation.json").read_text())["thresholds"]["eer"]
    embedder = CryPrint(model, store=False)
    test = Path("demo/corpus/audio/test")
    left, right = embedder.embed_many([test / "anonymous000/B", test / "anonymous000/D"])
    score = float(left @ right / (np.linalg.norm(left) * np.linalg.norm(right)))
    assert printed[0] == str(score >= threshold["threshold"])
    assert float(printed[1]) == round(score, 3)
    assert printed[2].strip() == "dev EER threshold from demo/runs/triplet/best/evaluation.json"


def test_the_quick_start_prints_what_the_readme_shows(
    small_corpus: Path, make_model, tmp_path: Path
) -> None:
    """Every quick-start command runs as written (in a subprocess, as a user types it) on a tiny
    model laid out where the demo puts its own, evaluated and calibrated as the demo does, and
    prints what the README shows under it — but for numbers, baby ids and which way a verdict
    falls, which depend on the model and the machine."""
    steps = quickstart_steps(README.read_text())
    assert len(steps) >= 2, "the quick start lost its verify or ward example"
    corpus = tmp_path / "demo" / "corpus"
    shutil.copytree(small_corpus, corpus, copy_function=os.link)
    model = save_model_folder(make_model(0), tmp_path / "demo" / "runs" / "triplet" / "best")
    evaluate([model], corpus, "dev", tmp_path / "evaluation")
    calibrate_model(model, corpus, "dev")
    for step in steps:
        printed = run_step(step, tmp_path)
        assert shape(printed) == shape(step.output), step.commands
