"""Python-version differences in one place: ``tomllib`` is in the standard library from 3.11, and
published as ``tomli`` (the same parser) for 3.10."""

import sys

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

__all__ = ["tomllib"]
