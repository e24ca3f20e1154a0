"""The publisher's tools on real folders: build, publish, yank, sign, verify."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

import plugmarket
from plugmarket._internal import registry_format as fmt
from plugmarket._internal.signing import generate_keypair, load_public_key, verify
from plugmarket._internal.trusted_index import TrustedIndex
from plugmarket.errors import IntegrityError, ManifestError, RegistryError, SourceError
from plugmarket.publish import (
    artifact_manifest,
    build,
    publish,
    sign_index,
    verify_registry,
    yank,
)

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
SCHEMAS = Path(plugmarket.__file__).parent / "schemas"


def write_package(where: Path, plugin_id: str, version: str, body: str = "") -> Path:
    """A package plugin ``where/<id_>/`` with a plugin.toml."""
    package = where / plugin_id.replace("-", "_")
    package.mkdir(parents=True, exist_ok=True)
    (package / "plugin.toml").write_text(
        f'id = "{plugin_id}"\nversion = "{version}"\nname = "{plugin_id.title()}"\n'
        f'summary = "{plugin_id} {version}"\ncategories = ["data"]\ntags = ["csv"]\n'
        'capabilities = ["display"]\nrequires = []\n',
        encoding="utf-8",
    )
    (package / "__init__.py").write_text(f"def activate(ctx):\n    pass\n{body}", encoding="utf-8")
    (package / "helpers.py").write_text("X = 1\n", encoding="utf-8")
    return package


def write_module(where: Path, plugin_id: str, version: str) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    path = where / f"{plugin_id.replace('-', '_')}.py"
    path.write_text(
        f"__plugin__ = {{'id': {plugin_id!r}, 'version': {version!r}}}\n"
        "def activate(ctx):\n    pass\n",
        encoding="utf-8",
    )
    return path


def validators() -> tuple[Draft202012Validator, Draft202012Validator]:
    index = json.loads((SCHEMAS / "index.schema.json").read_text())
    plugin = json.loads((SCHEMAS / "plugin.schema.json").read_text())
    Draft202012Validator.check_schema(index)
    Draft202012Validator.check_schema(plugin)
    registry: Registry[Any] = Registry().with_resources(
        [(s["$id"], Resource.from_contents(s)) for s in (index, plugin)]
    )
    return (
        Draft202012Validator(index, registry=registry),
        Draft202012Validator(plugin, registry=registry),
    )


def assert_schema_valid(root: Path) -> int:
    index_v, plugin_v = validators()
    index_v.validate(json.loads((root / "index.json").read_text()))
    count = 1
    for detail in sorted((root / "plugins").glob("*.json")):
        plugin_v.validate(json.loads(detail.read_text()))
        count += 1
    return count


def trusted_view(root: Path, pub: Path | None, now: datetime = T0) -> TrustedIndex:
    keys = [load_public_key(pub)] if pub else []
    t = TrustedIndex(str(root), trusted_keys=keys, require_signature=bool(keys), now=now)
    sig = root / "index.json.sig"
    t.update_index(
        (root / "index.json").read_bytes(), sig.read_bytes() if sig.exists() else None, now=now
    )
    return t


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return generate_keypair(tmp_path / "keys" / "reg")


# --------------------------------------------------------------------------- build


def test_build_is_reproducible_whatever_the_mtimes_and_caches(tmp_path: Path) -> None:
    package = write_package(tmp_path / "src", "csv-tools", "1.0")
    first = build(package, tmp_path / "a")
    os.utime(package / "helpers.py", (1, 1))
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "helpers.cpython-311.pyc").write_bytes(b"\x00")
    (package / "stale.pyc").write_bytes(b"\x00")
    (package / ".DS_Store").write_bytes(b"\x00")
    (package / "helpers.py").chmod(0o600)
    second = build(package, tmp_path / "b")
    assert first.name == second.name == "csv-tools-1.0.zip"
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(second) as zf:
        infos = zf.infolist()
    names = [i.filename for i in infos]
    assert names == ["csv_tools/__init__.py", "csv_tools/helpers.py", "csv_tools/plugin.toml"]
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.external_attr >> 16 for i in infos} == {0o100644}


def test_build_of_a_single_module(tmp_path: Path) -> None:
    module = write_module(tmp_path / "src", "units", "0.2")
    out = build(module, tmp_path / "dist")
    assert out.name == "units-0.2.zip"
    with zipfile.ZipFile(out) as zf:
        assert zf.namelist() == ["units.py"]
    manifest = artifact_manifest(out.read_bytes(), source=str(out))
    assert (manifest.id, str(manifest.version)) == ("units", "0.2")


def test_build_refuses_a_symbolic_link(tmp_path: Path) -> None:
    package = write_package(tmp_path / "src", "csv-tools", "1.0")
    (package / "secret.txt").symlink_to("/etc/hostname")
    with pytest.raises(SourceError, match="symbolic link"):
        build(package, tmp_path / "dist")
    assert not (tmp_path / "dist").exists()


def test_build_refuses_a_folder_without_a_manifest(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ManifestError, match="no manifest"):
        build(tmp_path / "empty", tmp_path / "dist")


def test_an_artifact_that_is_not_a_zip_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "fake.zip"
    fake.write_bytes(b"not a zip")
    with pytest.raises(SourceError, match="not a zip"):
        publish(fake, tmp_path / "reg", key=None, now=T0)


def test_an_artifact_without_a_manifest_is_refused(tmp_path: Path) -> None:
    bare = tmp_path / "bare.zip"
    with zipfile.ZipFile(bare, "w") as zf:
        zf.writestr("pkg/__init__.py", "def activate(ctx): pass\n")
        zf.writestr("deep/er/plugin.toml", 'id = "x"\nversion = "1"\n')
    with pytest.raises(SourceError, match="no plugin manifest"):
        publish(bare, tmp_path / "reg", key=None, now=T0)


# --------------------------------------------------------------------------- publish


def test_publish_creates_an_unsigned_registry_the_schemas_accept(tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    result = publish(write_package(tmp_path / "src", "csv-tools", "1.0"), reg, key=None, now=T0)
    assert result.changed and result.index_version == 1 and result.keyid is None
    assert "published csv-tools 1.0" in str(result)
    assert not (reg / "index.json.sig").exists()
    assert assert_schema_valid(reg) == 2
    index = trusted_view(reg, None).index
    assert index is not None and index.expires == T0 + timedelta(days=30)
    artifact = reg / "artifacts" / "csv-tools" / "csv-tools-1.0.zip"
    entry = index.plugins["csv-tools"]
    assert entry.capabilities == ("display",) and entry.tags == ("csv",)
    assert dict(entry.latest) == {"stable": "1.0"}
    detail = json.loads((reg / "plugins" / "csv-tools.json").read_text())
    assert (
        detail["versions"][0]["artifact"]["sha256"]
        == hashlib.sha256(artifact.read_bytes()).hexdigest()
    )
    leftovers = [p.name for p in reg.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []
    # Served files are readable by the web server, whatever the publisher's umask.
    for served in (artifact, reg / "index.json", reg / "plugins" / "csv-tools.json"):
        assert served.stat().st_mode & 0o777 == 0o644


def test_three_versions_on_two_channels_then_a_yank(
    tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    key, pub = keys
    reg = tmp_path / "reg"
    src = tmp_path / "src"
    publish(write_package(src / "a", "csv-tools", "1.0"), reg, key=key, now=T0)
    publish(write_package(src / "b", "csv-tools", "1.1"), reg, key=key, now=T0)
    r = publish(
        write_package(src / "c", "csv-tools", "2.0b1"),
        reg,
        key=key,
        channel="beta",
        rollout=0.2,
        now=T0,
    )
    assert r.index_version == 3
    t = trusted_view(reg, pub)
    assert t.index is not None
    assert dict(t.index.plugins["csv-tools"].latest) == {"beta": "2.0b1", "stable": "1.1"}
    detail = t.verify_detail("csv-tools", (reg / "plugins" / "csv-tools.json").read_bytes())
    beta = detail.latest("beta")
    assert beta is not None and beta.rollout == 0.2 and beta.channel == "beta"
    before_yank = (reg / "index.json").read_bytes()

    y = yank(reg, "csv-tools", "1.1", "corrupts data", key=key, now=T0 + timedelta(hours=1))
    assert y.changed and y.index_version == 4
    t = trusted_view(reg, pub, now=T0 + timedelta(hours=1))
    assert t.index is not None
    assert dict(t.index.plugins["csv-tools"].latest) == {"beta": "2.0b1", "stable": "1.0"}
    detail = t.verify_detail("csv-tools", (reg / "plugins" / "csv-tools.json").read_bytes())
    yanked = detail.get("1.1")
    assert yanked is not None and yanked.yanked and yanked.yanked_reason == "corrupts data"
    # The signature file still carries the previous index's signature, so a reader
    # that fetched index.json just before the yank verifies it.
    verify(before_yank, (reg / "index.json.sig").read_bytes(), [load_public_key(pub)])
    assert assert_schema_valid(reg) == 2
    report = verify_registry(reg, [load_public_key(pub)], now=T0 + timedelta(hours=1))
    assert report.ok, report.problems
    assert (report.plugins, report.versions, report.artifacts) == (1, 3, 3)


def test_publishing_the_same_bytes_again_changes_nothing(tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    artifact = build(write_package(tmp_path / "src", "csv-tools", "1.0"), tmp_path / "dist")
    publish(artifact, reg, key=None, now=T0)
    index_before = (reg / "index.json").read_bytes()
    again = publish(artifact, reg, key=None, now=T0 + timedelta(days=1))
    assert not again.changed and "nothing changed" in str(again)
    assert (reg / "index.json").read_bytes() == index_before


def test_publishing_a_version_again_with_other_bytes_is_refused(tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    publish(write_package(tmp_path / "a", "csv-tools", "1.0"), reg, key=None, now=T0)
    snapshot = {p: p.read_bytes() for p in reg.rglob("*") if p.is_file()}
    other = write_package(tmp_path / "b", "csv-tools", "1.0", body="# changed\n")
    with pytest.raises(RegistryError, match="already published with sha256") as info:
        publish(other, reg, key=None, now=T0)
    assert "bump the version" in info.value.hint
    assert {p: p.read_bytes() for p in reg.rglob("*") if p.is_file()} == snapshot


def test_republishing_the_same_bytes_on_another_channel_promotes_it(tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    artifact = build(write_package(tmp_path / "src", "csv-tools", "2.0"), tmp_path / "dist")
    publish(artifact, reg, key=None, channel="beta", rollout=0.1, now=T0)
    index = trusted_view(reg, None).index
    assert index is not None and dict(index.plugins["csv-tools"].latest) == {"beta": "2.0"}
    moved = publish(artifact, reg, key=None, now=T0)
    assert moved.changed and "moved csv-tools 2.0 to channel stable" in str(moved)
    index = trusted_view(reg, None).index
    assert index is not None and dict(index.plugins["csv-tools"].latest) == {"stable": "2.0"}


def test_a_signed_registry_refuses_an_unsigned_change(
    tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    reg = tmp_path / "reg"
    publish(write_package(tmp_path / "a", "csv-tools", "1.0"), reg, key=keys[0], now=T0)
    with pytest.raises(RegistryError, match="is signed"):
        publish(write_package(tmp_path / "b", "csv-tools", "1.1"), reg, key=None, now=T0)
    assert not (reg / "artifacts" / "csv-tools" / "csv-tools-1.1.zip").exists()
    with pytest.raises(RegistryError, match="is signed"):
        yank(reg, "csv-tools", "1.0", "bad", key=None, now=T0)


@pytest.mark.parametrize(("channel", "rollout"), [("Beta", None), ("beta", 0.0), ("beta", 1.5)])
def test_invalid_channel_or_rollout_is_refused(
    tmp_path: Path, channel: str, rollout: float | None
) -> None:
    with pytest.raises(RegistryError):
        publish(
            write_package(tmp_path / "a", "csv-tools", "1.0"),
            tmp_path / "reg",
            key=None,
            channel=channel,
            rollout=rollout,
            now=T0,
        )
    assert not (tmp_path / "reg").exists()


def test_publish_refuses_a_registry_whose_detail_changed_behind_its_index(tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    publish(write_package(tmp_path / "a", "csv-tools", "1.0"), reg, key=None, now=T0)
    detail = reg / "plugins" / "csv-tools.json"
    detail.write_bytes(detail.read_bytes().replace(b'"summary":"csv', b'"summary":"CSV'))
    with pytest.raises(IntegrityError, match="changed outside plugmarket"):
        publish(write_package(tmp_path / "b", "csv-tools", "1.1"), reg, key=None, now=T0)


def test_yank_of_an_unknown_version_or_without_reason_is_refused(tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    publish(write_package(tmp_path / "a", "csv-tools", "1.0"), reg, key=None, now=T0)
    with pytest.raises(RegistryError, match="not published"):
        yank(reg, "csv-tools", "9.9", "bad", key=None, now=T0)
    with pytest.raises(RegistryError, match="not published"):
        yank(reg, "json-view", "1.0", "bad", key=None, now=T0)
    with pytest.raises(RegistryError, match="needs a reason"):
        yank(reg, "csv-tools", "1.0", "  ", key=None, now=T0)


# --------------------------------------------------------------------------- sign, verify


def test_sign_index_renews_expiry_with_a_new_version(
    tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    key, pub = keys
    reg = tmp_path / "reg"
    publish(write_package(tmp_path / "a", "csv-tools", "1.0"), reg, key=None, now=T0)
    signed = sign_index(reg, key)
    assert signed.index_version == 1 and signed.keyid
    later = T0 + timedelta(days=40)  # past the first expiry
    with pytest.raises(RegistryError, match="freeze"):
        trusted_view(reg, pub, now=later)
    renewed = sign_index(reg, key, expires_in=timedelta(days=7), now=later)
    assert renewed.index_version == 2
    t = trusted_view(reg, pub, now=later)
    assert t.index is not None and t.index.expires == later + timedelta(days=7)


def test_verify_lists_every_problem(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    key = keys[0]
    reg = tmp_path / "reg"
    publish(write_package(tmp_path / "a", "csv-tools", "1.0"), reg, key=key, now=T0)
    publish(write_package(tmp_path / "b", "json-view", "1.0"), reg, key=key, now=T0)
    publish(write_package(tmp_path / "c", "json-view", "1.1"), reg, key=key, now=T0)
    (reg / "artifacts" / "csv-tools" / "csv-tools-1.0.zip").write_bytes(b"evil")
    (reg / "artifacts" / "json-view" / "json-view-1.1.zip").unlink()
    other_key, _ = generate_keypair(tmp_path / "other")
    report = verify_registry(reg, [load_public_key(tmp_path / "other.pub")], now=T0)
    assert not report.ok and report.keyid is None
    text = " | ".join(report.problems)
    assert "signed by key" in text
    assert "csv-tools-1.0.zip is 4 bytes" in text
    assert "json-view-1.1.zip is missing" in text
    with pytest.raises(IntegrityError, match="3 problem"):
        report.raise_for_problems()
    assert other_key.exists()


def test_verify_reports_an_expired_index(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    reg = tmp_path / "reg"
    publish(write_package(tmp_path / "a", "csv-tools", "1.0"), reg, key=keys[0], now=T0)
    report = verify_registry(reg, [load_public_key(keys[1])], now=T0 + timedelta(days=31))
    assert [p for p in report.problems if "expired" in p]


def test_two_publishers_on_one_folder_take_turns(tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    sources = [write_package(tmp_path / f"src{i}", f"plugin-{i}", "1.0") for i in range(4)]
    code = (
        "import sys; from plugmarket.publish import publish; "
        "publish(sys.argv[1], sys.argv[2], key=None)"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(s), str(reg)]) for s in sources]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0, 0]
    index = fmt.decode_index((reg / "index.json").read_bytes(), registry="reg")
    assert sorted(index.plugins) == ["plugin-0", "plugin-1", "plugin-2", "plugin-3"]
    assert index.version == 4
    assert verify_registry(reg).ok


def test_a_beta_does_not_change_what_stable_users_read(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    registry.mkdir()
    for version, channel, summary in (
        ("1.0", "stable", "the stable text"),
        ("2.0b1", "beta", "beta text"),
    ):
        plugin = tmp_path / version / "viewer.py"
        plugin.parent.mkdir()
        plugin.write_text(
            f"__plugin__ = {{'id': 'viewer', 'version': {version!r}, 'summary': {summary!r}}}\n"
        )
        publish(plugin, registry, key=None, channel=channel)
    detail = fmt.decode_detail(
        (registry / "plugins" / "viewer.json").read_bytes(), registry="r", plugin_id="viewer"
    )
    assert detail.summary == "the stable text"
    assert [str(v.version) for v in detail.versions] == ["1.0", "2.0b1"]
