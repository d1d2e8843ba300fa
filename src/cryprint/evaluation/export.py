"""Export a model as a self-contained SpeechBrain model folder, ready for the hub.

The folder holds ``hyperparams.yaml`` + ``embedding_model.ckpt`` (what
``SpeakerRecognition.from_hparams(source=FOLDER)`` loads; its ``encode_batch`` gives cryprint's
embeddings), ``cryprint.json`` (architecture and provenance), the source folder's
``evaluation.json`` and ``calibration.json`` when it has them, and a model card (``README.md``).

The folder is assembled in a temporary sibling and moved into place at the end, so a failure
leaves no half-exported folder and an earlier export stays whole until the new one is complete.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

from cryprint import __version__
from cryprint.errors import ModelError, OutputError
from cryprint.evaluation.calibrate import CALIBRATION_NAME
from cryprint.evaluation.card import write_model_card
from cryprint.evaluation.embed import model_identity
from cryprint.evaluation.evaluate import EVALUATION_NAME, ModelSpec, as_loaded
from cryprint.models.folder import HPARAMS_NAME, INFO_NAME, save_model_folder
from cryprint.scoring import load_calibration


def export_model(model_spec: ModelSpec, out_dir: Path | str) -> Path:
    """Write ``model_spec`` as a SpeechBrain model folder with a model card at ``out_dir``.

    Args:
        model_spec: a model folder, checkpoint, hub id, 'random', or a loaded model.
        out_dir: the folder to write: new, empty, or an earlier export (replaced whole).

    Returns:
        ``out_dir``.

    Raises:
        ModelError: the model cannot be loaded or its calibration.json is invalid.
        OutputError: ``out_dir`` is the source folder, a file, or a non-empty folder that is
            not a model folder; or it cannot be written.
    """
    out_dir = Path(out_dir)
    loaded = as_loaded(model_spec)
    source_folder = loaded.folder if loaded.kind == "folder" else None
    if source_folder is not None and out_dir.resolve() == source_folder.resolve():
        raise OutputError(f"{out_dir} is the model folder itself; export to another folder")
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir} exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / HPARAMS_NAME).is_file():
        raise OutputError(
            f"{out_dir} is not empty and not a model folder: export to a new or empty folder"
        )

    info: dict = {}
    if source_folder is not None and (source_folder / INFO_NAME).is_file():
        try:
            info = json.loads((source_folder / INFO_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError) as error:
            raise ModelError(f"{source_folder / INFO_NAME}: unreadable ({error})") from error
        info.pop("model", None)  # save_model_folder writes the architecture itself
    info.update(
        {
            "exported_from": loaded.source,
            "exported_with": f"cryprint {__version__}",
            "model_id": model_identity(loaded),
        }
    )

    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        # Not mkdtemp: its 0700 mode would make the export unreadable to others.
        staging = out_dir.parent / f".{out_dir.name}.{uuid.uuid4().hex[:12]}.tmp"
        staging.mkdir()
    except OSError as error:
        raise OutputError(f"{out_dir}: cannot create the folder ({error})") from error
    try:
        save_model_folder(loaded.model, staging, info)
        if source_folder is not None:
            if (source_folder / CALIBRATION_NAME).is_file():
                load_calibration(source_folder / CALIBRATION_NAME)  # refuse to copy a bad one
                shutil.copyfile(source_folder / CALIBRATION_NAME, staging / CALIBRATION_NAME)
            if (source_folder / EVALUATION_NAME).is_file():
                shutil.copyfile(source_folder / EVALUATION_NAME, staging / EVALUATION_NAME)
        write_model_card(staging, name=out_dir.resolve().name)
        _replace_folder(staging, out_dir)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise OutputError(f"{out_dir}: could not be written ({error})") from error
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def _replace_folder(staging: Path, out_dir: Path) -> None:
    """Move ``staging`` to ``out_dir``; an existing ``out_dir`` is set aside first and removed
    only once the new folder is in place."""
    if not out_dir.exists():
        os.replace(staging, out_dir)
        return
    retired = out_dir.parent / f".{out_dir.name}.{uuid.uuid4().hex[:12]}.old"
    os.replace(out_dir, retired)
    try:
        os.replace(staging, out_dir)
    except OSError:
        os.replace(retired, out_dir)
        raise
    shutil.rmtree(retired, ignore_errors=True)
