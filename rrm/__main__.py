"""Run the CLI with ``python -m rrm``."""

import sys

from rrm.cli import main

sys.exit(main())
