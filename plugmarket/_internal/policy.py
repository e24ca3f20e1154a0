"""What an audited event asks for: event + arguments -> (capability, target).

Pure decisions shared by the audit hook and the gated builtins. A decision
is ``None`` (nothing to check), or a :class:`Need` saying which capability
kind is needed for which target; :func:`allowed` then answers it against
one plugin's grants and the folders every plugin may read.

Paths are normalised here once: only ``str``, ``bytes``, file descriptors
and the standard library's own path classes are accepted as targets; any
other object (one whose ``__fspath__`` could answer differently when checked
and when used) is refused rather than asked.
"""

from __future__ import annotations

import os
import pathlib
import sys
import sysconfig
from dataclasses import dataclass

from plugmarket.capabilities import Grants

__all__ = [
    "ALWAYS_DENIED",
    "EVENTS",
    "LOAD_EXTENSION",
    "Need",
    "PathPolicy",
    "decide",
    "normalize_path",
]

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_PATH_TYPES = (pathlib.PurePosixPath, pathlib.PosixPath, pathlib.PureWindowsPath)

_FS_WRITE_EVENTS = frozenset(
    {
        "os.remove",
        "os.rename",
        "os.mkdir",
        "os.rmdir",
        "os.chmod",
        "os.chown",
        "os.link",
        "os.symlink",
        "os.truncate",
        "os.utime",
        "os.chflags",
        "os.lchflags",
        "os.setxattr",
        "os.removexattr",
        "shutil.rmtree",
        "shutil.chown",
        "shutil.make_archive",
        "shutil.unpack_archive",
    }
)
_FS_READ_EVENTS = frozenset({"os.listdir", "os.scandir", "glob.glob", "glob.glob/2", "os.chdir"})
_NET_EVENTS = frozenset(
    {
        "socket.connect",
        "socket.bind",
        "socket.sendto",
        "socket.sendmsg",
        "socket.getaddrinfo",
        "socket.gethostbyname",
        "socket.gethostbyname_ex",
        "socket.gethostbyaddr",
        "socket.getnameinfo",
    }
)
_PROCESS_EVENTS = frozenset(
    {
        "subprocess.Popen",
        "os.system",
        "os.exec",
        "os.spawn",
        "os.posix_spawn",
        "os.fork",
        "os.forkpty",
        "os.kill",
        "os.killpg",
        "pty.spawn",
        "os.startfile",
        "os.startfile/2",
    }
)
_ENV_EVENTS = frozenset({"os.putenv", "os.unsetenv"})
# SQLite opens its files in C; the connect event names the database.
_DATABASE_EVENTS = frozenset({"sqlite3.connect"})
#: Handing out frames, every live object, or a tracer: refused to every plugin.
ALWAYS_DENIED = frozenset(
    {
        "sys._current_frames",
        "sys._current_exceptions",
        "sys.settrace",
        "sys.setprofile",
        "gc.get_objects",
        "gc.get_referrers",
        "gc.get_referents",
    }
)
LOAD_EXTENSION = "load a C extension"
_CTYPES_EVENTS = frozenset(
    "ctypes." + name
    for name in (
        "dlopen",
        "dlsym",
        "dlsym/handle",
        "cdata",
        "cdata/buffer",
        "create_string_buffer",
        "create_unicode_buffer",
        "addressof",
        "call_function",
        "get_errno",
        "set_errno",
        "get_last_error",
        "set_last_error",
        "string_at",
        "wstring_at",
        "PyObj_FromPtr",
        "set_exception",
    )
)
_NATIVE_MODULES = frozenset({"ctypes", "_ctypes", "cffi", "_cffi_backend"})
#: Every event the hook looks at; everything else returns at once.
EVENTS = frozenset(
    {"open", "import"}
    | _FS_WRITE_EVENTS
    | _FS_READ_EVENTS
    | _NET_EVENTS
    | _PROCESS_EVENTS
    | _ENV_EVENTS
    | ALWAYS_DENIED
    | _CTYPES_EVENTS
    | _DATABASE_EVENTS
)


@dataclass(frozen=True, slots=True)
class Need:
    """A capability kind the event needs, for what target, described for a message."""

    kind: str  # "fs.read", "fs.write", "net", "subprocess", "env", "native", or "" (refused)
    target: str = ""
    operation: str = ""
    port: int | None = None


def normalize_path(value: object) -> str | None:
    """An absolute, resolved path for ``value``, or ``None`` if it is not a plain path.

    File descriptors return ``""`` (already open: nothing to check).
    """
    if isinstance(value, int):
        return ""
    if type(value) in _PATH_TYPES:
        value = str(value)
    if isinstance(value, bytes):
        value = os.fsdecode(value)
    if type(value) is not str:
        return None
    return os.path.realpath(value)


def _mode_writes(mode: object, flags: object) -> bool:
    if isinstance(mode, str):
        return any(c in mode for c in "wax+")
    return isinstance(flags, int) and bool(flags & _WRITE_FLAGS)


def _host_port(address: object) -> tuple[str, int | None]:
    if isinstance(address, tuple) and address:
        host = address[0]
        port = address[1] if len(address) > 1 and isinstance(address[1], int) else None
        if isinstance(host, bytes):
            host = host.decode("ascii", "replace")
        return str(host), port
    if isinstance(address, str | bytes):
        return os.fsdecode(address), None  # AF_UNIX path
    return repr(address), None


def _text(value: object) -> str:
    return os.fsdecode(value) if isinstance(value, bytes) else str(value)


def _database_need(database: object) -> Need | None:
    """What opening an SQLite database needs: read-write, or read for a ``mode=ro`` URI."""
    if type(database) in _PATH_TYPES:
        database = str(database)
    if isinstance(database, bytes):
        database = os.fsdecode(database)
    if not isinstance(database, str):
        return Need("fs.write", repr(database), "sqlite3.connect")  # refused: not a plain path
    if database in ("", ":memory:"):
        return None
    kind = "fs.write"
    if database.startswith("file:"):
        database, _, query = database[5:].partition("?")
        if "mode=memory" in query:
            return None
        if "mode=ro" in query:
            kind = "fs.read"
    return Need(kind, os.path.realpath(database), "sqlite3.connect")


def decide(event: str, args: tuple[object, ...]) -> Need | None:
    """What ``event`` (with its audit ``args``) needs, or ``None`` if it needs nothing."""
    if event == "open":
        path = normalize_path(args[0]) if args else None
        if path == "":
            return None
        writes = _mode_writes(args[1] if len(args) > 1 else "r", args[2] if len(args) > 2 else 0)
        kind = "fs.write" if writes else "fs.read"
        return Need(kind, path if path is not None else repr(args[0]), "open")
    if event == "import":
        name = str(args[0]) if args else ""
        if name.partition(".")[0] in _NATIVE_MODULES:
            return Need("native", name, "import")
        if name == "_posixsubprocess":
            return Need("subprocess", name, "import")
        filename = args[1] if len(args) > 1 else None
        if isinstance(filename, str) and filename.endswith((".so", ".pyd", ".dylib")):
            return Need("native", os.path.realpath(filename), LOAD_EXTENSION)
        return None
    if event in _FS_WRITE_EVENTS or event in _FS_READ_EVENTS:
        path = normalize_path(args[0]) if args else None
        kind = "fs.write" if event in _FS_WRITE_EVENTS else "fs.read"
        if path == "":
            return None
        return Need(kind, path if path is not None else repr(args[0]), event)
    if event in _DATABASE_EVENTS:
        return _database_need(args[0] if args else "")
    if event in _NET_EVENTS:
        if event in ("socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg"):
            host, port = _host_port(args[1] if len(args) > 1 else None)
        elif event == "socket.getnameinfo":
            host, port = _host_port(args[0] if args else None)
        else:
            host = str(args[0]) if args else ""
            port = args[1] if len(args) > 1 and isinstance(args[1], int) else None
        return Need("net", host, event, port)
    if event in _PROCESS_EVENTS:
        return Need("subprocess", _text(args[0] if args else ""), event)
    if event in _ENV_EVENTS:
        return Need("env", _text(args[0] if args else ""), event)
    if event in ALWAYS_DENIED:
        return Need("", "", event)
    if event in _CTYPES_EVENTS:
        return Need("native", event, event)
    return None


def _import_dirs() -> tuple[str, ...]:
    """Folders Python's own code lives in: readable by every plugin (imports read them)."""
    paths = sysconfig.get_paths()
    dirs = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    dirs.add(os.path.dirname(os.__file__))
    # site-packages of this environment, not the current directory ('' or cwd).
    dirs.update(p for p in sys.path if p and "site-packages" in p)
    try:
        import zoneinfo

        dirs.update(zoneinfo.TZPATH)
    except ImportError:  # pragma: no cover - zoneinfo is stdlib from 3.9
        pass
    return tuple(sorted(os.path.realpath(d) for d in dirs if d))


_IMPORT_DIRS = _import_dirs()


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


@dataclass(frozen=True)
class PathPolicy:
    """The folders a plugin may always use, beside what it was granted.

    ``readable``: its own code and its dependencies' code; ``writable``: its
    private storage folder. Python's own library folders are readable by all.
    """

    readable: tuple[str, ...] = ()
    writable: tuple[str, ...] = ()

    @staticmethod
    def in_environment(path: str) -> bool:
        """Whether ``path`` is part of Python's installed code (stdlib, site-packages)."""
        return any(_under(path, d) for d in _IMPORT_DIRS)

    def allows(self, grants: Grants, need: Need) -> bool:
        path = need.target
        if need.kind == "fs.write":
            return any(_under(path, d) for d in self.writable) or grants.allows_path(
                "fs.write", path
            )
        if any(_under(path, d) for d in self.writable + self.readable):
            return True
        if self.in_environment(path):
            return True
        return grants.allows_path("fs.read", path)
