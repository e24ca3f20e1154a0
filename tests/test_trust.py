"""The pure trust component, attack by attack: each test stages one attack and checks
that it is refused, that the error names the registry, the file, expected and found,
and that the last trusted index stays in place."""

from __future__ import annotations

import json
import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from plugmarket._internal import registry_format as fmt
from plugmarket._internal.signing import (
    generate_keypair,
    key_id,
    load_private_key,
    load_public_key,
    sign,
    verify,
)
from plugmarket._internal.trusted_index import TrustedIndex
from plugmarket.errors import IntegrityError, RegistryError, SignatureError
from tests.support.registry_states import NOW, RegistryState, detail, version_info

KEY = Ed25519PrivateKey.generate()
OTHER_KEY = Ed25519PrivateKey.generate()
V1_PAYLOAD = b"zip bytes of csv-tools 1.0"
V2_PAYLOAD = b"zip bytes of csv-tools 2.0"


def state_v1() -> RegistryState:
    return RegistryState(
        version=1,
        details={"csv-tools": detail("csv-tools", version_info("csv-tools", "1.0", V1_PAYLOAD))},
    )


def state_v2() -> RegistryState:
    return state_v1().next(
        details={
            "csv-tools": detail(
                "csv-tools",
                version_info("csv-tools", "1.0", V1_PAYLOAD),
                version_info("csv-tools", "2.0", V2_PAYLOAD),
            )
        }
    )


def trusted(**kwargs: object) -> TrustedIndex:
    options: dict[str, object] = {"trusted_keys": [KEY.public_key()], "require_signature": True}
    options.update(kwargs)
    return TrustedIndex("demo", now=NOW, **options)  # type: ignore[arg-type]


def load(t: TrustedIndex, state: RegistryState, key: Ed25519PrivateKey = KEY) -> fmt.Index:
    return t.update_index(state.index_bytes(), state.signature(key), now=NOW)


# --------------------------------------------------------------------------- the happy path


def test_signed_index_is_trusted_and_details_and_artifacts_verify() -> None:
    t = trusted()
    index = load(t, state_v2())
    assert index.version == 2 and t.index is index
    assert t.keyid == key_id(KEY.public_key())
    d = t.verify_detail("csv-tools", state_v2().detail_bytes("csv-tools"))
    latest = d.latest()
    assert latest is not None and str(latest.version) == "2.0"
    assert t.artifact_pin(latest).sha256 == latest.artifact.sha256
    assert t.check_artifact(latest, V2_PAYLOAD).size == len(V2_PAYLOAD)


def test_unsigned_index_is_accepted_when_no_keys_and_no_signature_required() -> None:
    t = trusted(trusted_keys=[], require_signature=False)
    assert t.update_index(state_v1().index_bytes(), None, now=NOW).version == 1
    assert t.keyid is None


def test_newer_index_replaces_the_trusted_one() -> None:
    t = trusted()
    load(t, state_v1())
    assert load(t, state_v2()).version == 2
    assert t.last_version == 2


def test_same_index_again_is_accepted() -> None:
    t = trusted()
    load(t, state_v1())
    assert load(t, state_v1()).version == 1


# --------------------------------------------------------------------------- attacks on the index


def test_rollback_attack_older_index_is_refused_and_newer_kept() -> None:
    t = trusted()
    newer = load(t, state_v2())
    with pytest.raises(RegistryError, match="rollback") as info:
        load(t, state_v1())
    assert info.value.registry == "demo" and info.value.file == "index.json"
    assert "version 1" in str(info.value) and "at least 2" in str(info.value)
    assert t.index is newer


def test_rollback_attack_across_processes_uses_the_remembered_last_version() -> None:
    t = trusted(last_version=2)  # a new process: nothing loaded, version 2 remembered
    with pytest.raises(RegistryError, match="rollback"):
        load(t, state_v1())
    assert t.index is None


def test_freeze_attack_expired_index_is_refused() -> None:
    t = trusted()
    good = load(t, state_v1())
    stale = state_v2()
    stale.expires = NOW - timedelta(seconds=1)
    with pytest.raises(RegistryError, match="freeze") as info:
        load(t, stale)
    assert info.value.file == "index.json"
    assert fmt.format_time(stale.expires) in str(info.value)
    assert t.index is good


def test_freeze_attack_index_expiring_exactly_now_is_refused() -> None:
    frozen = state_v1()
    frozen.expires = NOW
    with pytest.raises(RegistryError, match="expired"):
        load(trusted(), frozen)


def test_same_version_with_different_bytes_is_refused() -> None:
    t = trusted()
    first = load(t, state_v1())
    changed = state_v2()
    changed.version = 1  # same version number, different contents
    with pytest.raises(RegistryError, match="bump the version") as info:
        load(t, changed)
    assert t.index_sha256 in str(info.value)
    assert t.index is first


def test_bad_signature_tampered_index_bytes_are_refused() -> None:
    t = trusted()
    good = load(t, state_v1())
    state = state_v2()
    tampered = state.index_bytes().replace(b'"downloads":[10', b'"downloads":[99')
    assert tampered != state.index_bytes()
    with pytest.raises(SignatureError, match="does not match") as info:
        t.update_index(tampered, state.signature(KEY), now=NOW)
    assert info.value.registry == "demo" and info.value.file == "index.json.sig"
    assert t.index is good


def test_bad_signature_by_an_untrusted_key_is_refused() -> None:
    t = trusted()
    with pytest.raises(SignatureError) as info:
        load(t, state_v1(), key=OTHER_KEY)
    assert key_id(OTHER_KEY.public_key()) in str(info.value)
    assert key_id(KEY.public_key()) in str(info.value)
    assert t.index is None


def test_bad_signature_file_that_is_not_json_is_refused() -> None:
    t = trusted()
    with pytest.raises(SignatureError, match=r"index\.json\.sig"):
        t.update_index(state_v1().index_bytes(), b"\x00garbage", now=NOW)
    assert t.index is None


@pytest.mark.parametrize(
    "sig",
    [
        b'{"keyid":"x","sig":"y"}',
        b'{"signatures":[]}',
        b'{"signatures":[{"keyid":"x"}]}',
        b'{"signatures":[{"keyid":1,"sig":"y"}]}',
    ],
)
def test_bad_signature_file_of_the_wrong_shape_is_refused(sig: bytes) -> None:
    with pytest.raises(SignatureError, match="malformed"):
        trusted().update_index(state_v1().index_bytes(), sig, now=NOW)


def test_unsigned_index_when_signature_required_by_trusted_keys_is_refused() -> None:
    t = trusted(require_signature=False)  # keys alone make a signature required
    with pytest.raises(SignatureError, match="unsigned") as info:
        t.update_index(state_v1().index_bytes(), None, now=NOW)
    assert key_id(KEY.public_key()) in str(info.value)
    assert t.index is None


def test_unsigned_index_when_signature_required_without_keys_is_refused() -> None:
    t = trusted(trusted_keys=[], require_signature=True)
    with pytest.raises(SignatureError, match="unsigned"):
        t.update_index(state_v1().index_bytes(), None, now=NOW)
    with pytest.raises(SignatureError, match="no trusted key"):
        t.update_index(state_v1().index_bytes(), state_v1().signature(KEY), now=NOW)


def test_signature_of_the_previous_index_kept_during_a_publish_still_verifies() -> None:
    # The publisher writes the new signature file (new + previous signature)
    # before the new index: a reader holding the old index must still verify.
    old, new = state_v1(), state_v2()
    old_sig = json.loads(old.signature(KEY))["signatures"][0]
    both = sign(new.index_bytes(), KEY, keep=[(old_sig["keyid"], old_sig["sig"])])
    keys = [KEY.public_key()]
    assert verify(old.index_bytes(), both, keys) == key_id(KEY.public_key())
    assert verify(new.index_bytes(), both, keys) == key_id(KEY.public_key())


def test_key_rotation_a_signature_by_any_trusted_key_is_accepted() -> None:
    t = trusted(trusted_keys=[OTHER_KEY.public_key(), KEY.public_key()])
    assert load(t, state_v1(), key=KEY).version == 1
    assert load(t, state_v2(), key=OTHER_KEY).version == 2


def test_malformed_index_is_refused_and_previous_kept() -> None:
    t = trusted(trusted_keys=[], require_signature=False)
    good = t.update_index(state_v1().index_bytes(), None, now=NOW)
    with pytest.raises(RegistryError, match="not valid JSON"):
        t.update_index(b'{"format": 1, ', None, now=NOW)
    assert t.index is good


# --------------------------------------------------------------------------- attacks on details


def test_mix_and_match_detail_from_an_older_state_is_refused() -> None:
    t = trusted()
    load(t, state_v2())
    old_detail = state_v1().detail_bytes("csv-tools")
    with pytest.raises(IntegrityError) as info:
        t.verify_detail("csv-tools", old_detail)
    err = info.value
    assert err.subject == "demo/plugins/csv-tools.json"
    assert err.expected == str(len(state_v2().detail_bytes("csv-tools")))
    assert err.actual == str(len(old_detail))
    assert t.index is not None and t.index.version == 2


def test_mix_and_match_detail_of_another_plugin_is_refused() -> None:
    state = state_v1()
    state.details["json-view"] = detail("json-view", version_info("json-view", "1.0", b"j"))
    # A registry pins json-view's file under csv-tools' entry (and serves it as
    # plugins/csv-tools.json): hashes match, the id does not.
    index = state.index()
    entries = dict(index.plugins)
    other = entries["json-view"].detail
    entries["csv-tools"] = fmt.IndexEntry(
        **{
            **entries["csv-tools"].__dict__,
            "detail": fmt.Artifact(fmt.detail_path("csv-tools"), other.sha256, other.size),
            "latest": {"stable": "1.0"},
        }
    )
    forged = fmt.encode_index(fmt.Index(fmt.FORMAT, 1, index.expires, index.generated, entries))
    t = trusted()
    t.update_index(forged, sign(forged, KEY), now=NOW)
    with pytest.raises(RegistryError, match=r"'json-view'.*expected 'csv-tools'"):
        t.verify_detail("csv-tools", state.detail_bytes("json-view"))


def test_wrong_size_detail_is_refused_before_hashing() -> None:
    t = trusted()
    load(t, state_v1())
    data = state_v1().detail_bytes("csv-tools")
    with pytest.raises(IntegrityError, match="bytes, expected") as info:
        t.verify_detail("csv-tools", data[:-1])
    assert info.value.expected == str(len(data))
    assert info.value.actual == str(len(data) - 1)


def test_endless_data_detail_longer_than_its_pinned_size_is_refused() -> None:
    t = trusted()
    load(t, state_v1())
    data = state_v1().detail_bytes("csv-tools")
    with pytest.raises(IntegrityError, match="bytes, expected"):
        t.verify_detail("csv-tools", data + b" " * 1_000_000)


def test_tampered_detail_of_the_same_size_is_refused() -> None:
    t = trusted()
    load(t, state_v1())
    data = state_v1().detail_bytes("csv-tools").replace(b'"Ada"', b'"Eve"')
    with pytest.raises(IntegrityError, match="sha256"):
        t.verify_detail("csv-tools", data)


def test_detail_before_any_trusted_index_is_refused() -> None:
    with pytest.raises(RegistryError, match="no trusted index"):
        trusted().verify_detail("csv-tools", b"{}")


def test_detail_of_a_plugin_not_in_the_index_is_refused() -> None:
    t = trusted()
    load(t, state_v1())
    with pytest.raises(RegistryError, match=r"not in index\.json"):
        t.verify_detail("json-view", b"{}")


def test_detail_missing_the_version_the_index_names_as_latest_is_refused() -> None:
    state = state_v2()
    index = state.index()
    entry = index.plugins["csv-tools"]
    entries = {"csv-tools": fmt.IndexEntry(**{**entry.__dict__, "latest": {"stable": "3.0"}})}
    forged = fmt.encode_index(fmt.Index(fmt.FORMAT, 2, index.expires, index.generated, entries))
    t = trusted()
    t.update_index(forged, sign(forged, KEY), now=NOW)
    with pytest.raises(RegistryError, match=r"no version 3\.0"):
        t.verify_detail("csv-tools", state.detail_bytes("csv-tools"))


# --------------------------------------------------------------------------- attacks on artifacts


def test_tampered_artifact_is_refused() -> None:
    t = trusted()
    load(t, state_v1())
    d = t.verify_detail("csv-tools", state_v1().detail_bytes("csv-tools"))
    evil = b"zip bytes of csv-tools 6.6"  # same size, other bytes
    with pytest.raises(IntegrityError, match="sha256") as info:
        t.check_artifact(d.versions[0], evil)
    assert info.value.subject == "demo/artifacts/csv-tools/csv-tools-1.0.zip"


def test_wrong_size_artifact_is_refused() -> None:
    t = trusted()
    load(t, state_v1())
    d = t.verify_detail("csv-tools", state_v1().detail_bytes("csv-tools"))
    with pytest.raises(IntegrityError, match="bytes, expected"):
        t.check_artifact(d.versions[0], V1_PAYLOAD + b"more")


def test_mix_and_match_artifact_pin_from_an_unverified_detail_is_refused() -> None:
    t = trusted()
    load(t, state_v1())
    forged = version_info("csv-tools", "1.0", b"another artifact")
    with pytest.raises(RegistryError, match="does not come from a detail file verified"):
        t.artifact_pin(forged)


def test_artifact_pins_are_forgotten_when_a_newer_index_arrives() -> None:
    t = trusted()
    load(t, state_v1())
    d = t.verify_detail("csv-tools", state_v1().detail_bytes("csv-tools"))
    load(t, state_v2())
    with pytest.raises(RegistryError, match="does not come from"):
        t.artifact_pin(d.versions[0])


# --------------------------------------------------------------------------- keys


def test_keygen_writes_a_private_key_readable_only_by_its_owner(tmp_path: Path) -> None:
    key_path, pub_path = generate_keypair(tmp_path / "demo")
    assert key_path.name == "demo.key" and pub_path.name == "demo.pub"
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    assert key_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert len(pub_path.read_text().splitlines()) == 1
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    private = load_private_key(key_path)
    assert key_id(load_public_key(pub_path)) == key_id(private.public_key())
    assert key_id(load_public_key(pub_path.read_text())) == key_id(private.public_key())
    assert len(key_id(private.public_key())) == 16


def test_keygen_never_overwrites_a_key(tmp_path: Path) -> None:
    key_path, _ = generate_keypair(tmp_path / "demo")
    before = key_path.read_bytes()
    with pytest.raises(SignatureError, match="already exists"):
        generate_keypair(tmp_path / "demo")
    assert key_path.read_bytes() == before


@pytest.mark.parametrize("text", ["not a key", "AAAA", "c2hvcnQ="])
def test_public_key_text_that_is_not_a_key_is_refused(text: str) -> None:
    with pytest.raises(SignatureError):
        load_public_key(text)


def test_private_key_file_that_is_not_a_key_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.key"
    bad.write_text("hello")
    with pytest.raises(SignatureError, match="not an unencrypted PEM"):
        load_private_key(bad)
    with pytest.raises(SignatureError, match="cannot read"):
        load_private_key(tmp_path / "missing.key")
