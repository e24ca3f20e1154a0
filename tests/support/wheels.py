"""Build small archives for tests: valid pure-Python wheels (with a RECORD), zips, and
hand-made hostile zips; plus a snapshot of a folder tree to show nothing was written.
"""

from __future__ import annotations

import base64
import hashlib
import re
import warnings
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path


def build_wheel(
    dest: Path,
    name: str,
    version: str,
    files: Mapping[str, str | bytes],
    *,
    tag: str = "py3-none-any",
    purelib: bool = True,
    top_level: Sequence[str] | None = None,
    requires: Sequence[str] = (),
    summary: str = "",
) -> Path:
    """Write ``<dist>-<version>-<tag>.whl`` into ``dest`` and return its path."""
    dist = re.sub(r"[-_.]+", "_", name)
    info = f"{dist}-{version}.dist-info"
    contents = {path: _bytes(data) for path, data in files.items()}
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += f"Summary: {summary}\n" if summary else ""
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    contents[f"{info}/METADATA"] = metadata.encode()
    contents[f"{info}/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: plugmarket-tests\n"
        f"Root-Is-Purelib: {'true' if purelib else 'false'}\nTag: {tag}\n"
    ).encode()
    if top_level is not None:
        contents[f"{info}/top_level.txt"] = "".join(f"{t}\n" for t in top_level).encode()
    record = "".join(
        f"{path},sha256={_digest(data)},{len(data)}\n" for path, data in contents.items()
    )
    contents[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"{dist}-{version}-{tag}.whl"
    write_zip(path, contents.items())
    return path


def write_zip(path: Path, entries: Iterable[tuple[str | zipfile.ZipInfo, str | bytes]]) -> Path:
    """Write entries as they are, hostile names and duplicates included."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicates we write on purpose
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in entries:
                zf.writestr(name, _bytes(data))
    return path


def snapshot(root: Path) -> list[tuple[str, int]]:
    """Every file and folder under ``root`` with its size (folders: -1), sorted."""
    return sorted(
        (p.relative_to(root).as_posix(), p.stat().st_size if p.is_file() else -1)
        for p in root.rglob("*")
    )


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _bytes(data: str | bytes) -> bytes:
    return data.encode() if isinstance(data, str) else data


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
