"""Benchmark 11: what a CPU budget buys — learning-rate schedules and recipe knobs at equal
training minutes (issue 22).

A budget is minutes of training on 2 cores. Each configuration's epoch time (training plus the
per-epoch validation) is measured on this machine first (``measure``); a budget of B minutes is
then ``floor(B * 60 / seconds_per_epoch)`` epochs of that configuration, and a schedule that knows
its run's length is planned over exactly those epochs. Runs are then launched (``launch``: several
at once, each on its own cores, when the machine has more than 2) and each best model is
evaluated on the test split; ``report`` writes the table and the curves (validation EER against
minutes).

    python benchmarks/bench_convergence.py measure --data hard/corpus --out conv
    python benchmarks/bench_convergence.py launch --data hard/corpus --out conv \
        --budgets 5 15 --seeds 0 1 --configs plateau cosine
    python benchmarks/bench_convergence.py report --out conv
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

from common import machine_description, table
from cryprint.demo import DEMO_TRAINING

HERE = Path(__file__).resolve()
# The demo's recipe, read from cryprint.demo.DEMO_TRAINING (not restated), and what each
# configuration changes in it.
BASE_KEYS = ("init", "channels", "batch_babies", "crops_per_baby", "crop_min_seconds",
             "crop_max_seconds", "learning_rate", "select_by", "device")  # fmt: skip
BASE = {key: getattr(DEMO_TRAINING, key) for key in BASE_KEYS}
CONFIGS = {
    "plateau": {"schedule": "plateau"},
    "cosine": {"schedule": "cosine"},
    "exponential": {"schedule": "exponential"},
    "onecycle": {"schedule": "onecycle"},
    "cosine-P32xK2": {"schedule": "cosine", "batch_babies": 32, "crops_per_baby": 2},
    "cosine-P8xK6": {"schedule": "cosine", "batch_babies": 8, "crops_per_baby": 6},
    "cosine-crops2-3s": {"schedule": "cosine", "crop_min_seconds": 2.0, "crop_max_seconds": 3.0},
    "cosine-margin0.5": {"schedule": "cosine", "margin": 0.5},
    "cosine-C128": {"schedule": "cosine", "channels": 128},
    "cosine-C32": {"schedule": "cosine", "channels": 32},
}


def cryprint(*args: str) -> list[str]:
    return [sys.executable, "-m", "cryprint", *args]


def train_command(data: Path, run: Path, name: str, epochs: int, seed: int) -> list[str]:
    options = {**BASE, **CONFIGS[name], "epochs": epochs, "seed": seed}
    flags = [f"--{key.replace('_', '-')}={value}" for key, value in options.items()]
    return cryprint("train", "--data", str(data), "--run", str(run), "--quiet", *flags)


def measure(args: argparse.Namespace) -> None:
    """Seconds per epoch of each configuration here (3 epochs; the first excluded)."""
    print(machine_description())
    times = {}
    for name in args.configs:
        run = args.out / "measure" / name
        subprocess.run(train_command(args.data, run, name, 3, 0), check=True)
        rows = _metrics(run)
        times[name] = sum(r["seconds"] for r in rows[2:]) / max(1, len(rows[2:]))
        print(f"{name}: {times[name]:.1f} s per epoch", flush=True)
    (args.out / "epoch_seconds.json").write_text(json.dumps(times, indent=2) + "\n")


def _metrics(run: Path) -> list[dict]:
    import csv

    with (run / "metrics.csv").open() as file:
        return [
            {k: float(v) if k != "collapsed" else v for k, v in row.items()}
            for row in csv.DictReader(file)
        ]


def one_run(args: argparse.Namespace) -> None:
    """Train one configuration for its budget's epochs, evaluate its best model on test."""
    run = args.out / "runs" / f"{args.config}-{args.budget}min-seed{args.seed}"
    started = time.perf_counter()
    subprocess.run(train_command(args.data, run, args.config, args.epochs, args.seed), check=True)
    wall = time.perf_counter() - started
    evaluated = run / "test"
    subprocess.run(
        cryprint("evaluate", "--model", str(run / "best"), "--data", str(args.data), "--split",
                 "test", "--out", str(evaluated), "--no-cohort", "--device", "cpu"),
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    report = json.loads((evaluated / "report.json").read_text())
    result = {
        "config": args.config, "budget_minutes": args.budget, "seed": args.seed,
        "epochs": args.epochs, "wall_seconds": wall, "test_eer": report["eer"],
        "test_min_dcf": report["min_dcf"]["0.05"], "curve": _metrics(run),
    }  # fmt: skip
    (run / "result.json").write_text(json.dumps(result, indent=2) + "\n")


def launch(args: argparse.Namespace) -> None:
    """Every (config, budget, seed) run, ``--parallel`` at a time, each on its own cores."""
    print(machine_description())
    times = json.loads((args.epoch_seconds or args.out / "epoch_seconds.json").read_text())
    (args.out / "epoch_seconds.json").write_text(json.dumps(times, indent=2) + "\n")
    chosen = [
        (job.split(":")[0], int(job.split(":")[1]), int(job.split(":")[2])) for job in args.jobs
    ]
    chosen = chosen or [
        (name, budget, seed)
        for name, budget, seed in itertools.product(args.configs, args.budgets, args.seeds)
        if not (name == "plateau" and budget != max(args.budgets))  # plateau: one horizon-free run
    ]
    jobs = [
        (name, budget, seed, math.floor(budget * 60 / times[name])) for name, budget, seed in chosen
    ]
    cores = args.cores or sorted(os.sched_getaffinity(0))
    running: dict[int, subprocess.Popen] = {}  # slot -> its run
    for name, budget, seed, epochs in jobs:
        while (
            len(running := {k: j for k, j in running.items() if j.poll() is None}) >= args.parallel
        ):
            time.sleep(5)
        slot = min(set(range(args.parallel)) - set(running))
        mine = cores[slot * args.threads : (slot + 1) * args.threads] or cores
        command = [sys.executable, str(HERE), "run", "--data", str(args.data), "--out",
                   str(args.out), "--config", name, "--budget", str(budget), "--seed",
                   str(seed), "--epochs", str(epochs)]  # fmt: skip
        environment = {
            **os.environ,
            "CRYPRINT_THREADS": str(args.threads),
            "CUDA_VISIBLE_DEVICES": "",
        }
        running[slot] = subprocess.Popen(
            ["taskset", "-c", ",".join(map(str, mine)), *command], env=environment
        )
        print(
            f"started {name} {budget} min ({epochs} epochs) seed {seed} on cores {mine}", flush=True
        )
    for job in running.values():
        job.wait()


def report(args: argparse.Namespace) -> None:
    times = json.loads((args.out / "epoch_seconds.json").read_text())
    results = [json.loads(p.read_text()) for p in sorted(args.out.glob("runs/*/result.json"))]
    ran = {(r["config"], r["budget_minutes"], r["seed"]) for r in results}
    rows = [
        row
        for result in results
        for row in _rows(result, times[result["config"]])
        if row[-1] != "–" or (row[0], int(row[1]), int(row[2])) not in ran
    ]
    header = ["config", "budget (min)", "seed", "epochs", "best val EER %", "last val EER %"]
    print(table([*header, "test EER % (best model)", "test minDCF"], sorted(rows)))
    _plot(results, times, args.out / "curves.png")


def _rows(result: dict, seconds: float) -> list[list[str]]:
    """A result's rows: its own budget; a plateau run also at every shorter budget (the
    plateau does not know the run's length, so its first minutes are a shorter run)."""
    curve = [r for r in result["curve"] if r["epoch"] >= 1]
    own = result["budget_minutes"]
    budgets = [b for b in (5, 15) if b <= own] if result["config"] == "plateau" else [own]
    rows = []
    for budget in budgets:
        upto = [r for r in curve if r["epoch"] * seconds <= budget * 60 + 1e-9]
        if not upto:
            continue
        best = min(upto, key=lambda r: r["validation_eer"])
        mine = budget == own
        test = f"{100 * result['test_eer']:.2f}" if mine else "–"
        dcf = f"{result['test_min_dcf']:.3f}" if mine else "–"
        eers = (f"{100 * best['validation_eer']:.2f}", f"{100 * upto[-1]['validation_eer']:.2f}")
        rows.append(
            [result["config"], str(budget), str(result["seed"]), str(len(upto)), *eers, test, dcf]
        )
    return rows


def _plot(results: list[dict], times: dict, path: Path) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 5.5), layout="constrained")
    axes = figure.add_subplot()
    for result in results:
        if "-" in result["config"]:
            continue  # the knobs: in the table only
        curve = [r for r in result["curve"] if r["epoch"] >= 1]
        minutes = [r["epoch"] * times[result["config"]] / 60 for r in curve]
        style = "-" if result["seed"] == 0 else "--"
        label = f"{result['config']} ({result['budget_minutes']} min, seed {result['seed']})"
        axes.plot(
            minutes, [100 * r["validation_eer"] for r in curve], style, label=label, linewidth=1.2
        )
    axes.set_xlabel("training minutes on 2 cores")
    axes.set_ylabel("validation EER (%)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="x-small", ncol=2)
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["measure", "launch", "run", "report"])
    parser.add_argument("--data", type=Path, help="a CryCeleb-layout corpus")
    parser.add_argument("--out", type=Path, required=True, help="where runs and results go")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--budgets", nargs="+", type=int, default=[5, 15])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument(
        "--jobs",
        nargs="+",
        default=[],
        metavar="CONFIG:BUDGET:SEED",
        help="launch: exactly these runs (instead of configs x budgets x seeds)",
    )
    parser.add_argument(
        "--epoch-seconds",
        type=Path,
        help="launch: another machine's measured epoch_seconds.json (a budget "
        "stays that machine's minutes: the same epochs run wherever)",
    )
    parser.add_argument("--cores", type=int, nargs="+", help="launch: the cores to share out")
    parser.add_argument("--parallel", type=int, default=1, help="runs at once")
    parser.add_argument("--threads", type=int, default=2, help="cores per run")
    parser.add_argument("--config", help="run: the configuration")
    parser.add_argument("--budget", type=int, help="run: its budget in minutes")
    parser.add_argument("--seed", type=int, default=0, help="run: its seed")
    parser.add_argument("--epochs", type=int, help="run: its epochs")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    {"measure": measure, "launch": launch, "run": one_run, "report": report}[args.mode](args)


if __name__ == "__main__":
    main()
