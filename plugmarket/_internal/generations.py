"""Generation files on disk: ``<home>/generations/<n>.json`` and ``<home>/current``.

``current`` holds the number of the current generation as text; a home with
no ``current`` is on generation 0, the empty set. Each generation file is
:func:`~plugmarket._internal.installed.encode_generation` of one generation.

Invariants:

- ``current`` is written to a temporary file beside it (``.current.tmp``),
  fsynced, and renamed over it, and the home is fsynced after the rename: a
  reader sees the old number or the new one, never a mix. Temporary names are
  fixed, since only the lock holder writes.
- A generation file is written once, in place, under a number above every
  file in the folder, and fsynced with the folder before ``current`` names
  it; until then nothing reads it (readers follow ``current``, and
  :meth:`Generations.numbers` callers skip numbers above it), and a crash
  leaves a file newer than ``current``, which recovery removes.
- A generation file is written before ``current`` names it, and is never
  rewritten; history only grows, so the current generation is always the
  newest. A generation file newer than ``current`` belongs to a transaction
  that never switched, and recovery removes it.
- Decoded generations are cached by (number, inode, mtime, size), so reading
  the current generation again costs a ``stat`` or two; a generation this
  object published is cached as it was staged, never decoded again.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from plugmarket._internal.durable import fsync_dir, write_temp
from plugmarket._internal.installed import Generation, decode_generation, encode_generation
from plugmarket.errors import InstallError
from plugmarket.settings import current_file

__all__ = ["EMPTY", "Generations", "write_atomic"]

Fault = Callable[[str], None]

#: Generation 0: the empty set of a home where nothing was installed yet.
EMPTY = Generation(0, created=datetime.fromtimestamp(0, UTC))


def write_atomic(path: Path, data: bytes, *, fault: Fault | None = None, label: str = "") -> None:
    """Write ``data`` to ``path`` through a fixed temporary name, fsync, rename, fsync the folder.

    Args:
        path: Where the file ends up.
        data: Its complete contents.
        fault: Called with ``"<label>-temp-written"`` between the write and the
            rename (a fault-injection point).
        label: The step's name for ``fault``.

    Raises:
        OSError: the folder is not writable or the disk is full.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    if fault is not None:
        fault(f"{label}-temp-written")
    os.replace(tmp, path)
    fsync_dir(path.parent)


class Generations:
    """The generation files and the ``current`` pointer of one home."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.folder = home / "generations"
        self.current_file = current_file(home)  # the one every kernel stats, too
        self._cache: dict[int, tuple[tuple[int, int, int], Generation]] = {}
        self._staged: dict[int, tuple[int, Generation]] = {}  # number -> (bytes, generation)

    def path(self, number: int) -> Path:
        return self.folder / f"{number}.json"

    def current_number(self) -> int:
        """The number ``current`` holds (0 when the home has none).

        Raises:
            InstallError: ``current`` is unreadable or does not hold a number.
        """
        try:
            text = self.current_file.read_bytes()
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise _damaged(self.current_file, exc.strerror or str(exc)) from exc
        try:
            number = int(text.decode("ascii").strip())
        except (UnicodeDecodeError, ValueError) as exc:
            raise _damaged(self.current_file, f"it holds {text[:40]!r}, not a number") from exc
        if number < 0:
            raise _damaged(self.current_file, f"it holds {number}, not a generation number")
        return number

    def marker(self) -> tuple[int, int]:
        """(inode, mtime in ns) of ``current``: changes whenever the current generation does."""
        try:
            st = os.stat(self.current_file)
        except FileNotFoundError:
            return (0, 0)
        return (st.st_ino, st.st_mtime_ns)

    def read(self, number: int) -> Generation:
        """Generation ``number`` (0 without a file: the empty set).

        Raises:
            InstallError: the generation is not kept, or its file is damaged.
        """
        path = self.path(number)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            if number == 0:
                return EMPTY
            raise InstallError(
                f"generation {number} is not kept in {self.folder}",
                step="read generation",
                hint="See the kept generations with `plugmarket generations`.",
            ) from None
        except OSError as exc:
            raise _damaged(path, exc.strerror or str(exc)) from exc
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        known = self._cache.get(number)
        if known is not None and known[0] == key:
            return known[1]
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise _damaged(path, exc.strerror or str(exc)) from exc
        generation = decode_generation(data, path=str(path))
        if generation.number != number:
            raise _damaged(path, f"it says it is generation {generation.number}")
        self._cache[number] = (key, generation)
        return generation

    def numbers(self) -> list[int]:
        """The numbers of every generation file, ascending."""
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return []
        return sorted(int(n[:-5]) for n in names if _is_generation_name(n))

    def debris(self) -> list[Path]:
        """Temporary files and anything else in the folder that is not a generation file."""
        found = []
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            names = []
        found += [self.folder / n for n in sorted(names) if not _is_generation_name(n)]
        tmp = self.current_file.with_name(f".{self.current_file.name}.tmp")
        if tmp.exists():
            found.append(tmp)
        return found

    def switch(self, number: int, *, fault: Fault | None = None) -> None:
        """Make ``number`` the current generation (atomic, durable).

        Raises:
            OSError: the home cannot be written.
        """
        write_atomic(self.current_file, f"{number}\n".encode(), fault=fault, label="current")

    # The installer's commit in steps, so that independent fsyncs overlap:
    # stage (the generation's file, under its final name) -> the caller fsyncs
    # it and the folder, with the rest of its batch -> publish; stage_switch ->
    # the caller fsyncs it -> publish_switch (rename; the caller fsyncs the home).

    def stage(self, generation: Generation) -> Path:
        """Write a new generation's file, not fsynced; ``current`` does not name it yet.

        It is written in place, not renamed: the number is new (above every
        file here), so nothing reads it until ``current`` names it, and
        ``current`` is switched only after this file and :attr:`folder` are
        fsynced. Until then a crash leaves a file newer than ``current``,
        which recovery removes whatever it holds.

        Returns:
            The file, for the caller to fsync (with :attr:`folder`) before :meth:`publish`.

        Raises:
            OSError: the folder cannot be written, or the file exists already.
        """
        path = self.path(generation.number)
        data = encode_generation(generation)
        try:
            with open(path, "xb") as out:
                out.write(data)
        except FileNotFoundError:  # the home's first generation
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(path, "xb") as out:
                out.write(data)
        # What is cached is what was encoded: read back as the value it came from.
        self._staged[generation.number] = (len(data), generation)
        return path

    def publish(self, number: int) -> None:
        """Take generation ``number``'s staged file as written and durable (its file and
        :attr:`folder` fsynced by the caller); it is read back from memory from now on.

        Raises:
            OSError: the file cannot be read.
        """
        path = self.path(number)
        size, generation = self._staged.pop(number, (-1, None))
        if generation is not None:
            st = os.stat(path)
            if st.st_size == size:
                self._cache[number] = ((st.st_ino, st.st_mtime_ns, st.st_size), generation)

    def stage_switch(self, number: int) -> Path:
        """Write ``current``'s new contents under its temporary name, not fsynced.

        Returns:
            The temporary file, for the caller to fsync before :meth:`publish_switch`.

        Raises:
            OSError: the home cannot be written.
        """
        return write_temp(self.current_file, f"{number}\n".encode(), sync=False)

    def publish_switch(self) -> None:
        """Rename the staged ``current`` into place: the commit point. The caller
        then fsyncs the home (``durable.fsync_dir_soon``, not waited for) so that it
        survives a power cut.

        Raises:
            OSError: the home cannot be written.
        """
        os.replace(self.current_file.with_name(f".{self.current_file.name}.tmp"), self.current_file)

    def remove(self, number: int) -> bool:
        """Delete a generation's file; returns whether there was one."""
        self._cache.pop(number, None)
        try:
            self.path(number).unlink()
        except FileNotFoundError:
            return False
        return True


def _is_generation_name(name: str) -> bool:
    stem, dot, ext = name.partition(".")
    return (
        ext == "json"
        and dot == "."
        and stem.isdigit()
        and stem.isascii()
        and stem == str(int(stem))
    )


def _damaged(path: Path, what: str) -> InstallError:
    return InstallError(
        f"{path} is damaged: {what}",
        step="read generation",
        hint="Run `plugmarket check --repair` to point the home at its newest sound generation.",
    )
