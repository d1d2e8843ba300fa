"""``torchrun --nproc_per_node N -m cryprint.train --data DIR --run runs/x ...``: the ``train``
subcommand as a module, for multi-GPU / multi-machine runs."""

import sys

from cryprint.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
