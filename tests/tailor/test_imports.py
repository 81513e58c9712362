"""tailor import: what it says before it sends anything (the mapping, the file, its format)."""

from __future__ import annotations

from pathlib import Path

import pytest

from settings import PROJECT_ROOT, Settings
from settings.errors import ConfigError
from tailor.cli import main
from tailor.imports import ImportFileError, import_file, load_mapping

EXAMPLE = PROJECT_ROOT / "config" / "crm-import.yaml"


def test_the_shipped_example_mapping_loads() -> None:
    mapping = load_mapping(EXAMPLE)

    assert mapping.user_id == "customer_id" and mapping.consent == {"personalization": "consent_personalization"}


def test_a_mapping_error_names_the_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "m.yaml"
    bad.write_text("user_id: id\ntraits:\n  email: 3\n")

    with pytest.raises(ConfigError, match=r"m.yaml:3: traits.email: 3 is not of type 'string'"):
        load_mapping(bad)


def test_a_mapping_without_user_id_says_so(tmp_path: Path) -> None:
    bad = tmp_path / "m.yaml"
    bad.write_text("anonymous_id: cookie\n")

    with pytest.raises(ConfigError, match="'user_id' is a required property"):
        load_mapping(bad)


def test_columns_the_header_lacks_are_named_before_anything_is_sent(tmp_path: Path) -> None:
    export = tmp_path / "crm.csv"
    export.write_text("customer_id,email\nc1,a@x\n")

    with pytest.raises(ImportFileError, match=r"lacks; it has \['customer_id', 'email'\]"):
        import_file(Settings.load(), export, load_mapping(EXAMPLE))


def test_an_unknown_extension_asks_for_the_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    export = tmp_path / "crm.txt"
    export.write_text("customer_id\nc1\n")

    assert main(["import", str(export), "--mapping", str(EXAMPLE)]) == 1
    assert "pass --format csv or --format jsonl" in capsys.readouterr().err
