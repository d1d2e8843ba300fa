"""Every subcommand's parser and config loader, driven with random values (issue #10).

For each subcommand, hypothesis builds command lines from the parser's own options (so a new
subcommand or flag is fuzzed without changing this file): each option gets a valid value, a
hostile one (NaN, inf, negative, huge, an over-long name, a device node, a FIFO, a folder where a
file is expected, /proc, a hub id while offline) or is left out; a third of the lines are all
valid, a third have one hostile value, a third mix them. Asserted for every command:

- the exit code is one of the README's (never 70, never an uncaught exception);
- no file outside the output paths given on the command line changed (every file and folder of
  the sandbox is recorded — type, size, modification time, inode — before and after).

Random lines seldom get every value right, so one valid line of every subcommand also runs
(:func:`_valid_lines`): each must do its work, keep the same promises, and leave nothing but its
named outputs in the working directory.

Heavy work is replaced by fast stand-ins *after* every input check has run: the embedder returns
seeded vectors (the real model is built and loaded), and training stops where the first epoch
would start (the run folder, its lock, the device and the config are all real).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import stat
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cryprint import cli
from cryprint.models.ecapa import CryEmbedder, ModelConfig
from cryprint.models.folder import save_model_folder
from cryprint.training import trainer

EXAMPLES_PER_COMMAND = 30
DOCUMENTED_EXIT_CODES = {0, 1, 2, 3, 4, 5, 6, 7, 8, 130, 141}
# Options whose value is a path cryprint may write to.
OUTPUT_OPTIONS = {"--out", "--run", "--dest", "--gallery"}
# Files commands may write into a model folder (evaluate, calibrate, model-card).
MODEL_FOLDER_OUTPUTS = {
    "evaluation.json",
    "cohort.npz",
    "calibration.json",
    "calibration_reliability.png",
    "README.md",
}


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


COMMANDS = sorted(_subparsers(cli.build_parser()))


@pytest.fixture(scope="module")
def sandbox(small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _make_sandbox(tmp_path_factory.mktemp("fuzz"), small_corpus)


def _make_sandbox(root: Path, small_corpus: Path) -> dict[str, Path]:
    """Inputs (a corpus of hard links, a tiny model, a trials file, a config, a user's file and
    special files) and an empty outputs folder under ``root``."""
    corpus = root / "inputs" / "corpus"
    corpus.mkdir(parents=True)
    for name in ("metadata.csv", "dev_pairs.csv", "test_pairs.csv", "sample_submission.csv"):
        (corpus / name).write_bytes((small_corpus / name).read_bytes())
    shutil.copytree(small_corpus / "audio", corpus / "audio", copy_function=os.link)
    model = save_model_folder(CryEmbedder(ModelConfig.small(8)), root / "inputs" / "model")
    inputs = root / "inputs"
    (inputs / "notes.txt").write_text("a user's file")
    (inputs / "folder").mkdir()
    foreign = inputs / "foreign-report"  # someone else's folder that looks like an evaluation
    foreign.mkdir()
    (foreign / "report.json").write_text("{}")
    (foreign / "thesis.txt").write_text("a user's file")
    os.mkfifo(inputs / "fifo")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(inputs / "socket"))
    with contextlib.suppress(PermissionError):  # not root: the FIFO and socket remain
        os.mknod(inputs / "null-device", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    wav = next((corpus / "audio" / "dev").glob("*/B/*.wav"))
    b_and_d = [path.relative_to(inputs) for path in sorted(corpus.glob("audio/dev/*/[BD]"))[:4]]
    rows = [f"{b},{d},{int(b.parent == d.parent)}\n" for b in b_and_d[::2] for d in b_and_d[1::2]]
    trials = inputs / "trials.csv"  # score's valid input: B vs D, labelled, beside its audio
    trials.write_text("enrolment,test,label\n" + "".join(rows))
    (inputs / "config.yaml").write_text("epochs: 1\nchannels: 8\nbatch_babies: 2\n")
    outputs = root / "outputs"
    outputs.mkdir()
    return {"root": root, "inputs": inputs, "corpus": corpus, "model": model, "wav": wav,
            "trials": trials, "config": inputs / "config.yaml", "outputs": outputs}  # fmt: skip


def _snapshot(folder: Path, outputs: list[Path]) -> dict[str, tuple]:
    seen = {}
    for path in [folder, *folder.rglob("*")]:
        if any(path == out or out in path.parents or path in out.parents for out in outputs):
            continue  # an output given on the command line, or a folder holding one
        if path.name == "model" or (
            path.parent.name == "model" and path.name in MODEL_FOLDER_OUTPUTS
        ):
            continue  # the model folder's own documented outputs (and so its mtime)
        info = path.lstat()
        seen[str(path.relative_to(folder))] = (
            stat.S_IFMT(info.st_mode), info.st_size, info.st_mtime_ns, info.st_ino
        )  # fmt: skip
    return seen


Values = tuple[st.SearchStrategy[str], st.SearchStrategy[str]]  # (valid, hostile)


def _paths(box: dict[str, Path], flag: str, output: bool) -> Values:
    inputs = box["inputs"]
    hostile = st.sampled_from([
        "", " ", "-", "does/not exist", "owner/name", "x" * 300 + ".wav",
        str(inputs / ("y" * 300)), "/proc/cryprint", "/sys/cryprint", str(inputs / "fifo"),
        str(inputs / "socket"), str(inputs / "null-device"), str(inputs / "notes.txt"),
        str(inputs / "folder"), str(inputs), str(box["corpus"]), str(box["model"]),
        str(box["wav"]), str(inputs / "foreign-report"),
    ])  # fmt: skip
    if output:
        valid = st.integers(0, 5).map(lambda i: str(box["outputs"] / f"out{i}"))
    else:
        valid = st.sampled_from(
            {
                "--model": [str(box["model"])],
                "--init": [str(box["model"]), "random"],
                "--data": [str(box["corpus"])],
                "data": [str(box["corpus"])],
                "--trials": [str(box["trials"])],
                "--config": [str(box["config"])],
            }.get(flag, [str(box["wav"]), str(box["wav"].parent)])
        )
    return valid, hostile


def _option(line: list[str], flag: str) -> str | None:
    return line[line.index(flag) + 1] if flag in line[:-1] else None


def _default_outputs(line: list[str]) -> list[Path]:
    """The README's default output folders, where the command line gives no --out: evaluate
    writes ``evaluation-SPLIT`` beside a single model folder (else ``DATA-evaluation-SPLIT``
    beside the data), score writes ``TRIALS-scores`` beside the trials file."""
    if "--out" in line:
        return []
    if line[0] == "evaluate":
        split, model = _option(line, "--split") or "dev", _option(line, "--model")
        with contextlib.suppress(OSError):  # a name too long to look at: beside the data
            if line.count("--model") == 1 and model and Path(model).expanduser().is_dir():
                return [Path(model).expanduser().resolve().parent / f"evaluation-{split}"]
        data = Path(_option(line, "--data") or ".").resolve()
        return [data.parent / f"{data.name}-evaluation-{split}"]
    if line[0] == "score" and _option(line, "--trials"):
        trials = Path(_option(line, "--trials"))
        return [trials.parent / f"{trials.stem}-scores"]
    return []


def _named_outputs(line: list[str]) -> list[Path]:
    """What the command line names as outputs: the values of output options, their documented
    defaults, and a model folder that model-card writes its card into."""
    named = [Path(line[i + 1]) for i, word in enumerate(line[:-1]) if word in OUTPUT_OPTIONS]
    if line[0] == "model-card" and "--model" in line:
        named.append(Path(line[line.index("--model") + 1]))
    named += _default_outputs(line)
    return [path.absolute() for path in named if str(path).strip()]


# Values that pass on their own, so that command lines get past the parser into the library's
# own checks and, when every value is valid, to the work itself.
VALID_NUMBERS = {
    "--epochs": ["1", "2"], "--babies": ["20"], "--seed": ["0", "7"], "--channels": ["8", "16"],
    "--batch-babies": ["2", "4"], "--crops-per-baby": ["2"], "--keep-best": ["1"],
    "--validation-batches": ["1"], "--plateau-patience": ["0"], "--cohort-top-n": ["2", "10"],
    "--threshold": ["0.5"], "--difficulty": ["1"], "--crop-min-seconds": ["0.5"],
    "--crop-max-seconds": ["1"], "--validation-fraction": ["0.3"], "--margin": ["0.5"],
    "--aam-margin": ["0.2"], "--aam-scale": ["30"], "--plateau-factor": ["0.5"],
    "--learning-rate": ["0.001"],
}  # fmt: skip
# Files in the sandbox's inputs that CRYPRINT_STORE may name (each must be left as it is).
STORE_HOSTILE = ("fifo", "socket", "null-device", "notes.txt", "folder")
HOSTILE_NUMBERS = ["nan", "inf", "-inf", "-1", "0", "1e308", "9" * 25, "1.5", "x", ""]


def _values(action: argparse.Action, box: dict[str, Path]) -> Values:
    """The valid and the hostile values of one option."""
    flag = action.option_strings[0] if action.option_strings else action.dest
    if action.choices:
        return st.sampled_from([str(c) for c in action.choices]), st.text(max_size=8)
    if action.type in (int, float) or flag in VALID_NUMBERS:
        valid = st.sampled_from(VALID_NUMBERS.get(flag, ["1"]))
        hostile = st.one_of(st.sampled_from(HOSTILE_NUMBERS), st.integers(-(2**70), 2**70).map(str))
        return valid, hostile
    if action.type is Path or flag in ("--model", "--data", "--init", "--trials", "a", "b", "data"):
        return _paths(box, flag, flag in OUTPUT_OPTIONS)
    valid = st.sampled_from(
        {"--device": ["cpu", "auto"], "--shard": ["1/2", "2/2"]}.get(flag, ["random"])
    )
    huge = "1" + "0" * 20  # a shard count of 10^20 once grew memory without end
    words = ["cuda:9", "meta", "x", "", f"1/{huge}", f"{huge}/{huge}", "0/0", "3/2"]
    return valid, st.one_of(st.sampled_from(words), st.text(max_size=12))


# How hostile a command line is: every value valid (the success paths and their outputs), one
# hostile value (each check alone), or each value hostile one time in three (checks together).
MODES = ("valid", "one hostile", "mixed")


@st.composite
def command_lines(draw: st.DrawFn, command: str, box: dict[str, Path]) -> list[str]:
    parser = _subparsers(cli.build_parser())[command]
    actions = [
        action
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction) and action.dest != "debug"
    ]
    mode = draw(st.sampled_from(MODES))
    hostile_at = draw(st.integers(0, len(actions) - 1)) if mode == "one hostile" else -1
    line = [command]
    for index, action in enumerate(actions):
        valid, hostile = _values(action, box)
        if mode == "mixed":
            value = st.one_of(valid, valid, hostile)
        else:
            value = hostile if index == hostile_at else valid
        if not action.option_strings:  # positional: always given
            line.append(draw(value))
            continue
        if not action.required and draw(st.booleans()):
            continue
        line.append(action.option_strings[0])
        if action.nargs != 0:
            line.append(draw(value))
    return line


def _build_station(settings) -> None:
    from cryprint.server.app import create_app

    create_app(settings).state.station.close()


def _fast_stand_ins(monkeypatch: pytest.MonkeyPatch, tmp: Path) -> None:
    import huggingface_hub.constants

    def seeded_embeddings(model, waveforms, *args, **kwargs):
        rng = np.random.default_rng(len(waveforms))
        return rng.normal(size=(len(waveforms), model.config.embedding_dim)).astype(np.float32)

    def stop_before_training(*args, **kwargs):
        raise KeyboardInterrupt  # as if the user pressed Ctrl-C when training would start

    monkeypatch.setattr("cryprint.models.embed.embed_waveforms", seeded_embeddings)
    # The whole start is real (run folder, lock, log, data, model, run description, and the
    # clean-up of a failed start); it stops before the first forward pass.
    monkeypatch.setattr(trainer, "_initial_metrics", stop_before_training)
    monkeypatch.setattr(trainer, "_run_epochs", stop_before_training)
    monkeypatch.setattr("cryprint.demo.run_demo", lambda *args, **kwargs: {})
    # The station is built (its settings checked, its model loaded) but never listens.
    monkeypatch.setattr("cryprint.cli.serve.run_station", _build_station)
    monkeypatch.setattr("cryprint.demo.run_full", lambda *args, **kwargs: {})
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp / "hub-cache"))
    monkeypatch.setattr("cryprint.data.download.hub_constants.HF_HUB_OFFLINE", True)


def _keeps_its_promises(line: list[str], box: dict[str, Path], capsys) -> tuple[int, str]:
    """Run one command line; assert a documented exit code, no traceback, and no change outside
    the outputs it names (or their documented defaults). Returns the exit code and stderr."""
    outputs = _named_outputs(line)
    before = _snapshot(box["inputs"], outputs)
    # A folder of someone else's files is never replaced, even when named as an output.
    foreign = box["inputs"] / "foreign-report"
    foreign_before = _snapshot(foreign, [])
    try:
        code = cli.main(line)
    except SystemExit as exit_:  # argparse's own refusal of a command line
        code = exit_.code if isinstance(exit_.code, int) else 2
    err = capsys.readouterr().err
    assert code in DOCUMENTED_EXIT_CODES, (line, code, err)
    assert "internal error" not in err and "Traceback" not in err, (line, err)
    assert _snapshot(box["inputs"], outputs) == before, line
    assert _snapshot(foreign, []) == foreign_before, line
    return code, err


# The same command lines on every run unless CRYPRINT_FUZZ=random (tests/conftest.py);
# CRYPRINT_FUZZ_EXAMPLES=N draws more of them.
FUZZ_SETTINGS = settings(
    max_examples=int(os.environ.get("CRYPRINT_FUZZ_EXAMPLES", EXAMPLES_PER_COMMAND)),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _fuzz(
    lines: st.SearchStrategy[list[str]], box: dict[str, Path], fuzz_settings: settings,
    label: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
) -> None:  # fmt: skip
    """Run the command lines hypothesis draws from ``lines`` in ``box``, each keeping the
    promises; print how they exited."""
    _fast_stand_ins(monkeypatch, box["root"])
    monkeypatch.chdir(box["outputs"])
    codes: Counter[int] = Counter()

    inputs = box["inputs"]
    # The embedding store: the test session's, or a special file or another's file put there.
    hostile = [str(inputs / name) for name in STORE_HOSTILE if os.path.lexists(inputs / name)]
    stores = [os.environ["CRYPRINT_STORE"], *hostile]

    @fuzz_settings
    @given(lines, st.sampled_from(stores))
    def run(line: list[str], store: str) -> None:
        monkeypatch.setenv("CRYPRINT_STORE", store)
        code, _ = _keeps_its_promises(line, box, capsys)
        event(f"exit {code}")
        codes[code] += 1

    run()
    with capsys.disabled():
        print(f"\n{label}: {sum(codes.values())} command lines, exit codes {dict(codes)}")


@pytest.mark.parametrize("command", COMMANDS)
def test_random_command_lines_keep_their_promises(
    command: str,
    sandbox: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    lines = command_lines(command, sandbox)
    _fuzz(lines, sandbox, FUZZ_SETTINGS, command, monkeypatch, capsys)


def test_evaluate_without_out_writes_only_its_documented_default(
    sandbox: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """The line CI's random fuzz drew (once, then again while shrinking): an evaluation with no
    --out goes to evaluation-dev beside the model folder, and a second one replaces it there."""
    _fast_stand_ins(monkeypatch, sandbox["root"])
    monkeypatch.chdir(sandbox["outputs"])
    line = ["evaluate", "--model", str(sandbox["model"]), "--data", str(sandbox["corpus"]),
            "--as-norm", "--json", "--tta", "1", "--no-trim"]  # fmt: skip
    default = sandbox["model"].parent / "evaluation-dev"
    try:
        assert _keeps_its_promises(line, sandbox, capsys)[0] == 0
        assert (default / "report.json").is_file()
        assert _keeps_its_promises(line, sandbox, capsys)[0] == 0
    finally:
        shutil.rmtree(default, ignore_errors=True)


def _valid_lines(box: dict[str, Path]) -> list[tuple[list[str], int]]:
    """One valid command line of every subcommand, in an order where each finds what the ones
    before it wrote, with its exit code under the fast stand-ins."""
    out, model, corpus = box["outputs"], str(box["model"]), str(box["corpus"])
    b, d = (str(next(box["wav"].parent.parent.glob(f"{p}/*.wav"))) for p in "BD")
    ward = ["--gallery", str(out / "ward.db")]
    embed = ["embed", "--model", model, "--data", corpus, "--split", "dev"]
    return [
        (["info", corpus], 0),
        (["synth", "--dest", str(out / "synth"), "--babies", "20"], 0),
        ([*embed, "--shard", "1/2", "--out", str(out / "dev-1.npz")], 0),
        ([*embed, "--shard", "2/2", "--out", str(out / "dev-2.npz")], 0),
        (["embed-merge", str(out / "dev-1.npz"), str(out / "dev-2.npz"), "--data", corpus,
          "--out", str(out / "dev.npz"), "--no-store"], 0),
        (["evaluate", "--model", model, "--data", corpus, "--out", str(out / "evaluation")], 0),
        (["calibrate", "--model", model, "--data", corpus], 0),
        (["verify", b, d, "--model", model, "--json"], 0),  # at the stored dev threshold
        (["verify", b, d, "--model", model, "--prior", "0.3", "--inconclusive", "0.2"], 0),
        (["score", "--model", model, "--trials", str(box["trials"]), "--out", str(out / "s")], 0),
        (["submit", "--model", model, "--data", corpus, "--out", str(out / "submission.csv")], 0),
        (["enroll", *ward, "--model", model, "--baby", "A", b], 0),
        (["enroll", *ward, "--model", model, "--baby", "B", d], 0),
        (["identify", *ward, "--model", model, d, "--json"], 0),
        (["gallery", "list", *ward], 0),
        (["serve", *ward, "--model", model, "--port", "8123"], 0),  # built, never listening
        (["gallery", "remove", *ward, "--baby", "B"], 0),  # A stays for the lines after
        (["export", "--model", model, "--out", str(out / "export")], 0),
        (["export", "--model", model, "--out", str(out / "onnx"), "--format", "onnx"], 0),
        (["verify", b, d, "--model", str(out / "onnx"), "--backend", "onnx"], 0),
        (["model-card", "--model", model], 0),
        # The stand-in stops training where the first epoch would start, as Ctrl-C does.
        (["train", "--data", corpus, "--run", str(out / "run"), "--config", str(box["config"]),
          "--init", "random"], 130),
        (["demo", "--out", str(out / "demo")], 0),
        (["download", "--dest", str(out / "download")], 6),  # offline: the network's exit code
    ]  # fmt: skip


def test_a_valid_line_of_every_command_succeeds_touching_only_its_outputs(
    small_corpus: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    """The success paths the random lines rarely reach (verify, identify, submit ... never in
    the fixed draw): each command's work runs, and changes nothing but what it names."""
    box = _make_sandbox(tmp_path, small_corpus)
    _fast_stand_ins(monkeypatch, box["root"])
    monkeypatch.chdir(box["outputs"])
    lines = _valid_lines(box)
    assert {line[0] for line, _ in lines} == set(COMMANDS)  # a new command adds its line here
    for line, expected in lines:
        code, err = _keeps_its_promises(line, box, capsys)
        assert code == expected, (line, err)
    # Nor in the working directory that holds the outputs: no staging folder, lock or temp file.
    named = {Path(line[i + 1]) for line, _ in lines for i, word in enumerate(line[:-1])
             if word in OUTPUT_OPTIONS}  # fmt: skip
    assert set(box["outputs"].iterdir()) <= named


@pytest.fixture(scope="module")
def worked_sandbox(small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A sandbox where every valid line has run once (a stored threshold and calibration, a
    gallery, embedding parts, exports), so that a line with one broken value meets everything
    else in place."""
    box = _make_sandbox(tmp_path_factory.mktemp("worked"), small_corpus)
    with pytest.MonkeyPatch.context() as patch:
        _fast_stand_ins(patch, box["root"])
        patch.chdir(box["outputs"])
        for line, expected in _valid_lines(box):
            assert cli.main(line) == expected, line
    return box


@st.composite
def one_value_broken(draw: st.DrawFn, line: list[str], box: dict[str, Path]) -> list[str]:
    """``line`` with one of its values (not a flag) replaced by a hostile number, path or text."""
    at = draw(st.sampled_from([i for i in range(1, len(line)) if not line[i].startswith("--")]))
    hostile = st.one_of(
        st.sampled_from(HOSTILE_NUMBERS), _paths(box, "", False)[1], st.text(max_size=12)
    )
    return [*line[:at], draw(hostile), *line[at + 1 :]]


@pytest.mark.parametrize("command", COMMANDS)
def test_a_valid_line_with_one_broken_value_keeps_the_promises(
    command: str,
    worked_sandbox: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    """Each check meets its hostile value with every other value right (random lines mostly
    stop at their first wrong value)."""
    box = worked_sandbox
    valid = [line for line, _ in _valid_lines(box) if line[0] == command]
    lines = st.sampled_from(valid).flatmap(lambda line: one_value_broken(line, box))
    fewer = settings(FUZZ_SETTINGS, max_examples=FUZZ_SETTINGS.max_examples // 2)
    _fuzz(lines, box, fewer, f"{command}, one value broken", monkeypatch, capsys)
