"""``python -m retro_gamer.cli``: the ``retro-gamer`` command."""

import sys

from retro_gamer.cli.app import main

sys.exit(main())
