"""``cryprint embed``, ``evaluate``, ``submit``, ``export`` and ``model-card``."""

from __future__ import annotations

import argparse
from pathlib import Path

from cryprint.cli.common import (
    MODEL_HELP,
    add_as_norm_options,
    add_embedding_options,
    add_fusion_options,
    as_norm_option,
    embedding_options,
    fusion_option,
    print_json,
)
from cryprint.errors import ConfigError


def cmd_embed(args: argparse.Namespace) -> int:
    from cryprint.inference.api import embedder_for
    from cryprint.inference.splits import embed_split

    embedder = embedder_for(args.model, embedding_options(args))
    embeddings = embed_split(
        embedder, args.data, args.split, args.out, progress=True, shard=args.shard
    )
    how = "reused" if embeddings.from_cache else "wrote"
    part = f" (shard {args.shard})" if args.shard else ""
    print(
        f"{how} {len(embeddings.keys)} {args.split} recording embeddings{part} "
        f"({embeddings.dim}-d, model {embeddings.model_id[:12]}; {embedder.computed} computed, "
        f"the rest from the embedding store) in {args.out}"
    )
    return 0


def cmd_embed_merge(args: argparse.Namespace) -> int:
    from cryprint.inference.shards import merge_shards

    merged = merge_shards(args.parts, args.data, args.out)
    print(
        f"merged {len(args.parts)} shards: {len(merged.keys)} {merged.split} recording "
        f"embeddings, none missing or duplicated, in {args.out}"
    )
    return 0


def _shard(text: str) -> object:
    from cryprint.inference.shards import parse_shard

    try:
        return parse_shard(text)
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def cmd_evaluate(args: argparse.Namespace) -> int:
    from cryprint.evaluation.evaluate import default_output, evaluate
    from cryprint.evaluation.report import format_table

    out = args.out or default_output(args.model, args.data, args.split)
    reports = evaluate(
        args.model,
        args.data,
        args.split,
        out,
        as_norm_top_n=as_norm_option(args),
        progress=True,
        fusion=fusion_option(args),
        embedding=embedding_options(args),
        cohort=args.cohort,
    )
    if args.json:
        print_json(reports)
    else:
        print(format_table(reports))
        for report in reports:
            if report.get("warning"):
                print(f"warning ({report['model']}): {report['warning']}")
        print(f"scores, report.json and figures in {out}")
        for report in reports:
            if report.get("recorded_in"):
                print(f"{report['split']} results recorded in {report['recorded_in']}")
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from cryprint.evaluation.submit import submit

    submission = submit(
        args.model,
        args.data,
        args.out,
        as_norm_option(args),
        fusion_option(args),
        embedding=embedding_options(args),
        progress=True,
    )
    print(
        f"wrote {submission.n_pairs} {submission.scoring()} scores to {submission.path} "
        f"({submission.computed} recording(s) embedded, the rest from the embedding store)"
    )
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from cryprint.evaluation.report import format_table
    from cryprint.evaluation.trials import score_trials

    report = score_trials(
        args.model,
        args.trials,
        args.out,
        progress=True,
        embedding=embedding_options(args),
    )
    if args.json:
        print_json(report)
        return 0
    if report["eer"] is not None:
        print(format_table([report]))
    if report.get("warning"):
        print(f"warning: {report['warning']}")
    print(f"{report['n_pairs']} trial scores, report.json and figures in {report['folder']}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from cryprint.packaging.speechbrain import export_model

    folder = export_model(
        args.model, args.out, args.format, args.calibration_data, args.calibration_recordings
    )
    extra = "" if args.format == "speechbrain" else f" and an {args.format} embedder"
    print(f"exported a SpeechBrain model folder{extra} with a model card to {folder}")
    return 0


def cmd_model_card(args: argparse.Namespace) -> int:
    from cryprint.packaging.card import write_model_card

    print(f"wrote {write_model_card(args.model)}")
    return 0


def add_evaluation(subparsers: argparse._SubParsersAction) -> None:
    embed = subparsers.add_parser(
        "embed",
        help="embed every recording of a split into an .npz (reused when up to date)",
    )
    embed.add_argument("--model", required=True, help=MODEL_HELP)
    embed.add_argument("--data", type=Path, required=True, help="a CryCeleb-layout directory")
    embed.add_argument(
        "--split", choices=["dev", "test", "train"], required=True, help="which split to embed"
    )
    embed.add_argument("--out", type=Path, required=True, help="the .npz file to write")
    embed.add_argument(
        "--shard",
        type=_shard,
        metavar="K/N",
        help="embed only the K-th of N parts of the split (a job array: K = the task id), "
        "then join the parts with `cryprint embed-merge`",
    )
    add_embedding_options(embed, scoring=False)
    embed.set_defaults(handler=cmd_embed)

    merge = subparsers.add_parser(
        "embed-merge",
        help="join the parts of `embed --shard K/N`, checking none is missing or duplicated",
        description="Join the .npz parts written by `cryprint embed --shard K/N` into the whole "
        "split's .npz, refusing unless they are exactly shards 1..N of one split, embedded by the "
        "same model the same way from the same audio, with every recording once. Nothing goes "
        "into the embedding store: it holds only what a cryprint process computed.",
    )
    merge.add_argument("parts", type=Path, nargs="+", help="the parts (.npz), in any order")
    merge.add_argument(
        "--data", type=Path, required=True, help="the CryCeleb-layout directory they embed"
    )
    merge.add_argument("--out", type=Path, required=True, help="the merged .npz to write")
    merge.add_argument(
        "--no-store",
        action="store_true",
        help="deprecated and ignored: the merge never writes the embedding store",
    )
    merge.set_defaults(handler=cmd_embed_merge)

    evaluate = subparsers.add_parser(
        "evaluate",
        help="score a split's pairs: EER, minDCF, AUC, scores.csv, report.json, figures",
        description="Score every pair of a split with one or more models and compare them. "
        "Evaluating the dev split also stores the EER threshold in a model folder "
        "(evaluation.json), for cryprint verify.",
    )
    evaluate.add_argument(
        "--model", action="append", required=True, help=f"{MODEL_HELP}; repeat to compare"
    )
    evaluate.add_argument("--data", type=Path, required=True, help="a CryCeleb-layout directory")
    evaluate.add_argument(
        "--split", choices=["dev", "test"], default="dev", help="whose pairs to score"
    )
    evaluate.add_argument(
        "--out",
        type=Path,
        help="output folder, a subfolder per model (default: evaluation-SPLIT beside the model "
        "folder, or DATA-evaluation-SPLIT beside the data)",
    )
    add_as_norm_options(evaluate)
    evaluate.add_argument(
        "--no-cohort",
        dest="cohort",
        action="store_false",
        help="on dev, do not embed the train split as the model's AS-norm cohort (then verify "
        "and identify score raw cosines)",
    )
    add_fusion_options(evaluate)
    evaluate.add_argument("--json", action="store_true", help="print the reports (a JSON list)")
    add_embedding_options(evaluate, scoring=False)
    evaluate.set_defaults(handler=cmd_evaluate)

    submit = subparsers.add_parser(
        "submit", help="score the test pairs as a CryCeleb2023 submission CSV"
    )
    submit.add_argument(
        "--model", action="append", required=True, help=f"{MODEL_HELP}; repeat to fuse"
    )
    submit.add_argument("--data", type=Path, required=True, help="a CryCeleb-layout directory")
    submit.add_argument("--out", type=Path, required=True, help="the submission CSV to write")
    add_as_norm_options(submit, choice=True)
    add_fusion_options(submit)
    add_embedding_options(submit, scoring=False)
    submit.set_defaults(handler=cmd_submit)

    score = subparsers.add_parser(
        "score",
        help="score any list of trials (a CSV of enrolment,test[,label] audio paths)",
        description="Score every trial of a trials CSV (columns enrolment,test and optionally "
        "label: 1/0 or target/nontarget). Paths are audio files or folders of segments, relative "
        "to the CSV's folder. With labels: EER, minDCF, AUC and plots, as evaluate reports them.",
    )
    score.add_argument("--model", required=True, help=MODEL_HELP)
    score.add_argument("--trials", type=Path, required=True, help="the trials CSV")
    score.add_argument(
        "--out", type=Path, help="output folder (default: TRIALS-scores beside the trials file)"
    )
    score.add_argument("--json", action="store_true", help="print the report as JSON")
    add_embedding_options(score)
    score.set_defaults(handler=cmd_score)

    export = subparsers.add_parser(
        "export", help="write a SpeechBrain model folder with a model card (for the hub)"
    )
    export.add_argument("--model", required=True, help=MODEL_HELP)
    export.add_argument("--out", type=Path, required=True, help="the folder to write")
    export.add_argument(
        "--format",
        choices=["speechbrain", "onnx", "onnx-int8"],
        default="speechbrain",
        help="speechbrain: the model folder; onnx: plus embedder.onnx for the fast torch-free "
        "backend; onnx-int8: int8 convolutions (needs --calibration-data)",
    )
    export.add_argument(
        "--calibration-data",
        type=Path,
        help="onnx-int8: a CryCeleb layout whose train split calibrates int8",
    )
    export.add_argument(
        "--calibration-recordings", type=int, default=32, help="onnx-int8: train recordings drawn"
    )
    export.set_defaults(handler=cmd_export)

    card = subparsers.add_parser(
        "model-card", help="(re)write the README.md model card of a model folder"
    )
    card.add_argument("--model", type=Path, required=True, help="a model folder")
    card.set_defaults(handler=cmd_model_card)
