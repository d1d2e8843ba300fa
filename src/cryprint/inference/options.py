"""How recordings are embedded: one value that every command and function that embeds takes.

>>> from cryprint.inference.options import EmbeddingOptions
>>> EmbeddingOptions(tta=5, backend="torch").tta
5

The CLI builds it from ``--device --backend --precision --tta --no-trim``; library functions take
it as ``embedding=`` (None: the defaults), and :func:`cryprint.inference.api.embedder_for` loads
a model with it.
Torch-free: checking the options imports nothing heavy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryprint.errors import FIELD, ConfigError, ModelError

BACKENDS = ("auto", "torch", "onnx")
# auto: bf16 autocast where the hardware runs it natively and it pays (cryprint.models.device),
# else fp32.
PRECISIONS = ("auto", "fp32", "bf16")
MAX_TTA_VIEWS = 64


@dataclass(frozen=True)
class EmbeddingOptions:
    """Where and how recordings are embedded (each field: see :class:`cryprint.CryPrint`).

    device: ``auto`` (a GPU when there is one, else the CPU), ``cpu``, ``cuda``, ``cuda:N``.
    backend: ``auto``, ``torch``, ``onnx``.
    precision: ``auto``, ``fp32``, ``bf16``. tta: test-time augmentation views, 1 to 64
    (1 = none). trim: embed each recording without its leading and trailing non-cry sound.
    as_norm: score with adaptive s-norm against the model folder's cohort — None (default):
    exactly when it lowered that model's dev minDCF; True or False to choose.

    Raises:
        ConfigError: an unknown backend or precision, or a bad number of views.
    """

    device: str = "auto"
    backend: str = "auto"
    precision: str = "auto"
    tta: int = 1
    trim: bool = True
    # AS-norm with the model folder's cohort: None = exactly when it lowered the model's dev
    # minDCF (cryprint.inference.cohort); True or False to decide.
    as_norm: bool | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(
                f"unknown backend '{self.backend}'; choose one of {', '.join(BACKENDS)}"
            )
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"unknown precision '{self.precision}'; choose one of {', '.join(PRECISIONS)}"
            )
        tta = self.tta
        if isinstance(tta, bool) or not isinstance(tta, int) or not 1 <= tta <= MAX_TTA_VIEWS:
            raise ConfigError(
                f"tta must be a whole number of views from 1 to {MAX_TTA_VIEWS}, got {tta!r}"
            )
        if not isinstance(self.trim, bool):
            raise ConfigError(f"trim must be True or False, got {self.trim!r}")
        if self.as_norm is not None and not isinstance(self.as_norm, bool):
            raise ConfigError(f"as_norm must be True, False or None, got {self.as_norm!r}")

    @property
    def score_basis(self) -> dict[str, Any]:
        """What a stored threshold or calibration depends on besides the weights: the TTA
        views and trimming (bf16 and int8 arithmetic are not: their EER moved by at most 0.24
        points, benchmarks/RESULTS.md §5). Recorded in evaluation.json and calibration.json;
        checked by :func:`check_score_basis`."""
        return {"tta": self.tta, "trim": self.trim}


def _checked_basis(stored: object, what: str) -> dict[str, Any]:
    """A recorded basis, with ``as_norm`` False when it predates AS-norm scoring."""
    if (
        not isinstance(stored, dict)
        or not {"tta", "trim"} <= set(stored) <= {"tta", "trim", "as_norm"}
        or isinstance(stored["tta"], bool)
        or not isinstance(stored["tta"], int)
        or not isinstance(stored["trim"], bool)
        or not isinstance(stored.get("as_norm", False), bool)
    ):
        raise ModelError(
            f'{what}: \'embedding\' must be {{"tta": N, "trim": true|false, "as_norm": true|false}}'
        )
    return {"as_norm": False, **stored}


def check_score_basis(stored: object, given: dict[str, Any] | None, what: str, redo: str) -> None:
    """Refuse ``what`` (a stored threshold or calibration, named with its file) when it was
    measured on scores made otherwise than ``given``: recordings embedded with other TTA views
    or trimming (:attr:`EmbeddingOptions.score_basis`), or scores normalised otherwise
    (``as_norm``; a record or basis without it means raw cosine scores). Its scores would sit
    elsewhere, and a verdict at it would be off. Nothing to check when either is None (a record
    written before the basis was kept).

    Raises:
        ConfigError: naming both and how to fix it (the options to pass, or ``redo``).
        ModelError: a recorded basis that is not ``{"tta": int, "trim": bool[, "as_norm":
            bool]}``.
    """
    if stored is None or given is None:
        return
    stored, given = _checked_basis(stored, what), {"as_norm": False, **given}
    if stored == given:
        return
    raise ConfigError(
        f"{what} was measured on scores made with {describe_basis(stored)}, but these are made "
        f"with {describe_basis(given)}: its scores would not sit where it was set. "
        f"Score as it was ({{tta}}, {{trim}}, {{as_norm}}), or {redo}",
        # ``redo`` may name the threshold a caller can pass instead.
        fields={
            "tta": stored["tta"],
            "trim": stored["trim"],
            "as_norm": stored["as_norm"],
            "threshold": FIELD,
        },
    )


def describe_basis(basis: dict[str, Any]) -> str:
    """How scores are made, in words: ``5 TTA views, trimmed`` (``, AS-norm`` when
    normalised)."""
    views = basis["tta"]
    words = f"{views} TTA view{'s' if views > 1 else ''}, {'' if basis['trim'] else 'un'}trimmed"
    return words + (", AS-norm" if basis.get("as_norm") else "")
