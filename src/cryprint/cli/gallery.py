"""``cryprint enroll``, ``identify`` and ``gallery list|remove``: a ward's gallery of babies."""

from __future__ import annotations

import argparse
from pathlib import Path

from cryprint.cli.common import (
    MODEL_HELP,
    add_embedding_options,
    embedding_options,
    print_json,
)

GALLERY_HELP = "the gallery: one SQLite file (created by the first enroll)"


def cmd_enroll(args: argparse.Namespace) -> int:
    from cryprint.ward.enrol import enrol

    result = enrol(
        args.model,
        args.gallery,
        args.baby,
        args.recordings,
        embedding=embedding_options(args),
        progress=True,
    )
    print(
        f"enrolled {result.added} recording(s) for baby {result.baby_id} in {args.gallery} "
        f"({result.n_enrolments} enrolment(s) in all)"
    )
    for source in result.skipped:
        print(f"skipped {source}: already enrolled for {result.baby_id}")
    return 0


def cmd_identify(args: argparse.Namespace) -> int:
    from cryprint.ward.identify import identify

    result = identify(
        args.model,
        args.gallery,
        args.cry,
        args.threshold,
        args.top,
        embedding=embedding_options(args),
    )
    if args.json:
        print_json(result.to_dict())
        return 0
    print(f"{'rank':>4}  {'baby':<20} {'score':>8}  enrolments")
    for rank, candidate in enumerate(result.candidates, start=1):
        print(
            f"{rank:>4}  {candidate.baby_id:<20} {candidate.score:>8.4f}  {candidate.n_enrolments}"
        )
    best = result.best
    point = f"threshold {result.threshold:.4f}, {result.threshold_source}"
    if result.none_of_these:
        print(f"none of these {result.n_babies} babies (best score {best.score:.4f} < {point})")
    else:
        print(f"most likely: {best.baby_id} (score {best.score:.4f} ≥ {point})")
    return 0


def cmd_gallery_list(args: argparse.Namespace) -> int:
    from cryprint.ward.gallery import Gallery

    with Gallery.open(args.gallery) as gallery:
        babies = gallery.babies()
        meta = gallery.meta
    if args.json:
        payload = {"gallery": str(args.gallery), **meta}
        payload["babies"] = [baby._asdict() for baby in babies]
        print_json(payload)
        return 0
    made_with = meta.get("model_source") or "unknown source"
    how = f" ({meta['embedding']})" if meta.get("embedding") else ""
    print(
        f"{args.gallery}: {len(babies)} babies, model {meta['model_id'][:12]} ({made_with}), "
        f"{meta['dim']}-d embeddings{how}"
    )
    for baby in babies:
        print(f"{baby.baby_id:<20} {baby.n_enrolments:>4} enrolment(s)  since {baby.created}")
    return 0


def cmd_gallery_remove(args: argparse.Namespace) -> int:
    from cryprint.ward.gallery import Gallery

    with Gallery.open(args.gallery) as gallery:
        removed = gallery.remove(args.baby)
    print(f"removed baby {args.baby} and its {removed} enrolment(s) from {args.gallery}")
    return 0


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gallery", type=Path, required=True, help=GALLERY_HELP)
    parser.add_argument("--model", required=True, help=MODEL_HELP)
    add_embedding_options(parser)  # identify must embed cries as enroll embedded recordings


def add_gallery(subparsers: argparse._SubParsersAction) -> None:
    enroll = subparsers.add_parser(
        "enroll",
        help="enrol recordings of one baby into a gallery (several enrolments per baby allowed)",
        description="Each PATH is one recording: an audio file, or a folder of cry segments "
        "(its audio files, sorted by name, joined). All are enrolled in one transaction.",
    )
    _add_model_options(enroll)
    enroll.add_argument("--baby", required=True, help="the baby's id (1-64 printable characters)")
    enroll.add_argument("recordings", nargs="+", type=Path, metavar="PATH", help="file or folder")
    enroll.set_defaults(handler=cmd_enroll)

    identify = subparsers.add_parser(
        "identify",
        help="which enrolled baby is crying? ranked candidates, or none of these",
    )
    _add_model_options(identify)
    identify.add_argument("cry", type=Path, help="audio file or folder of segments")
    identify.add_argument("--top", type=int, default=5, help="candidates to show")
    identify.add_argument(
        "--threshold",
        type=float,
        help="accept the best baby when score >= this (default: the model folder's dev EER "
        "threshold)",
    )
    identify.add_argument("--json", action="store_true", help="print the result as JSON")
    identify.set_defaults(handler=cmd_identify)

    gallery = subparsers.add_parser("gallery", help="list or remove the babies of a gallery")
    # type(gallery): the nested parsers show defaults in their help as the top-level ones do.
    actions = gallery.add_subparsers(
        dest="action",
        metavar="ACTION",
        required=True,
        parser_class=type(gallery),
        help="list: the enrolled babies; remove: a baby and its enrolments",
    )
    listing = actions.add_parser("list", help="the enrolled babies")
    listing.add_argument("--gallery", type=Path, required=True, help=GALLERY_HELP)
    listing.add_argument("--json", action="store_true", help="print the list as JSON")
    listing.set_defaults(handler=cmd_gallery_list)
    remove = actions.add_parser("remove", help="remove a baby and all its enrolments")
    remove.add_argument("--gallery", type=Path, required=True, help=GALLERY_HELP)
    remove.add_argument("--baby", required=True, help="the baby's id")
    remove.set_defaults(handler=cmd_gallery_remove)
