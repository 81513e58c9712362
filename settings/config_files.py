"""Reading Tailor's YAML files (settings, segment rules, models) with errors that name the file.

>>> read_yaml_file("no/such.yaml", "segment rules file")
Traceback (most recent call last):
...
settings.errors.ConfigError: segment rules file no/such.yaml does not exist
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from settings.errors import ConfigError, TailorError


def read_yaml_file(path: Path | str, what: str, error: type[TailorError] = ConfigError) -> Any:
    """The parsed content of ``path`` (None if empty); ``error`` says "<what> <path> ..." when it is missing
    or not YAML."""
    try:
        return yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise error(f"{what} {path} is not valid YAML: {exc}") from None
