"""Sphinx configuration for the retro-gamer site: ``sphinx-build -W -b html docs OUT``.

The CLI's ``--help`` texts and the settings tables are rendered from the code while the site builds
(``docs/_tools``), so they cannot fall behind it; the tests build the site with warnings as errors.
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))  # retro_gamer, for autodoc, also from a checkout that is not installed
sys.path.insert(0, str(DOCS / "_tools"))  # the site's own extensions

project = "retro-gamer"
author = "retro-gamer contributors"
copyright = "retro-gamer contributors"

extensions = ["sphinx.ext.autodoc", "cli_help", "settings_reference"]
exclude_patterns = ["_build", "_tools", "_generated"]  # _generated: included by the pages
html_theme = "furo"
html_title = "retro-gamer"
autodoc_member_order = "bysource"
autodoc_typehints = "description"
