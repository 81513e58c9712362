"""Reading Tailor's YAML files (settings, segment rules, models) with errors that name the file.

>>> read_yaml_file("no/such.yaml", "segment rules file")
Traceback (most recent call last):
...
settings.errors.ConfigError: segment rules file no/such.yaml does not exist
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema
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


def validated_yaml(
    text: str, schema: Mapping[str, Any], source: str, error: type[TailorError] = ConfigError,
    messages: Mapping[str, str] | None = None,
) -> tuple[Any, yaml.Node | None]:
    r"""``text`` parsed and checked against the JSON ``schema``; ``error`` names ``source`` and the line of
    the first problem (``messages`` replaces jsonschema's wording per validator keyword, e.g. ``anyOf``).
    Returns the data and the composed YAML (for :func:`yaml_line` in later checks).

    >>> validated_yaml("a: 1\nb: x\n", {"properties": {"b": {"type": "integer"}}}, "f.yaml")
    Traceback (most recent call last):
    ...
    settings.errors.ConfigError: f.yaml:2: b: 'x' is not of type 'integer'
    """
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise error(f"{source}: not valid YAML: {e}") from e
    problems = sorted(jsonschema.Draft202012Validator(schema).iter_errors(data), key=lambda e: list(e.path))
    if problems:
        first = problems[0]
        where = ".".join(str(p) for p in first.path) or "(top level)"
        message = (messages or {}).get(str(first.validator), first.message)
        raise error(f"{source}:{yaml_line(node, list(first.path))}: {where}: {message}")
    return data, node


def yaml_line(node: yaml.Node | None, path: Sequence[Any]) -> int:
    """The 1-based line of ``path`` (keys and indexes) in a composed YAML document: the deepest node found."""
    line = 1 if node is None else node.start_mark.line + 1
    for part in path:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
        if node is None:
            break
        line = node.start_mark.line + 1
    return line
