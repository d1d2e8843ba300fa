"""The import paths of cryprint 0.1 that moved in 0.2, kept working for one release.

``import cryprint.gallery`` (say) gives a module that finds each name in the modules that now
hold it, with a DeprecationWarning naming them; ``CHANGELOG.md`` lists the moves. Nothing is
imported until a name is asked for. Why a finder and not a file per old path: seventeen
near-empty files would clutter the tree a newcomer reads, and they would import upwards.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import types
import warnings
from collections.abc import Sequence

# Old module → the modules its names now live in, searched in order.
MOVED: dict[str, tuple[str, ...]] = {
    "cryprint.api": ("cryprint.inference.api",),
    "cryprint.options": ("cryprint.inference.options", "cryprint.inference.api"),
    "cryprint.engines": ("cryprint.inference.engines",),
    "cryprint.tta": ("cryprint.inference.tta",),
    "cryprint.store": ("cryprint.inference.store",),
    "cryprint.embedding": ("cryprint.models.embed",),
    "cryprint.onnx": ("cryprint.models.onnx_format",),
    "cryprint.onnx.runtime": ("cryprint.inference.onnx_runtime",),
    "cryprint.onnx.export": ("cryprint.packaging.onnx_export",),
    "cryprint.gallery": (
        "cryprint.ward.gallery",
        "cryprint.ward.gallery_file",
        "cryprint.ward.enrol",
        "cryprint.ward.identify",
        "cryprint.scoring.ranking",
    ),
    "cryprint.evaluation.embed": ("cryprint.inference.splits", "cryprint.inference.embedding_file"),
    "cryprint.evaluation.shards": ("cryprint.inference.shards",),
    "cryprint.evaluation.verify": ("cryprint.inference.operating_point", "cryprint.inference.api"),
    "cryprint.evaluation.calibrate": (
        "cryprint.evaluation.calibrate_model",
        "cryprint.inference.operating_point",
    ),
    "cryprint.evaluation.fusion": ("cryprint.evaluation.fused",),
    "cryprint.evaluation.export": ("cryprint.packaging.speechbrain",),
    "cryprint.evaluation.card": ("cryprint.packaging.card",),
}
# Names that changed as well as their module: (old module, old name) → new name.
RENAMED = {
    ("cryprint.gallery", "enroll"): "enrol",
    ("cryprint.evaluation.verify", "VerifyResult"): "Verdict",
}


def _lookup(old: types.ModuleType, homes: Sequence[str], name: str) -> object:
    if name.startswith("__"):
        raise AttributeError(name)
    wanted = RENAMED.get((old.__name__, name), name)
    for home in homes:
        module = importlib.import_module(home)
        if hasattr(module, wanted):
            warnings.warn(
                f"{old.__name__}.{name} moved to {home}.{wanted}; the old path goes in the next "
                "release",
                DeprecationWarning,
                stacklevel=3,
            )
            value = getattr(module, wanted)
            setattr(old, name, value)  # warned once: the next lookup finds it here
            return value
    raise AttributeError(
        f"module {old.__name__!r} has no attribute {name!r} (it moved: see CHANGELOG.md)"
    )


# Duck-typed loader and finder (the import protocol's methods): importlib.abc would add 15 ms
# to every start, `cryprint --version` included.
class _MovedLoader:
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = types.ModuleType(spec.name, f"Moved: see {', '.join(MOVED[spec.name])}.")
        module.__path__ = []  # type: ignore[attr-defined]  # so cryprint.onnx.runtime resolves
        homes = MOVED[spec.name]
        module.__getattr__ = lambda name: _lookup(module, homes, name)  # type: ignore[method-assign]
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        return None


class _MovedFinder:
    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, _MovedLoader(), is_package=True)


def install() -> None:
    """Make the old paths importable (once per process)."""
    if not any(isinstance(finder, _MovedFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
