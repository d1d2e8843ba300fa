"""Export a model as a self-contained SpeechBrain model folder, ready for the hub.

The folder holds ``hyperparams.yaml`` + ``embedding_model.ckpt`` (what
``SpeakerRecognition.from_hparams(source=FOLDER)`` loads; its ``encode_batch`` gives cryprint's
embeddings), ``cryprint.json`` (architecture and provenance), the source folder's
``evaluation.json`` and ``calibration.json`` when it has them, and a model card (``README.md``).

The folder is assembled in a temporary sibling and moved into place at the end, so a failure
leaves no half-exported folder and an earlier export stays whole until the new one is complete.
An existing folder is replaced only when it is an earlier export (it holds ``EXPORT_MARKER``,
which every export writes): a folder of anyone else's files is never deleted.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from cryprint import __version__
from cryprint.errors import FIELD, ConfigError, ModelError, OutputError
from cryprint.inference.operating_point import load_calibration
from cryprint.io import (
    atomic_write_text,
    check_replaceable_folder,
    replace_folder,
    staging_folder,
)
from cryprint.models.files import COHORT_NAME
from cryprint.models.folder import (
    CALIBRATION_NAME,
    EVALUATION_NAME,
    INFO_NAME,
    LoadedModel,
    ModelSpec,
    as_loaded,
    model_identity,
    save_model_folder,
)
from cryprint.packaging.card import write_model_card

logger = logging.getLogger(__name__)
EXPORT_MARKER = ".cryprint-export.json"


EXPORT_FORMATS = ("speechbrain", "onnx", "onnx-int8")


def export_model(
    model_spec: ModelSpec,
    out_dir: Path | str,
    export_format: str = "speechbrain",
    calibration_data: Path | str | None = None,
    calibration_recordings: int = 32,
) -> Path:
    """Write ``model_spec`` as a SpeechBrain model folder with a model card at ``out_dir``.

    Args:
        model_spec: a model folder, checkpoint, hub id, 'random', or a loaded model.
        out_dir: the folder to write: new, empty, or an earlier export (replaced whole).
        export_format: ``speechbrain`` (the model folder), ``onnx`` (the folder plus
            ``embedder.onnx``: the whole embedder, features included, for the torch-free
            backend) or ``onnx-int8`` (int8 convolutions, calibrated on ``calibration_data``'s
            train recordings; see benchmarks/RESULTS.md for its accuracy and speed).

    Returns:
        ``out_dir``.

    Raises:
        ModelError: the model cannot be loaded or its calibration.json is invalid.
        OutputError: ``out_dir`` is the source folder, a file, or a non-empty folder that is
            not an earlier export; or it cannot be written.
    """
    out_dir = Path(out_dir)
    if export_format not in EXPORT_FORMATS:
        raise ConfigError(f"unknown format '{export_format}'; one of {', '.join(EXPORT_FORMATS)}")
    if export_format == "onnx-int8" and calibration_data is None:
        raise ConfigError(
            "{export_format} needs {calibration_data} (a CryCeleb layout)",
            fields={"export_format": "onnx-int8", "calibration_data": FIELD},
        )
    loaded = as_loaded(model_spec)
    source_folder = loaded.folder if loaded.kind == "folder" else None
    if source_folder is not None and out_dir.resolve() == source_folder.resolve():
        raise OutputError(f"{out_dir} is the model folder itself; export to another folder")
    check_replaceable_folder(out_dir, EXPORT_MARKER, "an export")
    info = _provenance(loaded, source_folder)
    with staging_folder(out_dir) as staging:
        try:
            save_model_folder(loaded.model, staging, info)
            _copy_evaluation_files(source_folder, staging)
            write_model_card(staging, name=out_dir.resolve().name)
            if export_format != "speechbrain":
                _export_onnx(
                    loaded, staging, export_format, calibration_data, calibration_recordings
                )
            atomic_write_text(staging / EXPORT_MARKER, json.dumps(info, indent=2) + "\n")
        except OSError as error:
            raise OutputError(f"{out_dir}: could not be written ({error})") from error
        replace_folder(staging, out_dir, EXPORT_MARKER)
    return out_dir


def _export_onnx(
    loaded: LoadedModel, staging: Path, export_format: str,
    calibration_data: Path | str | None, recordings: int,
) -> None:  # fmt: skip
    from cryprint.packaging.onnx_export import draw_calibration_waveforms, export_onnx

    int8 = export_format == "onnx-int8"
    waveforms = draw_calibration_waveforms(calibration_data, recordings) if int8 else None
    export_onnx(loaded, staging, int8=int8, calibration_waveforms=waveforms)


def _provenance(loaded: LoadedModel, source_folder: Path | None) -> dict:
    info: dict = {}
    if source_folder is not None and (source_folder / INFO_NAME).is_file():
        try:
            info = json.loads((source_folder / INFO_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError) as error:
            raise ModelError(f"{source_folder / INFO_NAME}: unreadable ({error})") from error
        if not isinstance(info, dict):
            raise ModelError(f"{source_folder / INFO_NAME}: not a JSON object")
        info.pop("model", None)  # save_model_folder writes the architecture itself
    info.update(
        {
            "exported_from": loaded.source,
            "exported_with": f"cryprint {__version__}",
            "model_id": model_identity(loaded),
        }
    )
    return info


def _copy_evaluation_files(source_folder: Path | None, staging: Path) -> None:
    if source_folder is None:
        return
    if not (source_folder / CALIBRATION_NAME).is_file():
        logger.warning(
            "%s has no calibration: verify and identify with this export give no "
            "probabilities. Run `cryprint calibrate` on the model first, then export again",
            source_folder,
        )
    if (source_folder / CALIBRATION_NAME).is_file():
        load_calibration(source_folder / CALIBRATION_NAME)  # refuse to copy a bad one
        shutil.copyfile(source_folder / CALIBRATION_NAME, staging / CALIBRATION_NAME)
    if (source_folder / EVALUATION_NAME).is_file():
        shutil.copyfile(source_folder / EVALUATION_NAME, staging / EVALUATION_NAME)
    if (source_folder / COHORT_NAME).is_file():  # the AS-norm its evaluation.json may call for
        shutil.copyfile(source_folder / COHORT_NAME, staging / COHORT_NAME)
