"""The settings a :class:`~plugmarket.marketplace.Marketplace` starts with.

Either the configured settings (traitlets config, then ``PLUGMARKET_*``
variables), or settings given as they are; ``home`` and ``registry`` given to
the ``Marketplace`` override both. Every home has a stable user id, for
rollout buckets, made once and kept in the home's ``user-id`` file.

Invariants:

- The ``user-id`` file is created atomically (hard link of a complete temp
  file), so kernels starting together on one home all read the same id.
- :mod:`plugmarket.config` (and traitlets) is imported only when no settings
  are given.
"""

from __future__ import annotations

import getpass
import os
import socket
import uuid
from pathlib import Path

from plugmarket.settings import Settings

__all__ = ["settings_for", "user_id"]


def settings_for(
    settings: Settings | None, *, home: str | Path | None, registry: str | None
) -> Settings:
    """The settings to use: ``settings`` (or the configured ones) with ``home`` and
    ``registry`` applied. The home's user id is left to the resolver, which
    reads (or makes) it only when a version is being rolled out."""
    from plugmarket.settings import from_env

    if settings is None:
        from plugmarket.config import load_settings

        settings = load_settings(home=home, registry=registry)
    else:
        settings = from_env({}, home=home, registry=registry, base=settings)
    return settings


def user_id(home: Path) -> str:
    """A stable id for this home, for rollout buckets (made once, kept in the home)."""
    path = home / "user-id"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".user-id.{os.getpid()}.{uuid.uuid4().hex}")
        tmp.write_text(f"{getpass.getuser()}@{socket.gethostname()}/{uuid.uuid4().hex}\n")
        try:
            os.link(tmp, path)  # atomic, and refused if another process made it first
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()
