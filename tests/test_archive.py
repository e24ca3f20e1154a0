"""Hostile archives are refused from their central directory, and nothing is written anywhere.

Each test builds an archive in tmp_path, lists the whole tmp tree, asks a
source to materialize it, and checks both the refusal (an ArchiveError naming
the archive and the member) and that the tree is exactly as it was.
"""

from __future__ import annotations

import stat
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from plugmarket._internal import archive
from plugmarket.errors import ArchiveError
from plugmarket.settings import MiB, Settings
from plugmarket.sources import Source
from tests.support.httpserver import LoopbackServer
from tests.support.wheels import build_wheel, snapshot, write_zip

INIT = "__plugin__ = {'id': 'victim', 'version': '1.0'}\n"


@pytest.fixture
def settings(home: Path) -> Settings:
    return Settings(home=home)


def refused(tmp_path: Path, path: Path, settings: Settings) -> ArchiveError:
    """Materialize ``path``, expect a refusal, and check that nothing was written."""
    before = snapshot(tmp_path)
    with pytest.raises(ArchiveError) as caught:
        Source.local(path).materialize(settings)
    assert snapshot(tmp_path) == before
    error = caught.value
    assert error.source == str(path)
    assert path.name in str(error)
    assert repr(error.member) in str(error) or error.member in str(error)
    return error


def test_zip_slip_member_is_refused_and_nothing_is_written(
    tmp_path: Path, settings: Settings
) -> None:
    path = write_zip(
        tmp_path / "in" / "slip.zip", [("pkg/__init__.py", INIT), ("../evil.py", "x = 1\n")]
    )
    error = refused(tmp_path, path, settings)
    assert error.member == "../evil.py"
    assert "'..'" in error.message
    assert not (tmp_path / "evil.py").exists()


def test_zip_slip_through_a_nested_dotdot_is_refused(tmp_path: Path, settings: Settings) -> None:
    path = write_zip(
        tmp_path / "in" / "slip.zip",
        [("pkg/__init__.py", INIT), ("pkg/../../../evil.py", "x = 1\n")],
    )
    assert refused(tmp_path, path, settings).member == "pkg/../../../evil.py"


def test_absolute_path_member_is_refused(tmp_path: Path, settings: Settings) -> None:
    target = tmp_path / "planted.py"
    path = write_zip(
        tmp_path / "in" / "abs.zip", [("pkg/__init__.py", INIT), (str(target), "x = 1\n")]
    )
    error = refused(tmp_path, path, settings)
    assert error.member == str(target)
    assert "absolute path" in error.message
    assert not target.exists()


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("pkg\\..\\..\\evil.py", "backslash"),
        ("C:/evil.py", "colon"),
        ("pkg/evil\x1b.py", "control character"),
        ("pkg//evil.py", "empty path component"),
        ("./pkg/evil.py", "'.' path component"),
    ],
    ids=["backslash-separators", "drive-letter", "control-character", "empty-part", "dot-part"],
)
def test_path_trick_in_a_member_name_is_refused(
    tmp_path: Path, settings: Settings, name: str, said: str
) -> None:
    path = write_zip(tmp_path / "in" / "trick.zip", [("pkg/__init__.py", INIT), (name, "x=1\n")])
    error = refused(tmp_path, path, settings)
    assert error.member == name
    assert said in error.message


def test_nul_byte_in_a_member_name_is_refused(tmp_path: Path, settings: Settings) -> None:
    path = write_zip(
        tmp_path / "in" / "nul.zip", [("pkg/__init__.py", INIT), ("pkg/okXsneaky.py", "x=1\n")]
    )
    path.write_bytes(path.read_bytes().replace(b"okXsneaky", b"ok\x00sneaky"))
    error = refused(tmp_path, path, settings)
    assert error.member == "pkg/ok\x00sneaky.py"
    assert "NUL byte" in error.message


def test_symlink_member_is_refused(tmp_path: Path, settings: Settings) -> None:
    link = zipfile.ZipInfo("pkg/secrets.py")
    link.create_system = 3  # Unix, so external_attr carries the mode
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    path = write_zip(
        tmp_path / "in" / "link.zip", [("pkg/__init__.py", INIT), (link, "/etc/passwd")]
    )
    error = refused(tmp_path, path, settings)
    assert error.member == "pkg/secrets.py"
    assert "symbolic link" in error.message


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("pkg/core.py", "pkg/core.py"),
        ("pkg/core.py", "pkg/CORE.py"),
        ("pkg/caf\u00e9.py", "pkg/cafe\u0301.py"),
    ],
    ids=["same-name", "case-folded", "unicode-normalised"],
)
def test_duplicate_member_names_are_refused(
    tmp_path: Path, settings: Settings, first: str, second: str
) -> None:
    path = write_zip(
        tmp_path / "in" / "dup.zip",
        [("pkg/__init__.py", INIT), (first, "good = 1\n"), (second, "evil = 1\n")],
    )
    error = refused(tmp_path, path, settings)
    assert error.member == second
    assert "same name" in error.message


def test_member_that_is_both_a_file_and_a_folder_is_refused(
    tmp_path: Path, settings: Settings
) -> None:
    path = write_zip(
        tmp_path / "in" / "clash.zip",
        [("pkg/__init__.py", INIT), ("pkg/sub", "x"), ("pkg/sub/mod.py", "x = 1\n")],
    )
    assert refused(tmp_path, path, settings).member == "pkg/sub"


@pytest.fixture(scope="module")
def zip_bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 MB of zeros in one member: about 200 KB on disk."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("pkg/__init__.py", INIT)
        member = zipfile.ZipInfo("pkg/zeros.py")
        member.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(member, "w") as out:
            zeros = bytes(MiB)
            for _ in range(200):
                out.write(zeros)
    assert path.stat().st_size < 1 * MiB
    return path


def test_zip_bomb_small_on_disk_is_refused_from_its_declared_size(
    tmp_path: Path, home: Path, zip_bomb: Path
) -> None:
    path = tmp_path / "in" / "bomb.zip"
    path.parent.mkdir()
    path.write_bytes(zip_bomb.read_bytes())
    error = refused(tmp_path, path, Settings(home=home, max_unpacked_size=16 * MiB))
    assert error.member == "pkg/zeros.py"
    assert "max_unpacked_size" in error.message


def test_zip_bomb_that_lies_in_its_header_is_stopped_while_unpacking(
    tmp_path: Path, home: Path, zip_bomb: Path
) -> None:
    data = bytearray(zip_bomb.read_bytes())
    central = data.index(b"PK\x01\x02", data.index(b"pkg/zeros.py") + 1)
    while data[central + 46 : central + 46 + 12] != b"pkg/zeros.py":
        central = data.index(b"PK\x01\x02", central + 4)
    struct.pack_into("<I", data, central + 24, 1000)  # "I unpack to 1000 bytes"
    path = tmp_path / "in" / "liar.zip"
    path.parent.mkdir()
    path.write_bytes(bytes(data))
    settings = Settings(home=home, max_unpacked_size=1 * MiB)
    with zipfile.ZipFile(path) as zf:  # the header does lie: a declared-size check passes
        assert sum(i.file_size for i in zf.infolist()) < settings.max_unpacked_size
    error = refused(tmp_path, path, settings)
    assert error.member == "pkg/zeros.py"


def test_unpack_enforces_the_byte_budget_while_streaming(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "big.zip", [("pkg/__init__.py", ""), ("pkg/a.py", "a" * 5000)])
    with zipfile.ZipFile(path) as zf:
        listing = archive.check_members(zf, source="big.zip", max_entries=10, max_unpacked=10 * MiB)
        dest = tmp_path / "dest"
        dest.mkdir()
        with pytest.raises(ArchiveError) as caught:
            archive.unpack(zf, listing, dest, max_unpacked=1000)
    assert caught.value.member == "pkg/a.py"
    assert (dest / "pkg" / "a.py").stat().st_size <= 1000


def test_too_many_entries_are_refused(tmp_path: Path, home: Path) -> None:
    entries = [("pkg/__init__.py", INIT)] + [(f"pkg/m{i}.py", "") for i in range(20)]
    path = write_zip(tmp_path / "in" / "many.zip", entries)
    error = refused(tmp_path, path, Settings(home=home, max_archive_entries=20))
    assert "max_archive_entries" in error.message


def test_too_many_entries_are_refused_even_when_the_end_record_lies(tmp_path: Path) -> None:
    entries = [("pkg/__init__.py", INIT)] + [(f"pkg/m{i}.py", "") for i in range(20)]
    data = bytearray(write_zip(tmp_path / "many.zip", entries).read_bytes())
    end = data.rindex(b"PK\x05\x06")
    struct.pack_into("<HH", data, end + 8, 2, 2)  # claim 2 entries; the directory holds 21
    with pytest.raises(ArchiveError) as caught:
        zf = archive.open_zip(bytes(data), source="many.zip", max_entries=20)
        archive.check_members(zf, source="many.zip", max_entries=20, max_unpacked=MiB)
    assert "max_archive_entries" in caught.value.message


def _wheel(tmp_path: Path, files: dict[str, str | bytes], **kwargs: object) -> Path:
    files = {"victim/__init__.py": "x = 1\n", **files}
    return build_wheel(tmp_path / "in", "victim", "1.0", files, **kwargs)  # type: ignore[arg-type]


def test_wheel_with_a_shared_library_is_refused_as_compiled(
    tmp_path: Path, settings: Settings
) -> None:
    so = "victim/_speedups.cpython-311-x86_64-linux-gnu.so"
    error = refused(tmp_path, _wheel(tmp_path, {so: b"\x7fELF"}), settings)
    assert error.member == so
    assert "compiled parts" in error.message
    assert "pure-Python plugins only" in error.message


def test_wheel_that_is_not_purelib_is_refused_as_compiled(
    tmp_path: Path, settings: Settings
) -> None:
    error = refused(tmp_path, _wheel(tmp_path, {}, purelib=False), settings)
    assert error.member == "victim-1.0.dist-info/WHEEL"
    assert "compiled parts" in error.message


def test_wheel_with_a_platform_tag_is_refused_as_compiled(
    tmp_path: Path, settings: Settings
) -> None:
    path = _wheel(tmp_path, {}, tag="cp311-cp311-manylinux_2_17_x86_64")
    error = refused(tmp_path, path, settings)
    assert "compiled parts" in error.message


def test_renamed_wheel_is_refused(tmp_path: Path, settings: Settings) -> None:
    built = _wheel(tmp_path, {})
    path = built.rename(built.with_name("trusted_tool-9.0-py3-none-any.whl"))
    error = refused(tmp_path, path, settings)
    assert error.member == "victim-1.0.dist-info/METADATA"


@pytest.mark.parametrize(
    "bytecode",
    ["pkg/__pycache__/core.cpython-311.pyc", "pkg/core.pyc"],
    ids=["in-pycache", "beside-source"],
)
def test_pyc_shadowing_a_py_is_refused(tmp_path: Path, settings: Settings, bytecode: str) -> None:
    path = write_zip(
        tmp_path / "in" / "shadow.zip",
        [("pkg/__init__.py", INIT), ("pkg/core.py", "reviewed = 1\n"), (bytecode, b"\xa7\r\r\n")],
    )
    error = refused(tmp_path, path, settings)
    assert error.member == bytecode
    assert "instead of the reviewed .py" in error.message


def test_stray_bytecode_is_never_unpacked(tmp_path: Path, settings: Settings) -> None:
    path = write_zip(
        tmp_path / "in" / "stray.zip",
        [
            ("pkg/__init__.py", INIT),
            ("pkg/__pycache__/gone.cpython-311.pyc", b"\xa7\r\r\n"),
            ("pkg/orphan.pyc", b"\xa7\r\r\n"),
        ],
    )
    files = Source.local(path).materialize(settings)
    written = [p.relative_to(files.root).as_posix() for p in files.root.rglob("*")]
    assert sorted(written) == ["pkg", "pkg/__init__.py"]


def test_garbage_is_not_an_archive(tmp_path: Path, settings: Settings) -> None:
    path = tmp_path / "in" / "plugin.zip"
    path.parent.mkdir()
    path.write_bytes(b"this is not a zip file at all")
    error = refused(tmp_path, path, settings)
    assert "not a readable zip archive" in error.message


def test_hostile_archive_from_a_url_writes_nothing(
    tmp_path: Path, settings: Settings, http_server: Callable[..., LoopbackServer]
) -> None:
    served = tmp_path / "served"
    write_zip(served / "slip.zip", [("pkg/__init__.py", INIT), ("../../evil.py", "x = 1\n")])
    server = http_server(served)
    before = snapshot(tmp_path)
    with pytest.raises(ArchiveError) as caught:
        Source.url(server.url("slip.zip")).materialize(settings)
    assert snapshot(tmp_path) == before
    assert caught.value.member == "../../evil.py"
    assert caught.value.source == server.url("slip.zip")


def test_unpack_names_every_file_it_wrote_and_hands_back_contents_up_to_keep(
    tmp_path: Path,
) -> None:
    entries = [("pkg/__init__.py", INIT), ("pkg/sub/a.py", "a" * 300), ("pkg/b.py", "b = 1\n")]
    path = write_zip(tmp_path / "kept.zip", entries)
    with zipfile.ZipFile(path) as zf:
        listing = archive.check_members(zf, source="kept.zip", max_entries=10, max_unpacked=MiB)
        dest = tmp_path / "dest"
        dest.mkdir()
        written = archive.unpack(
            zf, listing, dest, max_unpacked=MiB, prefix="top/", sync=False, keep=len(INIT) + 10
        )
    assert written == [
        ("top/pkg/__init__.py", INIT.encode()),
        ("top/pkg/sub/a.py", None),  # past keep: named, contents left on the disk
        ("top/pkg/b.py", None),
    ]
    assert all(
        (dest / rel).read_bytes() == data.encode()
        for (rel, _), (_, data) in zip(written, entries, strict=True)
    )


def test_unpack_itself_refuses_a_path_that_climbs_out_even_past_the_name_checks(
    tmp_path: Path,
) -> None:
    import dataclasses

    path = write_zip(tmp_path / "a.zip", [("pkg/__init__.py", "x = 1\n")])
    with archive.open_zip(path.read_bytes(), source="a.zip", max_entries=10) as zf:
        listing = archive.check_members(zf, source="a.zip", max_entries=10, max_unpacked=MiB)
        # A listing the checks would never make: the last line of defence must hold.
        member = listing.files[0][1]
        forged = dataclasses.replace(listing, files=(("pkg/../../evil.py", member),))
        dest = tmp_path / "dest"
        dest.mkdir()
        with pytest.raises(ArchiveError, match="outside the folder"):
            archive.unpack(zf, forged, dest, max_unpacked=MiB)
    assert not (tmp_path / "evil.py").exists() and list(dest.iterdir()) == []
