"""The errors plugmarket raises: one root, a few branches, data on every error.

Every failure a user can cause ends in a :class:`PlugmarketError`. Foreign
exceptions (``OSError``, ``httpx.HTTPError``, ``zipfile.BadZipFile``, ...)
are translated once, where they cross into plugmarket, with the original
chained as ``__cause__``. Each error carries fields a surface can render or a
test can assert on, and a message that says what was expected, what was
found, and what to do next.

The tree::

    PlugmarketError                 .hint
    ├── ManifestError               .path .field .found .allowed
    ├── SourceError                 .source
    │   └── ArchiveError            .member
    ├── IntegrityError              .subject .expected .actual
    ├── SignatureError              .registry .file
    ├── RegistryError               .registry .file
    │   └── OfflineError
    ├── ResolutionError             .conflicts
    ├── CapabilityDenied            .plugin_id .capability .operation .target
    ├── ConsentRequired             .plan
    ├── LoadError                   .plugin_id
    │   └── ActivationError
    └── InstallError                .plugin_id .step
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from typing import Any

__all__ = [
    "ActivationError",
    "ArchiveError",
    "CapabilityDenied",
    "ConsentRequired",
    "InstallError",
    "IntegrityError",
    "LoadError",
    "ManifestError",
    "OfflineError",
    "PlugmarketError",
    "RegistryError",
    "ResolutionError",
    "SignatureError",
    "SourceError",
]


class PlugmarketError(Exception):
    """The root of every error plugmarket raises on purpose.

    Attributes:
        message: What went wrong, in one sentence.
        hint: What the user can do about it (may be empty).
    """

    def __init__(self, message: str, *, hint: str = "") -> None:
        self.message = message
        self.hint = hint
        super().__init__(message)

    def __str__(self) -> str:
        if not self.hint:
            return self.message
        stop = "" if self.message.endswith((".", "!", "?", ":")) else "."
        return f"{self.message}{stop} {self.hint}"

    #: Set (by ``%plugin VERB --debug``) to show this error's whole traceback in IPython.
    show_traceback = False

    def _render_traceback_(self) -> list[str]:
        """How IPython shows this error (its own protocol): one line, with the hint.

        A user's mistake or a refused operation is not a bug, so a notebook
        shows what went wrong and what to do, not plugmarket's internals.
        Hints name terminal commands; in IPython the same verbs are
        ``%plugin`` magics. ``%xmode verbose`` (or ``--debug`` on a verb)
        shows the whole traceback instead.
        """
        shell = _running_ipython()
        if shell is not None and (self.show_traceback or shell.InteractiveTB.mode == "Verbose"):
            return list(
                shell.InteractiveTB.structured_traceback(type(self), self, self.__traceback__)
            )
        return [f"{type(self).__name__}: {in_ipython_words(str(self))}"]


#: The terminal verbs ``%plugin`` has too, so a hint naming one reads as a magic in a
#: kernel. The publisher's verbs (``keygen``, ``build``, ``publish``, ``yank``,
#: ``index``) are terminal only and stay as they are.
_MAGIC_VERBS = frozenset(
    [
        "search",
        "info",
        "versions",
        "install",
        "update",
        "uninstall",
        "list",
        "enable",
        "disable",
        "rollback",
        "generations",
        "grant",
        "revoke",
        "audit",
        "rate",
        "reviews",
        "stats",
        "lock",
        "sync",
        "check",
        "config",
    ]
)
_TERMINAL_VERB = re.compile(r"`plugmarket (?=(" + "|".join(sorted(_MAGIC_VERBS)) + r")\b)")


def in_ipython_words(text: str) -> str:
    """``text`` with the terminal's user verbs (`` `plugmarket grant ...` ``) as magics.

    A publisher's verb (`` `plugmarket index sign` ``) has no magic and is kept.
    """
    return _TERMINAL_VERB.sub("`%plugin ", text)


def _running_ipython() -> Any:
    ipython = sys.modules.get("IPython")  # never imported for this
    return ipython.get_ipython() if ipython is not None else None


class ManifestError(PlugmarketError):
    """A plugin manifest is missing, unreadable or has an invalid field."""

    def __init__(
        self,
        message: str,
        *,
        path: str = "",
        field: str = "",
        found: Any = None,
        allowed: str = "",
        hint: str = "",
    ) -> None:
        self.path = path
        self.field = field
        self.found = found
        self.allowed = allowed
        super().__init__(message, hint=hint)


class SourceError(PlugmarketError):
    """A plugin source could not be read, downloaded or understood."""

    def __init__(self, message: str, *, source: str = "", hint: str = "") -> None:
        self.source = source
        super().__init__(message, hint=hint)


class ArchiveError(SourceError):
    """An archive was refused before anything was unpacked (zip-slip, bomb, link...)."""

    def __init__(self, message: str, *, source: str = "", member: str = "", hint: str = "") -> None:
        self.member = member
        super().__init__(message, source=source, hint=hint)


class IntegrityError(PlugmarketError):
    """Bytes differ from what was pinned: a hash or a size does not match."""

    def __init__(
        self,
        message: str,
        *,
        subject: str = "",
        expected: str = "",
        actual: str = "",
        hint: str = "",
    ) -> None:
        self.subject = subject
        self.expected = expected
        self.actual = actual
        super().__init__(message, hint=hint)


class SignatureError(PlugmarketError):
    """A registry index is unsigned where a signature is required, or wrongly signed."""

    def __init__(self, message: str, *, registry: str = "", file: str = "", hint: str = "") -> None:
        self.registry = registry
        self.file = file
        super().__init__(message, hint=hint)


class RegistryError(PlugmarketError):
    """A registry cannot be reached, or served something that is not trusted."""

    def __init__(self, message: str, *, registry: str = "", file: str = "", hint: str = "") -> None:
        self.registry = registry
        self.file = file
        super().__init__(message, hint=hint)


class OfflineError(RegistryError):
    """Offline mode is on and what was asked for is not in the local cache."""


class ResolutionError(PlugmarketError):
    """No set of plugin versions satisfies every requirement.

    ``conflicts`` holds ``(requirer, requirement)`` pairs, where ``requirer`` is
    a plugin id (or ``"you"`` for the user's own request).
    """

    def __init__(
        self,
        message: str,
        *,
        conflicts: Sequence[tuple[str, str]] = (),
        hint: str = "",
    ) -> None:
        self.conflicts = tuple(conflicts)
        super().__init__(message, hint=hint)


class CapabilityDenied(PlugmarketError):
    """A plugin tried something its grants do not allow.

    Deliberately not an ``OSError``: libraries wrap those (urllib's ``URLError``,
    httpx's ``ConnectError``) or swallow them, and the plugin would no longer
    see the denial for what it is.
    """

    def __init__(
        self,
        message: str = "",
        *,
        plugin_id: str = "",
        capability: str = "",
        operation: str = "",
        target: str = "",
        hint: str = "",
    ) -> None:
        self.plugin_id = plugin_id
        self.capability = capability
        self.operation = operation
        self.target = target
        if not message:
            where = f" on {target!r}" if target else ""
            message = (
                f"plugin {plugin_id!r} was denied {operation}{where}: "
                f"it needs the capability {capability!r}, which it was not granted."
            )
        if not hint:
            hint = (
                f"Grant it with `plugmarket grant {plugin_id} {capability}` "
                "if you trust the plugin."
            )
        super().__init__(message, hint=hint)

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only fields do not survive the default pickling; isolation
        # mode sends denials across a pipe.
        return (
            _rebuild_denied,
            (self.message, self.plugin_id, self.capability, self.operation, self.target, self.hint),
        )


def _rebuild_denied(
    message: str, plugin_id: str, capability: str, operation: str, target: str, hint: str
) -> CapabilityDenied:
    return CapabilityDenied(
        message,
        plugin_id=plugin_id,
        capability=capability,
        operation=operation,
        target=target,
        hint=hint,
    )


class ConsentRequired(PlugmarketError):
    """An operation needs the user's consent; ``plan`` says what would happen."""

    def __init__(self, message: str, *, plan: Any = None, hint: str = "") -> None:
        self.plan = plan
        super().__init__(message, hint=hint or "Review the plan and call again with yes=True.")


class LoadError(PlugmarketError):
    """A plugin could not be imported into its namespace."""

    def __init__(self, message: str, *, plugin_id: str = "", hint: str = "") -> None:
        self.plugin_id = plugin_id
        super().__init__(message, hint=hint)


class ActivationError(LoadError):
    """A plugin's ``activate`` raised or timed out; nothing of it was left behind."""


class InstallError(PlugmarketError):
    """An install, update, uninstall or rollback could not complete; disk is unchanged."""

    def __init__(
        self, message: str, *, plugin_id: str = "", step: str = "", hint: str = ""
    ) -> None:
        self.plugin_id = plugin_id
        self.step = step
        super().__init__(message, hint=hint)
