"""Capability gating for in-process plugins: the plugin's own builtins and a
PEP 578 audit hook, sharing one policy per plugin.

This is guard-rails, not a sandbox (see docs/threat-model.md): it stops
plugins that overreach or make mistakes and records what they do; code that
walks Python's object graph can reach ungated builtins.

A :class:`Guard` holds one plugin's identity and grants. Plugin code is
recognised by the code objects' file names (registered by the importer),
by the guard's ``running()`` context, or by code compiled through the
plugin's own ``compile``/``exec``/``eval``; an audited event raised while
any plugin frame is on the stack is checked against that plugin's grants.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from plugmarket.capabilities import Grants
from plugmarket.errors import CapabilityDenied

__all__ = ["AuditSink", "Guard"]

F = TypeVar("F", bound=Callable[..., Any])
AuditSink = Callable[[CapabilityDenied], None]

# The guard whose code the host is running right now (host -> plugin calls).
_current: contextvars.ContextVar[Guard | None] = contextvars.ContextVar(
    "plugmarket_guard", default=None
)


def _no_audit(denial: CapabilityDenied) -> None:
    pass


class Guard:
    """One plugin's identity, grants and audit sink.

    Args:
        plugin_id: The plugin's id.
        grants: What the plugin was granted.
        root: The folder its code lives in (always readable by it).
        storage: Its private folder (always readable and writable by it).
        audit: Called with every denial before it is raised.
    """

    def __init__(
        self,
        plugin_id: str,
        grants: Grants,
        *,
        root: Path | None = None,
        storage: Path | None = None,
        audit: AuditSink = _no_audit,
    ) -> None:
        self.plugin_id = plugin_id
        self.grants = grants
        self.root = root
        self.storage = storage
        self.audit = audit

    def deny(self, capability: str, operation: str, target: str = "") -> CapabilityDenied:
        """Build a denial, hand it to the audit sink, and return it (for ``raise``)."""
        denial = CapabilityDenied(
            plugin_id=self.plugin_id, capability=capability, operation=operation, target=target
        )
        self.audit(denial)
        return denial

    def require(self, capability: str, operation: str, target: str = "") -> None:
        """Raise :class:`CapabilityDenied` unless ``capability`` (an unscoped kind) is granted."""
        if not self.grants.has(capability):
            raise self.deny(capability, operation, target)

    @contextmanager
    def running(self) -> Iterator[None]:
        """Attribute everything done inside to this plugin (host -> plugin calls)."""
        token = _current.set(self)
        try:
            yield
        finally:
            _current.reset(token)

    def wrap(self, fn: F) -> F:
        """``fn``, called under this plugin's attribution (for callbacks the host runs)."""

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            with self.running():
                return fn(*args, **kwargs)

        del call.__wrapped__  # do not hand the plugin's own function back out
        return call  # type: ignore[return-value]
