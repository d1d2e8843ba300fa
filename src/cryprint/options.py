"""How recordings are embedded: one value that every command and function that embeds takes.

>>> from cryprint.options import EmbeddingOptions
>>> EmbeddingOptions(tta=5, backend="torch").tta
5

The CLI builds it from ``--device --backend --precision --tta --no-trim``; library functions take
it as ``embedding=`` (None: the defaults), and :meth:`EmbeddingOptions.embedder` loads a model
with it. Torch-free: checking the options imports nothing heavy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from cryprint.errors import ConfigError

if TYPE_CHECKING:
    from cryprint.api import CryPrint
    from cryprint.store import EmbeddingStore

BACKENDS = ("auto", "torch", "onnx")
# auto: bf16 autocast where the hardware runs it natively (cryprint.models.device), else fp32.
PRECISIONS = ("auto", "fp32", "bf16")
MAX_TTA_VIEWS = 64


@dataclass(frozen=True)
class EmbeddingOptions:
    """Where and how recordings are embedded (each field: see :class:`cryprint.CryPrint`).

    device: ``cpu``, ``auto``, ``cuda``, ``cuda:N``. backend: ``auto``, ``torch``, ``onnx``.
    precision: ``auto``, ``fp32``, ``bf16``. tta: test-time augmentation views, 1 to 64
    (1 = none). trim: embed each recording without its leading and trailing non-cry sound.

    Raises:
        ConfigError: an unknown backend or precision, or a bad number of views.
    """

    device: str = "cpu"
    backend: str = "auto"
    precision: str = "auto"
    tta: int = 1
    trim: bool = True

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

    def embedder(self, model: Any, store: EmbeddingStore | str | bool | None = True) -> CryPrint:
        """``model`` itself when it already is a :class:`cryprint.CryPrint` (its own options
        stand), else the model loaded with these options and ``store``."""
        from cryprint.api import CryPrint

        if isinstance(model, CryPrint):
            return model
        return CryPrint(model, store=store, **asdict(self))
