"""Read and validate a plugin manifest without running any plugin code.

A manifest is either ``plugin.toml`` at a package's root (the fields as
top-level keys) or a module-level ``__plugin__ = {...}`` dict literal in a
single-file plugin (or a package's ``__init__.py``). TOML is parsed with
``tomllib``; the literal with ``ast.literal_eval`` of that one assignment, so
metadata, dependencies and requested capabilities are known before a line of
the plugin runs.

Every field is validated here, once; a :class:`Manifest` is a frozen value
whose fields are already typed (``Version``, ``Requirement``,
``SpecifierSet``, ``Capability``).
"""

from __future__ import annotations

import ast
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from plugmarket.capabilities import Capability, parse_capability
from plugmarket.errors import ManifestError

__all__ = [
    "HOST_API_VERSION",
    "ID_PATTERN",
    "MANIFEST_FILE",
    "Manifest",
    "find_manifest",
    "normalize_id",
    "parse_manifest",
    "read_manifest",
    "read_manifest_text",
    "validate_id",
]

#: The plugin-API version this plugmarket offers; manifests' ``host`` ranges match it.
HOST_API_VERSION = Version("1.0")
#: What a plugin id may look like: nothing that can become a path.
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}\Z")
MANIFEST_FILE = "plugin.toml"

_STR_FIELDS = ("name", "summary", "description", "license", "homepage", "entry")
_LIST_FIELDS = ("authors", "categories", "tags")
_KNOWN = frozenset(
    {"id", "version", "requires", "host", "capabilities", *_STR_FIELDS, *_LIST_FIELDS}
)
_ENTRY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
_MAX_TEXT = 64 * 1024  # characters in one text field
_MAX_ITEMS = 256  # entries in one list field


@dataclass(frozen=True)
class Manifest:
    """A plugin's validated metadata."""

    id: str
    version: Version
    name: str = ""
    summary: str = ""
    description: str = ""
    authors: tuple[str, ...] = ()
    license: str = ""
    homepage: str = ""
    categories: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    requires: tuple[Requirement, ...] = ()
    host: SpecifierSet = field(default_factory=SpecifierSet)
    capabilities: tuple[Capability, ...] = ()
    entry: str = ""
    path: str = ""  # where it was read from, for messages

    @property
    def display_name(self) -> str:
        return self.name or self.id

    def requirement_ids(self) -> tuple[str, ...]:
        """The plugin ids this plugin requires, in order."""
        return tuple(normalize_id(r.name) for r in self.requires)

    def supports_host(self, host: Version = HOST_API_VERSION) -> bool:
        return self.host.contains(host, prereleases=True)

    def to_dict(self) -> dict[str, Any]:
        """The manifest as plain JSON-able data (the inverse of :func:`parse_manifest`)."""
        data: dict[str, Any] = {"id": self.id, "version": str(self.version)}
        for name in _STR_FIELDS:
            if value := getattr(self, name):
                data[name] = value
        for name in _LIST_FIELDS:
            if value := getattr(self, name):
                data[name] = list(value)
        if self.requires:
            data["requires"] = [str(r) for r in self.requires]
        if str(self.host):
            data["host"] = str(self.host)
        if self.capabilities:
            data["capabilities"] = [str(c) for c in self.capabilities]
        return data


def normalize_id(name: str) -> str:
    """A distribution or requirement name as a plugin id (``My_Lib`` -> ``my-lib``)."""
    return canonicalize_name(name).replace(".", "-")


def validate_id(value: object, *, path: str = "", field_name: str = "id") -> str:
    """Return ``value`` if it is a valid plugin id, else raise :class:`ManifestError`."""
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise ManifestError(
            f"{_where(path)}field {field_name!r} is {value!r}, which is not a valid plugin id",
            path=path,
            field=field_name,
            found=value,
            allowed="1-64 characters: lower-case letters, digits and '-', starting with a "
            "letter or digit",
            hint="Use an id such as 'csv-tools'.",
        )
    return value


def parse_manifest(data: Mapping[str, Any], *, path: str = "") -> Manifest:
    """Validate manifest data (from TOML or a literal) into a :class:`Manifest`.

    Raises:
        ManifestError: naming the file, the field, what was found and what is allowed.
    """
    if not isinstance(data, Mapping):
        raise ManifestError(
            f"{_where(path)}the manifest is a {type(data).__name__}, not a table of fields",
            path=path,
            found=type(data).__name__,
            allowed="a TOML table or a dict literal",
        )
    unknown = sorted(set(data) - _KNOWN)
    if unknown:
        raise ManifestError(
            f"{_where(path)}unknown manifest field {unknown[0]!r}",
            path=path,
            field=str(unknown[0]),
            found=unknown,
            allowed=", ".join(sorted(_KNOWN)),
            hint="Check the spelling; see docs/author-guide.md for the fields.",
        )
    if "id" not in data or "version" not in data:
        missing = "id" if "id" not in data else "version"
        raise ManifestError(
            f"{_where(path)}the manifest has no {missing!r} field",
            path=path,
            field=missing,
            allowed="every manifest names an id and a version",
        )
    plugin_id = validate_id(data["id"], path=path)
    raw_version = data["version"]
    try:
        if not isinstance(raw_version, str):
            raise InvalidVersion(repr(raw_version))
        version = Version(raw_version)
    except InvalidVersion as exc:
        raise ManifestError(
            f"{_where(path)}field 'version' is {raw_version!r}, not a PEP 440 version",
            path=path,
            field="version",
            found=raw_version,
            allowed="a PEP 440 version such as '1.0.2' or '2.0b1'",
        ) from exc
    values: dict[str, Any] = {}
    for name in _STR_FIELDS:
        if name in data:
            values[name] = _text(data[name], name, path)
    if values.get("entry") and not _ENTRY.match(values["entry"]):
        raise ManifestError(
            f"{_where(path)}field 'entry' is {values['entry']!r}, not a dotted module name",
            path=path,
            field="entry",
            found=values["entry"],
            allowed="a module inside the plugin, such as 'main' or 'pkg.core'",
        )
    for name in _LIST_FIELDS:
        if name in data:
            values[name] = tuple(_text(v, name, path) for v in _list(data[name], name, path))
    requires = tuple(
        _requirement(v, path) for v in _list(data.get("requires", []), "requires", path)
    )
    host = _specifier(data.get("host", ""), path)
    caps: dict[Capability, None] = {}
    for item in _list(data.get("capabilities", []), "capabilities", path):
        try:
            caps.setdefault(parse_capability(item), None)
        except ManifestError as exc:
            raise ManifestError(
                f"{_where(path)}{exc.message}",
                path=path,
                field="capabilities",
                found=exc.found,
                allowed=exc.allowed,
            ) from None
    return Manifest(
        id=plugin_id,
        version=version,
        requires=requires,
        host=host,
        capabilities=tuple(caps),
        path=path,
        **values,
    )


def read_manifest_text(text: str, *, path: str = "", toml: bool | None = None) -> Manifest:
    """Read a manifest from ``plugin.toml`` text or Python source text.

    ``toml`` picks the format; by default it follows ``path``'s suffix.
    """
    if toml is None:
        toml = path.endswith(".toml")
    if toml:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ManifestError(
                f"{_where(path)}the manifest is not valid TOML: {exc}",
                path=path,
                hint="Fix the TOML syntax at the line it names.",
            ) from exc
        return parse_manifest(data, path=path)
    literal = _find_literal(text, path)
    if literal is None:
        raise ManifestError(
            f"{_where(path)}no module-level `__plugin__ = {{...}}` manifest was found",
            path=path,
            field="__plugin__",
            hint="Add `__plugin__ = {'id': 'my-plugin', 'version': '0.1.0'}` at the top.",
        )
    return parse_manifest(literal, path=path)


def find_manifest(root: Path) -> Path | None:
    """Where the manifest of the plugin at ``root`` (a file or a folder) lives, if any."""
    if root.is_file():
        return root if root.suffix == ".py" else None
    toml = root / MANIFEST_FILE
    if toml.is_file():
        return toml
    init = root / "__init__.py"
    if init.is_file() and _has_literal(init.read_text(encoding="utf-8", errors="replace")):
        return init
    return None


def read_manifest(root: Path | str) -> Manifest:
    """Read the manifest of the plugin at ``root``: a ``.py`` file or a package folder.

    Raises:
        ManifestError: there is no manifest, or it is invalid.
    """
    root = Path(root)
    where = find_manifest(root)
    if where is None:
        raise ManifestError(
            f"{root}: no manifest found (neither {MANIFEST_FILE} nor a `__plugin__` literal)",
            path=str(root),
            hint=f"Add a {MANIFEST_FILE} beside the package's __init__.py.",
        )
    try:
        text = where.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(
            f"{where}: the manifest cannot be read: {exc}", path=str(where)
        ) from exc
    return read_manifest_text(text, path=str(where), toml=where.suffix == ".toml")


def _find_literal(text: str, path: str) -> dict[str, Any] | None:
    try:
        tree = ast.parse(text, filename=path or "<plugin>")
    except SyntaxError as exc:
        raise ManifestError(
            f"{_where(path)}the plugin source does not parse: {exc.msg} (line {exc.lineno})",
            path=path,
            hint="Fix the syntax error first.",
        ) from exc
    for node in tree.body:
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        if any(isinstance(t, ast.Name) and t.id == "__plugin__" for t in targets):
            try:
                literal = ast.literal_eval(value)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
                raise ManifestError(
                    f"{_where(path)}`__plugin__` must be a plain dict literal "
                    "(strings, numbers, lists, dicts)",
                    path=path,
                    field="__plugin__",
                    hint="Move computed values out of the manifest.",
                ) from exc
            if not isinstance(literal, dict):
                raise ManifestError(
                    f"{_where(path)}`__plugin__` is a {type(literal).__name__}, not a dict",
                    path=path,
                    field="__plugin__",
                    found=type(literal).__name__,
                )
            return literal
    return None


def _has_literal(text: str) -> bool:
    return "__plugin__" in text and re.search(r"^__plugin__\s*(:[^=]*)?=", text, re.M) is not None


def _where(path: str) -> str:
    return f"{path}: " if path else ""


def _text(value: object, name: str, path: str) -> str:
    if not isinstance(value, str) or len(value) > _MAX_TEXT:
        raise ManifestError(
            f"{_where(path)}field {name!r} must be a string of at most {_MAX_TEXT} characters",
            path=path,
            field=name,
            found=value if not isinstance(value, str) else f"{len(value)} characters",
            allowed="a string",
        )
    return value


def _list(value: object, name: str, path: str) -> list[Any]:
    if not isinstance(value, list | tuple) or len(value) > _MAX_ITEMS:
        raise ManifestError(
            f"{_where(path)}field {name!r} must be a list of at most {_MAX_ITEMS} entries",
            path=path,
            field=name,
            found=value,
            allowed="a list",
        )
    return list(value)


def _requirement(value: object, path: str) -> Requirement:
    try:
        if not isinstance(value, str):
            raise InvalidRequirement(repr(value))
        req = Requirement(value)
    except InvalidRequirement as exc:
        raise ManifestError(
            f"{_where(path)}requirement {value!r} is not a valid PEP 508 requirement",
            path=path,
            field="requires",
            found=value,
            allowed="a plugin id with an optional version specifier, such as 'table-kit>=1.0,<2'",
        ) from exc
    if req.url or req.marker or req.extras:
        raise ManifestError(
            f"{_where(path)}requirement {value!r} uses a URL, marker or extras, "
            "which plugin requirements do not support",
            path=path,
            field="requires",
            found=value,
            allowed="a plugin id with an optional version specifier",
        )
    validate_id(normalize_id(req.name), path=path, field_name="requires")
    return req


def _specifier(value: object, path: str) -> SpecifierSet:
    try:
        if not isinstance(value, str):
            raise InvalidSpecifier(repr(value))
        return SpecifierSet(value)
    except InvalidSpecifier as exc:
        raise ManifestError(
            f"{_where(path)}field 'host' is {value!r}, not a version specifier",
            path=path,
            field="host",
            found=value,
            allowed=f"a PEP 440 specifier on the plugin API (now {HOST_API_VERSION}), "
            "such as '>=1.0,<2'",
        ) from exc
