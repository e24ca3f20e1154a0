"""PluginContext: the plugin author's whole API, and the record of what a plugin did.

The loader builds one :class:`PluginContext` per activation, passes it to the
plugin's ``activate(ctx)`` (and ``deactivate(ctx)``), then calls
:meth:`PluginContext.close`. Invariants:

- Every registration checks the plugin's capability first (a denial raises
  :class:`~plugmarket.errors.CapabilityDenied` and is audited by the guard).
- Every callable the plugin hands over (magic, formatter, event callback,
  cleanup) reaches the host wrapped by ``guard.wrap``, so it runs under the
  plugin's attribution even when it is a C builtin.
- Every registration pushes its undo on a stack; :meth:`close` runs the stack
  in reverse order exactly once, continuing past an undo that fails, then
  closes :attr:`http`. After :meth:`close`, registrations are refused.
- ``ctx.http`` only reaches hosts and ports the plugin's ``net`` grants allow,
  checked on every request, redirects included.
- The context keeps the host and the guard in private, name-mangled slots and
  never hands them out. That is guard-rails against mistakes, not a wall: code
  that walks Python's object graph can still reach them (docs/threat-model.md).
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from plugmarket._internal.gate import host_io
from plugmarket.errors import PlugmarketError

if TYPE_CHECKING:
    import httpx

    from plugmarket._internal.gate import Guard
    from plugmarket.host import Host, Undo

__all__ = ["PluginContext"]

_HTTP_TIMEOUT = 10.0  # seconds, per connect/read/write/pool step


class PluginContext:
    """What a plugin's ``activate(ctx)`` receives.

    Args:
        plugin_id: The plugin's id.
        version: The plugin's version.
        host: The shell to register into (never exposed to the plugin).
        guard: The plugin's capability guard (never exposed to the plugin).
        storage: The plugin's private folder; created on first access.
        config: The plugin's settings (exposed read-only).
        logger: The plugin's logger; ``plugmarket.plugins.<id>`` if ``None``.
    """

    __slots__ = (
        "__closed",
        "__config",
        "__guard",
        "__host",
        "__http",
        "__id",
        "__lock",
        "__log",
        "__magics",
        "__stack",
        "__storage",
        "__storage_ready",
        "__version",
    )

    def __init__(
        self,
        plugin_id: str,
        version: str,
        *,
        host: Host,
        guard: Guard,
        storage: Path,
        config: Mapping[str, object],
        logger: logging.Logger | None = None,
    ) -> None:
        self.__id = plugin_id
        self.__version = version
        self.__host = host
        self.__guard = guard
        self.__storage = storage if isinstance(storage, Path) else Path(storage)
        self.__storage_ready = False
        # A copy: the caller changing its mapping later does not reach the plugin.
        self.__config: Mapping[str, object] = MappingProxyType(dict(config))
        self.__log = _PluginLog(logger or logging.getLogger(f"plugmarket.plugins.{plugin_id}"))
        self.__stack: list[tuple[str, Callable[[], object]]] = []
        self.__magics: dict[tuple[str, str], Undo] = {}
        self.__http: httpx.Client | None = None
        self.__closed = False
        self.__lock = threading.Lock()

    def __repr__(self) -> str:
        state = " closed" if self.__closed else ""
        return f"<PluginContext {self.__id} {self.__version}{state}>"

    # -- identity and resources --

    @property
    def id(self) -> str:
        """The plugin's id."""
        return self.__id

    @property
    def version(self) -> str:
        """The plugin's version."""
        return self.__version

    @property
    def config(self) -> Mapping[str, object]:
        """The plugin's settings, read-only."""
        return self.__config

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]:
        """The plugin's logger, ``plugmarket.plugins.<id>``."""
        return self.__log

    @property
    def storage(self) -> Path:
        """The plugin's private folder (mode 0700), created on first access.

        Raises:
            PlugmarketError: the folder cannot be created.
        """
        if not self.__storage_ready:
            try:
                # plugmarket's own I/O, even when the plugin's code asked for it.
                with host_io():
                    self.__storage.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as exc:
                raise PlugmarketError(
                    f"cannot create the storage folder {self.__storage} of plugin "
                    f"{self.__id!r}: {exc.strerror or exc}",
                    hint="Check that plugmarket's home folder exists and is writable.",
                ) from exc
            self.__storage_ready = True
        return self.__storage

    @property
    def http(self) -> httpx.Client:
        """An ``httpx.Client`` limited to the plugin's ``net`` grants (timeouts on).

        Redirects are followed, and every hop is checked like the first
        request. A request to a host or port that is not granted raises
        :class:`~plugmarket.errors.CapabilityDenied`.

        Raises:
            PlugmarketError: the context is closed.
        """
        with self.__lock:
            if self.__closed:
                raise self.__closed_error("use ctx.http")
            if self.__http is None:
                self.__http = _granted_client(self.__guard, self.__id)
            return self.__http

    # -- registrations --

    def register_magic(
        self, fn: Callable[..., Any], name: str | None = None, kind: str = "line"
    ) -> None:
        """Register ``fn`` as the magic ``%name`` (``kind="line"``) or ``%%name`` (``"cell"``).

        A line magic is called as ``fn(line)``, a cell magic as ``fn(line, cell)``.
        Registering a name the plugin already registered replaces its own magic;
        a name taken by anyone else is refused.

        Args:
            fn: The magic's function.
            name: The magic's name; ``fn.__name__`` if ``None``.
            kind: ``"line"`` or ``"cell"``.

        Raises:
            CapabilityDenied: ``ipython.magics`` is not granted.
            PlugmarketError: bad name or kind, the name is taken, or the context is closed.
        """
        name = name if name is not None else getattr(fn, "__name__", "")
        prefix = "%%" if kind == "cell" else "%"
        self.__guard.require("ipython.magics", "register a magic", f"{prefix}{name}")
        _check_callable(fn, "a magic")
        with self.__lock:
            self.__check_open("register a magic")
            own = self.__magics.pop((kind, name), None)
            if own is not None:
                own()  # the plugin replaces its own magic; the stack entry becomes a no-op
            undo = self.__host.register_magic(self.__guard.wrap(fn), name, kind)
            self.__magics[(kind, name)] = undo
            self.__stack.append((f"{kind} magic {prefix}{name}", undo))

    def register_formatter(
        self, type_: type, fn: Callable[[Any], Any], mime: str = "text/html"
    ) -> None:
        """Render instances of ``type_`` as ``mime`` with ``fn(obj)``.

        The formatter the class had before comes back at unload.

        Args:
            type_: The class to format (subclasses too).
            fn: Returns the ``mime`` representation of an instance.
            mime: The MIME type ``fn`` produces.

        Raises:
            CapabilityDenied: ``display`` is not granted.
            PlugmarketError: ``type_`` is not a class, the MIME type is unknown
                to the shell, or the context is closed.
        """
        what = f"{mime} for {getattr(type_, '__qualname__', type_)!s}"
        self.__guard.require("display", "register a display formatter", what)
        _check_callable(fn, "a formatter")
        with self.__lock:
            self.__check_open("register a display formatter")
            undo = self.__host.register_formatter(type_, self.__guard.wrap(fn), mime)
            self.__stack.append((f"formatter {what}", undo))

    def on(self, event: str, fn: Callable[..., Any]) -> None:
        """Call ``fn`` on the IPython event ``event`` (``pre_run_cell``, ``post_run_cell``, ...).

        Raises:
            CapabilityDenied: ``ipython.events`` is not granted.
            PlugmarketError: the event is unknown, or the context is closed.
        """
        self.__guard.require("ipython.events", "subscribe to an IPython event", event)
        _check_callable(fn, "an event callback")
        with self.__lock:
            self.__check_open("subscribe to an IPython event")
            undo = self.__host.on(event, self.__guard.wrap(fn))
            self.__stack.append((f"{event} callback", undo))

    def push(self, /, **names: object) -> None:
        """Bind ``names`` in the user namespace.

        At unload each name gets its previous value back (or is deleted if it
        did not exist), unless the user has rebound it since.

        Raises:
            CapabilityDenied: ``ipython.namespace`` is not granted.
            PlugmarketError: a name is not an ordinary Python name or belongs
                to the shell, or the context is closed.
        """
        listed = ", ".join(names)
        self.__guard.require("ipython.namespace", "push names into the user namespace", listed)
        if not names:
            return
        with self.__lock:
            self.__check_open("push names into the user namespace")
            undo = self.__host.push(names)
            self.__stack.append((f"names {listed}", undo))

    def display(self, obj: object) -> None:
        """Show ``obj`` to the user; its reprs run under the plugin's attribution.

        Raises:
            CapabilityDenied: ``display`` is not granted.
            PlugmarketError: the context is closed.
        """
        self.__guard.require("display", "display an object", type(obj).__qualname__)
        self.__check_open("display an object")
        with self.__guard.running():
            self.__host.display(obj)

    def add_cleanup(self, fn: Callable[[], object]) -> None:
        """Run ``fn()`` at unload, in reverse order with every registration.

        For what the plugin started itself: threads, timers, open files.

        Raises:
            PlugmarketError: ``fn`` is not callable, or the context is closed.
        """
        _check_callable(fn, "a cleanup")
        wrapped = self.__guard.wrap(fn)
        with self.__lock:
            self.__check_open("add a cleanup")
            self.__stack.append((f"cleanup {getattr(fn, '__qualname__', fn)!s}", wrapped))

    # -- unload --

    def close(self) -> tuple[BaseException, ...]:
        """Undo every registration in reverse order, then close :attr:`http`. Runs once.

        An undo that raises is logged on :attr:`log` and the rest still run.
        A second call does nothing.

        Returns:
            The exceptions the undos (and closing ``http``) raised, in the
            order they happened; empty when everything was undone cleanly.
        """
        with self.__lock:
            if self.__closed:
                return ()
            self.__closed = True
            stack, self.__stack = self.__stack, []
            self.__magics.clear()
            client, self.__http = self.__http, None
        errors: list[BaseException] = []
        for label, undo in reversed(stack):
            try:
                undo()
            except Exception as exc:
                errors.append(exc)
                self.__log.error(
                    "undoing the %s of plugin %r failed", label, self.__id, exc_info=exc
                )
        if client is not None:
            try:
                client.close()
            except Exception as exc:
                errors.append(exc)
                self.__log.error(
                    "closing the HTTP client of plugin %r failed", self.__id, exc_info=exc
                )
        return tuple(errors)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run."""
        return self.__closed

    def __check_open(self, operation: str) -> None:
        if self.__closed:
            raise self.__closed_error(operation)

    def __closed_error(self, operation: str) -> PlugmarketError:
        return PlugmarketError(
            f"plugin {self.__id!r} tried to {operation} after it was unloaded",
            hint="A plugin's context is closed once it is unloaded; stop threads and timers "
            "with ctx.add_cleanup so nothing runs after unload.",
        )


class _PluginLog(logging.LoggerAdapter[logging.Logger]):
    """The plugin's logger: its message is rendered under the plugin's attribution,
    then the host's handlers (files, rotation, network) run as the host's code."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__(logger, {})

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        text = str(msg) % args if args else str(msg)
        exc_info = kwargs.pop("exc_info", None)
        if exc_info:
            # Format the traceback here, while the plugin's attribution holds.
            info = sys.exc_info() if exc_info is True else exc_info
            if isinstance(info, BaseException):
                info = (type(info), info, info.__traceback__)
            if info[0] is not None:
                text += "\n" + "".join(traceback.format_exception(*info)).rstrip()
        extra = {k: str(v) for k, v in (kwargs.pop("extra", None) or {}).items()}
        kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 2
        with host_io():
            self.logger.log(level, "%s", text, extra=extra, **kwargs)


def _granted_client(guard: Guard, plugin_id: str) -> httpx.Client:
    import httpx

    class GrantedTransport(httpx.BaseTransport):
        """Refuses any request, redirect hops included, to a host:port not granted."""

        def __init__(self, inner: httpx.BaseTransport) -> None:
            self._inner = inner

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            url = request.url
            # The name the connection will use (IDNA-encoded), and its Unicode form.
            host = url.raw_host.decode("ascii")
            port = url.port or {"http": 80, "https": 443}.get(url.scheme)
            if not (guard.grants.allows_net(host, port) or guard.grants.allows_net(url.host, port)):
                shown = f"[{host}]" if ":" in host else host
                raise guard.deny(f"net:{shown}:{port}", "http request", str(url))
            return self._inner.handle_request(request)

        def close(self) -> None:
            self._inner.close()

    return httpx.Client(
        transport=GrantedTransport(httpx.HTTPTransport()),
        timeout=httpx.Timeout(_HTTP_TIMEOUT),
        follow_redirects=True,
        # No proxies from the environment: a proxy mount would route requests
        # around the granted transport.
        trust_env=False,
        headers={"User-Agent": f"plugmarket-plugin/{plugin_id}"},
    )


def _check_callable(fn: object, what: str) -> None:
    if not callable(fn):
        raise PlugmarketError(
            f"{what} must be callable, found {type(fn).__name__}",
            hint="Pass a function.",
        )
