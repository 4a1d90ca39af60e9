"""A stand-in for pydash, for the tests only.

Debian 12's python3-azure ships azure-ai-ml, but not its dependency
pydash (Debian does not package it, and PyPI is out of reach here). These
are the three helpers azure-ai-ml imports from it (get, set_, omit), so
that MLClient.from_config, Microsoft's own code, runs unchanged in a
pam_entra session.
"""
from . import objects
from .objects import get, omit, set_

__all__ = ["get", "omit", "objects", "set_"]
