"""``yaml_reader``: PyYAML's reader refuses the same characters, with a pattern that compiles fast."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from parley_sidecar.loading import configuration, manifests, yaml_reader

EVERY_CODE_POINT = "".join(map(chr, range(sys.maxunicode + 1)))


def test_the_two_spellings_match_the_same_code_points() -> None:
    # re.UNICODE, implied for a str pattern, only keeps this compile out of the cache prepare() fills.
    theirs = re.compile(yaml_reader.PYYAML_NON_PRINTABLE, re.UNICODE)
    ours = re.compile(yaml_reader.NON_PRINTABLE)
    assert theirs.pattern != ours.pattern
    assert [m.start() for m in ours.finditer(EVERY_CODE_POINT)] == \
        [m.start() for m in theirs.finditer(EVERY_CODE_POINT)]


def test_a_fresh_sidecar_reads_yaml_with_the_fast_pattern() -> None:
    # In a new process, as in a sidecar: fails if PyYAML spells its class differently one day
    # (prepare() would then do nothing, and every start would pay the slow compile again).
    code = textwrap.dedent("""
        from parley_sidecar.loading import manifests, yaml_reader
        manifests.parse_documents("kind: Component", "a.yaml")
        import yaml
        assert yaml.reader.Reader.NON_PRINTABLE.pattern == yaml_reader.NON_PRINTABLE, "not used"
    """)
    sidecar = Path(manifests.__file__).parents[2]
    done = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(sidecar)},
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("character", ["\x07", "\x7f", "\ud800", "\uffff"])
def test_a_file_with_a_special_character_is_refused_as_before(character: str, tmp_path: Path) -> None:
    with pytest.raises(manifests.ManifestError, match=r"^a\.yaml: not valid YAML$"):
        manifests.parse_documents(f"kind: Component\nmetadata: {{name: x{character}}}\n", "a.yaml")
    if "\ud800" <= character <= "\udfff":
        return  # no UTF-8 file holds a surrogate
    path = tmp_path / "config.yaml"
    path.write_text(f"kind: Configuration\n# {character}\n", encoding="utf-8")
    with pytest.raises(configuration.ConfigurationError) as raised:
        configuration.load(path)
    assert f"unacceptable character #x{ord(character):04x}: special characters are not allowed" in str(raised.value)
