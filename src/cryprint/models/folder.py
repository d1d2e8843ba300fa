"""Load an embedder from wherever its weights are, and save it as a SpeechBrain model folder.

A model spec (``--model`` / ``--init``) is one of:

- ``random``: random initialisation (never silent: the returned :class:`LoadedModel` says so);
- a path to a folder with ``hyperparams.yaml`` + ``embedding_model.ckpt`` (a SpeechBrain model
  folder, a cryprint ``best/`` folder, or an exported one — they are the same format);
- a path to a bare ``embedding_model.ckpt`` (an ECAPA_TDNN state dict, as the 3rd-place
  CryCeleb solution published its model): the architecture comes from ``config``;
- otherwise a Hugging Face model id (``speechbrain/spkrec-ecapa-voxceleb``,
  ``Ubenwa/ecapa-voxceleb-ft2-cryceleb``), fetched with ``hf_hub_download`` (hub cache and
  ``HF_HUB_OFFLINE`` honoured).

Weights are loaded with ``torch.load(weights_only=True)``: a pickle that would run code is
refused. Every key must match, checked against the architecture built on the meta device before
any memory is allocated for it; a mismatch names the keys. A NaN or inf weight is refused,
naming its tensor.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from cryprint.data.audio import SAMPLE_RATE
from cryprint.errors import HubError, ModelError
from cryprint.io import atomic_save_torch, atomic_write_text
from cryprint.models.ecapa import CryEmbedder, ModelConfig
from cryprint.models.files import (  # noqa: F401  (re-exported: the model folder's names)
    CALIBRATION_NAME,
    CHECKPOINT_NAME,
    EVALUATION_NAME,
    HPARAMS_NAME,
    INFO_NAME,
)


@dataclass
class LoadedModel:
    """An embedder and where its weights came from (``source`` is written into run folders)."""

    model: CryEmbedder
    source: str
    kind: str  # "random", "folder", "checkpoint" or "hub"
    folder: Path | None = None


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a state dict with ``weights_only=True``; refuse anything else with a ModelError."""
    if _path_kind(path) != "file":
        raise ModelError(f"{path}: model weights not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "GLOBAL" not in str(error) and not _pickle_imports_code(path):
            raise ModelError(f"{path}: not a readable PyTorch weights file (corrupt?)") from error
        raise ModelError(
            f"{path}: refused — the file holds Python objects that would run code when loaded,"
            " not only weights. Load only weights you trust, saved as a plain state dict."
        ) from error
    except Exception as error:  # torch's parser fails on arbitrary bytes with any exception
        raise ModelError(
            f"{path}: not a readable PyTorch weights file ({type(error).__name__}: {error})"
        ) from error
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path}: expected a state dict of tensors")
    return state


def _pickle_imports_code(path: Path) -> bool:
    """Whether a plain (non-zip) pickle file imports callables — what a code-running pickle needs.
    Only used to word the error; the refusal itself is torch's ``weights_only`` unpickler."""
    import pickletools

    try:
        with path.open("rb") as file:
            return any(
                opcode.name in {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE"}
                for opcode, _, _ in pickletools.genops(file)
            )
    except (ValueError, EOFError, OSError, pickle.UnpicklingError):
        return False


def _path_kind(path: Path) -> str | None:
    """``"file"``, ``"folder"`` or None (nothing there), as a ModelError naming ``path`` when the
    system cannot even look the name up (e.g. a component over 255 bytes: ENAMETOOLONG)."""
    try:
        if path.is_file():
            return "file"
        return "folder" if path.is_dir() else None
    except OSError as error:
        raise ModelError(f"{path}: no such model file or folder ({error.strerror})") from error


def check_finite(state: dict[str, torch.Tensor], name: str) -> None:
    """ModelError naming the first tensor of ``state`` that holds NaN or inf: such weights
    would give every pair the score NaN."""
    for key, tensor in state.items():
        if tensor.is_floating_point() or tensor.is_complex():
            finite = torch.isfinite(tensor)
            if not bool(finite.all()):
                count = int((~finite).sum())
                kind = "NaN" if bool(torch.isnan(tensor).any()) else "inf"
                raise ModelError(
                    f"{name}: weight tensor {key} holds {kind} ({count} non-finite value(s)); "
                    "the model is damaged (diverged training?)"
                )


def load_weights(module: torch.nn.Module, state: dict[str, torch.Tensor], name: str) -> None:
    """Copy ``state`` into ``module`` requiring every key and shape to match and every weight to
    be finite; name the mismatching keys or the first non-finite tensor."""
    check_matches(module.state_dict(), state, name)
    check_finite(state, name)
    module.load_state_dict(state, strict=True)


def check_matches(
    expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor], name: str
) -> None:
    """ModelError naming the keys of ``state`` that are missing, unexpected or of another shape
    than in ``expected`` (a module's state dict, possibly on the meta device)."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(
        key for key in set(expected) & set(state) if expected[key].shape != state[key].shape
    )
    if missing or unexpected or wrong_shape:
        parts = []
        for label, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("wrong shape", wrong_shape),
        ):
            if keys:
                shown = ", ".join(keys[:5]) + (f" … (+{len(keys) - 5})" if len(keys) > 5 else "")
                parts.append(f"{label}: {shown}")
        raise ModelError(
            f"{name}: weights do not match the ECAPA architecture ({'; '.join(parts)}). "
            "Is --channels (or the folder's hyperparams.yaml) the model's real width?"
        )


def build_with_weights(
    config: ModelConfig | None, state: dict[str, torch.Tensor], name: str
) -> CryEmbedder:
    """The embedder of ``config`` holding ``state``.

    The architecture is first built on the meta device (no memory) and compared with the
    weights, so a hyperparams.yaml that describes a huge model next to small weights is refused
    before anything is allocated; weights that match take the memory they hold anyway.
    """
    with torch.device("meta"):
        skeleton = CryEmbedder(config)
    check_matches(skeleton.embedding_model.state_dict(), state, name)
    model = CryEmbedder(config)
    load_weights(model.embedding_model, state, name)
    return model


class _TagIgnoringLoader(yaml.SafeLoader):
    """Reads HyperPyYAML as data: ``!new:``/``!ref`` tags are kept as plain values and nothing is
    instantiated, so reading a model folder's architecture runs no code from it."""


def _keep_tagged(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


_TagIgnoringLoader.add_multi_constructor("!", _keep_tagged)


def read_hparams_architecture(path: Path) -> ModelConfig:
    """The ECAPA architecture described by a SpeechBrain ``hyperparams.yaml``."""
    try:
        hparams = yaml.load(path.read_text(encoding="utf-8"), Loader=_TagIgnoringLoader)
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as error:
        raise ModelError(f"{path}: not a readable hyperparams file ({error})") from error
    if not isinstance(hparams, dict) or not isinstance(hparams.get("embedding_model"), dict):
        raise ModelError(f"{path}: no 'embedding_model' section")

    def resolve(value: Any) -> Any:
        # '!ref <n_mels>' is kept as the text '<n_mels>': look it up among the top-level keys.
        if isinstance(value, str) and value.startswith("<") and value.endswith(">"):
            return hparams.get(value[1:-1], value)
        return value

    ecapa = {key: resolve(value) for key, value in hparams["embedding_model"].items()}
    defaults = ModelConfig()
    # Values go to ModelConfig as written (no int() that would turn 2.5 into 2): it refuses
    # anything ECAPA_TDNN cannot build.
    try:
        return ModelConfig(
            n_mels=ecapa.get("input_size", hparams.get("n_mels", defaults.n_mels)),
            channels=ecapa.get("channels", (512, 512, 512, 512, 1536)),
            kernel_sizes=ecapa.get("kernel_sizes", defaults.kernel_sizes),
            dilations=ecapa.get("dilations", defaults.dilations),
            attention_channels=ecapa.get("attention_channels", defaults.attention_channels),
            embedding_dim=ecapa.get("lin_neurons", defaults.embedding_dim),
        )
    except (ModelError, TypeError, ValueError) as error:
        raise ModelError(f"{path}: cannot read the ECAPA architecture ({error})") from error


def _fetch_from_hub(model_id: str) -> Path:
    """Download (or find in the hub cache) a model's hyperparams.yaml and embedding_model.ckpt."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    try:
        paths = [Path(hf_hub_download(model_id, name)) for name in (HPARAMS_NAME, CHECKPOINT_NAME)]
    except GatedRepoError as error:
        raise HubError(
            f"{model_id}: gated model; accept its terms on the hub and log in"
        ) from error
    except RepositoryNotFoundError as error:
        raise HubError(
            f"'{model_id}' is neither a local file or folder nor a model on the Hugging Face hub"
        ) from error
    except LocalEntryNotFoundError as error:
        raise HubError(
            f"{model_id}: not in the local hub cache and the hub cannot be reached "
            f"(offline{' — HF_HUB_OFFLINE is set' if os.environ.get('HF_HUB_OFFLINE') else ''}). "
            "Connect once to cache it, give a local model folder or checkpoint, "
            "or train from scratch with --init random."
        ) from error
    except OSError as error:
        raise HubError(f"{model_id}: could not be fetched from the hub ({error})") from error
    return paths[0].parent


def load_model(spec: str | Path, config: ModelConfig | None = None) -> LoadedModel:
    """Build an embedder from a model spec (see the module docstring).

    Args:
        spec: ``random``, a model folder, a bare checkpoint, or a hub model id.
        config: the architecture for ``random`` and a bare checkpoint (default: VoxCeleb's).
            Folders and hub models carry their own architecture in hyperparams.yaml.

    Raises:
        ModelError: missing files, unsafe pickle, mismatching weights.
        HubError: a hub id that cannot be fetched.
    """
    spec_text = str(spec)
    if spec_text == "random":
        return LoadedModel(CryEmbedder(config), "random", "random")
    path = Path(spec_text).expanduser()
    kind = _path_kind(path)
    if kind == "file":
        model = build_with_weights(config, load_state_dict(path), str(path))
        return LoadedModel(model, str(path.resolve()), "checkpoint")
    if kind == "folder":
        return _load_folder(path, kind="folder")
    if path.suffix in {".ckpt", ".pt", ".pth"} or spec_text.startswith((".", "/", "~")):
        raise ModelError(f"{spec_text}: no such model file or folder")
    not_a_model = f"{spec_text}: not a file, a folder, 'random', or a hub model id (owner/name)"
    if spec_text.count("/") != 1:
        raise ModelError(not_a_model)
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(spec_text)
    except HFValidationError as error:
        raise ModelError(f"{not_a_model}: {error}") from error
    folder = _fetch_from_hub(spec_text)
    loaded = _load_folder(folder, kind="hub")
    loaded.source = spec_text
    return loaded


def _load_folder(folder: Path, kind: str) -> LoadedModel:
    hparams, checkpoint = folder / HPARAMS_NAME, folder / CHECKPOINT_NAME
    missing = [p.name for p in (hparams, checkpoint) if _path_kind(p) != "file"]
    if missing:
        raise ModelError(
            f"{folder}: not a model folder — missing {', '.join(missing)} "
            f"(expected {HPARAMS_NAME} and {CHECKPOINT_NAME})"
        )
    config = read_hparams_architecture(hparams)
    model = build_with_weights(config, load_state_dict(checkpoint), str(checkpoint))
    return LoadedModel(model, str(folder.resolve()), kind, folder)


def hparams_yaml(config: ModelConfig) -> str:
    """A SpeechBrain ``hyperparams.yaml`` for ``config`` that
    ``SpeakerRecognition.from_hparams(source=FOLDER)`` loads (weights from FOLDER itself)."""
    return f"""# Written by cryprint: a SpeechBrain speaker-embedding model folder.
# Load with speechbrain.inference.speaker.SpeakerRecognition.from_hparams(source=THIS_FOLDER)
# and call encode_batch(wavs, wav_lens) (normalize=False): the embeddings equal cryprint's.

sample_rate: {SAMPLE_RATE}
n_mels: {config.n_mels}

compute_features: !new:speechbrain.lobes.features.Fbank
    n_mels: !ref <n_mels>

mean_var_norm: !new:speechbrain.processing.features.InputNormalization
    norm_type: sentence
    std_norm: False

embedding_model: !new:speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN
    input_size: !ref <n_mels>
    channels: {list(config.channels)}
    kernel_sizes: {list(config.kernel_sizes)}
    dilations: {list(config.dilations)}
    attention_channels: {config.attention_channels}
    lin_neurons: {config.embedding_dim}

# SpeakerRecognition requires this module; it is used only by encode_batch(normalize=True),
# and cryprint's embeddings are not normalised this way.
mean_var_norm_emb: !new:speechbrain.processing.features.InputNormalization
    norm_type: global
    std_norm: False

modules:
    compute_features: !ref <compute_features>
    mean_var_norm: !ref <mean_var_norm>
    embedding_model: !ref <embedding_model>
    mean_var_norm_emb: !ref <mean_var_norm_emb>

pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        embedding_model: !ref <embedding_model>
"""


def save_model_folder(model: CryEmbedder, folder: Path, info: dict | None = None) -> Path:
    """Write ``model`` as a SpeechBrain model folder (hyperparams.yaml, embedding_model.ckpt)
    plus ``cryprint.json`` (architecture and ``info``, e.g. where the weights came from)."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.embedding_model.state_dict().items()}
    atomic_save_torch(state, folder / CHECKPOINT_NAME)
    atomic_write_text(folder / HPARAMS_NAME, hparams_yaml(model.config))
    payload = {"model": model.config.to_dict(), **(info or {})}
    atomic_write_text(folder / INFO_NAME, json.dumps(payload, indent=2) + "\n")
    return folder


def embedder_of(model: LoadedModel | CryEmbedder) -> CryEmbedder:
    """The :class:`CryEmbedder` inside ``model`` (a LoadedModel or the embedder itself)."""
    return model.model if isinstance(model, LoadedModel) else model


def model_identity(model: LoadedModel | CryEmbedder) -> str:
    """sha256 (hex) of the embedding weights and the architecture.

    Hashes every tensor of the ECAPA ``embedding_model`` state dict in sorted key order (name,
    dtype, shape and bytes) plus the :class:`ModelConfig` as JSON. The feature extractor (Fbank,
    sentence mean normalisation) has no trained weights and is fixed by the config. Two models
    with the same identity give the same embeddings.
    """
    embedder = embedder_of(model)
    digest = hashlib.sha256()
    digest.update(json.dumps(embedder.config.to_dict(), sort_keys=True).encode())
    state = embedder.embedding_model.state_dict()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        # uint8 view: numpy has no bfloat16, and the raw bytes are what we want anyway.
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


ModelSpec = str | Path | LoadedModel | CryEmbedder


def as_loaded(model: ModelSpec) -> LoadedModel:
    """A :class:`LoadedModel` from a spec (folder, checkpoint, 'random', hub id), a loaded
    model as is, or an in-memory embedder (kind ``memory``: no folder)."""
    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, CryEmbedder):
        return LoadedModel(model, "in-memory model", "memory")
    return load_model(model)
