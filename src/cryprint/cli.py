"""The ``cryprint`` command: a thin shell over the library.

Each subcommand parses its options, calls one library function, and prints. Errors a user can
fix are :class:`~cryprint.errors.CryprintError`: their message is printed (no traceback) and the
process exits with the error's code (see the README's table of exit codes).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from cryprint import __version__
from cryprint.errors import CryprintError

EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 70


def _print_json(payload: object) -> None:
    print(json.dumps(payload, indent=2, default=str))


# --- data ---------------------------------------------------------------------------------------


def cmd_download(args: argparse.Namespace) -> int:
    from cryprint.data.download import download_cryceleb

    report = download_cryceleb(args.dest, repo_id=args.repo, progress=not args.quiet)
    print(report.describe() if hasattr(report, "describe") else report)
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from cryprint.data.info import format_summary, summarize
    from cryprint.data.synth import generate_corpus

    generate_corpus(
        args.dest,
        babies=args.babies,
        seed=args.seed,
        difficulty=args.difficulty,
        overwrite=args.overwrite,
    )
    print(format_summary(summarize(args.dest)))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from cryprint.data.info import format_summary, summarize

    summary = summarize(args.data, check_files=not args.no_check_files)
    if args.json:
        _print_json(summary)
    else:
        print(format_summary(summary))
    return 0


# --- training -----------------------------------------------------------------------------------

TRAIN_OPTIONS = {
    # CLI flag → config key
    "data": "data",
    "run": "run",
    "method": "method",
    "init": "init",
    "epochs": "epochs",
    "seed": "seed",
    "channels": "channels",
    "batch_babies": "batch_babies",
    "crops_per_baby": "crops_per_baby",
    "lr": "learning_rate",
    "margin": "margin",
    "select_by": "select_by",
    "device": "device",
    "amp": "amp",
    "compile": "compile",
}


def cmd_train(args: argparse.Namespace) -> int:
    from cryprint.training.config import make_config
    from cryprint.training.trainer import train

    overrides = {key: getattr(args, flag) for flag, key in TRAIN_OPTIONS.items()}
    config = make_config(overrides, args.config)
    result = train(config, resume=args.resume, quiet=args.quiet)
    last = result.history[-1]
    first = result.history[0]
    print(
        f"trained {config.method} for {last['epoch']} epoch(s): validation EER "
        f"{100 * first['validation_eer']:.2f}% (initial) → {100 * last['validation_eer']:.2f}% "
        f"(last); best model in {result.best}"
    )
    return 0


def _add_train(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="fine-tune ECAPA-TDNN (triplet loss or the AAM-softmax baseline)",
        description="Fine-tune the cry embedder. Options override --config FILE.yaml, which "
        "overrides the defaults (the reference recipe).",
    )
    parser.add_argument("--data", type=Path, help="a CryCeleb-layout data directory")
    parser.add_argument("--run", type=Path, help="the run folder to write (runs/NAME)")
    parser.add_argument("--config", type=Path, help="a YAML file of training options")
    parser.add_argument("--method", choices=["triplet", "aam"])
    parser.add_argument(
        "--init",
        help="initial weights: a hub model id (default speechbrain/spkrec-ecapa-voxceleb)"
        ", a model folder, an embedding_model.ckpt file, or 'random'",
    )
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--channels", type=int, help="ECAPA width C (C×4 blocks, 3C last)")
    parser.add_argument("--batch-babies", type=int, help="P: babies per batch")
    parser.add_argument("--crops-per-baby", type=int, help="K: crops per baby in a batch")
    parser.add_argument("--lr", type=float, help="learning rate (default 1e-3 triplet, 1e-4 aam)")
    parser.add_argument("--margin", type=float, help="triplet margin (default 1.0)")
    parser.add_argument(
        "--select-by", choices=["loss", "eer"], help="how best checkpoints are kept"
    )
    parser.add_argument("--device", help="auto (default), cpu, cuda, cuda:N")
    parser.add_argument("--amp", action="store_true", default=None, help="mixed precision (CUDA)")
    parser.add_argument("--compile", action="store_true", default=None, help="torch.compile (CUDA)")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=cmd_train)


# --- parser -------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cryprint", description="Infant cry verification: is it the same baby?"
    )
    parser.add_argument("--version", action="version", version=f"cryprint {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    download = subparsers.add_parser(
        "download", help="fetch CryCeleb2023 from the Hugging Face hub"
    )
    download.add_argument("--dest", type=Path, required=True, help="where to put the data set")
    download.add_argument("--repo", default="Ubenwa/CryCeleb2023", help="the hub dataset repo")
    download.add_argument("--quiet", action="store_true")
    download.set_defaults(handler=cmd_download)

    synth = subparsers.add_parser("synth", help="write a synthetic CryCeleb-format corpus")
    synth.add_argument("--dest", type=Path, required=True)
    synth.add_argument("--babies", type=int, default=240)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--difficulty", type=float, default=1.0, help="0 easy, 1 default, 2 hard")
    synth.add_argument("--overwrite", action="store_true", help="replace an earlier corpus at DEST")
    synth.set_defaults(handler=cmd_synth)

    info = subparsers.add_parser("info", help="the split table of a CryCeleb-layout directory")
    info.add_argument("data", type=Path)
    info.add_argument("--json", action="store_true")
    info.add_argument("--no-check-files", action="store_true", help="skip checking audio files")
    info.set_defaults(handler=cmd_info)

    _add_train(subparsers)
    for register in EXTRA_COMMANDS:
        register(subparsers)
    return parser


# Subcommands defined in other modules register themselves here (evaluation, demo).
EXTRA_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = []


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except CryprintError as error:
        print(f"cryprint {args.command}: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print(f"cryprint {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:
        if args.debug:
            raise
        print(
            f"cryprint {args.command}: internal error: {type(error).__name__}: {error}\n"
            "(rerun with --debug for the traceback, and please report it)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
