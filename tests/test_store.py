"""The content-addressed store: entries written whole, verified, removed without a trace."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest

from plugmarket import load, unload
from plugmarket._internal.store import Store, artifact_name, check_artifact, tree_digest
from plugmarket.errors import ArchiveError, InstallError, IntegrityError
from plugmarket.settings import Settings
from tests.support.artifacts import make_artifact
from tests.support.wheels import write_zip

WHEEL = Path(__file__).parent / "data" / "wheels" / "more_itertools-11.2.1-py3-none-any.whl"


def _store(home: Path) -> Store:
    return Store(home / "store", Settings(home=home))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_stored_package_loads_from_the_store_with_its_manifest(tmp_path: Path) -> None:
    art = make_artifact(
        tmp_path,
        "greeter",
        "1.2",
        "def activate(ctx):\n    ctx.log.info('hi')\n",
        requires=["base>=1"],
        capabilities=["display"],
    )
    store = _store(tmp_path / "home")
    entry, created = store.put(art.sha256, art.data, art.path.name, where=str(art.path))
    assert created
    assert entry.top == "greeter" and entry.size == len(art.data)
    assert (entry.root / "greeter" / "__init__.py").is_file()
    assert str(entry.manifest.version) == "1.2"
    assert [str(r) for r in entry.manifest.requires] == ["base>=1"]
    assert store.names() == [art.sha256] and store.debris() == []
    assert store.verify(art.sha256) is None
    # a second Store (another process) reads the record, not the plugin
    files = _store(tmp_path / "home").files(art.sha256, origin="https://example.org/g.zip")
    assert files.root == entry.root and files.top == "greeter"
    assert files.manifest.id == "greeter" and files.origin == "https://example.org/g.zip"
    assert files.manifest.path.endswith("greeter/__init__.py")


def test_putting_the_same_artifact_again_reuses_the_entry(tmp_path: Path) -> None:
    art = make_artifact(tmp_path, "same")
    store = _store(tmp_path / "home")
    store.put(art.sha256, art.data, art.path.name, where="a")
    _, created = store.put(art.sha256, art.data, art.path.name, where="b")
    assert not created and store.names() == [art.sha256]


def test_a_single_module_and_a_wheel_are_stored(tmp_path: Path, home: Path) -> None:
    module = b"__plugin__ = {'id': 'solo', 'version': '0.3'}\nVALUE = 3\n"
    store = _store(home)
    entry, _ = store.put(_sha(module), module, "solo.py", where="solo.py")
    assert entry.top == "solo" and (entry.root / "solo.py").read_bytes() == module
    plugin = load(store.files(entry.sha256), settings=Settings(home=home))
    try:
        assert plugin.module.VALUE == 3
    finally:
        unload(plugin)
    wheel = WHEEL.read_bytes()
    entry, _ = store.put(_sha(wheel), wheel, WHEEL.name, where=str(WHEEL))
    assert entry.top == "more_itertools" and entry.manifest.id == "more-itertools"
    assert store.verify(entry.sha256) is None


def test_zip_slip_artifact_is_refused_and_leaves_nothing_in_the_store(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("evil/__init__.py", "__plugin__ = {'id': 'evil', 'version': '1'}\n")
        zf.writestr("../outside.py", "x = 1\n")
    data = buffer.getvalue()
    store = _store(tmp_path / "home")
    with pytest.raises(ArchiveError):
        store.put(_sha(data), data, "evil-1.zip", where="evil-1.zip")
    assert store.names() == [] and store.debris() == []
    assert not (tmp_path / "outside.py").exists()


def test_verify_finds_changed_added_and_missing_files(tmp_path: Path) -> None:
    art = make_artifact(tmp_path, "watched")
    store = _store(tmp_path / "home")
    entry, _ = store.put(art.sha256, art.data, art.path.name, where="w")
    init = entry.root / "watched" / "__init__.py"
    original = init.read_bytes()
    init.write_bytes(original + b"\nimport os  # slipped in\n")
    assert store.verify(art.sha256) == "its files changed since they were stored"
    init.write_bytes(original)
    (entry.root / "watched" / "extra.py").write_text("x = 1\n")
    assert store.verify(art.sha256) == "its files changed since they were stored"
    (entry.root / "watched" / "extra.py").unlink()
    assert store.verify(art.sha256) is None
    (entry.path / "entry.json").write_text("{not json")
    problem = store.verify(art.sha256)
    assert problem is not None and "damaged" in problem
    with pytest.raises(InstallError, match="damaged"):
        _store(tmp_path / "home").files(art.sha256)


def test_a_record_naming_another_artifact_is_caught(tmp_path: Path) -> None:
    art = make_artifact(tmp_path, "named")
    store = _store(tmp_path / "home")
    entry, _ = store.put(art.sha256, art.data, art.path.name, where="n")
    record = json.loads((entry.path / "entry.json").read_text())
    record["sha256"] = "0" * 64
    (entry.path / "entry.json").write_text(json.dumps(record))
    assert store.verify(art.sha256) == f"its record names another artifact ({'0' * 12})"


def test_remove_leaves_no_entry_and_no_trash(tmp_path: Path) -> None:
    art = make_artifact(tmp_path, "gone")
    store = _store(tmp_path / "home")
    store.put(art.sha256, art.data, art.path.name, where="g")
    assert store.remove(art.sha256)
    assert not store.remove(art.sha256)
    assert store.names() == [] and store.debris() == [] and not store.has(art.sha256)
    with pytest.raises(InstallError, match="missing"):
        store.files(art.sha256)


def test_debris_is_everything_that_is_not_an_entry(tmp_path: Path) -> None:
    store = _store(tmp_path / "home")
    (store.root / ".tmp-0123-abc").mkdir(parents=True)
    (store.root / ".trash-0123-abc").mkdir()
    (store.root / "notes.txt").write_text("?")
    assert [p.name for p in store.debris()] == [".tmp-0123-abc", ".trash-0123-abc", "notes.txt"]
    assert store.names() == []


def test_check_artifact_names_what_differs() -> None:
    data = b"plugin bytes"
    good = _sha(data)
    check_artifact(data, sha256=good, size=len(data), limit=100, what="p 1", where="u")
    check_artifact(data, sha256=good, size=0, limit=100, what="p 1", where="u")
    with pytest.raises(IntegrityError) as exc:
        check_artifact(data, sha256="f" * 64, size=len(data), limit=100, what="p 1", where="u")
    assert exc.value.expected == "f" * 64 and exc.value.actual == good
    with pytest.raises(IntegrityError) as exc:
        check_artifact(data, sha256=good, size=5, limit=100, what="p 1", where="u")
    assert exc.value.expected == "5 bytes"
    with pytest.raises(IntegrityError, match="max_plugin_size"):
        check_artifact(data, sha256=good, size=len(data), limit=4, what="p 1", where="u")


def test_artifact_name_comes_from_the_url_or_the_bytes() -> None:
    assert artifact_name("https://r.example/a/csv-1.0.zip?x=1", b"", "csv") == "csv-1.0.zip"
    assert artifact_name("file:///srv/my%20plugin.whl", b"", "p") == "my plugin.whl"
    assert artifact_name("/srv/registry/tool.py", b"", "tool") == "tool.py"
    assert artifact_name("https://r.example/download/7", b"PK\x03\x04...", "csv-tools") == (
        "csv_tools.zip"
    )
    assert artifact_name("https://r.example/download/7", b"x = 1", "csv-tools") == "csv_tools.py"


def test_a_staged_entry_is_invisible_until_placed_and_discarding_leaves_nothing(
    tmp_path: Path,
) -> None:
    art = make_artifact(tmp_path, "staged")
    store = _store(tmp_path / "home")
    staged = store.stage(art.sha256, art.data, art.path.name, where="s")
    assert staged.tmp.name.startswith(".tmp-") and (staged.tmp / "entry.json").is_file()
    assert not store.has(art.sha256) and store.names() == [] and store.debris() == [staged.tmp]
    store.discard(staged)
    assert store.names() == [] and store.debris() == []

    staged = store.stage(art.sha256, art.data, art.path.name, where="s")
    entry, created = store.place(staged)
    store.sync_root()
    assert created and store.has(art.sha256) and store.debris() == []
    assert entry == _store(tmp_path / "home").entry(art.sha256)  # as a new reader reads it
    assert entry.manifest.path == str(entry.root / "staged" / "__init__.py")
    assert store.verify(art.sha256) is None


def test_placing_an_entry_another_writer_stored_first_keeps_theirs(tmp_path: Path) -> None:
    art = make_artifact(tmp_path, "raced")
    store = _store(tmp_path / "home")
    mine = store.stage(art.sha256, art.data, art.path.name, where="mine")
    theirs, _ = _store(tmp_path / "home").put(art.sha256, art.data, art.path.name, where="t")
    entry, created = store.place(mine)
    assert not created and entry.path == theirs.path
    assert store.names() == [art.sha256] and store.debris() == []


def test_an_unsynced_stage_names_every_folder_and_the_record_to_fsync(tmp_path: Path) -> None:
    art = make_artifact(tmp_path, "later")
    store = _store(tmp_path / "home")
    staged = store.stage(art.sha256, art.data, art.path.name, where="l", sync=False)
    files, folders = staged.to_sync(placed=False)
    # Nothing was flushed while unpacking: every file and folder is left to the caller.
    on_disk = sorted(p for p in staged.tmp.rglob("*") if p.is_file())
    assert files[0] == staged.tmp / "entry.json" and sorted(files) == on_disk
    assert staged.tmp / "tree" / "later" / "__init__.py" in files
    assert folders == [staged.tmp, staged.tmp / "tree", staged.tmp / "tree" / "later"]
    entry, _ = store.place(staged)
    placed, folders = staged.to_sync(placed=True)
    assert placed == [entry.path / f.relative_to(staged.tmp) for f in files]
    assert all(f.is_file() for f in placed) and all(d.is_dir() for d in folders)
    assert folders[0] == entry.path

    module = b"__plugin__ = {'id': 'single', 'version': '1'}\n"
    single = store.stage(_sha(module), module, "single.py", where="s", sync=False)
    files, _ = single.to_sync(placed=False)
    assert files == [single.tmp / "entry.json", single.tmp / "tree" / "single.py"]
    store.discard(single)


def test_an_archive_stages_and_places_in_a_home_reached_through_a_symbolic_link(
    tmp_path: Path, linked_home: Path
) -> None:
    art = make_artifact(tmp_path, "linked")
    store = _store(linked_home)
    synced = store.stage(art.sha256, art.data, art.path.name, where="l")
    assert synced.to_sync(placed=False) == ([], [])
    store.discard(synced)
    staged = store.stage(art.sha256, art.data, art.path.name, where="l", sync=False)
    files, folders = staged.to_sync(placed=False)
    assert sorted(files) == sorted(p for p in staged.tmp.rglob("*") if p.is_file())
    assert folders == [staged.tmp, staged.tmp / "tree", staged.tmp / "tree" / "linked"]
    store.discard(staged)
    entry, created = store.put(art.sha256, art.data, art.path.name, where="l")
    assert created and store.verify(art.sha256) is None and store.debris() == []
    assert entry.manifest.path == str(entry.root / "linked" / "__init__.py")
    assert (tmp_path / "home" / "store" / art.sha256 / "entry.json").is_file()


NESTED = [  # in no particular order, with names that sort around "/"
    ("deep/sub/zz/last.py", b"LAST = 1\n"),
    ("deep/__init__.py", b"__plugin__ = {'id': 'deep', 'version': '1.0'}\n"),
    ("deep/sub0.py", b"ZERO = 0\n"),
    ("deep/sub/__init__.py", b""),
    ("deep/sub-x.py", b"X = 'x'\n"),
    ("deep/sub/zz/a b.py", b"AB = 2\n"),
]


def _by_hand(entries: list[tuple[str, bytes]]) -> str:
    """The tree digest as decision 0008 states it: sorted paths, lengths, contents."""
    digest = hashlib.sha256()
    for rel, data in sorted(entries):
        digest.update(rel.encode() + b"\0" + str(len(data)).encode() + b"\0" + data)
    return digest.hexdigest()


@pytest.mark.parametrize(
    ("name", "entries", "under"),
    [
        ("deep-1.0.zip", NESTED, ""),
        ("solo.py", [("solo.py", b"__plugin__ = {'id': 'solo', 'version': '0.3'}\nV = 3\n")], ""),
        ("flat-1.0.zip", [(r[5:], d) for r, d in NESTED], "deep/"),  # contents at the root
        ("intl-1.0.zip", [*NESTED, ("deep/donn\u00e9es.py", b"D = 1\n")], ""),
        (  # past what staging keeps in memory: the big file, and all after it, read back
            "big-1.0.zip",
            [NESTED[1], ("deep/blob.bin", bytes(range(256)) * 36_865), NESTED[0]],
            "",
        ),
    ],
    ids=["nested-package", "single-module", "package-contents", "non-ascii-name", "large-file"],
)
def test_the_digest_made_while_staging_is_the_one_check_reads_from_the_disk(
    tmp_path: Path, name: str, entries: list[tuple[str, bytes]], under: str
) -> None:
    if name.endswith(".py"):
        data = entries[0][1]
    else:
        data = write_zip(tmp_path / name, entries).read_bytes()
    store = _store(tmp_path / "home")
    staged = store.stage(_sha(data), data, name, where=name, sync=False)
    record = json.loads((staged.tmp / "entry.json").read_bytes())
    assert record["tree"] == staged.entry.tree == _by_hand([(under + r, d) for r, d in entries])
    assert tree_digest(staged.tmp / "tree") == (len(entries), staged.entry.tree)
    assert record["files"] == len(entries)
    files, folders = staged.to_sync(placed=False)
    on_disk = list(staged.tmp.rglob("*"))
    assert sorted(files) == sorted(p for p in on_disk if p.is_file())
    assert folders == sorted([staged.tmp, *(p for p in on_disk if p.is_dir())])
    entry, created = store.place(staged)
    assert created and store.verify(entry.sha256) is None


def test_a_temporary_name_taken_by_a_dead_process_is_skipped_and_stays_debris(
    tmp_path: Path,
) -> None:
    art = make_artifact(tmp_path, "named")
    store = _store(tmp_path / "home")
    first = store.stage(art.sha256, art.data, art.path.name, where="n")
    stem, _, number = first.tmp.name.rpartition("-")
    left = {store.root / f"{stem}-{int(number) + i}" for i in (1, 2, 3)}
    for folder in left:  # as a process with this one's id could have left them
        folder.mkdir()
    second = store.stage(art.sha256, art.data, art.path.name, where="n")
    assert second.tmp.name.startswith(".tmp-") and second.tmp not in {first.tmp, *left}
    assert set(store.debris()) == {first.tmp, second.tmp, *left}
    store.discard(first)
    entry, created = store.place(second)
    assert created and store.verify(entry.sha256) is None
    assert set(store.debris()) == left and all(not any(p.iterdir()) for p in left)
