"""`python -m probeguard …` is the `probeguard` command."""

import sys

from probeguard.cli import main

sys.exit(main())
