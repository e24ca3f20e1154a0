"""Manifests are read without running plugin code, and every field is validated."""

from __future__ import annotations

from pathlib import Path

import pytest

from plugmarket.capabilities import Capability
from plugmarket.errors import ManifestError
from plugmarket.manifest import read_manifest, read_manifest_text


def test_literal_manifest_is_read_without_running_the_module(tmp_path: Path) -> None:
    plugin = tmp_path / "p.py"
    marker = tmp_path / "ran"
    plugin.write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "__plugin__ = {'id': 'csv-tools', 'version': '1.2', 'requires': ['table-kit>=1,<2'],\n"
        "              'capabilities': ['fs.read:~/data/*', 'display'], 'host': '>=1,<2'}\n"
    )
    manifest = read_manifest(plugin)
    assert manifest.id == "csv-tools"
    assert str(manifest.version) == "1.2"
    assert manifest.requirement_ids() == ("table-kit",)
    assert manifest.capabilities == (Capability("fs.read", "~/data/*"), Capability("display"))
    assert manifest.supports_host()
    assert not marker.exists()


def test_toml_manifest_in_a_package(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "plugin.toml").write_text('id = "units"\nversion = "2.0b1"\ntags = ["science"]\n')
    manifest = read_manifest(pkg)
    assert (manifest.id, str(manifest.version), manifest.tags) == ("units", "2.0b1", ("science",))
    assert manifest.to_dict() == {"id": "units", "version": "2.0b1", "tags": ["science"]}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"id": "../x", "version": "1"}, "id"),
        ({"id": "a/b", "version": "1"}, "id"),
        ({"id": "Upper", "version": "1"}, "id"),
        ({"id": "ok", "version": "one"}, "version"),
        ({"id": "ok", "version": "1", "requires": ["bad req !"]}, "requires"),
        ({"id": "ok", "version": "1", "requires": ["x @ https://e.org/x.whl"]}, "requires"),
        ({"id": "ok", "version": "1", "host": "~~1"}, "host"),
        ({"id": "ok", "version": "1", "capabilities": ["root"]}, "capabilities"),
        ({"id": "ok", "version": "1", "capabilities": ["display:x"]}, "capabilities"),
        ({"id": "ok", "version": "1", "capabilities": ["net:bad host"]}, "capabilities"),
        ({"id": "ok", "version": "1", "entry": "../evil"}, "entry"),
        ({"id": "ok", "version": "1", "tags": "notalist"}, "tags"),
        ({"id": "ok", "version": "1", "colour": "red"}, "colour"),
        ({"version": "1"}, "id"),
    ],
)
def test_invalid_fields_name_the_file_and_the_field(fields: dict[str, object], field: str) -> None:
    with pytest.raises(ManifestError) as info:
        read_manifest_text(f"__plugin__ = {fields!r}\n", path="plugin.py")
    assert info.value.field == field
    assert info.value.path == "plugin.py"
    assert "plugin.py" in str(info.value)


def test_computed_manifest_is_refused_not_evaluated() -> None:
    with pytest.raises(ManifestError, match="plain dict literal"):
        read_manifest_text("__plugin__ = dict(id=__import__('os').getcwd())\n", path="p.py")


def test_missing_manifest_says_what_to_add(tmp_path: Path) -> None:
    (tmp_path / "__init__.py").write_text("x = 1\n")
    with pytest.raises(ManifestError, match=r"plugin\.toml"):
        read_manifest(tmp_path)


def test_broken_toml_is_a_manifest_error(tmp_path: Path) -> None:
    (tmp_path / "plugin.toml").write_text('id = "x\n')
    with pytest.raises(ManifestError, match="not valid TOML"):
        read_manifest(tmp_path)


@pytest.mark.parametrize("value", ["csv-tools\n", "csv-tools\n\n"])
def test_an_id_with_a_trailing_newline_is_refused(value: str) -> None:
    with pytest.raises(ManifestError):
        read_manifest_text(f"__plugin__ = {{'id': {value!r}, 'version': '1'}}\n", path="p.py")
