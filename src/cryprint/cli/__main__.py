"""``python -m cryprint.cli``."""

import sys

from cryprint.cli import main

sys.exit(main())
