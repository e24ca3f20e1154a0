"""Capability parsing and scope matching (pure)."""

from __future__ import annotations

import os

import pytest

from plugmarket.capabilities import Capability, Grants, parse_capability
from plugmarket.errors import ManifestError


@pytest.mark.parametrize(
    ("text", "kind", "scope"),
    [
        ("fs.read", "fs.read", ""),
        ("fs.write:/tmp/out/**", "fs.write", "/tmp/out/**"),
        ("net:api.example.com:443", "net", "api.example.com:443"),
        ("net:[::1]:8080", "net", "[::1]:8080"),
        ("env:HOME", "env", "HOME"),
        ("ipython.magics", "ipython.magics", ""),
    ],
)
def test_parse(text: str, kind: str, scope: str) -> None:
    cap = parse_capability(text)
    assert (cap.kind, cap.scope, str(cap)) == (kind, scope, text)


@pytest.mark.parametrize("text", ["", "sudo", "native:x", "net:", "net:h:99999", "env:A-B"])
def test_parse_refuses(text: str) -> None:
    with pytest.raises(ManifestError):
        parse_capability(text)


def test_path_scopes_allow_exactly_their_scope() -> None:
    grants = Grants(["fs.read:/data/*.csv", "fs.write:/out", "fs.read:/deep/**"])
    assert grants.allows_path("fs.read", "/data/a.csv")
    assert not grants.allows_path("fs.read", "/data/a.txt")
    assert not grants.allows_path("fs.read", "/data/sub/a.csv")
    assert grants.allows_path("fs.write", "/out/x/y")
    assert grants.allows_path("fs.read", "/out/x")  # written files can be read back
    assert not grants.allows_path("fs.write", "/outside")
    assert not grants.allows_path("fs.write", "/data/a.csv")
    assert grants.allows_path("fs.read", "/deep")
    assert grants.allows_path("fs.read", "/deep/a/b/c")
    assert not grants.allows_path("fs.read", "/deeper")


def test_home_is_expanded() -> None:
    grants = Grants(["fs.read:~/data"])
    assert grants.allows_path("fs.read", os.path.expanduser("~/data/x"))


def test_net_scopes() -> None:
    grants = Grants(["net:*.example.com", "net:127.0.0.1:8080"])
    assert grants.allows_net("api.example.com", 443)
    assert grants.allows_net("example.com", 80)
    assert not grants.allows_net("example.org", 80)
    assert not grants.allows_net("badexample.com", 80)
    assert grants.allows_net("127.0.0.1", 8080)
    assert not grants.allows_net("127.0.0.1", 8081)
    assert Grants(["net"]).allows_net("anything", 1)


def test_env_scopes() -> None:
    grants = Grants(["env:HOME", "env:MYAPP_*"])
    assert grants.allows_env("HOME") and grants.allows_env("MYAPP_TOKEN")
    assert not grants.allows_env("PATH")


def test_covers_and_missing() -> None:
    grants = Grants(["fs.read:/data", "net:*.example.com", "display"])
    asked = [parse_capability(c) for c in ["fs.read:/data/x", "net:api.example.com", "subprocess"]]
    assert grants.missing(asked) == (Capability("subprocess"),)
    assert not Grants(["fs.read:/data"]).covers(Capability("fs.read"))


@pytest.mark.parametrize(
    "text", ["net:example.com\nevil.org", "env:HOME\nPATH", "net:1.2.3.4\n:80"]
)
def test_a_scope_with_a_newline_inside_is_refused(text: str) -> None:
    with pytest.raises(ManifestError):
        parse_capability(text)
