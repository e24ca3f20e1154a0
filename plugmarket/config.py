"""Jupyter-style configuration: the ``Plugmarket`` configurable, converted once to ``Settings``.

Admins and users configure plugmarket the way they configure Jupyter, in
``ipython_config.py`` or ``jupyter_server_config.py``::

    c.Plugmarket.cache_ttl = 600
    c.Plugmarket.registries = [
        {"url": "https://plugins.example.com/", "name": "company",
         "trusted_keys": ["/etc/plugmarket/company.pub"], "priority": 10},
    ]
    c.Plugmarket.capability_cap = ["display", "ipython.magics", "net:*.example.com"]

Every trait carries help text and is validated when it is set, so a bad
value is refused with a message naming the setting. :func:`load_settings`
translates that refusal into a :class:`~plugmarket.errors.PlugmarketError`.

How the configuration reaches plugmarket: nothing here searches for config
files. Whoever builds the configurable passes the traitlets ``Config`` it
already has: the IPython extension passes the shell's (``load_settings(
config=shell.config)``, or ``Plugmarket(parent=shell)``), the Jupyter server
extension the server app's (``serverapp.config``), and the terminal CLI none
(defaults and environment). Invariants:

- The core never sees traitlets: :meth:`Plugmarket.to_settings` converts
  the traits once into the frozen :class:`~plugmarket.settings.Settings`.
- Environment variables beat the config files, and explicit ``home`` /
  ``registry`` arguments beat both; that order lives in
  :func:`plugmarket.settings.from_env`, used here, not repeated.
- Trait defaults are read from ``Settings``, so the two never disagree.
- Nothing imports this module on ``import plugmarket``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from traitlets import Bool, Dict, Float, Int, List, TraitError, Unicode, validate
from traitlets.config import Config, Configurable
from traitlets.config.loader import PyFileConfigLoader

from plugmarket.errors import PlugmarketError
from plugmarket.settings import RegistryConfig, Settings, _demo_registry, from_env, shown_url

__all__ = ["ISOLATION_MODES", "Plugmarket", "discovered_config", "load_settings"]

ISOLATION_MODES = ("inprocess", "process")
_DEFAULTS: dict[str, Any] = {
    f.name: f.default for f in dataclasses.fields(Settings) if f.default is not dataclasses.MISSING
}
_REGISTRY_KEYS = {"url": str, "name": str, "trusted_keys": list, "priority": int}
_KIND_NAMES = {str: "text", list: "list of keys", int: "whole number"}
_CONTROL = re.compile("[\x00-\x1f\x7f]")


class Plugmarket(Configurable):
    """plugmarket's settings, for ``ipython_config.py`` and ``jupyter_server_config.py``."""

    enabled = Bool(
        _DEFAULTS["enabled"],
        help="Load plugmarket's plugins in this kernel or server. False keeps them all "
        "installed but unloaded.",
    ).tag(config=True)

    registries = List(
        Dict(),
        default_value=None,
        allow_none=True,
        help="Registries to search and install from, each a dict: 'url' (https/http/file "
        "URL or a folder, required), 'name' (short label), 'trusted_keys' (list of Ed25519 "
        "public keys, base64 or .pub file paths; with keys a valid signature is required), "
        "'priority' (integer; higher wins when two registries have the same plugin). "
        "None (the default) uses the demo registry shipped with plugmarket. "
        "PLUGMARKET_REGISTRY replaces this list.",
    ).tag(config=True)

    cache_ttl = Float(
        _DEFAULTS["cache_ttl"],
        help="Seconds registry metadata is used without asking the server again "
        "(0: revalidate every time). PLUGMARKET_CACHE_TTL overrides it.",
    ).tag(config=True)

    require_signature = Bool(
        _DEFAULTS["require_signature"],
        help="Refuse registry indexes that are unsigned or wrongly signed, even for "
        "registries without trusted keys. PLUGMARKET_REQUIRE_SIGNATURE=1 overrides it.",
    ).tag(config=True)

    allowed_origins = List(
        Unicode(),
        default_value=list(_DEFAULTS["allowed_origins"]),
        help="Origins ('https://host[:port]') that plugin artifacts may be downloaded from "
        "besides their registry's own. Empty: only the registry's origin.",
    ).tag(config=True)

    max_plugin_size = Int(
        _DEFAULTS["max_plugin_size"],
        help="The largest plugin artifact downloaded, in bytes.",
    ).tag(config=True)

    capability_cap = List(
        Unicode(),
        default_value=None,
        allow_none=True,
        help="The most any plugin may be granted, as capabilities ('display', "
        "'net:*.example.com', 'fs.read:~/data'). A plugin requesting more is refused "
        "outright. None (the default): no cap beyond the user's consent.",
    ).tag(config=True)

    offline = Bool(
        _DEFAULTS["offline"],
        help="Never use the network; serve registries from the local cache only. "
        "PLUGMARKET_OFFLINE=1 overrides it.",
    ).tag(config=True)

    auto_update = Bool(
        _DEFAULTS["auto_update"],
        help="Update installed plugins when a registry has a newer version that asks for "
        "no capability beyond those already granted.",
    ).tag(config=True)

    channel = Unicode(
        _DEFAULTS["channel"],
        help="The release channel to install from: 'stable', or one a registry offers "
        "such as 'beta'.",
    ).tag(config=True)

    isolation = Unicode(
        _DEFAULTS["isolation"],
        help="How plugins run by default: 'inprocess' (in the kernel, with capability "
        "guard-rails) or 'process' (in a child process with OS limits, for untrusted code).",
    ).tag(config=True)

    activation_timeout = Float(
        _DEFAULTS["activation_timeout"],
        help="Seconds a plugin's activate() may take before it is stopped and unloaded.",
    ).tag(config=True)

    home = Unicode(
        "",
        help="Where plugmarket keeps all its state (installed plugins, caches, records). "
        "Empty: PLUGMARKET_HOME, else the platform's user data folder.",
    ).tag(config=True)

    # --- validation (each raises TraitError naming the setting) ---------------------

    @validate("registries")
    def _check_registries(self, proposal: dict[str, Any]) -> list[dict[str, Any]] | None:
        value = proposal["value"]
        if value is None:
            return None
        seen: dict[str, int] = {}
        for i, entry in enumerate(value):
            where = f"Plugmarket.registries[{i}]"
            for key in entry:
                if key not in _REGISTRY_KEYS:
                    raise TraitError(
                        f"{where} has the unknown key {key!r}; "
                        f"a registry may have {', '.join(_REGISTRY_KEYS)}"
                    )
            _check_registry_url(where, entry.get("url"))
            for key, kind in _REGISTRY_KEYS.items():
                if key in entry and key != "url" and type(entry[key]) is not kind:
                    raise TraitError(
                        f"{where}.{key} is {entry[key]!r}; expected a {_KIND_NAMES[kind]}"
                    )
            for j, key in enumerate(entry.get("trusted_keys", [])):
                if not isinstance(key, str) or not key.strip() or _CONTROL.search(key):
                    raise TraitError(
                        f"{where}.trusted_keys[{j}] is {key!r}; expected a base64 public key "
                        "or the path of a .pub file"
                    )
            label = entry.get("name") or shown_url(entry["url"])
            if label in seen:
                raise TraitError(
                    f"{where} repeats registry {label!r} (also registries[{seen[label]}]); "
                    "give each registry its own name"
                )
            seen[label] = i
            # Two entries for one registry (its URL told apart only by credentials, or
            # under two names) would share one cache and one trusted index version.
            location = "url " + shown_url(entry["url"]).rstrip("/")
            if location in seen:
                raise TraitError(
                    f"{where} names the registry at {location[4:]!r} again (also "
                    f"registries[{seen[location]}]); list each registry once"
                )
            seen[location] = i
        return list(value)

    @validate("cache_ttl")
    def _check_ttl(self, proposal: dict[str, Any]) -> float:
        value = float(proposal["value"])
        if not math.isfinite(value) or value < 0:
            raise TraitError(
                f"Plugmarket.cache_ttl is {value!r}; expected a number of seconds >= 0"
            )
        return value

    @validate("activation_timeout")
    def _check_timeout(self, proposal: dict[str, Any]) -> float:
        value = float(proposal["value"])
        if not math.isfinite(value) or value <= 0:
            raise TraitError(
                f"Plugmarket.activation_timeout is {value!r}; expected a number of seconds > 0"
            )
        return value

    @validate("max_plugin_size")
    def _check_size(self, proposal: dict[str, Any]) -> int:
        value = int(proposal["value"])
        if value <= 0:
            raise TraitError(
                f"Plugmarket.max_plugin_size is {value!r}; expected a number of bytes > 0"
            )
        return value

    @validate("allowed_origins")
    def _check_origins(self, proposal: dict[str, Any]) -> list[str]:
        for i, origin in enumerate(proposal["value"]):
            parts = urlsplit(origin)
            try:
                parts.port  # noqa: B018 - raises on a malformed port
            except ValueError:
                parts = urlsplit("")
            if (
                parts.scheme not in ("https", "http")
                or not parts.hostname
                or parts.path not in ("", "/")
                or parts.query
                or parts.fragment
                or "@" in parts.netloc
            ):
                raise TraitError(
                    f"Plugmarket.allowed_origins[{i}] is {origin!r}; expected an origin such "
                    "as 'https://downloads.example.com' or 'https://host:8443' (no path)"
                )
        return list(proposal["value"])

    @validate("capability_cap")
    def _check_cap(self, proposal: dict[str, Any]) -> list[str] | None:
        value = proposal["value"]
        if value is None:
            return None
        from plugmarket.capabilities import parse_capability

        for i, text in enumerate(value):
            try:
                parse_capability(text)
            except PlugmarketError as exc:
                raise TraitError(f"Plugmarket.capability_cap[{i}]: {exc}") from exc
        return list(value)

    @validate("channel")
    def _check_channel(self, proposal: dict[str, Any]) -> str:
        from plugmarket._internal.json_fields import channel_ok

        value = str(proposal["value"])
        if not channel_ok(value):
            raise TraitError(
                f"Plugmarket.channel is {value!r}; expected a channel name such as 'stable' "
                "or 'beta' (lower-case letters, digits and '-')"
            )
        return value

    @validate("isolation")
    def _check_isolation(self, proposal: dict[str, Any]) -> str:
        value = str(proposal["value"])
        if value not in ISOLATION_MODES:
            raise TraitError(
                f"Plugmarket.isolation is {value!r}; expected one of "
                f"{', '.join(repr(m) for m in ISOLATION_MODES)}"
            )
        return value

    @validate("home")
    def _check_home(self, proposal: dict[str, Any]) -> str:
        value = str(proposal["value"])
        if _CONTROL.search(value):
            raise TraitError(f"Plugmarket.home is {value!r}; expected a folder path")
        return value

    # --- conversion ---------------------------------------------------------------

    def to_settings(self, environ: Mapping[str, str] | None = None) -> Settings:
        """The frozen settings these traits describe, with the environment applied.

        Args:
            environ: The environment to read ``PLUGMARKET_*`` variables from
                (default: ``os.environ``); they beat the configuration.

        Raises:
            PlugmarketError: an environment variable holds an invalid value.
        """
        return self._convert(environ, home=None, registry=None)

    def _convert(
        self, environ: Mapping[str, str] | None, *, home: Path | str | None, registry: str | None
    ) -> Settings:
        changes: dict[str, Any] = {
            "enabled": self.enabled,
            "cache_ttl": self.cache_ttl,
            "require_signature": self.require_signature,
            "allowed_origins": tuple(self.allowed_origins),
            "max_plugin_size": self.max_plugin_size,
            "capability_cap": None if self.capability_cap is None else tuple(self.capability_cap),
            "offline": self.offline,
            "auto_update": self.auto_update,
            "channel": self.channel,
            "isolation": self.isolation,
            "activation_timeout": self.activation_timeout,
        }
        if self.registries is not None:
            changes["registries"] = _registry_configs(self.registries)
        if self.home:
            changes["home"] = Path(self.home).expanduser()
        settings = from_env(environ, home=home, registry=registry, base=Settings(**changes))
        if not math.isfinite(settings.cache_ttl) or settings.cache_ttl < 0:
            raise PlugmarketError(
                f"PLUGMARKET_CACHE_TTL is {settings.cache_ttl!r}; expected a number of "
                "seconds >= 0",
                hint="Set it to a number such as 600, or unset it.",
            )
        return settings


def load_settings(
    *,
    home: Path | str | None = None,
    registry: str | None = None,
    config: Config | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """The settings for a :class:`~plugmarket.Marketplace`: config, then environment, then
    the explicit arguments, each beating the one before.

    Args:
        home: Where all state lives; beats ``PLUGMARKET_HOME`` and ``c.Plugmarket.home``.
        registry: A registry URL or folder replacing every configured registry.
        config: A traitlets ``Config`` (a shell's or a server app's ``.config``);
            None finds it as Jupyter does (:func:`discovered_config`).
        environ: The environment (default: ``os.environ``).

    Raises:
        PlugmarketError: a setting has an invalid value; the message names it.
    """
    try:
        configurable = Plugmarket(config=config if config is not None else discovered_config())
    except TraitError as exc:
        raise PlugmarketError(
            f"invalid plugmarket configuration: {exc}",
            hint="Fix the c.Plugmarket setting it names in ipython_config.py or "
            "jupyter_server_config.py.",
        ) from exc
    return configurable._convert(environ, home=home, registry=registry)


def discovered_config(environ: Mapping[str, str] | None = None) -> Config:
    """The configuration a kernel or the terminal sees, found as Jupyter finds it.

    In a running IPython (a kernel), the shell's own config, which already
    holds ``ipython_config.py``. Elsewhere (the terminal), the default
    profile's ``ipython_config.py`` (``IPYTHONDIR``, else ``~/.ipython``) and
    ``jupyter_server_config.py`` from the Jupyter config folder
    (``JUPYTER_CONFIG_DIR``, else ``~/.jupyter``), the latter winning.

    Raises:
        PlugmarketError: a config file cannot be read or run.
    """
    shell = _running_shell()
    if shell is not None:
        return shell.config  # type: ignore[no-any-return]
    env = os.environ if environ is None else environ
    ipython_dir = Path(env.get("IPYTHONDIR") or Path.home() / ".ipython") / "profile_default"
    jupyter_dir = Path(env.get("JUPYTER_CONFIG_DIR") or Path.home() / ".jupyter")
    merged = Config()
    for folder, name in (
        (ipython_dir, "ipython_config.py"),
        (jupyter_dir, "jupyter_server_config.py"),
    ):
        if not (folder / name).is_file():
            continue
        try:
            loaded = PyFileConfigLoader(name, path=str(folder)).load_config()
        except Exception as exc:  # a user's config file can fail in any way
            raise PlugmarketError(
                f"cannot read {folder / name}: {type(exc).__name__}: {exc}",
                hint="Fix the file, or move it aside to use plugmarket's defaults.",
            ) from exc
        if "Plugmarket" in loaded:
            merged.merge(Config({"Plugmarket": loaded["Plugmarket"]}))
    return merged


def _running_shell() -> Any:
    """The running IPython shell, without importing IPython when it is not loaded."""
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    return get() if get is not None else None


def _check_registry_url(where: str, url: object) -> None:
    shown = shown_url(url) if isinstance(url, str) else url
    if not isinstance(url, str) or not url.strip() or _CONTROL.search(url):
        raise TraitError(
            f"{where}.url is {shown!r}; expected a registry URL (https://...) or a folder path"
        )
    if "://" in url and urlsplit(url).scheme not in ("https", "http", "file"):
        raise TraitError(
            f"{where}.url is {shown!r}; expected an https, http or file URL, or a folder path"
        )


# --- reading and changing settings at run time (``%plugin config``) ------------------------

#: Settings ``%plugin config KEY VALUE`` may change in a running kernel: each is read
#: again on the next operation. The home (and so the installed set), the capability cap
#: and the isolation mode are fixed for a process's life; ``enabled`` is read when the
#: extension loads and ``auto_update`` by whoever runs updates, so both are set in the
#: configuration instead.
RUNTIME_KEYS = (
    "cache_ttl",
    "require_signature",
    "allowed_origins",
    "max_plugin_size",
    "offline",
    "channel",
    "activation_timeout",
    "registry",
)


class SettingsView(dict[str, Any]):
    """Settings as ``name -> value``: aligned text for a terminal, a table for a notebook."""

    def __repr__(self) -> str:
        width = max((len(k) for k in self), default=0)
        return "\n".join(f"{k:{width}}  {_shown(v)}" for k, v in self.items())

    def _repr_html_(self) -> str:
        import html

        rows = "".join(
            f"<tr><td><code>{html.escape(k)}</code></td><td>{html.escape(_shown(v))}</td></tr>"
            for k, v in self.items()
        )
        return f"<table><tr><th>setting</th><th>value</th></tr>{rows}</table>"


def _shown(value: Any) -> str:
    if isinstance(value, tuple) and value and dataclasses.is_dataclass(value[0]):
        return ", ".join(getattr(v, "url", str(v)) for v in value)
    if isinstance(value, tuple):
        return ", ".join(map(str, value)) or "(none)"
    return str(value)


def describe_settings(settings: Settings, only: str | None = None) -> SettingsView:
    """The settings in effect (or just ``only``), for ``%plugin config``.

    Raises:
        PlugmarketError: ``only`` names no setting.
    """
    shown = settings.shown()
    values = {f.name: getattr(shown, f.name) for f in dataclasses.fields(shown)}
    if only is None:
        return SettingsView(sorted(values.items()))
    if only == "registry":
        only = "registries"
    if only not in values:
        raise PlugmarketError(
            f"there is no setting {only!r}",
            hint=f"The settings are: {', '.join(sorted(values))}.",
        )
    return SettingsView({only: values[only]})


def change_setting(settings: Settings, key: str, text: str) -> Settings:
    """``settings`` with ``key`` set from ``text``, checked as the config file's trait is.

    A list setting (``allowed_origins``) takes comma-separated items; an empty
    text or ``none`` empties it. ``registry`` replaces the registries with one URL
    or folder: a registry the configuration names (or the demo registry shipped
    with plugmarket) keeps its configured name and trusted keys; any other is
    trusted with ``PLUGMARKET_TRUSTED_KEYS``, as the environment variable is.

    Raises:
        PlugmarketError: the key cannot be changed at run time, or the value is invalid.
    """
    if key not in RUNTIME_KEYS:
        configured = key in Plugmarket.class_traits(config=True)
        raise PlugmarketError(
            f"{key!r} cannot be changed in a running kernel"
            + ("" if configured else ": there is no such setting"),
            hint=f"These can: {', '.join(RUNTIME_KEYS)}. Set "
            + (f"c.Plugmarket.{key}" if configured else "the others")
            + " in ipython_config.py (or the environment), then restart the kernel.",
        )
    if key == "registry":
        return settings.replace(registries=(_runtime_registry(settings, text),))
    trait = Plugmarket.class_traits()[key]
    holder = Plugmarket()
    value: Any
    try:
        if isinstance(trait, List):
            items = [item.strip() for item in text.split(",") if item.strip()]
            if [i.lower() for i in items] == ["none"]:
                items = []
            value = [trait.item_from_string(item) for item in items]
        else:
            value = trait.from_string(text)
        setattr(holder, key, value)  # runs the trait's checks
    except (TraitError, ValueError, SyntaxError) as exc:
        raise PlugmarketError(
            f"{key} cannot be {text!r}: {exc}",
            hint=f"{trait.help}",
        ) from None
    checked = getattr(holder, key)
    return settings.replace(**{key: tuple(checked) if isinstance(checked, list) else checked})


def _runtime_registry(settings: Settings, text: str) -> RegistryConfig:
    """The registry ``%plugin config registry TEXT`` means: a configured one if it names one."""
    try:
        _check_registry_url("registry", text)
    except TraitError as exc:
        raise PlugmarketError(
            str(exc).replace("registry.url is", "registry cannot be", 1),
            hint="Give an https:// or http:// URL, a file:// URL, or a registry folder.",
        ) from None
    for known in (*settings.registries, *_configured_registries(), _demo_registry()):
        if _same_registry(known.url, text):
            # Shown without its credentials, a registry typed back keeps them; new ones win.
            return known if shown_url(text) == text else dataclasses.replace(known, url=text)
    keys = os.environ.get("PLUGMARKET_TRUSTED_KEYS", "")
    return RegistryConfig(
        url=text, trusted_keys=tuple(k.strip() for k in keys.split(",") if k.strip())
    )


def _configured_registries() -> tuple[RegistryConfig, ...]:
    """The registries the configuration names (the environment aside), or none if unreadable."""
    try:
        registries = Plugmarket(config=discovered_config()).registries
    except (TraitError, PlugmarketError):
        return ()  # the kernel already reported it when the extension loaded
    return () if registries is None else _registry_configs(registries)


def _registry_configs(registries: list[dict[str, Any]]) -> tuple[RegistryConfig, ...]:
    return tuple(
        RegistryConfig(
            url=r["url"],
            name=r.get("name", ""),
            trusted_keys=tuple(r.get("trusted_keys", ())),
            priority=r.get("priority", 0),
        )
        for r in registries
    )


def _same_registry(a: str, b: str) -> bool:
    """Whether two registry URLs or folders name the same registry (credentials aside)."""
    a, b = shown_url(a), shown_url(b)
    a, b = (_local_path(a) or a, _local_path(b) or b)
    if "://" in a or "://" in b:
        return a.rstrip("/") == b.rstrip("/")
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def _local_path(url: str) -> str | None:
    """The folder a ``file://`` URL or a plain path names; None for a network URL."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    return unquote(parts.path) if parts.scheme == "file" else None
