"""The host protocol: everything plugmarket needs from the shell it lives in.

A :class:`Host` registers magics, display formatters and event callbacks,
pushes names into the user namespace and displays objects. Each registering
method returns an *undo* callable that puts the shell back exactly as it was,
so a plugin's registrations can be reversed at unload whatever the plugin's
own ``deactivate`` did. Two implementations:

- :class:`PlainHost` keeps everything in dictionaries and never imports
  IPython; it serves plain Python processes, the CLI and tests, and will serve
  the child process of isolation mode.
- :class:`IPythonHost` drives a real ``InteractiveShell`` through IPython's
  own machinery; IPython is imported only when one is constructed.

Invariants every host keeps:

- A magic name already taken (by IPython, the user or another plugin) is
  refused with a :class:`~plugmarket.errors.PlugmarketError`: nothing is
  silently replaced. (A plugin replacing its *own* magic is handled by
  :class:`~plugmarket.context.PluginContext`, which undoes it first.)
- An undo touches only what its registration left in place: a formatter,
  magic or name that someone else has replaced since is left alone, and a
  previous formatter or value is restored by identity.
- Undos are safe to call more than once.
- The host never calls plugin code while registering or undoing (identity
  comparisons only, never ``==`` on plugin objects).
"""

from __future__ import annotations

import keyword
import logging
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

from plugmarket.errors import PlugmarketError

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "EVENTS",
    "MAGIC_KINDS",
    "Host",
    "IPythonHost",
    "PlainHost",
    "Undo",
    "current_host",
]

Undo = Callable[[], None]

#: The IPython events a plugin may subscribe to.
EVENTS: Final = (
    "pre_execute",
    "pre_run_cell",
    "post_execute",
    "post_run_cell",
    "shell_initialized",
)
#: The kinds of magic a plugin may register.
MAGIC_KINDS: Final = ("line", "cell")

_log = logging.getLogger("plugmarket.host")


class _Missing:
    """Marks "there was nothing here" (``None`` can be a real previous value)."""

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Final = _Missing()


@runtime_checkable
class Host(Protocol):
    """What plugmarket needs from the shell. Every registration returns its undo."""

    def register_magic(self, fn: Callable[..., Any], name: str, kind: str) -> Undo:
        """Register ``fn`` as the ``kind`` (``"line"`` or ``"cell"``) magic ``name``."""
        ...

    def register_formatter(self, type_: type, fn: Callable[[Any], Any], mime: str) -> Undo:
        """Format instances of ``type_`` (and subclasses) as ``mime`` with ``fn``."""
        ...

    def on(self, event: str, fn: Callable[..., Any]) -> Undo:
        """Call ``fn`` on the IPython event ``event``."""
        ...

    def push(self, names: Mapping[str, object]) -> Undo:
        """Bind ``names`` in the user namespace."""
        ...

    def display(self, obj: object) -> None:
        """Show ``obj`` to the user."""
        ...


# --- validation shared by every host ------------------------------------------


def _check_kind(kind: str) -> None:
    if kind not in MAGIC_KINDS:
        raise PlugmarketError(
            f"a magic's kind must be 'line' or 'cell', found {kind!r}",
            hint="Pass kind='line' for %name or kind='cell' for %%name.",
        )


def _check_magic_name(name: object) -> str:
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise PlugmarketError(
            f"a magic's name must be a Python identifier, found {name!r}",
            hint="Pass name='...' with letters, digits and underscores.",
        )
    return name


def _taken(kind: str, name: str) -> PlugmarketError:
    prefix = "%" if kind == "line" else "%%"
    return PlugmarketError(
        f"the {kind} magic {prefix}{name} already exists; plugmarket does not replace a magic "
        "that the plugin did not register itself",
        hint="Register the magic under another name (name='...').",
    )


def _check_event(event: str, known: Iterable[str] = EVENTS) -> None:
    known = tuple(known)
    if event not in known:
        raise PlugmarketError(
            f"unknown IPython event {event!r}; the known events are {', '.join(known)}",
            hint="Subscribe to one of the known events.",
        )


def _check_type(type_: object) -> None:
    if not isinstance(type_, type):
        raise PlugmarketError(
            f"a formatter is registered for a class, found {type_!r}",
            hint="Pass the class whose instances the formatter renders.",
        )


def _check_names(names: Mapping[str, object], reserved: Iterable[str] = ()) -> None:
    reserved = frozenset(reserved)
    for name in names:
        if (
            not isinstance(name, str)
            or not name.isidentifier()
            or keyword.iskeyword(name)
            or (name.startswith("__") and name.endswith("__"))
        ):
            raise PlugmarketError(
                f"cannot push {name!r} into the user namespace: not an ordinary Python name",
                hint="Push names made of letters, digits and underscores, not dunder names.",
            )
        if name in reserved:
            raise PlugmarketError(
                f"cannot push {name!r} into the user namespace: the shell itself owns that name",
                hint="Push the value under another name.",
            )


def _restore_names(
    ns: dict[str, Any], pushed: Mapping[str, object], previous: Mapping[str, object]
) -> None:
    for name, value in pushed.items():
        # Only a value still bound to what was pushed is taken back: a name
        # the user rebound since keeps the user's value.
        if ns.get(name, _MISSING) is value:
            old = previous[name]
            if old is _MISSING:
                del ns[name]
            else:
                ns[name] = old


def _once(fn: Callable[[], None]) -> Undo:
    done = False

    def undo() -> None:
        nonlocal done
        if not done:
            done = True
            fn()

    return undo


# --- a host without IPython ----------------------------------------------------


class PlainHost:
    """A host for plain Python processes: magics, formatters, events and a namespace in dicts.

    Args:
        sink: Called with each displayed object; ``None`` prints its ``repr``.
        namespace: The user namespace to push into (a new dict if ``None``).
    """

    def __init__(
        self,
        sink: Callable[[object], None] | None = None,
        namespace: dict[str, Any] | None = None,
    ) -> None:
        self.magics: dict[str, dict[str, Callable[..., Any]]] = {k: {} for k in MAGIC_KINDS}
        self.formatters: dict[str, dict[type, Callable[[Any], Any]]] = {}
        self.events: dict[str, list[Callable[..., Any]]] = {e: [] for e in EVENTS}
        self.user_ns: dict[str, Any] = {} if namespace is None else namespace
        self._sink = sink

    def register_magic(self, fn: Callable[..., Any], name: str, kind: str) -> Undo:
        """Register ``fn`` as a magic.

        Raises:
            PlugmarketError: bad kind or name, or the name is taken.
        """
        _check_kind(kind)
        _check_magic_name(name)
        table = self.magics[kind]
        if name in table:
            raise _taken(kind, name)
        table[name] = fn

        def undo() -> None:
            if table.get(name) is fn:
                del table[name]

        return _once(undo)

    def register_formatter(self, type_: type, fn: Callable[[Any], Any], mime: str) -> Undo:
        """Register ``fn`` as the ``mime`` formatter of ``type_``, restoring the old one on undo.

        Raises:
            PlugmarketError: ``type_`` is not a class.
        """
        _check_type(type_)
        printers = self.formatters.setdefault(mime, {})
        previous = printers.get(type_, _MISSING)
        printers[type_] = fn

        def undo() -> None:
            if printers.get(type_) is fn:
                if previous is _MISSING:
                    del printers[type_]
                else:
                    printers[type_] = previous  # type: ignore[assignment]

        return _once(undo)

    def on(self, event: str, fn: Callable[..., Any]) -> Undo:
        """Subscribe ``fn`` to ``event``.

        Raises:
            PlugmarketError: the event is unknown.
        """
        _check_event(event)
        callbacks = self.events[event]
        callbacks.append(fn)
        return _once(lambda: _remove_identical(callbacks, fn))

    def push(self, names: Mapping[str, object]) -> Undo:
        """Bind ``names`` in :attr:`user_ns`; undo restores or deletes them.

        Raises:
            PlugmarketError: a name is not an ordinary Python name.
        """
        _check_names(names)
        pushed = dict(names)
        previous = {n: self.user_ns.get(n, _MISSING) for n in pushed}
        self.user_ns.update(pushed)
        return _once(lambda: _restore_names(self.user_ns, pushed, previous))

    def display(self, obj: object) -> None:
        """Hand ``obj`` to the sink, or print its ``repr``."""
        if self._sink is not None:
            self._sink(obj)
        else:
            print(repr(obj))

    # -- driving the host (tests, the CLI) --

    def fire(self, event: str, *args: Any) -> None:
        """Call every callback of ``event``, as IPython does: one failing does not stop the rest.

        Raises:
            PlugmarketError: the event is unknown.
        """
        _check_event(event)
        for fn in list(self.events[event]):
            try:
                fn(*args)
            except Exception:
                _log.exception("a %s callback failed", event)

    def run_magic(self, name: str, line: str = "", cell: str | None = None) -> Any:
        """Run the line magic ``name`` (or the cell magic, when ``cell`` is given).

        Returns:
            What the magic returned.

        Raises:
            PlugmarketError: no such magic.
        """
        kind = "line" if cell is None else "cell"
        fn = self.magics[kind].get(name)
        if fn is None:
            raise PlugmarketError(
                f"no {kind} magic named {name!r}",
                hint=f"Known {kind} magics: {', '.join(sorted(self.magics[kind])) or 'none'}.",
            )
        return fn(line) if cell is None else fn(line, cell)

    def format(self, obj: object) -> dict[str, Any]:
        """Format ``obj`` with every registered formatter that applies (nearest class first)."""
        out: dict[str, Any] = {}
        for mime, printers in self.formatters.items():
            for cls in type(obj).__mro__:
                if cls in printers:
                    out[mime] = printers[cls](obj)
                    break
        return out


def _remove_identical(items: list[Callable[..., Any]], fn: Callable[..., Any]) -> None:
    # By identity: ``list.remove`` would call ``__eq__`` on other callbacks.
    for i, item in enumerate(items):
        if item is fn:
            del items[i]
            return


# --- a host in a real IPython shell ----------------------------------------------


class IPythonHost:
    """A host driving a real IPython ``InteractiveShell`` through its own machinery.

    Args:
        shell: The running ``InteractiveShell`` (for example ``get_ipython()``).
    """

    def __init__(self, shell: Any) -> None:
        from IPython.display import display  # lazy: only a running shell pays for it

        self._shell = shell
        self._display: Callable[..., None] = display

    def register_magic(self, fn: Callable[..., Any], name: str, kind: str) -> Undo:
        """Register ``fn`` with ``shell.register_magic_function``.

        Raises:
            PlugmarketError: bad kind or name, or the name is taken (by a magic,
                a lazily loaded magic, or an attribute of IPython's user magics).
        """
        _check_kind(kind)
        _check_magic_name(name)
        manager = self._shell.magics_manager
        user_magics = manager.user_magics
        # register_magic_function also sets the function as an attribute of
        # user_magics: a name like "shell" or "config" would clobber IPython's own.
        magic_fns = {id(f) for table in manager.magics.values() for f in table.values()}
        own_attr = hasattr(user_magics, name) and id(getattr(user_magics, name)) not in magic_fns
        if name in manager.magics[kind] or name in manager.lazy_magics or own_attr:
            raise _taken(kind, name)
        previous_attr = vars(user_magics).get(name, _MISSING)
        self._shell.register_magic_function(fn, magic_kind=kind, magic_name=name)

        def undo() -> None:
            table = manager.magics[kind]
            if table.get(name) is fn:
                del table[name]
            if vars(user_magics).get(name, _MISSING) is fn:
                # The attribute is last-writer-wins across kinds: give back the
                # previous one only while it is still a live magic.
                live = any(f is previous_attr for t in manager.magics.values() for f in t.values())
                if live:
                    setattr(user_magics, name, previous_attr)
                else:
                    delattr(user_magics, name)

        return _once(undo)

    def register_formatter(self, type_: type, fn: Callable[[Any], Any], mime: str) -> Undo:
        """Register ``fn`` in ``display_formatter.formatters[mime]``; undo restores the old one.

        Raises:
            PlugmarketError: ``type_`` is not a class, or ``mime`` has no formatter.
        """
        _check_type(type_)
        formatters = self._shell.display_formatter.formatters
        if mime not in formatters:
            raise PlugmarketError(
                f"IPython has no formatter for {mime!r}; it has {', '.join(sorted(formatters))}",
                hint="Register the formatter for one of those MIME types.",
            )
        formatter = formatters[mime]
        previous = formatter.type_printers.get(type_, _MISSING)
        # Written straight into type_printers rather than through for_type():
        # for_type's lookup moves deferred printers of every base class into
        # type_printers as a side effect, which an undo could not tell apart.
        # A deferred printer for this very class stays where it is: the
        # type_printers entry wins over it, and after undo it applies again.
        formatter.type_printers[type_] = fn

        def undo() -> None:
            printers = formatter.type_printers
            if printers.get(type_) is fn:
                if previous is _MISSING:
                    del printers[type_]
                else:
                    printers[type_] = previous

        return _once(undo)

    def on(self, event: str, fn: Callable[..., Any]) -> Undo:
        """Register ``fn`` with ``shell.events``.

        Raises:
            PlugmarketError: the event is unknown.
        """
        events = self._shell.events
        _check_event(event, (e for e in EVENTS if e in events.callbacks))
        events.register(event, fn)
        return _once(lambda: _remove_identical(events.callbacks[event], fn))

    def push(self, names: Mapping[str, object]) -> Undo:
        """Bind ``names`` with ``shell.push``; undo restores or deletes them.

        Names IPython keeps for itself (``In``, ``Out``, ``get_ipython``, ``_``,
        ... everything in ``user_ns_hidden``) are refused.

        Raises:
            PlugmarketError: a name is not ordinary, or belongs to the shell.
        """
        _check_names(names, self._shell.user_ns_hidden)
        pushed = dict(names)
        ns = self._shell.user_ns
        previous = {n: ns.get(n, _MISSING) for n in pushed}
        self._shell.push(pushed)
        return _once(lambda: _restore_names(ns, pushed, previous))

    def display(self, obj: object) -> None:
        """Show ``obj`` with ``IPython.display.display``."""
        self._display(obj)


_plain: PlainHost | None = None


def current_host() -> Host:
    """The host for this process: the running IPython shell, else one process-wide PlainHost.

    IPython is not imported here: if nothing imported it, no shell is running.

    Returns:
        An :class:`IPythonHost` for ``IPython.get_ipython()``, or the shared :class:`PlainHost`.
    """
    global _plain
    ipython = sys.modules.get("IPython")
    get_ipython: Callable[[], Any] | None = getattr(ipython, "get_ipython", None)
    shell = get_ipython() if get_ipython is not None else None
    if shell is not None:
        return IPythonHost(shell)
    if _plain is None:
        _plain = PlainHost()
    return _plain
