"""What a ward station serves and how, checked before it starts."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from cryprint.errors import FIELD, ConfigError
from cryprint.inference.options import EmbeddingOptions

TOKEN_ENVIRONMENT = "CRYPRINT_TOKEN"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
# An upload larger than this is refused before its body is read (a cry is seconds of audio:
# 20 MB holds about 10 minutes of 16-bit mono at 16 kHz).
DEFAULT_MAX_UPLOAD_BYTES = 20 * 2**20
MIN_TOKEN_LENGTH = 16


@dataclass(frozen=True)
class StationSettings:
    """A ward station.

    gallery: the ward's gallery file (created by the first enrolment). model: the model spec.
    host, port: where it listens (loopback by default). token: the access token every request
    must carry (required for any host but loopback). max_upload_bytes: the largest request body.
    workers: requests that embed at once; queue: how many more may wait (then 503).
    embedding: how cries are embedded and scored, as the CLI's options say.
    """

    gallery: Path
    model: str
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    workers: int = 1
    queue: int = 8
    embedding: EmbeddingOptions = field(default_factory=EmbeddingOptions)

    def __post_init__(self) -> None:
        if self.host not in LOOPBACK_HOSTS and not self.token:
            raise ConfigError(
                f"the station would listen on {self.host}, beyond this machine, without an "
                "access token: a ward gallery is health data. Give {token_file} (or set "
                f"{TOKEN_ENVIRONMENT}), or listen on 127.0.0.1",
                fields={"token_file": FIELD},
            )
        if self.token is not None and len(self.token) < MIN_TOKEN_LENGTH:
            raise ConfigError(f"the access token must be at least {MIN_TOKEN_LENGTH} characters")
        checks = (
            (1 <= self.port <= 65535, "port", "from 1 to 65535"),
            (1 <= self.workers <= 64, "workers", "from 1 to 64"),
            (0 <= self.queue <= 1024, "queue", "from 0 to 1024"),
            (2**10 <= self.max_upload_bytes <= 2**30, "max_upload_bytes", "from 1 KiB to 1 GiB"),
        )
        for ok, name, allowed in checks:
            if not ok:
                raise ConfigError(f"{{{name}}} must be {allowed}", fields={name: FIELD})

    @property
    def loopback(self) -> bool:
        return self.host in LOOPBACK_HOSTS


def read_token(token_file: Path | None) -> str | None:
    """The access token: the first line of ``token_file``, else ``$CRYPRINT_TOKEN``, else None.

    Raises:
        ConfigError: an unreadable or empty token file.
    """
    if token_file is None:
        return os.environ.get(TOKEN_ENVIRONMENT) or None
    try:
        lines = Path(token_file).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{token_file}: cannot read the token file ({error})") from error
    token = lines[0].strip() if lines else ""
    if not token:
        raise ConfigError(f"{token_file}: the token file is empty")
    return token
