"""The README's quick start: its commands, run as written, and the output shown under them.

The test suite (``test_readme.py``) runs the commands on a tiny model laid out where the demo
puts its own and compares the *shape* of what they print (numbers, baby ids and the side a
verdict falls on are machine- and model-dependent) with the README. After ``make demo``,

    .venv/bin/python tests/readme_examples.py --update

runs them on the real demo (in a scratch copy: nothing under demo/ changes) and writes what they
printed into the README.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
_BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)
# What a different model or machine changes in the output: numbers, baby ids, the verdict's
# side, the answer's kind, the score basis.
_SHAPES = (
    (re.compile(r"^(same baby|different babies): score \S+ (>=|<) threshold"), "VERDICT"),
    (re.compile(r"^(most likely |none of these babies|review: |uncertain: ).*$"), "ANSWER"),
    (re.compile(r"^scores: .*$"), "scores: BASIS"),
    (re.compile(r"anonymous\d{3}"), "BABY"),
    (re.compile(r"[-+]?\d+(\.\d+)?(e[-+]?\d+)?"), "N"),
    (re.compile(r"[ \t]+"), " "),
)


@dataclass(frozen=True)
class Step:
    """A bash block of the quick start and the output block right under it."""

    commands: tuple[str, ...]
    output: str
    start: int  # where the output block's text starts in the README
    end: int


def quickstart_steps(text: str) -> list[Step]:
    """Each ``bash`` block of the README's quick start followed by a ``text`` block."""
    begin = text.index("## Quick start")
    end = text.index("\n## ", begin + 1)
    blocks = list(_BLOCK.finditer(text, begin, end))
    steps = []
    for first, second in itertools.pairwise(blocks):
        adjacent = first.end() + 1 == second.start()
        if first.group(1) == "bash" and second.group(1) == "text" and adjacent:
            lines = [line for line in first.group(2).splitlines() if not line.startswith("make ")]
            steps.append(Step(tuple(lines), second.group(2), second.start(2), second.end(2)))
    return steps


def run_step(step: Step, cwd: Path) -> str:
    """Run a step's commands in ``cwd`` with this Python's cryprint; what they printed."""
    printed = []
    for line in step.commands:
        command = line.replace(".venv/bin/cryprint", f"{sys.executable} -m cryprint")
        done = subprocess.run(
            ["bash", "-c", command], cwd=cwd, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{line!r} exited {done.returncode}: {done.stderr[-2000:]}")
        printed.append(done.stdout)
    return "".join(printed)


def shape(output: str) -> list[str]:
    """``output`` with what another model or machine would change replaced by placeholders."""
    lines = []
    for line in output.strip().splitlines():
        for pattern, placeholder in _SHAPES:
            line = pattern.sub(placeholder, line)
        lines.append(line.strip())
    return lines


def lay_out_demo(demo: Path, scratch: Path) -> Path:
    """A scratch folder with ``demo/corpus`` (hard links) and ``demo/runs/triplet/best`` (a
    copy) of ``demo``: the commands write their gallery there, never into the real demo."""
    shutil.copytree(demo / "corpus", scratch / "demo" / "corpus", copy_function=os.link)
    best = Path("runs") / "triplet" / "best"
    shutil.copytree(demo / best, scratch / "demo" / best)
    return scratch


def update(readme: Path = README) -> None:
    """Run the quick start on ``demo/`` and write what it printed under each command block."""
    text = readme.read_text()
    with tempfile.TemporaryDirectory() as scratch:
        cwd = lay_out_demo(ROOT / "demo", Path(scratch))
        outputs = [run_step(step, cwd) for step in quickstart_steps(text)]
    for step, output in reversed(list(zip(quickstart_steps(text), outputs, strict=True))):
        text = text[: step.start] + output.rstrip("\n") + "\n" + text[step.end :]
    readme.write_text(text)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--update", action="store_true", help="rewrite the README's outputs")
    if parser.parse_args().update:
        update()
