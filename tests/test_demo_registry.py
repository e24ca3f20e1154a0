"""The demo registry shipped in the package: signed, complete, up to date, and loadable.

It is what a fresh install searches, so these tests read it the ways a user
does: through the publisher's verifier with the shipped public key, through the
registry client with default settings, and by loading every artifact in it.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest

from plugmarket import loader
from plugmarket._internal import registry_format as fmt
from plugmarket._internal.signing import key_id, load_private_key, load_public_key
from plugmarket.host import PlainHost
from plugmarket.loader import LoadedPlugin, load
from plugmarket.publish import verify_registry
from plugmarket.registry import RegistryClient
from plugmarket.settings import Settings, demo_registry_path
from plugmarket.sources import Source
from tests.support.demo import BUILD_SCRIPT, DEMO_PLUGINS, DEMO_REGISTRY, unload_all

PUBLIC_KEY = DEMO_REGISTRY / "demo.pub"


@pytest.fixture(scope="module")
def script() -> Iterator[ModuleType]:
    """scripts/build_demo_registry.py as a module (dataclasses need it in sys.modules)."""
    name = "_build_demo_registry"
    spec = importlib.util.spec_from_file_location(name, BUILD_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[name]


def _index() -> fmt.Index:
    return fmt.decode_index((DEMO_REGISTRY / fmt.INDEX_FILE).read_bytes(), registry="demo")


def _detail(plugin_id: str) -> fmt.PluginDetail:
    data = (DEMO_REGISTRY / fmt.detail_path(plugin_id)).read_bytes()
    return fmt.decode_detail(data, registry="demo", plugin_id=plugin_id)


def test_settings_point_at_the_shipped_registry_and_key() -> None:
    assert demo_registry_path() == DEMO_REGISTRY
    (config,) = Settings(home=Path("/nonexistent")).registries
    assert Path(config.url) == DEMO_REGISTRY
    assert config.trusted_keys == (str(PUBLIC_KEY),)


def test_shipped_registry_verifies_with_the_shipped_public_key() -> None:
    public = load_public_key(PUBLIC_KEY)
    report = verify_registry(DEMO_REGISTRY, [public])
    assert report.problems == ()
    assert report.keyid == key_id(public)
    assert report.plugins >= 8
    assert report.artifacts == report.versions >= 12


def test_demo_pub_is_the_public_half_of_the_demo_key() -> None:
    private = load_private_key(DEMO_PLUGINS / "demo.key")
    assert key_id(private.public_key()) == key_id(load_public_key(PUBLIC_KEY))


def test_a_registry_signed_by_another_key_fails_verification(tmp_path: Path) -> None:
    from plugmarket._internal.signing import generate_keypair

    _, other = generate_keypair(tmp_path / "other")
    report = verify_registry(DEMO_REGISTRY, [load_public_key(other)])
    assert not report.ok
    assert report.keyid is None


def test_shipped_registry_is_what_demo_plugins_build_byte_for_byte(
    tmp_path: Path, script: ModuleType
) -> None:
    built = script.build_registry(tmp_path / "rebuilt")
    assert script.differences(built, DEMO_REGISTRY) == [], (
        "plugmarket/demo_registry is out of date with demo_plugins/: "
        "run .venv/bin/python scripts/build_demo_registry.py"
    )


def test_shipped_registry_does_not_expire_under_users_feet() -> None:
    index = _index()
    assert index.expires == datetime(2036, 1, 1, tzinfo=UTC)
    # Fails a year before expiry on purpose: move EXPIRES on and rebuild.
    assert index.expires - datetime.now(UTC) > timedelta(days=365)


def test_shipped_registry_has_two_versions_a_beta_and_a_yanked_version() -> None:
    index = _index()
    assert len(index.plugins) >= 8
    units = _detail("units")
    assert [str(v.version) for v in units.versions] == ["1.0.0", "1.1.0"]
    assert {v.channel for v in units.versions} == {"stable"}
    assert dict(index.plugins["units"].latest) == {"stable": "1.1.0"}

    viewer = _detail("json-viewer")
    beta = viewer.get("2.0.0b1")
    assert beta is not None and beta.channel == "beta" and not beta.yanked
    assert dict(index.plugins["json-viewer"].latest) == {"stable": "1.0.0", "beta": "2.0.0b1"}

    csv = _detail("csv-preview")
    old = csv.get("0.9.0")
    assert old is not None and old.yanked
    assert "whole file" in old.yanked_reason
    assert str(csv.latest().version) == "1.0.0"  # type: ignore[union-attr]


def test_shipped_registry_has_real_dependencies_and_plausible_stats() -> None:
    index = _index()
    users = {
        pid
        for pid in index.plugins
        if any(str(r.name) == "table-kit" for v in _detail(pid).versions for r in v.requires)
    }
    assert users == {"csv-preview", "sqlite-magic", "regex-tester"}
    for entry in index.plugins.values():
        assert entry.rating is not None and 3.5 <= entry.rating <= 5
        assert entry.ratings_count > 0 and entry.downloads > entry.ratings_count
    categories = {c for e in index.plugins.values() for c in e.categories}
    assert {"data", "productivity", "science", "web"} <= categories


def _load_artifact(
    plugin_id: str, version: str, settings: Settings, host: PlainHost
) -> LoadedPlugin:
    """Load one shipped artifact with the grants it declares, its dependencies first."""
    info = _detail(plugin_id).get(version)
    assert info is not None
    for requirement in info.requires:
        dep = str(requirement.name)
        if dep not in loader.loaded():
            dep_detail = _detail(dep)
            best = max(
                (v for v in dep_detail.versions if requirement.specifier.contains(v.version)),
                key=lambda v: v.version,
            )
            _load_artifact(dep, str(best.version), settings, host)
    return load(
        Source.local(DEMO_REGISTRY / info.artifact.url),
        grants=info.capabilities,
        host=host,
        settings=settings,
    )


def test_every_shipped_artifact_loads_with_the_grants_it_declares(home: Path) -> None:
    settings = Settings(home=home)
    loaded = []
    for plugin_id in _index().plugins:
        for info in _detail(plugin_id).versions:
            host = PlainHost(sink=lambda obj: None)
            plugin = _load_artifact(plugin_id, str(info.version), settings, host)
            assert (plugin.id, plugin.version) == (plugin_id, info.version)
            assert [str(c) for c in plugin.manifest.capabilities] == list(info.capabilities)
            loaded.append(f"{plugin_id} {info.version}")
            unload_all()
    assert len(loaded) >= 12


def test_registry_client_finds_the_demo_plugins_out_of_the_box(home: Path) -> None:
    with RegistryClient(Settings(home=home)) as client:
        everything = client.search(limit=100)
        assert len(everything) == len(_index().plugins)
        assert {hit.registry for hit in everything} == {"demo"}
        assert client.search("csv")[0].id == "csv-preview"
        assert client.search("sql")[0].id == "sqlite-magic"
        assert [h.id for h in client.search(category="science")] == ["units"]
        assert client.search("json")[0].id == "json-viewer"
        assert client.search("json")[0].version == "1.0.0"
        versions = [str(v.version) for v in client.versions("csv-preview")]
        assert versions == ["1.0.0", "0.9.0"]  # newest first
