"""Compatibility namespace: ``mlsysim.core.formulas`` as in the tutorial."""
from . import formulas  # noqa: F401
