"""Fetch CryCeleb2023 from the Hugging Face hub into a directory in the layout ``read_metadata``
expects, unpack ``audio.zip`` safely (:func:`cryprint.data.archive.extract_zip`), and check that
every listed audio file is there.

The data set is gated (see ``shared/cryceleb-format.md``): a user accepts its terms on the hub
and logs in once (``hf auth login`` or ``HF_TOKEN``). Files come through
``huggingface_hub.hf_hub_download``, so the shared hub cache, ``HF_HOME``/``HF_HUB_CACHE`` and
``HF_HUB_OFFLINE`` all work as they do for any other hub download.

Re-running is cheap and safe: a small state file in ``dest`` records what was placed there, so
complete files are skipped without contacting the hub, and an extraction marker records which
``audio.zip`` was unpacked. Every step writes to a temporary name first and moves the result into
place only when it is complete, so an interrupted run never leaves a truncated file or a half
unpacked ``audio/`` under its final name.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import constants as hub_constants
from huggingface_hub import hf_hub_download
from huggingface_hub import utils as hub_utils

from cryprint.data.archive import extract_zip
from cryprint.data.layout import read_metadata
from cryprint.errors import DataError, HubError, OutputError
from cryprint.hub import DATASET_REPO_ID
from cryprint.io import atomic_write_text, make_directory, output_error

logger = logging.getLogger(__name__)

# The data set's id on the Hugging Face hub (model cards cite it too).
# Small files first: a gated repo or a missing login then fails in a second, not after the zip.
CSV_FILES = ("metadata.csv", "dev_pairs.csv", "test_pairs.csv", "sample_submission.csv")
AUDIO_ZIP = "audio.zip"
DATASET_FILES = (*CSV_FILES, AUDIO_ZIP)
STATE_FILE = ".cryprint-download.json"
_LOGIN_HINT = (
    "run `hf auth login` (`huggingface-cli login` with older huggingface_hub) or set HF_TOKEN"
)


@dataclass(frozen=True)
class DownloadReport:
    """What ``download_cryceleb`` did.

    Attributes:
        dest: the data directory, ready for ``read_metadata(dest)``.
        fetched: repo files placed in ``dest`` by this run (from the hub or the hub cache).
        skipped: repo files already complete in ``dest``, left untouched.
        extracted: whether ``audio.zip`` was unpacked by this run (False: it already was).
        n_audio_files: rows of ``metadata.csv``; every one's audio file was checked to exist.
    """

    dest: Path
    fetched: tuple[str, ...]
    skipped: tuple[str, ...]
    extracted: bool
    n_audio_files: int

    def describe(self) -> str:
        """One line for the CLI to print."""
        unpacked = "unpacked audio.zip" if self.extracted else "audio already unpacked"
        return (
            f"{self.dest}: fetched {len(self.fetched)} file(s), {len(self.skipped)} already "
            f"complete, {unpacked}; {self.n_audio_files} audio files verified"
        )


def download_cryceleb(
    dest: Path,
    repo_id: str = DATASET_REPO_ID,
    token: str | None = None,
    *,
    fetch: Callable[..., str] | None = None,
    progress: bool = True,
) -> DownloadReport:
    """Download CryCeleb2023 into ``dest``, unpack its audio and verify it against the metadata.

    Args:
        dest: the data directory to fill (created if missing). Afterwards it holds the four CSVs,
            ``audio.zip`` and ``audio/{split}/{baby_id}/{period}/*.wav``.
        repo_id: the hub dataset repo.
        token: a hub token; None uses the saved login or ``HF_TOKEN``. Never printed, logged or
            written to disk.
        fetch: a function with ``huggingface_hub.hf_hub_download``'s signature returning a local
            path; tests pass a fake standing in for the hub. Default: ``hf_hub_download``.
        progress: show the hub's download bars and an unpacking bar on stderr.

    Returns:
        A ``DownloadReport``.

    Raises:
        HubError: the hub could not provide a file (gated and not accepted, no login, repo not
            found, offline with nothing cached); the message says what to do.
        OutputError: ``dest`` cannot be written (disk full, permissions).
        DataError: ``audio.zip`` is broken or unsafe, or metadata names a missing audio file.
    """
    dest = Path(dest)
    fetch = hf_hub_download if fetch is None else fetch
    make_directory(dest)
    state = _read_state(dest, repo_id)
    fetched: list[str] = []
    skipped: list[str] = []
    with _hub_progress_bars(progress):
        for filename in DATASET_FILES:
            target = dest / filename
            recorded_size = state.get(filename)
            if target.is_file() and target.stat().st_size == recorded_size:
                logger.info("%s: already complete, skipped", target)
                skipped.append(filename)
                continue
            logger.info("%s: fetching from %s", filename, repo_id)
            source = _fetch_file(fetch, repo_id, filename, token)
            _place_file(source, target)
            state[filename] = target.stat().st_size
            # Recorded after each file, so a run interrupted later still skips this one.
            _write_state(dest, repo_id, state)
            fetched.append(filename)
    try:
        extracted = _unpack_audio(dest / AUDIO_ZIP, dest, progress=progress)
    except DataError as error:
        # The zip in dest shares its bytes with the hub cache (see _place_file): a damaged
        # download must go from both places, or the next run links the same bytes again.
        raise DataError(
            f"{error}. If it happens again, the copy in the hub cache is damaged too: remove it "
            f"with `hf cache rm dataset/{repo_id}` (`huggingface-cli delete-cache` with older "
            "huggingface_hub) and run the download again."
        ) from error
    # First the CSV alone, so that a broken metadata.csv is not blamed on the audio.
    read_metadata(dest, check_files=False)
    try:
        metadata = read_metadata(dest, check_files=True)
    except DataError as error:
        raise DataError(
            f"{error}\nThe audio in {dest} does not match metadata.csv: delete {dest / 'audio'} "
            "and run the download again to unpack audio.zip afresh."
        ) from error
    report = DownloadReport(
        dest=dest,
        fetched=tuple(fetched),
        skipped=tuple(skipped),
        extracted=extracted,
        n_audio_files=len(metadata),
    )
    logger.info("%s", report.describe())
    return report


# --- fetching ---------------------------------------------------------------------------------


def _fetch_file(fetch: Callable[..., str], repo_id: str, filename: str, token: str | None) -> Path:
    """Ask the hub (or its cache) for one file; turn the hub's errors into actionable ones."""
    try:
        return Path(fetch(repo_id=repo_id, filename=filename, repo_type="dataset", token=token))
    # Every hub failure is an OSError (HTTP errors, LocalEntryNotFoundError, offline mode) or,
    # for a malformed repo id, an HFValidationError.
    except (OSError, hub_utils.HFValidationError) as error:
        raise _translate_fetch_error(error, repo_id, filename, token) from _safe_cause(error, token)


def _translate_fetch_error(
    error: Exception, repo_id: str, filename: str, token: str | None
) -> HubError | OutputError:
    """The CryprintError telling the user what to do about ``error``; never holds the token."""
    page = f"https://huggingface.co/datasets/{repo_id}"
    # Order matters: LocalEntryNotFoundError is an EntryNotFoundError (and a FileNotFoundError),
    # GatedRepoError a RepositoryNotFoundError, and every HfHubHTTPError an OSError.
    if isinstance(error, hub_utils.LocalEntryNotFoundError | hub_utils.OfflineModeIsEnabled):
        if hub_constants.HF_HUB_OFFLINE:
            reason = "HF_HUB_OFFLINE is set"
            remedy = "unset HF_HUB_OFFLINE and run the download again with a connection"
        else:
            reason = "the hub could not be reached"
            remedy = "check the internet connection (and HF_ENDPOINT, proxies) and run again"
        message = (
            f"cannot get {filename} from {repo_id}: {reason} and the file is not in the hub "
            f"cache ({hub_constants.HF_HUB_CACHE}); {remedy}"
        )
    elif isinstance(error, hub_utils.GatedRepoError):
        message = (
            f"{repo_id} is a gated data set and this login has no access to it: accept the "
            f"terms at {page} and {_LOGIN_HINT}"
        )
    elif isinstance(error, hub_utils.RepositoryNotFoundError):
        # The hub answers "not found" (401) for a gated repo without a login or a bad token too.
        message = (
            f"dataset repo {repo_id} not found or not visible to you: check the repo id; if you "
            f"are not logged in (or the token is wrong or expired), accept the terms at {page} "
            f"and {_LOGIN_HINT}"
        )
    elif isinstance(error, hub_utils.EntryNotFoundError):
        message = (
            f"{repo_id} has no file {filename}: is it the CryCeleb2023 repo ({DATASET_REPO_ID})?"
        )
    elif isinstance(error, hub_utils.HfHubHTTPError):
        message = (
            f"the hub refused {filename} from {repo_id}: {error}; try again later, and if it "
            f"persists check your access at {page}"
        )
    elif isinstance(error, hub_utils.HFValidationError):
        message = (
            f"'{repo_id}' is not a valid hub repo id ({error}); expected 'owner/name', "
            f"e.g. {DATASET_REPO_ID}"
        )
    else:
        # What is left is local: the hub cache could not be written.
        assert isinstance(error, OSError)
        where = error.filename or f"the hub cache ({hub_constants.HF_HUB_CACHE})"
        if error.errno == errno.ENOSPC:
            message = (
                f"{where}: disk full while downloading {filename}; free some space (or point "
                "HF_HOME at a larger disk) and run the download again"
            )
        else:
            message = f"{where}: cannot store {filename}: {error.strerror or error}"
        return OutputError(_scrub(message, token))
    return HubError(_scrub(message, token))


def _secrets(token: str | None) -> list[str]:
    """The token strings that must never show up in a message."""
    return [secret for secret in (token, os.environ.get("HF_TOKEN")) if secret]


def _scrub(message: str, token: str | None) -> str:
    """``message`` with any token replaced, in case the hub's own text echoed it."""
    for secret in _secrets(token):
        message = message.replace(secret, "***")
    return message


def _safe_cause(error: Exception, token: str | None) -> Exception | None:
    """``error`` to chain, or None when its text holds the token (a traceback would print it)."""
    if any(secret in str(error) for secret in _secrets(token)):
        return None
    return error


@contextlib.contextmanager
def _hub_progress_bars(enabled: bool) -> Iterator[None]:
    """Hide the hub's download bars for the block when ``enabled`` is False, then restore.

    The hub only offers a process-wide switch (``tqdm_class`` is not in every supported
    huggingface_hub version), so it is flipped for the block and flipped back only if it was on.
    """
    if enabled or hub_utils.are_progress_bars_disabled():
        yield
        return
    with warnings.catch_warnings():
        # HF_HUB_DISABLE_PROGRESS_BARS=0 overrides us, with a warning we have nothing to add to.
        warnings.simplefilter("ignore")
        hub_utils.disable_progress_bars()
    try:
        yield
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hub_utils.enable_progress_bars()


def _place_file(source: Path, target: Path) -> None:
    """Put the fetched ``source`` at ``target``, atomically.

    Why not ``hf_hub_download(local_dir=dest)``: it bypasses the shared hub cache (a user who has
    the data set cached, or works with HF_HUB_OFFLINE, would fetch it again) and leaves hub
    metadata in ``dest``. Instead the file stays in the cache and is hard-linked into ``dest``:
    no second copy of a multi-GB zip, and ``dest`` survives a cache clean-up. The cache's blobs
    are content-addressed and never rewritten in place, and we only ever replace ``target``
    (never write into it), so the shared inode is safe. Across file systems it is copied.
    """
    source = source.resolve()  # the cache's snapshot entry is a symlink to its blob
    if target.exists() and target.samefile(source):
        return
    temporary = target.with_name(f".{target.name}.partial")
    try:
        temporary.unlink(missing_ok=True)
        try:
            os.link(source, temporary)
        except OSError:
            shutil.copy2(source, temporary)
        os.replace(temporary, target)
    except BaseException as error:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise _output_error(target, error, f"cannot write {target.name}") from error
        raise


# --- unpacking --------------------------------------------------------------------------------


def _unpack_audio(zip_path: Path, dest: Path, *, progress: bool) -> bool:
    """Unpack ``audio.zip`` unless the marker says this very zip was unpacked and its top-level
    entries are still there. Returns whether it unpacked."""
    marker = dest / f".{zip_path.name}.extracted.json"
    zip_stat = zip_path.stat()
    current = {"zip_size": zip_stat.st_size, "zip_mtime_ns": zip_stat.st_mtime_ns}
    try:
        recorded = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recorded = None
    if (
        isinstance(recorded, dict)
        and all(recorded.get(key) == value for key, value in current.items())
        and all((dest / name).exists() for name in recorded.get("top_level", []))
    ):
        logger.info("%s: already unpacked, skipped", zip_path)
        return False
    # Removed first: a marker must never describe a half-replaced audio directory.
    with contextlib.suppress(FileNotFoundError):
        marker.unlink()
    logger.info("%s: unpacking into %s", zip_path, dest)
    files = extract_zip(zip_path, dest, progress=progress)
    top_level = sorted({path.relative_to(dest).parts[0] for path in files})
    _write_json(marker, {**current, "top_level": top_level, "n_files": len(files)})
    return True


# --- small file-system helpers ----------------------------------------------------------------


# What to do when the disk fills up here.
ON_FULL_DISK = "free some space and run the download again, complete files are kept and skipped"


def _output_error(path: Path, error: OSError, what: str) -> OutputError:
    return output_error(
        path,
        error,
        what,
        "free some space and run the download again, complete files are kept and skipped",
    )


def _write_json(path: Path, data: dict) -> None:
    """Write JSON to ``path`` atomically, so a reader never sees half of it."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def _read_state(dest: Path, repo_id: str) -> dict[str, int]:
    """Sizes of the files a previous run placed in ``dest`` from ``repo_id`` ({} if none)."""
    try:
        state = json.loads((dest / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(state, dict) or state.get("repo_id") != repo_id:
        return {}
    files = state.get("files")
    if not isinstance(files, dict):
        return {}
    return {name: size for name, size in files.items() if isinstance(size, int)}


def _write_state(dest: Path, repo_id: str, sizes: dict[str, int]) -> None:
    """Record the sizes of the files placed in ``dest`` (never the token)."""
    _write_json(dest / STATE_FILE, {"repo_id": repo_id, "files": sizes})
