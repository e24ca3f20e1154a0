"""The Plugmarket configurable: real config files, environment overrides, validation."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from traitlets import TraitError
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from plugmarket.config import Plugmarket, load_settings
from plugmarket.errors import PlugmarketError
from plugmarket.settings import RegistryConfig, Settings

CONFIG_TEXT = """
c.Plugmarket.cache_ttl = 600
c.Plugmarket.registries = [
    {"url": "https://plugins.example.com/", "name": "company",
     "trusted_keys": ["AAAA", "/etc/plugmarket/company.pub"], "priority": 10},
    {"url": "/srv/registry"},
]
c.Plugmarket.require_signature = True
c.Plugmarket.allowed_origins = ["https://downloads.example.com"]
c.Plugmarket.max_plugin_size = 1048576
c.Plugmarket.capability_cap = ["display", "net:*.example.com"]
c.Plugmarket.offline = True
c.Plugmarket.auto_update = True
c.Plugmarket.channel = "beta"
c.Plugmarket.isolation = "process"
c.Plugmarket.activation_timeout = 2.5
c.Plugmarket.enabled = False
c.Plugmarket.home = "{home}"
"""

# What issue 4 and DESIGN.md ask the configuration to cover.
REQUIRED_TRAITS = {
    "enabled",
    "registries",
    "cache_ttl",
    "require_signature",
    "allowed_origins",
    "max_plugin_size",
    "capability_cap",
    "offline",
    "auto_update",
    "channel",
    "isolation",
    "activation_timeout",
    "home",
}


def load_file(folder: Path, name: str, text: str) -> Config:
    """Load a real config file the way Jupyter and IPython do."""
    (folder / name).write_text(textwrap.dedent(text))
    return PyFileConfigLoader(name, path=str(folder)).load_config()


@pytest.mark.parametrize("name", ["ipython_config.py", "jupyter_server_config.py"])
def test_config_file_reaches_settings(home: Path, tmp_path: Path, name: str) -> None:
    config = load_file(tmp_path, name, CONFIG_TEXT.replace("{home}", str(home / "state")))
    settings = Plugmarket(config=config).to_settings(environ={})
    assert settings.cache_ttl == 600.0
    assert settings.registries == (
        RegistryConfig(
            url="https://plugins.example.com/",
            name="company",
            trusted_keys=("AAAA", "/etc/plugmarket/company.pub"),
            priority=10,
        ),
        RegistryConfig(url="/srv/registry"),
    )
    assert settings.require_signature is True
    assert settings.allowed_origins == ("https://downloads.example.com",)
    assert settings.max_plugin_size == 1048576
    assert settings.capability_cap == ("display", "net:*.example.com")
    assert settings.offline is True
    assert settings.auto_update is True
    assert settings.channel == "beta"
    assert settings.isolation == "process"
    assert settings.activation_timeout == 2.5
    assert settings.enabled is False
    assert settings.home == home / "state"


def test_defaults_are_the_settings_defaults(home: Path) -> None:
    settings = load_settings(environ={})
    defaults = Settings()
    assert settings == defaults  # the home fixture sets PLUGMARKET_HOME for both
    assert settings.registries[0].name == "demo"


def test_an_empty_registry_list_means_no_registries(home: Path) -> None:
    config = Config()
    config.Plugmarket.registries = []
    assert load_settings(config=config, environ={}).registries == ()


def test_environment_beats_config(home: Path, tmp_path: Path) -> None:
    config = load_file(
        tmp_path, "ipython_config.py", CONFIG_TEXT.replace("{home}", str(tmp_path / "configured"))
    )
    environ = {
        "PLUGMARKET_HOME": str(tmp_path / "from-env"),
        "PLUGMARKET_REGISTRY": "https://env.example.org/registry/",
        "PLUGMARKET_TRUSTED_KEYS": "key-one, key-two",
        "PLUGMARKET_REQUIRE_SIGNATURE": "0",
        "PLUGMARKET_CACHE_TTL": "60",
        "PLUGMARKET_OFFLINE": "0",
    }
    settings = Plugmarket(config=config).to_settings(environ=environ)
    assert settings.home == tmp_path / "from-env"
    assert settings.registries == (
        RegistryConfig(
            url="https://env.example.org/registry/", trusted_keys=("key-one", "key-two")
        ),
    )
    assert settings.require_signature is False
    assert settings.cache_ttl == 60.0
    assert settings.offline is False
    assert settings.channel == "beta"  # not overridable from the environment: config holds


def test_explicit_arguments_beat_environment(home: Path, tmp_path: Path) -> None:
    environ = {"PLUGMARKET_HOME": str(tmp_path / "env"), "PLUGMARKET_REGISTRY": "/env/registry"}
    settings = load_settings(home=tmp_path / "arg", registry="/arg/registry", environ=environ)
    assert settings.home == tmp_path / "arg"
    assert settings.registries == (RegistryConfig(url="/arg/registry"),)


def test_process_environment_is_the_default(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLUGMARKET_CACHE_TTL", "42")
    assert load_settings().cache_ttl == 42.0
    assert load_settings().home == home


def test_shell_config_reaches_settings(shell: Any, home: Path) -> None:
    """How a kernel gets it: the extension passes the shell's config, or parents on it."""
    shell.config.Plugmarket.cache_ttl = 900
    shell.config.Plugmarket.channel = "beta"
    assert load_settings(config=shell.config, environ={}).cache_ttl == 900.0
    assert Plugmarket(parent=shell).to_settings(environ={}).channel == "beta"


def test_every_trait_has_help_text() -> None:
    traits = Plugmarket.class_traits(config=True)
    assert set(traits) >= REQUIRED_TRAITS
    for name, trait in traits.items():
        assert trait.help and len(trait.help) > 20, f"Plugmarket.{name} has no help text"
    own = {n for n in Plugmarket.class_traits() if n not in {"config", "parent", "log"}}
    assert own == set(traits), "every Plugmarket trait is configurable"


def test_help_is_shown_by_traitlets() -> None:
    text = Plugmarket.class_get_help()
    assert "--Plugmarket.cache_ttl" in text
    assert "Seconds registry metadata is used" in text


BAD_VALUES: list[tuple[str, object, str]] = [
    ("cache_ttl", -1, "Plugmarket.cache_ttl"),
    ("cache_ttl", float("nan"), "Plugmarket.cache_ttl"),
    ("cache_ttl", float("inf"), "Plugmarket.cache_ttl"),
    ("cache_ttl", "soon", "cache_ttl"),
    ("activation_timeout", 0, "Plugmarket.activation_timeout"),
    ("max_plugin_size", 0, "Plugmarket.max_plugin_size"),
    ("isolation", "sandbox", "Plugmarket.isolation"),
    ("channel", "Beta Channel", "Plugmarket.channel"),
    ("capability_cap", ["display", "teleport"], "Plugmarket.capability_cap[1]"),
    ("allowed_origins", ["https://ok.example.com", "ftp://x"], "Plugmarket.allowed_origins[1]"),
    ("allowed_origins", ["https://example.com/path"], "Plugmarket.allowed_origins[0]"),
    ("allowed_origins", ["https://user@example.com"], "Plugmarket.allowed_origins[0]"),
    ("allowed_origins", ["https://example.com:99999"], "Plugmarket.allowed_origins[0]"),
    ("home", "bad\x00home", "Plugmarket.home"),
    ("registries", [{"name": "no-url"}], "Plugmarket.registries[0].url"),
    ("registries", [{"url": ""}], "Plugmarket.registries[0].url"),
    ("registries", [{"url": "ftp://old.example.com/"}], "Plugmarket.registries[0].url"),
    ("registries", [{"url": "/r", "mirror": "/m"}], "Plugmarket.registries[0] has the unknown"),
    ("registries", [{"url": "/r", "priority": "high"}], "Plugmarket.registries[0].priority"),
    ("registries", [{"url": "/r", "priority": True}], "Plugmarket.registries[0].priority"),
    (
        "registries",
        [{"url": "/r", "trusted_keys": "AAAA"}],
        "Plugmarket.registries[0].trusted_keys",
    ),
    (
        "registries",
        [{"url": "/r", "trusted_keys": [""]}],
        "Plugmarket.registries[0].trusted_keys[0]",
    ),
    ("registries", [{"url": "/r", "name": 7}], "Plugmarket.registries[0].name"),
    ("registries", [{"url": "/a", "name": "x"}, {"url": "/b", "name": "x"}], "repeats registry"),
    ("registries", ["https://not-a-dict/"], "registries"),
]


@pytest.mark.parametrize(("name", "value", "named"), BAD_VALUES)
def test_invalid_setting_is_refused_naming_it(
    home: Path, name: str, value: object, named: str
) -> None:
    config = Config()
    config.Plugmarket[name] = value
    with pytest.raises(PlugmarketError) as info:
        load_settings(config=config, environ={})
    assert named in str(info.value)
    assert "c.Plugmarket" in str(info.value)  # the hint says where to fix it
    assert isinstance(info.value.__cause__, TraitError)


def test_invalid_setting_is_refused_when_set_at_run_time() -> None:
    configurable = Plugmarket()
    with pytest.raises(TraitError, match=r"Plugmarket\.isolation"):
        configurable.isolation = "container"
    assert configurable.isolation == "inprocess"


def test_invalid_config_file_is_refused(home: Path, tmp_path: Path) -> None:
    config = load_file(tmp_path, "ipython_config.py", "c.Plugmarket.cache_ttl = -5\n")
    with pytest.raises(PlugmarketError, match=r"Plugmarket\.cache_ttl is -5\.0"):
        load_settings(config=config, environ={})


@pytest.mark.parametrize("ttl", ["-1", "nan", "soon"])
def test_invalid_environment_ttl_is_refused(home: Path, ttl: str) -> None:
    with pytest.raises(PlugmarketError, match="PLUGMARKET_CACHE_TTL"):
        load_settings(environ={"PLUGMARKET_CACHE_TTL": ttl})


def test_import_plugmarket_does_not_import_config() -> None:
    code = (
        "import sys, plugmarket; "
        "print('plugmarket.config' in sys.modules, 'traitlets' in sys.modules); "
        "import plugmarket.config; "
        "print(sorted(m for m in ('httpx', 'cryptography', 'packaging', 'IPython') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[0] == "False False"
    assert out[1] == "[]"


def test_in_a_kernel_the_shells_own_config_is_used(shell: Any, home: Path) -> None:
    shell.config.Plugmarket.cache_ttl = 600.0  # as ipython_config.py would set it
    assert load_settings().cache_ttl == 600


def test_one_registry_listed_twice_with_other_credentials_is_refused(home: Path) -> None:
    cfg = Config()
    cfg.Plugmarket.registries = [
        {"url": "https://old:t0k@plugins.example.org/r/", "name": "a"},
        {"url": "https://plugins.example.org/r", "name": "b"},
    ]
    with pytest.raises(TraitError, match="list each registry once") as refused:
        Plugmarket(config=cfg)
    assert "t0k" not in str(refused.value)


def test_a_registry_url_that_cannot_be_read_is_refused_without_echoing_it(home: Path) -> None:
    from plugmarket.errors import RegistryError
    from plugmarket.registry import RegistryClient

    bad = RegistryConfig("https://team:ab/cd@plugins.example.org/", name="private")
    assert "ab/cd" not in repr(bad)
    with pytest.raises(RegistryError, match="percent-encoded") as refused:
        RegistryClient(Settings(home=home, registries=(bad,)))
    assert "ab/cd" not in str(refused.value) and "private" in str(refused.value)
