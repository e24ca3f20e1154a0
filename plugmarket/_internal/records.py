"""The records the marketplace keeps in the home, in one place to import them from.

=================  ==============================  ======================================
record             file in the home                module
=================  ==============================  ======================================
audit log          ``audit.log`` (JSON Lines)      :mod:`plugmarket._internal.audit`
statistics         ``stats.log`` + ``stats.json``  :mod:`plugmarket._internal.stats`
reviews            ``reviews/<plugin id>.json``    :mod:`plugmarket._internal.reviews`
lockfiles          wherever the user keeps them    :mod:`plugmarket._internal.lockfile`
=================  ==============================  ======================================

Every record is written atomically (temp file + rename) or append-only, under a
:class:`filelock.FileLock`: the append-only ones (audit log, statistics) under
the home's ``records.lock``, so an operation writes both in one acquisition,
each review file under a ``.lock`` beside it. So several kernels and terminals
can share one home; none depends on the installer's home lock. The
values they produce are the result types of :mod:`plugmarket.results`.
docs/decisions/0006-records.md explains the formats and what happens to a
damaged file.
"""

from __future__ import annotations

from plugmarket._internal.audit import AuditLog
from plugmarket._internal.lockfile import (
    LockedPlugin,
    LockSpec,
    decode_lock,
    encode_lock,
    read_lock,
)
from plugmarket._internal.reviews import Reviews
from plugmarket._internal.stats import Stats

__all__ = [
    "AuditLog",
    "LockSpec",
    "LockedPlugin",
    "Reviews",
    "Stats",
    "decode_lock",
    "encode_lock",
    "read_lock",
]
