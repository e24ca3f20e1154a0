"""The ``plugmarket`` console script: ``plugmarket [--home H] [--registry R] <verb> ...``.

One function per verb, listed in :data:`VERBS`; a later verb slots in as one
more entry. Importing this module is cheap: each verb imports what it needs
(``plugmarket.publish``, ``cryptography``) when it runs.

Exit status: 0 on success, 1 on a :class:`~plugmarket.errors.PlugmarketError`
(one line on stderr, no traceback), 2 on bad usage (argparse's own).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from plugmarket.cli_user import USER_VERBS
from plugmarket.errors import PlugmarketError

__all__ = ["VERBS", "Verb", "build_parser", "main"]

Run = Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class Verb:
    """One subcommand: its name, one-line help, its arguments and what it runs."""

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Run | None = None  # None: the verb has sub-verbs that set their own


def _out(text: str) -> None:
    print(text, file=sys.stdout)


def _registry_folder(args: argparse.Namespace) -> Path:
    folder = args.registry or args.global_registry
    if not folder:
        args.parser.error("this verb needs --registry FOLDER")
    return Path(folder)


def _expires(args: argparse.Namespace) -> timedelta:
    return timedelta(days=args.expires_days)


# --------------------------------------------------------------------------- publisher verbs


def _configure_keygen(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", metavar="NAME", help="writes NAME.key (mode 0600) and NAME.pub")


def _run_keygen(args: argparse.Namespace) -> int:
    from plugmarket._internal.signing import generate_keypair, key_id, load_public_key

    key_path, pub_path = generate_keypair(args.name)
    kid = key_id(load_public_key(pub_path))
    _out(f"wrote {key_path} (private, mode 0600) and {pub_path} (public); key id {kid}")
    return 0


def _configure_build(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", metavar="PATH", help="a plugin's .py file or package folder")
    p.add_argument("--out", default="dist", metavar="DIR", help="output folder (default: dist)")


def _run_build(args: argparse.Namespace) -> int:
    import hashlib

    from plugmarket.publish import build

    out = build(Path(args.path), Path(args.out))
    _out(f"built {out} (sha256 {hashlib.sha256(out.read_bytes()).hexdigest()})")
    return 0


def _add_registry(p: argparse.ArgumentParser, *, key_help: str, expires: bool = True) -> None:
    p.add_argument("--registry", metavar="FOLDER", help="the registry folder")
    p.add_argument("--key", metavar="NAME.key", help=key_help)
    if expires:
        p.add_argument(
            "--expires-days",
            type=float,
            default=30.0,
            metavar="DAYS",
            help="how long the new index stays valid (default: 30)",
        )


def _configure_publish(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", metavar="PATH", help="a plugin file or folder, or a built .zip")
    _add_registry(p, key_help="the registry's private key (required once it is signed)")
    p.add_argument("--channel", default="stable", help="stable (default), beta, ...")
    p.add_argument(
        "--rollout", type=float, metavar="SHARE", help="offer to this share of users (0-1]"
    )


def _run_publish(args: argparse.Namespace) -> int:
    from plugmarket.publish import publish

    result = publish(
        Path(args.path),
        _registry_folder(args),
        key=args.key,
        channel=args.channel,
        rollout=args.rollout,
        expires_in=_expires(args),
    )
    _out(str(result))
    return 0


def _configure_yank(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", metavar="ID")
    p.add_argument("version", metavar="VERSION")
    p.add_argument("--reason", required=True, help="why users should not install it")
    _add_registry(p, key_help="the registry's private key (required once it is signed)")


def _run_yank(args: argparse.Namespace) -> int:
    from plugmarket.publish import yank

    result = yank(
        _registry_folder(args),
        args.id,
        args.version,
        args.reason,
        key=args.key,
        expires_in=_expires(args),
    )
    _out(str(result))
    return 0


def _configure_index(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="index_verb", metavar="{sign,verify}", required=True)
    sign = sub.add_parser("sign", help="sign index.json (and optionally renew its expiry)")
    _add_registry(sign, key_help="the registry's private key", expires=False)
    sign.add_argument(
        "--expires-days",
        type=float,
        metavar="DAYS",
        help="first renew the index: next version, valid for DAYS from now",
    )
    sign.set_defaults(run=_run_index_sign, parser=sign)
    verify = sub.add_parser("verify", help="check the signature, expiry and every pinned hash")
    verify.add_argument("--registry", metavar="FOLDER", help="the registry folder")
    verify.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="PUB",
        help="a trusted public key (.pub file or base64); repeat for several",
    )
    verify.set_defaults(run=_run_index_verify, parser=verify)


def _run_index_sign(args: argparse.Namespace) -> int:
    from plugmarket.publish import sign_index

    if not args.key:
        args.parser.error("index sign needs --key NAME.key")
    days = args.expires_days
    result = sign_index(
        _registry_folder(args),
        args.key,
        expires_in=None if days is None else timedelta(days=days),
    )
    _out(str(result))
    return 0


def _run_index_verify(args: argparse.Namespace) -> int:
    from plugmarket._internal.signing import load_public_key
    from plugmarket.publish import verify_registry

    keys = [load_public_key(k) for k in args.key]
    report = verify_registry(_registry_folder(args), keys)
    report.raise_for_problems()
    _out(str(report))
    return 0


#: Every verb, in the order ``--help`` lists them: the user's, then the publisher's.
VERBS: tuple[Verb, ...] = (
    *(Verb(*verb) for verb in USER_VERBS),
    Verb(
        "keygen",
        "create an Ed25519 key pair for signing a registry",
        _configure_keygen,
        _run_keygen,
    ),
    Verb("build", "build a plugin's reproducible artifact (.zip)", _configure_build, _run_build),
    Verb("publish", "add a plugin version to a registry folder", _configure_publish, _run_publish),
    Verb("yank", "mark a published version as yanked", _configure_yank, _run_yank),
    Verb("index", "sign or verify a registry's index", _configure_index),
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every verb in :data:`VERBS`."""
    parser = argparse.ArgumentParser(
        prog="plugmarket",
        description="A plugin marketplace for Jupyter and IPython.",
    )
    parser.add_argument("--home", metavar="H", help="where plugmarket keeps its state")
    parser.add_argument(
        "--registry",
        dest="global_registry",
        metavar="R",
        help="use this registry (a URL or folder) instead of the configured ones",
    )
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb in VERBS:
        p = sub.add_parser(verb.name, help=verb.help, description=verb.help)
        verb.configure(p)
        if verb.run is not None:
            p.set_defaults(run=verb.run, parser=p)
    return parser


def _warning_line(
    message: Warning | str, category: type[Warning], *args: object, **kwargs: object
) -> None:
    """Warnings (a registry served from its stale copy, say) as one line on stderr."""
    print(f"plugmarket: warning: {' '.join(str(message).split())}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the console script.

    Returns:
        0 on success, 1 when plugmarket refused or failed (one line on stderr).
        Bad usage exits with 2 through argparse.
    """
    args = build_parser().parse_args(argv)
    warnings.showwarning = _warning_line
    try:
        return int(args.run(args))
    except BrokenPipeError:
        # The reader went away (`plugmarket list --json | head`): not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except PlugmarketError as exc:
        message = exc.message.rstrip()
        if exc.hint:
            message += ("" if message.endswith((".", "!", "?")) else ".") + " " + exc.hint
        line = " ".join(message.split())
        print(f"plugmarket: error: {line}", file=sys.stderr)
        return 1
