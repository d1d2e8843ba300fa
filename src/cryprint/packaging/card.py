"""A Hugging Face model card (``README.md``) for a cryprint model folder.

The card is built from what the folder records: ``cryprint.json`` (architecture, training
method, initial weights, epoch, validation EER), ``evaluation.json`` (dev/test metrics and the
dev EER threshold, written by ``cryprint evaluate``) and ``calibration.json``. Its YAML header
is what the hub reads (library, licence, tags, data set, metrics); the body says how the model
was trained, how well it verifies, how to load it in SpeechBrain, and its limitations.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cryprint.data.synth import MARKER_NAME
from cryprint.errors import ModelError
from cryprint.hub import DATASET_REPO_ID
from cryprint.io import atomic_write_text
from cryprint.models.folder import (
    CALIBRATION_NAME,
    CHECKPOINT_NAME,
    EVALUATION_NAME,
    HPARAMS_NAME,
    INFO_NAME,
)

CARD_NAME = "README.md"
DATASET_LICENSE = "cc-by-nc-nd-4.0"


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise ModelError(f"{path}: unreadable ({error})") from error
    if not isinstance(data, dict):
        raise ModelError(f"{path}: expected a JSON object")
    return data


def _is_synthetic(data: str | None) -> bool | None:
    """Whether a data directory is a cryprint synthetic corpus (None when unknown)."""
    if not data or not Path(data).is_dir():
        return None
    return (Path(data) / MARKER_NAME).is_file()


def _training_data(info: dict[str, Any]) -> str | None:
    """The training data directory, from the run folder's config.yaml when it is still there."""
    run = info.get("run")
    if not run or not (Path(run) / "config.yaml").is_file():
        return None
    try:
        config = yaml.safe_load((Path(run) / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None
    data = config.get("data") if isinstance(config, dict) else None
    return str(data) if data else None


def _percent(value: Any) -> str:
    return "–" if value is None else f"{100 * float(value):.2f}%"


def _number(value: Any) -> str:
    return "–" if value is None else f"{float(value):.4f}"


def _model_index(name: str, splits: dict[str, Any]) -> list[dict[str, Any]]:
    results = []
    for split, summary in sorted(splits.items()):
        if not isinstance(summary, dict) or summary.get("eer") is None:
            continue
        synthetic = _is_synthetic(summary.get("data"))
        metrics = [{"type": "eer", "value": round(100 * summary["eer"], 2), "name": "EER (%)"}]
        for p_target, value in (summary.get("min_dcf") or {}).items():
            metrics.append(
                {
                    "type": "min_dcf",
                    "value": round(value, 4),
                    "name": f"minDCF (p_target={p_target})",
                }
            )
        if summary.get("auc") is not None:
            metrics.append({"type": "roc_auc", "value": round(summary["auc"], 4), "name": "AUC"})
        results.append(
            {
                "task": {"type": "speaker-verification", "name": "Infant cry verification"},
                "dataset": {
                    "name": "cryprint synthetic corpus" if synthetic else "CryCeleb2023",
                    "type": "synthetic" if synthetic else DATASET_REPO_ID,
                    "split": split,
                },
                "metrics": metrics,
            }
        )
    return [{"name": name, "results": results}] if results else []


def _card_name(folder: Path) -> str:
    """``runs/triplet/best`` → ``triplet-best``; any other folder → its own name."""
    folder = folder.resolve()
    return f"{folder.parent.name}-best" if folder.name == "best" else folder.name


def _hub_id(value: Any) -> str | None:
    """``value`` when it looks like a hub model id (owner/name, not a local path)."""
    if not isinstance(value, str) or value.count("/") != 1 or value.startswith((".", "/", "~")):
        return None
    return None if Path(value).exists() else value


@dataclass(frozen=True)
class _ModelFacts:
    """What a model folder records, read once for every section of its card."""

    folder: Path
    name: str
    info: dict[str, Any]
    evaluation: dict[str, Any]
    trained: bool  # fine-tuned by cryprint (else: weights from elsewhere)
    training_data: str | None  # the run's data directory, when still known
    provenance: str  # "cryceleb", "synthetic" or "elsewhere"

    @property
    def splits(self) -> dict[str, Any]:
        return self.evaluation.get("splits") or {}


def _read_facts(folder: Path, name: str | None) -> _ModelFacts:
    missing = [item for item in (HPARAMS_NAME, CHECKPOINT_NAME) if not (folder / item).is_file()]
    if missing:
        raise ModelError(f"{folder}: not a model folder — missing {', '.join(missing)}")
    info = _read_json(folder / INFO_NAME)
    trained = info.get("trained_by") == "cryprint"
    training_data = _training_data(info) if trained else None
    # Fine-tuned by cryprint on CryCeleb2023 (or on data we cannot see any more: assume the
    # stricter CryCeleb terms), on the synthetic corpus, or weights from elsewhere.
    provenance = (
        "elsewhere"
        if not trained
        else ("synthetic" if _is_synthetic(training_data) else "cryceleb")
    )
    return _ModelFacts(
        folder=folder,
        name=name or _card_name(folder),
        info=info,
        evaluation=_read_json(folder / EVALUATION_NAME),
        trained=trained,
        training_data=training_data,
        provenance=provenance,
    )


def model_card(folder: Path | str, name: str | None = None) -> str:
    """The text of the model card for ``folder`` (see :func:`write_model_card`)."""
    facts = _read_facts(Path(folder), name)
    sections = [
        _front_matter(facts),
        _description(facts),
        _training_data_section(facts),
        _recipe_section(facts),
        _evaluation_section(facts),
        _use_section(facts),
        _limitations_section(),
    ]
    lines = sections[0]
    for section in sections[1:]:
        lines = [*lines, "", *section]
    return "\n".join([*lines, ""])


def _front_matter(facts: _ModelFacts) -> list[str]:
    """The YAML header the hub reads: library, licence, tags, data set, metrics."""
    cryceleb = facts.provenance == "cryceleb"
    header: dict[str, Any] = {
        "library_name": "speechbrain",
        "license": DATASET_LICENSE if cryceleb else "other",
        # The hub requires a name for an 'other' licence; the body explains it.
        "license_name": None if cryceleb else "see-model-card",
        "tags": [
            "speaker-verification",
            "infant-cry",
            "ecapa-tdnn",
            "speechbrain",
            "cryceleb",
            "audio",
            "embeddings",
            "pytorch",
        ],
        "datasets": [DATASET_REPO_ID] if cryceleb else None,
        "metrics": ["eer", "min_dcf"],
        "base_model": _hub_id(facts.info.get("initial_weights")) if facts.trained else None,
    }
    index = _model_index(facts.name, facts.splits)
    if index:
        header["model-index"] = index
    header = {key: value for key, value in header.items() if value is not None}
    yaml_header = yaml.safe_dump(header, sort_keys=False, allow_unicode=True).strip()
    return [f"---\n{yaml_header}\n---"]


def _description(facts: _ModelFacts) -> list[str]:
    return [
        f"# {facts.name}: infant cry verification (ECAPA-TDNN)",
        "",
        "Embeds a newborn's cry recording into a vector; the cosine similarity of two embeddings "
        "scores whether two recordings come from the same baby (higher = more likely). Built "
        "with cryprint on SpeechBrain's ECAPA-TDNN.",
    ]


def _training_data_section(facts: _ModelFacts) -> list[str]:
    """Where the weights were trained, and the licence that follows from it."""
    if facts.provenance == "synthetic":
        text = (
            f"Fine-tuned on a synthetic cry corpus generated by cryprint (`{facts.training_data}`"
            "), not on real cries: a demonstration model, not for use on real recordings. Its "
            "licence is that of its initial weights."
        )
    elif facts.provenance == "cryceleb":
        text = (
            f"[CryCeleb2023](https://huggingface.co/datasets/{DATASET_REPO_ID}) (Ubenwa): about "
            "26,000 hand-segmented cry expirations of 786 newborns, recorded in the first hours "
            "of life (period B) and at discharge (period D); 6.5 hours of 16 kHz audio. "
            "**The data set is licensed CC-BY-NC-ND-4.0** (non-commercial, no derivatives): "
            "weights trained on it inherit those terms; check that your use is compatible."
        )
    else:
        source = facts.info.get("exported_from") or "unknown"
        text = (
            f"Not fine-tuned by cryprint: the weights come from `{source}`, and their training "
            "data and licence are those of that source. Weights fine-tuned on CryCeleb2023 "
            "are bound by its CC-BY-NC-ND-4.0 licence."
        )
    return ["## Training data", "", text]


def _recipe_section(facts: _ModelFacts) -> list[str]:
    """How the weights were made, and the architecture."""
    info = facts.info
    lines = ["## Recipe", ""]
    if facts.trained:
        recipe = [
            ("method", info.get("method")),
            ("initial weights", info.get("initial_weights")),
            ("training data (--train-on)", info.get("train_on")),
            ("epoch of these weights", info.get("epoch")),
            ("validation EER (held-out train babies)", _percent(info.get("validation_eer"))),
            ("run folder", info.get("run")),
        ]
        lines += [f"- {label}: `{value}`" for label, value in recipe if value is not None]
    else:
        lines.append(f"- weights from: `{info.get('exported_from') or 'unknown'}`")
    architecture = info.get("model") or {}
    if architecture:
        lines.append(
            f"- architecture: Fbank {architecture.get('n_mels')} mels, sentence mean "
            f"normalisation, ECAPA-TDNN channels {architecture.get('channels')}, "
            f"{architecture.get('embedding_dim')}-d embedding"
        )
    return lines


def _evaluation_section(facts: _ModelFacts) -> list[str]:
    """A table of the evaluated splits, or how to evaluate."""
    if not facts.splits:
        return [
            "## Evaluation",
            "",
            "Not evaluated yet: run `cryprint evaluate --model THIS_FOLDER --data DIR --split dev`"
            " and regenerate this card with `cryprint model-card --model THIS_FOLDER`.",
        ]
    lines = [
        "## Evaluation",
        "",
        "Cosine scores of every B recording against every D recording of a split; EER is "
        "the interpolated crossing of the false rejection and false acceptance rates, "
        "minDCF is normalised with c_miss = c_fa = 1.",
        "",
        "| split | pairs | EER | minDCF@0.05 | minDCF@0.01 | AUC | AS-norm EER |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [_evaluation_row(split, summary) for split, summary in sorted(facts.splits.items())]
    return [
        *lines,
        "",
        "For reference, the published CryCeleb2023 results: official baseline about 22.5% "
        "dev / 30% test EER; best test EER 25.7%.",
    ]


def _evaluation_row(split: str, summary: dict[str, Any]) -> str:
    dcf = summary.get("min_dcf") or {}
    asnorm = summary.get("asnorm") or {}
    synthetic = " (synthetic)" if _is_synthetic(summary.get("data")) else ""
    return (
        f"| {split}{synthetic} | {summary.get('n_pairs', '–')} | "
        f"{_percent(summary.get('eer'))} | {_number(dcf.get('0.05'))} | "
        f"{_number(dcf.get('0.01'))} | {_number(summary.get('auc'))} | "
        f"{_percent(asnorm.get('eer'))} |"
    )


def _use_section(facts: _ModelFacts) -> list[str]:
    """How to verify with cryprint and with SpeechBrain alone, and the decision threshold."""
    threshold = facts.evaluation.get("threshold")
    threshold_text = f"{threshold:.4f}" if threshold is not None else "THRESHOLD"
    command = "cryprint verify a.wav b.wav --model THIS_FOLDER" + _embedding_flags(facts)
    lines = ["## Use", "", "With cryprint (files, or folders of cry segments):", ""]
    lines += ["```bash", command, "```", ""]
    lines += ["With SpeechBrain alone:", "", "```python"]
    lines += [
        "from speechbrain.inference.speaker import SpeakerRecognition",
        "",
        "model = SpeakerRecognition.from_hparams(",
        f'    source="THIS_FOLDER_OR_HUB_ID", savedir="pretrained_models/{facts.name}"',
        ")",
        "# wavs: float32 [batch, samples] at 16 kHz mono; wav_lens: relative lengths in (0, 1]",
        "embeddings = model.encode_batch(wavs, wav_lens)  # [batch, 1, dim], as cryprint's",
        'score, _ = model.verify_files("a.wav", "b.wav")  # cosine similarity',
        f"same_baby = score.item() >= {threshold_text}",
        "```",
        "",
    ]
    if threshold is not None:
        decision = f"Decision threshold: **{threshold_text}**, the EER threshold on the dev pairs. "
    else:
        decision = "No decision threshold is stored yet: `cryprint evaluate --split dev` sets it. "
    lines.append(
        decision + "(SpeechBrain's own `verify_files` decision uses 0.25, which is not tuned for "
        "this model.)"
    )
    if (facts.folder / CALIBRATION_NAME).is_file():
        lines += [
            "",
            "`calibration.json` maps a score to P(same baby) = sigmoid(a·score + b), fitted on "
            "the dev pairs (prior: their share of same-baby pairs).",
        ]
    return lines


def _embedding_flags(facts: _ModelFacts) -> str:
    """The --tta/--no-trim the stored dev threshold was measured with (verify needs them)."""
    thresholds = facts.evaluation.get("thresholds")
    eer = thresholds.get("eer") if isinstance(thresholds, dict) else None
    basis = eer.get("embedding") if isinstance(eer, dict) else None
    if not isinstance(basis, dict):
        return ""
    tta = basis.get("tta")
    views = (
        f" --tta {tta}" if isinstance(tta, int) and not isinstance(tta, bool) and tta > 1 else ""
    )
    return views + (" --no-trim" if basis.get("trim") is False else "")


def _limitations_section() -> list[str]:
    return [
        "## Limitations",
        "",
        "- Cry verification is hard: even the best CryCeleb2023 systems err on about a quarter "
        "of trials at the EER. Do not use a score as the only evidence of identity.",
        "- Trained and evaluated on one data set's recording conditions and a time gap of days "
        "(birth to discharge); other ages, devices, rooms or gaps are untested.",
        "- Scores depend on recording length; very short recordings (< 0.25 s) are refused, "
        "and a few seconds of cries per side are advisable.",
        "- Not for surveillance or for identifying babies without their guardians' consent; "
        "CryCeleb2023's licence forbids commercial use.",
    ]


def write_model_card(folder: Path | str, name: str | None = None) -> Path:
    """Write ``README.md`` (a Hugging Face model card) into a model folder, atomically.

    Args:
        folder: a model folder (``hyperparams.yaml`` + ``embedding_model.ckpt``; its
            ``cryprint.json``/``evaluation.json``/``calibration.json`` are used when present).
        name: the model's name in the card (default: the folder's name, ``NAME-best`` for a
            run's ``best`` folder).

    Returns:
        The path of the card.

    Raises:
        ModelError: not a model folder, or an unreadable JSON file in it.
    """
    folder = Path(folder)
    return atomic_write_text(folder / CARD_NAME, model_card(folder, name))
