"""``cryprint serve``: the ward station in the browser (:mod:`cryprint.server`)."""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path

from cryprint.cli.common import MODEL_HELP, add_embedding_options, embedding_options

GALLERY_HELP = "the ward's gallery: one SQLite file (created by the first enrolment)"


def cmd_serve(args: argparse.Namespace) -> int:
    from cryprint.server.settings import StationSettings, read_token

    settings = StationSettings(
        gallery=args.gallery,
        model=args.model,
        host=args.host,
        port=args.port,
        token=read_token(args.token_file),
        max_upload_bytes=int(args.max_upload_mb * 2**20),
        workers=args.workers,
        queue=args.queue,
        embedding=embedding_options(args),
    )
    run_station(settings)
    return 0


def run_station(settings: object) -> None:
    """Load the model, then serve until SIGTERM or Ctrl-C (uvicorn stops within seconds)."""
    import uvicorn

    from cryprint.server.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    app = create_app(settings)  # type: ignore[arg-type]
    where = f"http://{settings.host}:{settings.port}/"  # type: ignore[attr-defined]
    print(f"ward station on {where} (Ctrl-C or SIGTERM stops it)", flush=True)
    config = uvicorn.Config(
        app,
        host=settings.host,  # type: ignore[attr-defined]
        port=settings.port,  # type: ignore[attr-defined]
        log_level="warning",
        timeout_graceful_shutdown=3,
        server_header=False,
    )
    uvicorn.Server(config).run()


def _megabytes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size in MB (a number above 0)")
    return value


def add_serve(subparsers: argparse._SubParsersAction) -> None:
    from cryprint.server.settings import DEFAULT_MAX_UPLOAD_BYTES, TOKEN_ENVIRONMENT

    serve = subparsers.add_parser(
        "serve",
        help="the ward station: a local web page and HTTP API to enrol, identify and discharge",
        description="Serves one ward's gallery in the browser (and as a JSON API described at "
        "/openapi.json). Listens on 127.0.0.1 only unless --host says otherwise; any other "
        f"host needs an access token (--token-file FILE or ${TOKEN_ENVIRONMENT}).",
    )
    serve.add_argument("--gallery", type=Path, required=True, help=GALLERY_HELP)
    serve.add_argument("--model", required=True, help=MODEL_HELP)
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    serve.add_argument("--port", type=int, default=8000, help="the port to listen on")
    serve.add_argument(
        "--token-file", type=Path, help="a file whose first line is the access token"
    )
    serve.add_argument(
        "--max-upload-mb",
        type=_megabytes,
        default=DEFAULT_MAX_UPLOAD_BYTES / 2**20,
        help="the largest request body, in MB (refused before it is read whole)",
    )
    serve.add_argument("--workers", type=int, default=1, help="requests that embed at once")
    serve.add_argument(
        "--queue", type=int, default=8, help="requests that may wait for a worker (then 503)"
    )
    add_embedding_options(serve)
    serve.set_defaults(handler=cmd_serve)
