"""cryprint: tell whether two recordings of infant cries come from the same baby.

>>> from cryprint import CryPrint, EmbeddingOptions  # doctest: +SKIP
>>> CryPrint("demo/runs/triplet/best").verify("a.wav", "b/")  # doctest: +SKIP

The packages, bottom to top (each imports only those below it): ``data`` (CryCeleb layout,
audio, corpora), ``models`` (ECAPA, loading and saving weights), ``scoring`` (pure numpy
metrics, calibration, normalisation, ranking), ``inference`` (the API: embed, store, decide),
``training``, ``ward`` (galleries of babies), ``evaluation`` (evaluate, trials, submit),
``packaging`` (exports, model card), and ``cli`` on top. See docs/architecture.md.
"""

import os

from cryprint import _moved
from cryprint import threads as _threads

__version__ = "0.2.0"

# onnxruntime writes a device id and queues telemetry under ~/.cache/Microsoft as soon as it is
# imported, unless this is set before: a tool for health data leaves no identifiers behind.
if not os.environ.get("ORT_DISABLE_TELEMETRY"):  # unset or empty: off ("0" is respected)
    os.environ["ORT_DISABLE_TELEMETRY"] = "1"

# How idle compute threads wait: a short spin, then sleep (cryprint.threads; before torch loads).
_threads.set_wait_policy(os.environ)

_moved.install()  # the import paths of 0.1 keep working for one release (CHANGELOG.md)

# The API loads torch and SpeechBrain: only when it is asked for, so `cryprint --version`
# and the CLI's argument checks stay fast.
_LAZY = {
    "CryPrint": "cryprint.inference.api",
    "EmbeddingOptions": "cryprint.inference.options",
    "verify": "cryprint.inference.api",
}

__all__ = ["CryPrint", "EmbeddingOptions", "__version__", "verify"]


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cryprint' has no attribute {name!r}")


def __dir__() -> list[str]:
    # What a REPL's completion and dir() show: the public API, not this module's machinery.
    return sorted(__all__)
