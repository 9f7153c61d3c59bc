"""``python -m sim`` is the ``neutrosim`` command."""

import sys

from .cli import main

sys.exit(main())
