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

import mimetypes
import os
import pathlib
import socket
import sys
import sysconfig
from dataclasses import dataclass

from plugmarket.capabilities import Grants

__all__ = [
    "ALWAYS_DENIED",
    "EVENTS",
    "FORK_EXEC",
    "LOAD_EXTENSION",
    "Need",
    "PathPolicy",
    "decide",
    "describe",
    "normalize_path",
    "second_path",
]

#: The event plugmarket raises for _posixsubprocess.fork_exec (CPython has none before 3.14).
FORK_EXEC = "plugmarket.fork_exec"
_INET_FAMILIES = frozenset({socket.AF_INET, socket.AF_INET6})
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
_FS_READ_EVENTS = frozenset({"os.listdir", "os.scandir", "glob.glob", "glob.glob/2"})
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
        "socket.__new__",
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
        FORK_EXEC,
    }
)
_ENV_EVENTS = frozenset({"os.putenv", "os.unsetenv"})
# SQLite opens its files in C; the connect event names the database.
_DATABASE_EVENTS = frozenset({"sqlite3.connect"})
#: Handing out frames, every live object, or a tracer: refused to every plugin.
ALWAYS_DENIED = frozenset(
    {
        "os.chdir",  # the whole kernel's current folder is not one plugin's to move
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


def describe(value: object) -> str:
    """Text for an event argument, without running any of the object's own methods.

    Plugin objects reach the hook as event arguments; calling their ``__str__``
    or ``__repr__`` there would run plugin code while the gate is looking away.
    """
    if type(value) is str:
        return value
    if type(value) is bytes:
        return os.fsdecode(value)
    if type(value) is int or value is None:
        return repr(value)
    if type(value) in _PATH_TYPES:
        return str(value)
    return object.__repr__(value)


def _folder_of(dir_fd: object) -> str | None:
    """The folder an open directory descriptor stands for, or None if unknown."""
    if type(dir_fd) is not int:
        return None
    try:
        return os.readlink(f"/proc/self/fd/{dir_fd}")
    except OSError:
        return None


def normalize_path(value: object, dir_fd: object = None) -> str | None:
    """An absolute, resolved path for ``value``, or ``None`` if it is not a plain path.

    A relative path is taken from ``dir_fd``'s folder when one is given (the
    ``*at()`` calls), else from the current folder. File descriptors return
    ``""`` (already open: nothing to check).
    """
    if type(value) is int:
        return ""
    if type(value) in _PATH_TYPES:
        value = str(value)
    if type(value) is bytes:
        value = os.fsdecode(value)
    if type(value) is not str:
        return None
    if dir_fd is not None and not os.path.isabs(value):
        folder = _folder_of(dir_fd)
        if folder is None:
            return None
        value = os.path.join(folder, value)
    return os.path.realpath(value)


def _mode_writes(mode: object, flags: object) -> bool:
    if type(mode) is str:
        return any(c in mode for c in "wax+")
    return type(flags) is int and bool(flags & _WRITE_FLAGS)


def _host_port(address: object) -> tuple[str, int | None]:
    if type(address) is tuple and address:
        port = address[1] if len(address) > 1 and type(address[1]) is int else None
        return describe(address[0]), port
    if type(address) in (str, bytes):
        return describe(address), None  # AF_UNIX path
    return describe(address), None


def _database_need(database: object) -> Need | None:
    """What opening an SQLite database needs: read-write, or read for a ``mode=ro`` URI."""
    if type(database) in _PATH_TYPES:
        database = str(database)
    if type(database) is bytes:
        database = os.fsdecode(database)
    if type(database) is not str:
        return Need("fs.write", describe(database), "sqlite3.connect")  # refused: not a path
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


# Where each file event keeps its path and its folder descriptor (None: it has none).
_PATH_ARGS: dict[str, tuple[int, int | None]] = {
    "os.remove": (0, 1),
    "os.rmdir": (0, 1),
    "os.mkdir": (0, 2),
    "os.chmod": (0, 2),
    "os.chown": (0, 3),
    "os.utime": (0, 3),
    "os.rename": (0, 2),
    "os.link": (0, 2),
    "os.symlink": (1, 2),  # the link itself; its target is second_path()
    "os.truncate": (0, None),
    "os.chflags": (0, None),
    "os.lchflags": (0, None),
    "os.setxattr": (0, None),
    "os.removexattr": (0, None),
}


def _file_need(event: str, kind: str, args: tuple[object, ...]) -> Need | None:
    place, fd_at = _PATH_ARGS.get(event, (0, None))
    value = args[place] if len(args) > place else None
    dir_fd = args[fd_at] if fd_at is not None and len(args) > fd_at else None
    path = normalize_path(value, dir_fd)
    if path == "":
        return None
    return Need(kind, path if path is not None else describe(value), event)


def second_path(event: str, args: tuple[object, ...]) -> Need | None:
    """The other end of a rename, link or symlink, which must be writable too."""
    if event in ("os.rename", "os.link") and len(args) > 1:
        dst_fd = args[3] if len(args) > 3 else None
        path = normalize_path(args[1], dst_fd)
    elif event == "os.symlink" and len(args) > 1:
        # symlink(target, link, dir_fd): the target is read from the link's folder.
        link = normalize_path(args[1], args[2] if len(args) > 2 else None)
        target = args[0]
        if type(target) is bytes:
            target = os.fsdecode(target)
        if link is None or type(target) is not str:
            return Need("fs.write", describe(args[0]), event)
        path = os.path.realpath(os.path.join(os.path.dirname(link), target))
    else:
        return None
    if path == "":
        return None
    return Need("fs.write", path if path is not None else describe(args[1]), event)


def decide(event: str, args: tuple[object, ...], dir_fd: object = None) -> Need | None:
    """What ``event`` (with its audit ``args``) needs, or ``None`` if it needs nothing.

    ``dir_fd`` is the folder descriptor an ``open`` event's relative path is
    taken from, when the caller knows it (the event itself does not carry it).
    No method of any argument is called: see :func:`describe`.
    """
    if event == "open":
        path = normalize_path(args[0], dir_fd) if args else None
        if path == "":
            return None
        writes = _mode_writes(args[1] if len(args) > 1 else "r", args[2] if len(args) > 2 else 0)
        kind = "fs.write" if writes else "fs.read"
        return Need(kind, path if path is not None else describe(args[0]), "open")
    if event == "import":
        name = describe(args[0]) if args else ""
        if name.partition(".")[0] in _NATIVE_MODULES:
            return Need("native", name, "import")
        if name == "_posixsubprocess":
            return Need("subprocess", name, "import")
        filename = args[1] if len(args) > 1 else None
        if type(filename) is str and filename.endswith((".so", ".pyd", ".dylib")):
            return Need("native", os.path.realpath(filename), LOAD_EXTENSION)
        return None
    if event in _FS_WRITE_EVENTS:
        return _file_need(event, "fs.write", args)
    if event in _FS_READ_EVENTS:
        return _file_need(event, "fs.read", args)
    if event == "sqlite3.connect":
        return _database_need(args[0] if args else "")
    if event == "socket.__new__":
        # (sock, family, type, proto): local socketpairs (asyncio's loop) need nothing.
        family = args[1] if len(args) > 1 else None
        return Need("net", "", event) if family in _INET_FAMILIES else None
    if event in _NET_EVENTS:
        if event in ("socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg"):
            host, port = _host_port(args[1] if len(args) > 1 else None)
        elif event == "socket.getnameinfo":
            host, port = _host_port(args[0] if args else None)
        else:
            host = describe(args[0]) if args else ""
            port = args[1] if len(args) > 1 and type(args[1]) is int else None
        return Need("net", host, event, port)
    if event in _PROCESS_EVENTS:
        return Need("subprocess", describe(args[0]) if args else "", event)
    if event in _ENV_EVENTS:
        return Need("env", describe(args[0]) if args else "", event)
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
# System data the standard library reads on a plugin's behalf (mimetypes' tables).
_SYSTEM_FILES = frozenset(os.path.realpath(f) for f in mimetypes.knownfiles)
_DEVNULL = os.path.realpath(os.devnull)


def _listable_dirs() -> frozenset[str]:
    """The folders on ``sys.path``: the import system and importlib.metadata list them."""
    return frozenset(os.path.realpath(p or os.curdir) for p in sys.path)


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
        if path == _DEVNULL:
            return True
        if need.kind == "fs.write":
            return any(_under(path, d) for d in self.writable) or grants.allows_path(
                "fs.write", path
            )
        if any(_under(path, d) for d in self.writable + self.readable):
            return True
        if self.in_environment(path) or path in _SYSTEM_FILES:
            return True
        if need.operation in ("os.listdir", "os.scandir") and path in _listable_dirs():
            return True  # names only, as the import system sees them
        return grants.allows_path("fs.read", path)
