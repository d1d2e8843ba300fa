"""The ``cryprint`` command: a thin shell over the library.

Each subcommand parses its options, calls one library function, and prints. Errors a user can
fix are :class:`~cryprint.errors.CryprintError`: their message is printed (no traceback) and the
process exits with the error's code (see the README's table of exit codes).
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from cryprint import __version__
from cryprint.errors import ConfigError, CryprintError
from cryprint.memory import limit_heap_fragmentation

EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 70
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for `cat` in the same place
# Errors of a path itself (too long, a loop of links, a file used as a folder), not of its content.
BAD_PATH_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.ELOOP, errno.ENOTDIR})


def _silence_stdout() -> None:
    """Point stdout at /dev/null so Python's flush at exit does not fail on the closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _print_json(payload: object) -> None:
    # allow_nan=False: NaN or Infinity is not JSON; a non-finite number here is a bug to report.
    print(json.dumps(payload, indent=2, default=str, allow_nan=False))


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

# Extra spellings of generated flags (kept from earlier versions of the command).
TRAIN_FLAG_ALIASES = {"learning_rate": ("--lr",)}
TRAIN_CHOICES = {"method": ("triplet", "aam"), "select_by": ("loss", "eer")}


def cmd_train(args: argparse.Namespace) -> int:
    from cryprint.training.config import TrainConfig, make_config
    from cryprint.training.runfolder import resume_config, saved_config
    from cryprint.training.trainer import train

    overrides = {field.name: getattr(args, field.name) for field in dataclasses.fields(TrainConfig)}
    if args.resume and args.config is None and args.run and saved_config(args.run) is not None:
        config = resume_config(args.run, overrides)  # --resume needs only --run
    else:
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


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field (``--crop-min-seconds`` for ``crop_min_seconds``), its help
    from ``FIELD_HELP`` and its default from the dataclass."""
    import typing

    from cryprint.training.config import FIELD_HELP, TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    defaults = TrainConfig()
    for field in dataclasses.fields(TrainConfig):
        flags = [f"--{field.name.replace('_', '-')}", *TRAIN_FLAG_ALIASES.get(field.name, ())]
        default = getattr(defaults, field.name)
        shown = "" if default in ("", None) else f" (default: {default})"
        options: dict = {"dest": field.name, "help": FIELD_HELP[field.name] + shown}
        kind = next(
            (
                t
                for t in (bool, int, float, str)
                if t is hints[field.name] or t in typing.get_args(hints[field.name])
            ),
            str,
        )
        if kind is bool:
            options.update(action="store_true", default=None)
        else:
            options.update(type=kind, choices=TRAIN_CHOICES.get(field.name))
        parser.add_argument(*flags, **options)


def _add_train(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="fine-tune ECAPA-TDNN (triplet loss or the AAM-softmax baseline)",
        description="Fine-tune the cry embedder. Options override --config FILE.yaml, which "
        "overrides the defaults (the reference recipe). `--run R --resume` continues run R "
        "with its saved options.",
    )
    parser.add_argument("--config", type=Path, help="a YAML file of training options")
    _add_config_options(parser)
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=cmd_train)


# --- evaluation ---------------------------------------------------------------------------------


def _progress() -> bool:
    return sys.stderr.isatty()


def _as_norm_option(args: argparse.Namespace) -> int | str | None:
    """--as-norm [--cohort-top-n N] → None (off), 'auto' (min(100, cohort)) or N."""
    if args.cohort_top_n is not None and not args.as_norm:
        raise ConfigError("--cohort-top-n needs --as-norm")
    if not args.as_norm:
        return None
    return "auto" if args.cohort_top_n is None else args.cohort_top_n


def cmd_embed(args: argparse.Namespace) -> int:
    from cryprint.evaluation.embed import embed_split
    from cryprint.models.folder import as_loaded

    embeddings = embed_split(
        as_loaded(args.model),
        args.data,
        args.split,
        args.out,
        device=args.device,
        progress=_progress(),
    )
    how = "reused" if embeddings.from_cache else "wrote"
    print(
        f"{how} {len(embeddings.keys)} {args.split} recording embeddings "
        f"({embeddings.dim}-d, model {embeddings.model_id[:12]}) in {args.out}"
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from cryprint.evaluation.evaluate import evaluate, format_table

    out = args.out if args.out is not None else Path(f"evaluation-{args.split}")
    reports = evaluate(
        args.model,
        args.data,
        args.split,
        out,
        as_norm_top_n=_as_norm_option(args),
        device=args.device,
        progress=_progress(),
    )
    if args.json:
        _print_json(reports)
    else:
        print(format_table(reports))
        print(f"scores, report.json and figures in {out}")
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from cryprint.evaluation.submit import write_submission

    submission = write_submission(
        args.model,
        args.data,
        args.out,
        as_norm_top_n=_as_norm_option(args),
        device=args.device,
        progress=_progress(),
    )
    top_n = submission.as_norm_top_n
    scoring = "cosine" if top_n is None else f"AS-norm (top {top_n})"
    print(f"wrote {submission.n_pairs} {scoring} scores to {submission.path}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from cryprint.evaluation.calibrate import calibrate_model

    result = calibrate_model(
        args.model, args.data, args.split, device=args.device, progress=_progress()
    )
    print(
        f"calibration P(same) = sigmoid({result.calibration.a:.4g} * score + "
        f"{result.calibration.b:.4g}) fitted on {result.n_pairs} {result.split} pairs "
        f"({result.n_target} same-baby); saved to {result.path}"
    )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from cryprint.evaluation.verify import verify

    result = verify(args.model, args.a, args.b, threshold=args.threshold, device=args.device)
    if args.json:
        _print_json(result.to_dict())
        return 0
    verdict = "same baby" if result.same_baby else "different babies"
    print(f"{verdict}: score {result.score:.4f} vs threshold {result.threshold:.4f}")
    print(f"threshold: {result.threshold_source}")
    if result.probability is not None:
        print(f"P(same baby) = {result.probability:.3f} (calibrated on the dev pairs)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from cryprint.evaluation.export import export_model

    folder = export_model(args.model, args.out)
    print(f"exported a SpeechBrain model folder with a model card to {folder}")
    return 0


def cmd_model_card(args: argparse.Namespace) -> int:
    from cryprint.evaluation.card import write_model_card

    print(f"wrote {write_model_card(args.model)}")
    return 0


def _add_evaluation(subparsers: argparse._SubParsersAction) -> None:
    model_help = "a model folder (e.g. runs/NAME/best), an embedding_model.ckpt, or a hub id"
    device_help = "auto (default: a GPU when there is one), cpu, cuda, cuda:N"

    def as_norm_options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--as-norm",
            action="store_true",
            help="AS-norm scores, with the train split's recordings as the cohort",
        )
        parser.add_argument(
            "--cohort-top-n",
            type=int,
            help="AS-norm: the N best cohort scores per side (default min(100, cohort size))",
        )

    embed = subparsers.add_parser(
        "embed",
        help="embed every recording of a split into an .npz (reused when up to date)",
    )
    embed.add_argument("--model", required=True, help=model_help)
    embed.add_argument("--data", type=Path, required=True, help="a CryCeleb-layout directory")
    embed.add_argument("--split", choices=["dev", "test", "train"], required=True)
    embed.add_argument("--out", type=Path, required=True, help="the .npz file to write")
    embed.add_argument("--device", default="auto", help=device_help)
    embed.set_defaults(handler=cmd_embed)

    evaluate = subparsers.add_parser(
        "evaluate",
        help="score a split's pairs: EER, minDCF, AUC, scores.csv, report.json, figures",
        description="Score every pair of a split with one or more models and compare them. "
        "Evaluating the dev split also stores the EER threshold in a model folder "
        "(evaluation.json), for cryprint verify.",
    )
    evaluate.add_argument(
        "--model", action="append", required=True, help=f"{model_help}; repeat to compare"
    )
    evaluate.add_argument("--data", type=Path, required=True, help="a CryCeleb-layout directory")
    evaluate.add_argument("--split", choices=["dev", "test"], default="dev")
    evaluate.add_argument(
        "--out", type=Path, help="output folder (default evaluation-SPLIT; a subfolder per model)"
    )
    as_norm_options(evaluate)
    evaluate.add_argument("--json", action="store_true", help="print the reports (a JSON list)")
    evaluate.add_argument("--device", default="auto", help=device_help)
    evaluate.set_defaults(handler=cmd_evaluate)

    submit = subparsers.add_parser(
        "submit", help="score the test pairs as a CryCeleb2023 submission CSV"
    )
    submit.add_argument("--model", required=True, help=model_help)
    submit.add_argument("--data", type=Path, required=True, help="a CryCeleb-layout directory")
    submit.add_argument("--out", type=Path, required=True, help="the submission CSV to write")
    as_norm_options(submit)
    submit.add_argument("--device", default="auto", help=device_help)
    submit.set_defaults(handler=cmd_submit)

    calibrate = subparsers.add_parser(
        "calibrate",
        help="fit score → P(same baby) on the dev pairs; saved in the model folder",
    )
    calibrate.add_argument("--model", required=True, help="a local model folder")
    calibrate.add_argument("--data", type=Path, required=True, help="a CryCeleb-layout directory")
    calibrate.add_argument("--split", choices=["dev", "test"], default="dev")
    calibrate.add_argument("--device", default="auto", help=device_help)
    calibrate.set_defaults(handler=cmd_calibrate)

    verify = subparsers.add_parser(
        "verify",
        help="are two recordings of the same baby?",
        description="A and B are audio files (any rate, any channels) or folders of cry "
        "segments (their audio files, sorted by name, joined).",
    )
    verify.add_argument("a", type=Path, help="audio file or folder of segments")
    verify.add_argument("b", type=Path, help="audio file or folder of segments")
    verify.add_argument("--model", required=True, help=model_help)
    verify.add_argument(
        "--threshold",
        type=float,
        help="same baby when score >= this (default: the model folder's dev EER threshold)",
    )
    verify.add_argument("--json", action="store_true")
    verify.add_argument("--device", default="cpu", help="cpu (default), auto, cuda, cuda:N")
    verify.set_defaults(handler=cmd_verify)

    export = subparsers.add_parser(
        "export", help="write a SpeechBrain model folder with a model card (for the hub)"
    )
    export.add_argument("--model", required=True, help=model_help)
    export.add_argument("--out", type=Path, required=True, help="the folder to write")
    export.set_defaults(handler=cmd_export)

    card = subparsers.add_parser(
        "model-card", help="(re)write the README.md model card of a model folder"
    )
    card.add_argument("--model", type=Path, required=True, help="a model folder")
    card.set_defaults(handler=cmd_model_card)


# --- demo -------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from cryprint.demo import DemoSettings, run_demo, run_full

    if args.full:
        if args.data is None:
            print("cryprint demo --full needs --data DIR (for CryCeleb2023)", file=sys.stderr)
            return 2
        reports = run_full(args.data, args.out / "runs" / "cryceleb", args.out, quiet=args.quiet)
        for split, report in reports.items():
            eer = report["eer"]
            print(f"{split}: EER {100 * eer:.2f}%" if eer is not None else f"{split}: no labels")
        return 0
    settings = DemoSettings(out=args.out).with_training(method=args.method)
    if args.epochs is not None:
        settings = settings.with_training(epochs=args.epochs)
    run_demo(settings, quiet=args.quiet)
    return 0


def _add_demo(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser(
        "demo", help="the main job end to end on the synthetic corpus (or --full on CryCeleb2023)"
    )
    demo.add_argument("--out", type=Path, default=Path("demo"), help="where everything goes")
    demo.add_argument("--method", choices=["triplet", "aam"], default="triplet")
    demo.add_argument("--epochs", type=int, help="training epochs (default: the demo's)")
    demo.add_argument(
        "--full",
        action="store_true",
        help="the real workflow: download CryCeleb2023 to --data, fine-tune from "
        "speechbrain/spkrec-ecapa-voxceleb with the reference recipe, evaluate, submit",
    )
    demo.add_argument("--data", type=Path, help="with --full: the CryCeleb2023 directory")
    demo.add_argument("--quiet", action="store_true")
    demo.set_defaults(handler=cmd_demo)


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
    _add_evaluation(subparsers)
    _add_demo(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    limit_heap_fragmentation()
    try:
        return int(args.handler(args) or 0)
    except (CryprintError, KeyboardInterrupt, BrokenPipeError) as error:
        return _expected_exit(args.command, error)
    except OSError as error:
        if error.errno not in BAD_PATH_ERRNOS or args.debug:
            return _internal_error(args, error)
        # A path from the command line the system cannot even look up: a bad command line.
        print(
            f"cryprint {args.command}: error: {error.filename}: {error.strerror}", file=sys.stderr
        )
        return ConfigError.exit_code
    except Exception as error:
        return _internal_error(args, error)


def _expected_exit(command: str, error: BaseException) -> int:
    if isinstance(error, BrokenPipeError):
        # The reader went away (`cryprint info --json | head`): stop quietly, as cat does.
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    if isinstance(error, KeyboardInterrupt):
        print(f"cryprint {command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    assert isinstance(error, CryprintError)
    print(f"cryprint {command}: error: {error}", file=sys.stderr)
    return error.exit_code


def _internal_error(args: argparse.Namespace, error: Exception) -> int:
    if args.debug:
        raise error
    print(
        f"cryprint {args.command}: internal error: {type(error).__name__}: {error}\n"
        "(rerun with --debug for the traceback, and please report it)",
        file=sys.stderr,
    )
    return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
