"""Write small plugins on disk for tests."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping
from pathlib import Path


def write_plugin(
    where: Path,
    plugin_id: str,
    code: str = "",
    *,
    version: str = "1.0",
    files: Mapping[str, str] | None = None,
    requires: Iterable[str] = (),
    capabilities: Iterable[str] = (),
) -> Path:
    """A package plugin ``where/<id>/<id_>/`` with ``code`` in its ``__init__.py``.

    Returns the package folder (what ``Source.local`` takes).
    """
    top = plugin_id.replace("-", "_")
    package = where / plugin_id / top
    package.mkdir(parents=True)
    manifest = {
        "id": plugin_id,
        "version": version,
        "requires": list(requires),
        "capabilities": list(capabilities),
    }
    (package / "__init__.py").write_text(
        f"__plugin__ = {manifest!r}\n" + textwrap.dedent(code), encoding="utf-8"
    )
    for name, text in (files or {}).items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return package


#: A plugin body that imports the plugin ``alpha`` and registers ``%ask``.
USES_ALPHA = (
    "import alpha\n"
    "def activate(ctx):\n"
    "    ctx.register_magic(lambda line: f'alpha says {alpha.VALUE}', name='ask')\n"
)


def hello_source(version: str, *, broken: bool = False) -> str:
    """A plugin body registering ``%hello`` (answering ``hello from <version>``);
    ``broken`` makes its ``activate`` raise after registering."""
    code = (
        "def activate(ctx):\n"
        f"    ctx.register_magic(lambda line: 'hello from {version}', name='hello')\n"
    )
    if broken:
        code += f"    raise RuntimeError('version {version} cannot start')\n"
    return code
