"""The README is a user's guide: short, its settings table generated from the code, its commands real."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from probeguard.cli import COMMANDS
from probeguard.detector.typed_config import env_name
from probeguard.settings_doc import BEGIN, END, SETTINGS_CLASSES, field_comments, replace_table, settings_table

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_settings_table_is_the_generated_one():
    assert BEGIN in README and END in README
    assert replace_table(README) == README, "run: python -m probeguard.settings_doc --write README.md"


def test_every_setting_is_documented_in_its_class():
    for cls in SETTINGS_CLASSES:
        comments = field_comments(cls)
        missing = [f.name for f in dataclasses.fields(cls) if not comments.get(f.name)]
        assert not missing, f"{cls.__name__}: fields without a comment above them: {missing}"
    table = settings_table()
    for cls in SETTINGS_CLASSES:
        for f in dataclasses.fields(cls):
            assert f"| `{env_name(f)}` |" in table


def test_the_generated_table_changes_with_the_code(monkeypatch):
    from probeguard.service import settings

    source = settings.ServiceSettings
    monkeypatch.setattr("probeguard.settings_doc.SETTINGS_CLASSES", (source,))
    assert "PROBEGUARD_CACHE" not in settings_table(), "the table is built from the classes, not stored"


def test_readme_is_short_and_names_only_real_commands():
    assert len(README.splitlines()) <= 300
    code = "\n".join(re.findall(r"```bash\n(.*?)```", README, flags=re.S))
    named = set(re.findall(r"^(?:PROBEGUARD_\w+=\S+ )*probeguard (\w+)", code, flags=re.M))
    assert named and named <= {c.name for c in COMMANDS}, named - {c.name for c in COMMANDS}
    for link in re.findall(r"\]\(([^)#]+)\)", README):
        assert (ROOT / link).exists(), link
