"""``python -m pyramid``: see :mod:`pyramid.cli`."""

import sys

from .cli import main

sys.exit(main())
