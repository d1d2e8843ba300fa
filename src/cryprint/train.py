"""Deprecated (0.2): ``torchrun ... -m cryprint.train ARGS`` is now
``torchrun ... -m cryprint train ARGS`` (the CLI's own ``train``). Kept for one release."""

import sys
import warnings

from cryprint.cli import main

if __name__ == "__main__":
    warnings.warn(
        "`-m cryprint.train` is deprecated: run `-m cryprint train ...`", DeprecationWarning, 1
    )
    sys.exit(main(["train", *sys.argv[1:]]))
