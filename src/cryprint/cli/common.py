"""What the subcommands share: JSON output, how errors name flags, the model and embedding
options (added once each, with one default)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cryprint.errors import FIELD, ConfigError
from cryprint.inference.options import BACKENDS, PRECISIONS, EmbeddingOptions
from cryprint.models import DEVICE_HELP

MODEL_HELP = "a model folder (e.g. runs/NAME/best), an embedding_model.ckpt, or a hub id"


# Library fields whose flag is not --FIELD-NAME (errors name fields; the CLI words them as flags).
FIELD_FLAGS = {
    "point": "--operating-point",
    "as_norm_top_n": "--cohort-top-n",
    "export_format": "--format",
}


def flag_wording(name: str, value: object) -> str:
    """A library field (see :mod:`cryprint.errors`) as this command line spells it:
    ``threshold`` → ``--threshold``, ``tta=5`` → ``--tta 5``, ``trim=False`` → ``--no-trim``."""
    if name == "trim":
        if value is FIELD:
            return "trimming (--no-trim)"
        return "without --no-trim" if value else "--no-trim"
    if name == "as_norm" and isinstance(value, bool):
        return "--as-norm" if value else "--no-as-norm"
    if name == "fusion":  # fit one now, or apply a file
        return "--fuse or --fusion FUSION_JSON" if value is FIELD else "--fuse"
    flag = FIELD_FLAGS.get(name, "--" + name.replace("_", "-"))
    if value is FIELD or value is True:
        return flag
    return f"{flag} {value}"


def print_json(payload: object) -> None:
    # allow_nan=False: NaN or Infinity is not JSON; a non-finite number here is a bug to report.
    print(json.dumps(payload, indent=2, default=str, allow_nan=False))


AS_NORM_HELP = (
    "adaptive s-norm scores against the model folder's cohort; --no-as-norm: raw cosine "
    "scores (default: AS-norm exactly when it lowered this model's dev minDCF, as `cryprint "
    "evaluate --split dev` measured and recorded)"
)


def add_as_norm_options(parser: argparse.ArgumentParser, choice: bool = False) -> None:
    """--as-norm [--cohort-top-n N]: AS-norm with the data's train split as the cohort. With
    ``choice`` (submit) also --no-as-norm, and neither scores as the model does."""
    if choice:
        parser.add_argument(
            "--as-norm",
            action=argparse.BooleanOptionalAction,
            help="AS-norm scores with this data's train split as the cohort; --no-as-norm: "
            "raw cosine scores (default: as the model scores, with its own cohort where "
            "AS-norm lowered its dev minDCF)",
        )
    else:
        parser.add_argument(
            "--as-norm",
            action="store_true",
            help="also AS-norm scores, with the train split's recordings as the cohort (dev "
            "evaluations of a model folder measure them anyway, to keep a cohort)",
        )
    parser.add_argument(
        "--cohort-top-n",
        type=int,
        help="AS-norm: the N best cohort scores per side (default min(100, cohort size))",
    )


def as_norm_option(args: argparse.Namespace) -> int | str | None:
    """--as-norm [--cohort-top-n N] → 'auto' (min(100, cohort)) or N; else None."""
    if args.cohort_top_n is not None and not args.as_norm:
        raise ConfigError("--cohort-top-n needs --as-norm")
    if not args.as_norm:
        return None
    return "auto" if args.cohort_top_n is None else args.cohort_top_n


def embedding_options(args: argparse.Namespace) -> EmbeddingOptions:
    """What :func:`add_embedding_options` give: how every embedding command's library call
    embeds (and scores) recordings."""
    as_norm = getattr(args, "scoring_as_norm", None)
    if as_norm is None and getattr(args, "as_norm", None) is False:
        as_norm = False  # submit --no-as-norm
    return EmbeddingOptions(
        args.device, args.backend, args.precision, args.tta, args.trim, as_norm=as_norm
    )


def add_embedding_options(parser: argparse.ArgumentParser, scoring: bool = True) -> None:
    """--device, --tta, --no-trim, --backend, --precision: how recordings are embedded (the same
    for every command that embeds, with the defaults of :class:`~cryprint.EmbeddingOptions`);
    with ``scoring``, also --as-norm/--no-as-norm: how their scores are made."""
    defaults = EmbeddingOptions()
    parser.add_argument("--device", default=defaults.device, help=DEVICE_HELP)
    if scoring:
        parser.add_argument(
            "--as-norm", dest="scoring_as_norm", action=argparse.BooleanOptionalAction,
            help=AS_NORM_HELP,
        )  # fmt: skip
    add_tta_option(parser)
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=defaults.backend,
        help="what runs the model: onnx (an ONNX export, onnxruntime, no torch: fast start), "
        "torch, or auto (onnx when the model folder holds an export)",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=defaults.precision,
        help="torch arithmetic: auto (bfloat16 where the hardware runs it natively: a CUDA GPU "
        "with bf16 (Ampere or newer), or a CPU with AVX512_BF16/AMX for models of width >= 512; "
        "else float32), fp32, or bf16 (forced)",
    )
    parser.add_argument(
        "--no-trim",
        dest="trim",
        action="store_false",
        help="embed recordings whole, with their leading and trailing silence (by default it is "
        "cut off: a silence-padded cry then scores as the cry)",
    )


def add_tta_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tta",
        type=int,
        default=1,
        help="test-time augmentation: embed each recording as the mean of N views (the whole "
        "recording and N-1 overlapping crops); 1 = off. Use the same N to evaluate and to verify",
    )


def add_fusion_options(parser: argparse.ArgumentParser) -> None:
    """--fuse / --fusion FILE: score fusion of several --model (evaluate, submit)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--fuse",
        action="store_true",
        help="fuse the models' cosine scores with a logistic fusion fitted on the dev pairs "
        "(never on test labels); evaluate stores it in OUT/fused/fusion.json, submit prints it",
    )
    group.add_argument(
        "--fusion",
        type=Path,
        metavar="FUSION_JSON",
        help="apply a fusion.json written by `evaluate --fuse` (same models, same order)",
    )


def fusion_option(args: argparse.Namespace) -> str | Path | None:
    """--fuse → "dev" (fit on the dev pairs), --fusion FILE → its path, neither → None."""
    if args.fuse:
        return "dev"
    return args.fusion
