"""Data provisioning: manifest, checksums, mirror, cache, and clear errors on corruption."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conftest import REPO_ROOT, mirror_or_skip

from persona import data
from persona.data import DataError, fetch, manifest


def _write_manifest(tmp_path: Path, name: str, content: bytes, **extra) -> Path:
    entry = {"name": name, "sha256": hashlib.sha256(content).hexdigest(), "size": len(content),
             "kind": "url", "source": "https://example.invalid/file", "gated": False, "description": "test"}
    entry.update(extra)
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"files": [entry]}))
    return path


def test_manifest_lists_every_file_with_checksum_and_source():
    files = manifest()
    assert "papi/Test-set.json" in files and "trait/trait_hf_8b31c078.derived.jsonl" in files
    for entry in files.values():
        assert len(entry.sha256) == 64 and entry.size > 0 and entry.source
    assert files["trait/trait_hf_8b31c078.derived.jsonl"].gated
    assert "18e1e3404951acc864f30f323a0e47a0840b474a" in files["papi/Test-set.json"].source


def test_no_third_party_data_is_committed():
    tracked = {p.name for p in (REPO_ROOT / "data").iterdir()}
    names = {Path(n).name for n in manifest()}
    assert not tracked & names


def test_fetch_from_mirror_verifies_and_caches(tmp_path, isolated_cache, monkeypatch):
    content = b"subject,answer\n1,5\n"
    monkeypatch.setattr(data, "MANIFEST_PATH", _write_manifest(tmp_path, "papi/x.csv", content))
    mirror = tmp_path / "mirror"
    (mirror / "papi").mkdir(parents=True)
    (mirror / "papi" / "x.csv").write_bytes(content)
    monkeypatch.setenv("PERSONA_DATA_MIRROR", str(mirror))
    path = fetch("papi/x.csv")
    assert path.read_bytes() == content and isolated_cache in path.parents
    (mirror / "papi" / "x.csv").unlink()  # served from the cache now
    assert fetch("papi/x.csv").read_bytes() == content


def test_corrupt_mirror_file_is_named_and_not_kept(tmp_path, isolated_cache, monkeypatch):
    monkeypatch.setattr(data, "MANIFEST_PATH", _write_manifest(tmp_path, "papi/x.csv", b"good"))
    mirror = tmp_path / "mirror"
    (mirror / "papi").mkdir(parents=True)
    (mirror / "papi" / "x.csv").write_bytes(b"evil")
    monkeypatch.setenv("PERSONA_DATA_MIRROR", str(mirror))
    with pytest.raises(DataError) as err:
        fetch("papi/x.csv", allow_upstream=False)
    message = str(err.value)
    assert "papi/x.csv" in message and "Checksum mismatch" in message and "example.invalid" in message
    assert not (isolated_cache / "data" / "papi" / "x.csv").exists()
    assert not list((isolated_cache / "data" / "papi").glob(".partial-*"))


def test_corrupt_cached_file_is_replaced(tmp_path, isolated_cache, monkeypatch):
    monkeypatch.setattr(data, "MANIFEST_PATH", _write_manifest(tmp_path, "papi/x.csv", b"good"))
    cached = isolated_cache / "data" / "papi" / "x.csv"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"bad!")
    mirror = tmp_path / "mirror"
    (mirror / "papi").mkdir(parents=True)
    (mirror / "papi" / "x.csv").write_bytes(b"good")
    monkeypatch.setenv("PERSONA_DATA_MIRROR", str(mirror))
    assert fetch("papi/x.csv").read_bytes() == b"good"


def test_unreachable_upstream_gives_clear_error(tmp_path, isolated_cache, monkeypatch):
    monkeypatch.setattr(data, "MANIFEST_PATH", _write_manifest(tmp_path, "papi/x.csv", b"good", gated=True))
    monkeypatch.delenv("PERSONA_DATA_MIRROR", raising=False)
    monkeypatch.setattr(data, "_download_url", lambda entry, dest: (_ for _ in ()).throw(OSError("offline")))
    with pytest.raises(DataError, match="PERSONA_DATA_MIRROR.*|HF_TOKEN"):
        fetch("papi/x.csv")


def test_upstream_download_is_verified(tmp_path, isolated_cache, monkeypatch):
    monkeypatch.setattr(data, "MANIFEST_PATH", _write_manifest(tmp_path, "papi/x.csv", b"good"))
    monkeypatch.delenv("PERSONA_DATA_MIRROR", raising=False)
    monkeypatch.setattr(data, "_download_url", lambda entry, dest: Path(dest).write_bytes(b"good"))
    assert fetch("papi/x.csv").read_bytes() == b"good"
    monkeypatch.setattr(data, "MANIFEST_PATH", _write_manifest(tmp_path, "papi/y.csv", b"good"))
    monkeypatch.setattr(data, "_download_url", lambda entry, dest: Path(dest).write_bytes(b"tampered"))
    with pytest.raises(DataError, match="papi/y.csv"):
        fetch("papi/y.csv")


def test_unknown_name():
    with pytest.raises(DataError, match="Unknown data file"):
        fetch("papi/nope.json")


def test_real_mirror_matches_manifest(isolated_cache):
    mirror_or_skip()
    path = fetch("papi/mpi_300_split.json")
    split = json.loads(path.read_text())
    assert len(split["train_index"]) == 120 and len(split["test_index"]) == 180
