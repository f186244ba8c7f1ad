"""Catalogue of Microsoft-documented cmdlet signatures (Windows PowerShell 5.1 / Server 2022)."""

from __future__ import annotations

import json
from pathlib import Path

CATALOGUE_PATH = Path(__file__).with_name("cmdlets.json")


def load() -> dict:
    """Return the catalogue (``sources``, ``common_parameters``, ``common_parameter_aliases``
    and ``cmdlets``) as a new dict."""
    return json.loads(CATALOGUE_PATH.read_text(encoding="utf-8"))


def common_parameters() -> list[str]:
    """Return the common parameter names every cmdlet with ``"common": true`` accepts."""
    return list(load()["common_parameters"])


def common_parameter_aliases() -> dict[str, list[str]]:
    """Return the short aliases of the common parameters (``ea`` for ErrorAction and so on)."""
    return {name: list(aliases) for name, aliases in load()["common_parameter_aliases"].items()}
