"""Benchmark 5: the ONNX paths (fp32 and int8) against the torch paths.

Embedding every dev and test recording, audio already in memory, side by side in one process
on the same weights and recordings: the reference (the model exported with ``cryprint export``,
``SpeakerRecognition.from_hparams``, ``encode_batch`` one recording at a time), cryprint's torch
path (``embed_waveforms``), the ONNX fp32 export and the ONNX int8 export (calibrated on
train recordings) on onnxruntime. For each: seconds of audio embedded per second, the ratio to
the reference, the cosine of each embedding to the torch fp32 one, the dev and test EER and its
change from torch fp32. The torch path under bfloat16 autocast is timed only where the CPU runs
bf16 natively (AVX512_BF16 / AMX; elsewhere it is emulated and slow), and its accuracy is
always measured on the trained model (emulated arithmetic gives the same numbers).

Speed is measured on the full VoxCeleb ECAPA (C=1024) with seeded random weights (the
arithmetic does not depend on the values); accuracy needs trained weights, so the same table is
made again for ``--accuracy-model`` (default: the demo's ``demo/runs/triplet/best``) when it
exists. Then the cold start of one verification, each in a fresh process: ``cryprint verify
A B`` (torch) against the torch-free ONNX path (:data:`ONNX_VERIFY`: what an ONNX ``verify``
runs — imports, session, reading, embedding, scoring).

    python benchmarks/bench_onnx.py                      # demo corpus, C=1024 + demo model
    python benchmarks/bench_onnx.py --skip-speed         # the accuracy table and cold start only
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile
import torch

from common import (
    best_of,
    cpu_flags,
    flops_per_audio_second,
    measured_gemm_flops,
    parser,
    setup,
    table,
)
from cryprint.data.corpus import Corpus, recordings
from cryprint.data.layout import read_pairs
from cryprint.evaluation.pairs import score_pairs
from cryprint.inference.engines import TorchEngine
from cryprint.inference.onnx_runtime import OnnxEmbedder, available_cores
from cryprint.inference.splits import RecordingEmbeddings
from cryprint.models.device import native_bf16, resolve_precision
from cryprint.models.ecapa import CryEmbedder, ModelConfig
from cryprint.models.embed import embed_waveforms
from cryprint.models.folder import LoadedModel, load_model, save_model_folder
from cryprint.packaging.onnx_export import draw_calibration_waveforms, export_onnx
from cryprint.packaging.speechbrain import export_model
from cryprint.scoring import compute_eer

REPOSITORY = Path(__file__).resolve().parent.parent
DEMO_CORPUS = REPOSITORY / "demo" / "corpus"
DEMO_MODEL = REPOSITORY / "demo" / "runs" / "triplet" / "best"
SPLITS = ("dev", "test")
REFERENCE = "reference (SpeechBrain encode_batch, one at a time)"
# The accuracy bar for keeping int8 (issue #12): EER within 0.3 points, cosine to fp32 >= 0.99.
MAX_EER_CHANGE_POINTS = 0.3
MIN_INT8_COSINE = 0.99
# bf16 autocast on the torch path (issue #12): EER unchanged within 0.2 points.
MAX_BF16_EER_CHANGE_POINTS = 0.2
# What an ONNX `cryprint verify A B` runs, in a fresh interpreter that must not load torch.
ONNX_VERIFY = """
import sys, time
started = time.perf_counter()
from cryprint.data.inputs import read_recording
from cryprint.inference.onnx_runtime import OnnxEmbedder, available_cores
from cryprint.scoring import cosine_matrix
imported = time.perf_counter()
folder, a, b, threshold = sys.argv[1:5]
embedder = OnnxEmbedder(folder)
loaded = time.perf_counter()
waveforms = [read_recording(a), read_recording(b)]
read = time.perf_counter()
embeddings = embedder.embed_waveforms(waveforms)
score = float(cosine_matrix(embeddings[:1], embeddings[1:])[0, 0])
done = time.perf_counter()
verdict = "same baby" if score >= float(threshold) else "different babies"
print(f"{verdict}: score {score:.4f} vs threshold {float(threshold):.4f}")
assert "torch" not in sys.modules, "the ONNX path imported torch"
print(f"phases: imports {imported - started:.2f} s, session {loaded - imported:.2f} s, "
      f"reading {read - loaded:.2f} s, embedding + scoring {done - read:.2f} s", file=sys.stderr)
"""


def split_waveforms(root: Path) -> tuple[list[str], list[str], list[np.ndarray]]:
    """Split, key and float32 waveform of every dev and test recording."""
    splits, keys, waveforms = [], [], []
    corpus = Corpus(root, splits=SPLITS)
    for split in SPLITS:
        for item in recordings(corpus, split):
            splits.append(split)
            keys.append(item.key)
            waveforms.append(item.waveform())
    return splits, keys, waveforms


def eers(root: Path, splits: list[str], keys: list[str], embeddings: np.ndarray) -> list[float]:
    """EER (%) of each split's labelled pairs scored with ``embeddings``."""
    result = []
    for split in SPLITS:
        rows = [i for i, name in enumerate(splits) if name == split]
        pairs = read_pairs(root, split)
        held = RecordingEmbeddings([keys[i] for i in rows], embeddings[rows], model_id="")
        scores = score_pairs(held, pairs)
        result.append(100 * compute_eer(scores, pairs["label"].to_numpy()).eer)
    return result


def cosines(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    left, right = left.astype(np.float64), right.astype(np.float64)
    return (left * right).sum(1) / np.linalg.norm(left, axis=1) / np.linalg.norm(right, axis=1)


def reference_path(export: Path, savedir: Path) -> Callable[[list[np.ndarray]], np.ndarray]:
    """The reference notebooks' model: SpeechBrain's ``encode_batch``, one recording at a time."""
    from speechbrain.inference.speaker import SpeakerRecognition

    encoder = SpeakerRecognition.from_hparams(source=str(export), savedir=str(savedir))

    def embed(waveforms: list[np.ndarray]) -> np.ndarray:
        return np.stack(
            [
                encoder.encode_batch(torch.from_numpy(w).unsqueeze(0)).squeeze().cpu().numpy()
                for w in waveforms
            ]
        )

    return embed


def compare_paths(
    model: CryEmbedder,
    root: Path,
    workdir: Path,
    repeats: int,
    calibration_count: int,
    bf16: bool,
    gemm: dict[str, float],
) -> tuple[list[list[object]], dict[str, Path]]:
    """The table rows for one model, and the folders it exported (for the cold-start runs);
    with ``bf16`` also the torch path under bfloat16 autocast. ``gemm``: the machine's measured
    GEMM rate per arithmetic (``fp32``, ``bf16``), the peaks each path's rate is a share of."""
    splits, keys, waveforms = split_waveforms(root)
    audio_seconds = sum(len(w) for w in waveforms) / 16000
    folders = {"model": save_model_folder(model, workdir / "model", {"seed": 0})}
    started = time.perf_counter()
    folders["fp32"] = workdir / "onnx-fp32"
    folders["fp32"].mkdir()
    export_onnx(model, folders["fp32"])
    fp32_export = time.perf_counter() - started
    calibration = draw_calibration_waveforms(root, calibration_count)
    started = time.perf_counter()
    folders["int8"] = workdir / "onnx-int8"
    folders["int8"].mkdir()
    export_onnx(model, folders["int8"], int8=True, calibration_waveforms=calibration)
    int8_export = time.perf_counter() - started
    print(
        f"exports: fp32 {fp32_export:.1f} s, int8 {int8_export:.1f} s "
        f"({len(calibration)} train recordings, "
        f"{sum(len(w) for w in calibration) / 16000:.0f} s of audio, for calibration)",
        flush=True,
    )

    export = export_model(folders["model"], workdir / "export")
    paths: dict[str, Callable[[list[np.ndarray]], np.ndarray]] = {
        REFERENCE: reference_path(export, workdir / "speechbrain")
    }
    paths["cryprint torch fp32 (embed_waveforms)"] = lambda w: embed_waveforms(model, w)
    if bf16:
        native = "native" if native_bf16(torch.device("cpu")) else "EMULATED: time meaningless"
        picked = resolve_precision("auto", torch.device("cpu"), model.config.width) is not None
        engine = TorchEngine(model, precision="bf16")  # weights cast to bf16 once, as cryprint does
        label = f"cryprint torch bf16 (autocast, {native}; auto picks {'it' if picked else 'fp32'})"
        paths[label] = lambda w: engine.embed(w, [f"#{i}" for i in range(len(w))])
    fp32, int8 = OnnxEmbedder(folders["fp32"]), OnnxEmbedder(folders["int8"])
    paths["onnx fp32 (onnxruntime)"] = fp32.embed_waveforms
    paths["onnx int8 (onnxruntime, static QDQ)"] = int8.embed_waveforms

    times, embeddings = {}, {}
    for name, embed in paths.items():
        embed(waveforms[:2])  # warm-up: first-run allocations and weight packing
        times[name] = best_of(
            repeats, lambda name=name, embed=embed: embeddings.update({name: embed(waveforms)})
        )
        print(f"  {name}: {times[name]:.1f} s", flush=True)

    torch_name = "cryprint torch fp32 (embed_waveforms)"
    flops = flops_per_audio_second(model) * audio_seconds
    base_eer = eers(root, splits, keys, embeddings[torch_name])
    rows, verdicts = [], []
    for name in paths:
        cosine = cosines(embeddings[name], embeddings[torch_name])
        eer = eers(root, splits, keys, embeddings[name])
        if name.startswith(("onnx", "cryprint torch bf16")):
            bar = MAX_BF16_EER_CHANGE_POINTS if "bf16" in name else MAX_EER_CHANGE_POINTS
            worst = max(abs(a - b) for a, b in zip(eer, base_eer, strict=True))
            meets = worst <= bar and cosine.min() >= MIN_INT8_COSINE
            verdicts.append(
                f"{name}: EER change up to {worst:.2f} points, min cosine {cosine.min():.4f} "
                f"-> {'meets' if meets else 'MISSES'} the bar (<= {bar} points, >= "
                f"{MIN_INT8_COSINE})"
            )
        rows.append(
            [
                name,
                f"{times[name]:.1f}",
                f"{audio_seconds / times[name]:.1f}",
                f"{times[REFERENCE] / times[name]:.2f}x",
                _share_of_peak(flops / times[name], gemm, "bf16" if "bf16" in name else "fp32"),
                f"{cosine.min():.5f} / {cosine.mean():.5f}",
                f"{eer[0]:.2f} ({eer[0] - base_eer[0]:+.2f})",
                f"{eer[1]:.2f} ({eer[1] - base_eer[1]:+.2f})",
            ]
        )
    print(
        f"\n{len(waveforms)} recordings ({', '.join(SPLITS)}), {audio_seconds / 60:.1f} min of "
        f"audio; ECAPA channels {model.config.channels}; best of {repeats}"
    )
    print(
        table(
            [
                "path",
                "seconds",
                "audio s / s",
                "speed vs reference",
                "GFLOP/s (share of the GEMM peak)",
                "cosine to torch fp32 (min / mean)",
                "dev EER % (change)",
                "test EER % (change)",
            ],
            rows,
        )
    )
    print("\n".join(verdicts))
    return rows, folders


def _share_of_peak(rate: float, gemm: dict[str, float], arithmetic: str) -> str:
    """A path's FLOP rate (the model's convolutions and products, counted in fp32 terms) and its
    share of the measured GEMM rate of its arithmetic (int8 is compared with fp32's)."""
    return f"{rate / 1e9:.0f} ({100 * rate / gemm[arithmetic]:.0f} % of {arithmetic})"


def cold_start(
    folders: dict[str, Path], pair: tuple[Path, Path], threshold: float, runs: int
) -> list[list[object]]:
    """Wall time of one verification in a fresh process: torch CLI, then the ONNX path."""
    environment = {**os.environ}
    commands = {
        "torch: `cryprint verify A B --model M`": [
            str(Path(sys.executable).with_name("cryprint")), "verify", str(pair[0]),
            str(pair[1]), "--model", str(folders["model"]), "--threshold", str(threshold),
        ],
        "python -c 'import torch' (for scale)": [sys.executable, "-c", "import torch"],
        "onnx fp32: torch-free verify (ONNX_VERIFY)": [
            sys.executable, "-c", ONNX_VERIFY, str(folders["fp32"]), str(pair[0]),
            str(pair[1]), str(threshold),
        ],
        "onnx int8: torch-free verify (ONNX_VERIFY)": [
            sys.executable, "-c", ONNX_VERIFY, str(folders["int8"]), str(pair[0]),
            str(pair[1]), str(threshold),
        ],
        "`cryprint --version` (the CLI's imports today)": [
            str(Path(sys.executable).with_name("cryprint")), "--version",
        ],
    }  # fmt: skip
    rows = []
    for name, command in commands.items():
        walls, phases = [], ""
        for run in range(runs):
            with tempfile.TemporaryDirectory() as store:
                # A fresh embedding store each run: a cold start embeds, it finds nothing cached.
                environment["CRYPRINT_STORE"] = str(Path(store) / "store.sqlite")
                started = time.perf_counter()
                result = subprocess.run(command, capture_output=True, text=True, env=environment)
                walls.append(time.perf_counter() - started)
            if result.returncode != 0:
                raise RuntimeError(f"{name} failed:\n{result.stdout}\n{result.stderr}")
            if run == runs - 1:
                phases = next(
                    (line for line in result.stderr.splitlines() if line.startswith("phases")), ""
                )
        rows.append([name, f"{statistics.median(walls):.2f}", f"{min(walls):.2f}", phases])
    return rows


def main() -> None:
    arguments = parser(__doc__.split("\n\n")[0])
    arguments.set_defaults(data=DEMO_CORPUS)
    arguments.add_argument("--channels", type=int, default=1024, help="ECAPA width C for speed")
    arguments.add_argument("--repeats", type=int, default=1, help="best of N for each path")
    arguments.add_argument(
        "--accuracy-model", type=Path, default=DEMO_MODEL, help="trained model folder"
    )
    arguments.add_argument("--calibration-recordings", type=int, default=32)
    arguments.add_argument("--verify-runs", type=int, default=5, help="cold starts per path")
    arguments.add_argument("--skip-speed", action="store_true", help="no C=1024 table")
    args = arguments.parse_args()
    root = setup(args)
    # int8 speed and accuracy depend on it: without VNNI, onnxruntime's u8 x s8 kernels add
    # pairs of products in saturating int16 (hence the 7-bit weights, see quantize_int8).
    print(f"int8 dot-product instructions (VNNI): {'yes' if 'vnni' in cpu_flags() else 'no'}")
    print(f"threads: onnxruntime {available_cores()}, torch {torch.get_num_threads()}")
    gemm = {"fp32": measured_gemm_flops(), "bf16": measured_gemm_flops(dtype=torch.bfloat16)}
    bf16_kind = "native" if native_bf16(torch.device("cpu")) else "emulated"
    print(
        f"measured GEMM (2048 x 2048 products): fp32 {gemm['fp32'] / 1e9:.0f} GFLOP/s, bf16 "
        f"{gemm['bf16'] / 1e9:.0f} GFLOP/s ({bf16_kind})"
    )

    with tempfile.TemporaryDirectory() as temporary:
        workdir = Path(temporary)
        speed_folders = None
        if not args.skip_speed:
            torch.manual_seed(0)
            config = ModelConfig() if args.channels == 1024 else ModelConfig.small(args.channels)
            model = CryEmbedder(config).eval()
            print(f"\n## speed: C={args.channels}, seeded random weights", flush=True)
            (workdir / "speed").mkdir()
            _, speed_folders = compare_paths(
                model, root, workdir / "speed", args.repeats, args.calibration_recordings,
                bf16=native_bf16(torch.device("cpu")), gemm=gemm,
            )  # fmt: skip
        accuracy_folders = None
        if args.accuracy_model.is_dir():
            loaded: LoadedModel = load_model(args.accuracy_model)
            print(f"\n## accuracy: {args.accuracy_model} (trained)", flush=True)
            (workdir / "accuracy").mkdir()
            _, accuracy_folders = compare_paths(
                loaded.model.eval(), root, workdir / "accuracy", args.repeats,
                args.calibration_recordings, bf16=True, gemm=gemm,
            )  # fmt: skip
        else:
            print(f"\nno trained model at {args.accuracy_model}: accuracy table skipped")

        # The longest dev segment of each period: `cryprint verify B.wav D.wav`.
        metadata = pd.read_csv(root / "metadata.csv", dtype={"baby_id": str})
        dev = metadata[metadata["split"] == "dev"].sort_values("duration")
        pair = tuple(
            root / dev[dev["period"] == period]["file_name"].iloc[-1] for period in ("B", "D")
        )
        seconds = [soundfile.info(path).duration for path in pair]
        models = ((f"C={args.channels}, random", speed_folders), ("trained", accuracy_folders))
        for label, folders in models:
            if folders is None:
                continue
            print(
                f"\n## verify cold start ({label}): {pair[0].name} ({seconds[0]:.1f} s) vs "
                f"{pair[1].name} ({seconds[1]:.1f} s), median and best of {args.verify_runs}"
            )
            rows = cold_start(folders, pair, 0.5, args.verify_runs)
            print(table(["process", "median wall (s)", "best (s)", "ONNX phases"], rows))


if __name__ == "__main__":
    main()
