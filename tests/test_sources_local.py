"""A package folder used in place is read again exactly when something in it changed.

A folder whose stamps (every folder's and file's inode, size, modification and
change times) are unchanged since it was last read is not listed or read again;
any change to a file the loader sees, added, removed, rewritten, renamed over,
or rewritten with its old modification time put back, is seen at the next load.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from plugmarket import sources
from plugmarket._internal import filetimes
from plugmarket.errors import SourceError
from plugmarket.settings import Settings
from plugmarket.sources import PluginFiles, Source


@pytest.fixture
def settings(home: Path) -> Settings:
    return Settings(home=home)


@pytest.fixture
def scans(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The folders listed in full (the real listing runs; this only records it)."""
    seen: list[Path] = []
    real = sources._folder_files

    def listing(folder: Path) -> tuple[list[tuple[str, str]], list[sources._Stamp]]:
        seen.append(folder)
        return real(folder)

    monkeypatch.setattr(sources, "_folder_files", listing)
    return seen


def _package(where: Path) -> Path:
    pkg = where / "plugins" / "tables"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from . import core\n")
    (pkg / "plugin.toml").write_text('id = "tables"\nversion = "2.0"\n')
    (pkg / "core.py").write_text("ROWS = 1\n")
    (pkg / "sub" / "__init__.py").write_text("")
    return pkg


def _age(pkg: Path) -> None:
    """Let the folder's stamps grow older than the racy window. A file system keeps
    times in clock ticks, so only then can an unchanged stamp vouch for the content;
    this waits for the clock, not for another thread."""
    newest = max(
        max(os.stat(p).st_mtime_ns, os.stat(p).st_ctime_ns) for p in [pkg, *pkg.rglob("*")]
    )
    time.sleep(max(0.0, (newest + filetimes.RACY_NS - time.time_ns()) / 1e9) + 0.01)


def test_unchanged_folder_is_not_listed_again(
    tmp_path: Path, settings: Settings, scans: list[Path]
) -> None:
    pkg = _package(tmp_path)
    first = Source.local(pkg).materialize(settings)
    _age(pkg)
    Source.local(pkg).materialize(settings)  # read once more, now that it is settled
    scans.clear()
    again = Source.local(pkg).materialize(settings)
    assert scans == []
    assert again == first


def _rewrite_same_size(pkg: Path) -> None:
    (pkg / "core.py").write_text("ROWS = 2\n")


def _rewrite_keeping_mtime(pkg: Path) -> None:
    st = (pkg / "core.py").stat()
    (pkg / "core.py").write_text("ROWS = 3\n")
    os.utime(pkg / "core.py", ns=(st.st_atime_ns, st.st_mtime_ns))


def _rename_over(pkg: Path) -> None:
    st = (pkg / "core.py").stat()
    (pkg / "core.new").write_text("ROWS = 4\n")
    os.utime(pkg / "core.new", ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(pkg / "core.new", pkg / "core.py")


def _add_to_subfolder(pkg: Path) -> None:
    (pkg / "sub" / "extra.py").write_text("X = 1\n")


def _remove(pkg: Path) -> None:
    (pkg / "core.py").unlink()


def _add_subfolder(pkg: Path) -> None:
    (pkg / "more").mkdir()
    (pkg / "more" / "__init__.py").write_text("Y = 2\n")


CHANGES: dict[str, Callable[[Path], None]] = {
    "rewritten-same-size": _rewrite_same_size,
    "rewritten-with-old-mtime": _rewrite_keeping_mtime,
    "renamed-over-with-old-mtime": _rename_over,
    "added-in-subfolder": _add_to_subfolder,
    "removed": _remove,
    "subfolder-added": _add_subfolder,
}


@pytest.mark.parametrize("settled", [True, False], ids=["settled", "just-written"])
@pytest.mark.parametrize("change", sorted(CHANGES))
def test_any_change_is_seen_at_the_next_load(
    tmp_path: Path, settings: Settings, scans: list[Path], change: str, settled: bool
) -> None:
    pkg = _package(tmp_path)
    first = Source.local(pkg).materialize(settings)
    if settled:
        _age(pkg)
        Source.local(pkg).materialize(settings)
    CHANGES[change](pkg)
    scans.clear()
    after = Source.local(pkg).materialize(settings)
    assert scans == [pkg]
    assert after.sha256 != first.sha256
    assert Source.local(pkg).materialize(settings).sha256 == after.sha256


def test_manifest_changed_just_after_a_load_is_read_again(
    tmp_path: Path, settings: Settings
) -> None:
    pkg = _package(tmp_path)
    assert str(Source.local(pkg).materialize(settings).manifest.version) == "2.0"
    (pkg / "plugin.toml").write_text('id = "tables"\nversion = "2.1"\n')  # same size
    files: PluginFiles = Source.local(pkg).materialize(settings)
    assert str(files.manifest.version) == "2.1"


def test_folder_replaced_by_a_file_is_refused_as_before(tmp_path: Path, settings: Settings) -> None:
    pkg = _package(tmp_path)
    Source.local(pkg).materialize(settings)
    _age(pkg)
    Source.local(pkg).materialize(settings)
    shutil.rmtree(pkg)
    pkg.write_text("not a package")
    with pytest.raises(SourceError, match=r"not a \.py file, a package folder"):
        Source.local(pkg).materialize(settings)


def test_recent_stamps_do_not_vouch_for_the_content() -> None:
    now = 1_700_000_000_123_456_789
    second = 1_000_000_000
    old = now - second
    assert filetimes.settled([old, old], now)
    # Within a clock tick of the read: a change may keep the same times.
    assert not filetimes.settled([old, now - 1_000_000], now)
    assert not filetimes.settled([now - 1_000_000, old], now)
    # Times kept in whole seconds (FAT, older file systems) need a longer wait.
    whole = (now // second - 1) * second
    assert not filetimes.settled([whole, whole], now)
    assert filetimes.settled([whole - 2 * second, whole - 2 * second], now)
    # Times in the future (another machine's clock): never trusted yet.
    assert not filetimes.settled([now + second, now + second], now)
