"""Settings changed in a running kernel: ``change_setting`` and ``%plugin config KEY VALUE``."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from plugmarket import loader
from plugmarket.config import RUNTIME_KEYS, change_setting, describe_settings, load_settings
from plugmarket.errors import PlugmarketError
from plugmarket.marketplace import Marketplace
from plugmarket.settings import RegistryConfig, Settings, demo_registry_path

# key -> (what the user types, the Settings field it changes, the value it must hold after)
RUNTIME_TABLE: dict[str, tuple[str, str, object]] = {
    "cache_ttl": ("60", "cache_ttl", 60.0),
    "require_signature": ("True", "require_signature", True),
    "allowed_origins": (
        "https://a.example, https://b.example:8443",
        "allowed_origins",
        ("https://a.example", "https://b.example:8443"),
    ),
    "max_plugin_size": ("1024", "max_plugin_size", 1024),
    "offline": ("True", "offline", True),
    "channel": ("beta", "channel", "beta"),
    "activation_timeout": ("2.5", "activation_timeout", 2.5),
    "registry": (
        "https://plugins.example.com/",
        "registries",
        (RegistryConfig(url="https://plugins.example.com/"),),
    ),
}


def test_the_table_covers_every_runtime_key() -> None:
    assert set(RUNTIME_TABLE) == set(RUNTIME_KEYS)


@pytest.mark.parametrize("key", RUNTIME_KEYS)
def test_every_runtime_key_takes_effect(home: Path, key: str) -> None:
    text, field, expected = RUNTIME_TABLE[key]
    before = load_settings(environ={})
    assert getattr(before, field) != expected
    after = change_setting(before, key, text)
    assert getattr(after, field) == expected
    others = {f.name for f in dataclasses.fields(Settings)} - {field}
    assert {n: getattr(after, n) for n in others} == {n: getattr(before, n) for n in others}


@pytest.mark.parametrize("key", ["enabled", "auto_update", "isolation", "capability_cap"])
def test_settings_read_once_are_refused_with_where_to_set_them(home: Path, key: str) -> None:
    with pytest.raises(PlugmarketError, match="cannot be changed in a running kernel") as info:
        change_setting(Settings(), key, "True")
    assert f"c.Plugmarket.{key}" in info.value.hint
    assert "restart" in info.value.hint


def test_an_unknown_key_is_refused_naming_the_ones_that_can_change(home: Path) -> None:
    with pytest.raises(PlugmarketError, match="no such setting") as info:
        change_setting(Settings(), "colour", "blue")
    assert "cache_ttl" in info.value.hint


@pytest.mark.parametrize("text", ["", "none"])
def test_allowed_origins_can_be_emptied(home: Path, text: str) -> None:
    settings = Settings(allowed_origins=("https://a.example",))
    assert change_setting(settings, "allowed_origins", text).allowed_origins == ()


def test_a_bad_origin_is_refused_naming_it(home: Path) -> None:
    with pytest.raises(PlugmarketError, match=r"allowed_origins\[1\]"):
        change_setting(Settings(), "allowed_origins", "https://a.example,ftp://b.example")


def test_a_registry_with_a_bad_scheme_is_a_plugmarket_error(home: Path) -> None:
    with pytest.raises(PlugmarketError, match="ftp://x") as info:
        change_setting(Settings(), "registry", "ftp://x")
    assert "https://" in info.value.hint


def test_the_demo_registry_keeps_its_trusted_key(home: Path) -> None:
    elsewhere = Settings(registries=(RegistryConfig(url="https://plugins.example.com/"),))
    for text in (str(demo_registry_path()), demo_registry_path().as_uri()):
        (chosen,) = change_setting(elsewhere, "registry", text).registries
        assert chosen.name == "demo"
        assert chosen.trusted_keys == (str(demo_registry_path() / "demo.pub"),)


def test_a_configured_registry_keeps_its_keys_after_another_was_chosen(
    home: Path, shell: Any
) -> None:
    company = {
        "url": "https://plugins.example.com/",
        "name": "company",
        "trusted_keys": ["AAAA"],
        "priority": 10,
    }
    shell.config.Plugmarket.registries = [company]
    settings = load_settings(environ={})
    moved = change_setting(settings, "registry", "https://other.example.org/")
    assert moved.registries == (RegistryConfig(url="https://other.example.org/"),)
    (back,) = change_setting(moved, "registry", "https://plugins.example.com").registries
    assert back == RegistryConfig(
        url="https://plugins.example.com/", name="company", trusted_keys=("AAAA",), priority=10
    )


def test_an_unknown_registry_is_trusted_with_the_environment_keys(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLUGMARKET_TRUSTED_KEYS", "key-one, key-two")
    (chosen,) = change_setting(Settings(), "registry", "https://new.example/").registries
    assert chosen.trusted_keys == ("key-one", "key-two")


def test_plugin_config_allowed_origins_reaches_the_marketplace(home: Path, shell: Any) -> None:
    shell.run_line_magic("load_ext", "plugmarket")
    try:
        shell.run_line_magic("plugin", "config allowed_origins https://a.example")
        market = shell._plugmarket_magics.market
        assert market.settings.allowed_origins == ("https://a.example",)
    finally:
        shell.run_line_magic("unload_ext", "plugmarket")
    assert loader.loaded() == {}


def test_the_terminal_shows_the_settings_as_the_kernel_does(home: Path) -> None:
    """``plugmarket config`` prints describe_settings, the text ``%plugin config`` shows."""
    done = subprocess.run(
        [sys.executable, "-m", "plugmarket", "config"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PLUGMARKET_CACHE_TTL": "42"},
    )
    assert done.returncode == 0, done.stderr
    market = Marketplace(
        settings=load_settings(environ={**os.environ, "PLUGMARKET_CACHE_TTL": "42"}), live=False
    )
    expected = describe_settings(market.settings)  # with the home's own user id filled in
    assert done.stdout == f"{expected!r}\n"
    assert "cache_ttl" in done.stdout and "42.0" in done.stdout
    assert f"\nregistries           {demo_registry_path()}\n" in done.stdout


def test_a_registry_typed_back_as_shown_keeps_its_credentials(home: Path) -> None:
    private = RegistryConfig("https://team:s3cr3t@plugins.example.org/r/", trusted_keys=("K",))
    settings = Settings(registries=(private,))
    assert "s3cr3t" not in repr(settings) and "s3cr3t" not in private.label
    (same,) = change_setting(settings, "registry", "https://plugins.example.org/r/").registries
    assert same == private  # the token and the keys stay
    new_token = "https://team:n3w@plugins.example.org/r/"
    (renewed,) = change_setting(settings, "registry", new_token).registries
    assert (renewed.url, renewed.trusted_keys) == (new_token, ("K",))
