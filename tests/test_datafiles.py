"""Data provisioning: manifest, checksums, mirror, cache, and clear errors on corruption."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from conftest import REPO_ROOT, mirror_or_skip, mode

from persona import datafiles as data
from persona.datafiles import DataError, fetch, manifest


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


def _mirror_with(tmp_path, monkeypatch, content: bytes) -> Path:
    monkeypatch.setattr(data, "MANIFEST_PATH", _write_manifest(tmp_path, "papi/x.csv", content))
    mirror = tmp_path / "mirror"
    (mirror / "papi").mkdir(parents=True)
    (mirror / "papi" / "x.csv").write_bytes(content)
    monkeypatch.setenv("PERSONA_DATA_MIRROR", str(mirror))
    return mirror / "papi" / "x.csv"


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)], ids=["022", "002", "077"])
def test_cached_files_are_as_readable_as_the_umask_allows(tmp_path, isolated_cache, monkeypatch, umask, mask,
                                                          expected):
    """A cache serves a colleague as a mirror: its files get the mode the umask gives (not mkstemp's 0600)."""
    source = _mirror_with(tmp_path, monkeypatch, b"subject,answer\n1,5\n")
    source.chmod(0o400)  # the mirror's own mode is not copied
    umask(mask)
    assert mode(fetch("papi/x.csv")) == expected


def test_an_unreadable_mirror_file_is_named_in_one_line(tmp_path, isolated_cache, monkeypatch, deny_reading):
    source = _mirror_with(tmp_path, monkeypatch, b"good")
    deny_reading(source)  # a colleague's cache filled with files only its owner may read
    with pytest.raises(DataError) as err:
        fetch("papi/x.csv", allow_upstream=False)
    message = str(err.value)
    assert "\n" not in message and "Traceback" not in message
    assert message.startswith(f"Cannot fetch 'papi/x.csv': permission denied on {source};")
    assert f"chmod -R g+rX {source.parents[1]}" in message and "PERSONA_DATA_MIRROR" in message
    assert not list((isolated_cache / "data" / "papi").glob(".partial-*"))


def test_an_unreadable_cached_file_names_the_cache_variable(tmp_path, isolated_cache, monkeypatch, deny_reading):
    _mirror_with(tmp_path, monkeypatch, b"good")
    cached = fetch("papi/x.csv")
    deny_reading(cached)
    with pytest.raises(DataError, match=rf"^Cannot fetch 'papi/x.csv': permission denied on {re.escape(str(cached))};.*"
                                        rf"PERSONA_CACHE_DIR to a cache of your own\.$"):
        fetch("papi/x.csv")


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


# --- the IPIP item key CSV is derived from the .xls without xlrd (issue #19.3) ----------------------


def _no_network(monkeypatch):
    """Any URL request fails as it does offline (DNS lookup fails)."""
    import socket
    import urllib.error
    import urllib.request

    def refuse(*args, **kwargs):
        raise urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def test_itemkey_csv_is_derived_from_the_xls_byte_for_byte(tmp_path, isolated_cache, monkeypatch):
    """A mirror holding only the upstream .xls yields the manifest's CSV (same sha256), offline."""
    real = mirror_or_skip()
    mirror = tmp_path / "mirror"
    (mirror / "papi").mkdir(parents=True)
    (mirror / "papi" / "IPIP-NEO-ItemKey.xls").write_bytes((real / "papi" / "IPIP-NEO-ItemKey.xls").read_bytes())
    monkeypatch.setenv("PERSONA_DATA_MIRROR", str(mirror))
    _no_network(monkeypatch)
    path = fetch("papi/IPIP-NEO-ItemKey.csv")
    assert data.sha256_of(path) == manifest()["papi/IPIP-NEO-ItemKey.csv"].sha256
    assert path.read_bytes() == (real / "papi" / "IPIP-NEO-ItemKey.csv").read_bytes()


# --- each failure names its real cause -----------------------------------------------------------


def test_mirror_variable_naming_no_folder_is_an_error(tmp_path, isolated_cache, monkeypatch):
    monkeypatch.setattr(data, "MANIFEST_PATH", _write_manifest(tmp_path, "papi/x.csv", b"good"))
    missing = tmp_path / "no-such-mirror"
    monkeypatch.setenv("PERSONA_DATA_MIRROR", str(missing))
    monkeypatch.setattr(data, "_download_url", lambda entry, dest: pytest.fail("upstream must not be tried"))
    with pytest.raises(DataError) as err:
        fetch("papi/x.csv")
    assert str(err.value).startswith(f"PERSONA_DATA_MIRROR is set to {missing}, which does not exist.")
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("PERSONA_DATA_MIRROR", str(tmp_path / "a-file"))
    with pytest.raises(DataError, match="which is not a folder"):
        fetch("papi/x.csv")


def test_mirror_lacking_the_file_says_so_and_whether_upstream_was_tried(tmp_path, isolated_cache, monkeypatch):
    monkeypatch.setattr(data, "MANIFEST_PATH", _write_manifest(tmp_path, "papi/x.csv", b"good"))
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    monkeypatch.setenv("PERSONA_DATA_MIRROR", str(mirror))
    with pytest.raises(DataError) as err:
        fetch("papi/x.csv", allow_upstream=False)
    assert str(err.value) == (f"'papi/x.csv' is not in the cache and the mirror {mirror} (PERSONA_DATA_MIRROR) "
                              f"has no 'papi/x.csv'; upstream was not tried (disabled).")
    _no_network(monkeypatch)
    with pytest.raises(DataError) as err:
        fetch("papi/x.csv")
    message = str(err.value)
    assert message.startswith(f"The mirror {mirror} (PERSONA_DATA_MIRROR) has no 'papi/x.csv'; upstream was "
                              f"tried and failed: ")
    assert "the network is unreachable" in message


def test_no_network_says_so_and_names_the_mirror_variable(tmp_path, isolated_cache, monkeypatch):
    monkeypatch.setattr(data, "MANIFEST_PATH", _write_manifest(tmp_path, "papi/x.csv", b"good"))
    monkeypatch.delenv("PERSONA_DATA_MIRROR", raising=False)
    _no_network(monkeypatch)
    with pytest.raises(DataError) as err:
        fetch("papi/x.csv")
    message = str(err.value)
    assert message.startswith("Cannot fetch 'papi/x.csv' from upstream https://example.invalid/file: "
                              "the network is unreachable (URLError: ")
    assert "Set PERSONA_DATA_MIRROR to a folder holding 'papi/x.csv'" in message
    assert not list((isolated_cache / "data" / "papi").iterdir())  # nothing half-written is kept


def test_http_error_is_not_called_a_network_failure(tmp_path, isolated_cache, monkeypatch):
    import urllib.error

    monkeypatch.setattr(data, "MANIFEST_PATH", _write_manifest(tmp_path, "papi/x.csv", b"good"))
    monkeypatch.delenv("PERSONA_DATA_MIRROR", raising=False)

    def not_found(entry, dest):
        raise urllib.error.HTTPError(entry.source, 404, "Not Found", None, None)

    monkeypatch.setattr(data, "_download_url", not_found)
    with pytest.raises(DataError, match=r"upstream https://example.invalid/file answered HTTP 404") as err:
        fetch("papi/x.csv")
    assert "unreachable" not in str(err.value)


def _fake_datasets(monkeypatch, error: Exception):
    """Install a stand-in ``datasets`` module whose load_dataset raises ``error``."""
    import importlib.machinery
    import sys
    import types

    fake = types.ModuleType("datasets")
    fake.__spec__ = importlib.machinery.ModuleSpec("datasets", None)

    def load_dataset(*args, **kwargs):
        raise error

    fake.load_dataset = load_dataset
    monkeypatch.setitem(sys.modules, "datasets", fake)


HUB = {"kind": "hf-dataset", "source": "hf://datasets/mirlab/TRAIT@8b31c078", "gated": True}


def test_hub_unreachable_says_so_or_names_hf_hub_offline(tmp_path, isolated_cache, monkeypatch):
    monkeypatch.setattr(data, "MANIFEST_PATH", _write_manifest(tmp_path, "trait/t.jsonl", b"good", **HUB))
    monkeypatch.delenv("PERSONA_DATA_MIRROR", raising=False)
    # what datasets 5.2 raises when the hub cannot be reached (and when HF_HUB_OFFLINE=1)
    _fake_datasets(monkeypatch, ConnectionError("Couldn't reach 'mirlab/TRAIT' on the Hub (LocalEntryNotFoundError)"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(DataError) as err:
        fetch("trait/t.jsonl")
    message = str(err.value)
    assert "the network is unreachable" in message and "Set PERSONA_DATA_MIRROR" in message
    assert "gated" in message and "HF_TOKEN" in message
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="HF_HUB_OFFLINE is set, so the hub was not contacted"):
        fetch("trait/t.jsonl")


def test_gated_hub_dataset_without_token_says_accept_terms_and_set_hf_token(tmp_path, isolated_cache, monkeypatch):
    exceptions = pytest.importorskip("datasets.exceptions")
    monkeypatch.setattr(data, "MANIFEST_PATH", _write_manifest(tmp_path, "trait/t.jsonl", b"good", **HUB))
    monkeypatch.delenv("PERSONA_DATA_MIRROR", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    # what datasets 5.2 raises for a gated dataset without authentication
    _fake_datasets(monkeypatch, exceptions.DatasetNotFoundError(
        "Dataset 'mirlab/TRAIT' is a gated dataset on the Hub. You must be authenticated to access it."))
    with pytest.raises(DataError) as err:
        fetch("trait/t.jsonl")
    assert str(err.value).startswith(
        "Cannot fetch 'trait/t.jsonl': the hub dataset mirlab/TRAIT is gated and refused access (HF_TOKEN is not "
        "set). Accept its terms on the dataset's hub page (mirlab/TRAIT) while logged in, then set HF_TOKEN")
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    with pytest.raises(DataError, match=r"HF_TOKEN is set but was refused") as err:
        fetch("trait/t.jsonl")
    assert "hf_not_a_real_token" not in str(err.value)  # the token is never shown


def test_missing_python_package_is_named_with_its_install_command(tmp_path, isolated_cache, monkeypatch):
    import sys

    derived = {"kind": "derived", "source": "papi/x.xls"}
    monkeypatch.setattr(data, "MANIFEST_PATH", _write_manifest(tmp_path, "papi/x.csv", b"good", **derived))
    monkeypatch.delenv("PERSONA_DATA_MIRROR", raising=False)
    monkeypatch.setitem(sys.modules, "python_calamine", None)  # import fails as if not installed
    with pytest.raises(DataError) as err:
        fetch("papi/x.csv")
    assert str(err.value).startswith(
        "Building 'papi/x.csv' from upstream needs the Python package 'python-calamine', which is not "
        "installed. Install it with:\n    pip install python-calamine==0.9.1\n")
    monkeypatch.setattr(data, "MANIFEST_PATH", _write_manifest(tmp_path, "trait/t.jsonl", b"good", **HUB))
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(DataError, match=r"'datasets'.*\n    pip install datasets==5\.2\.0"):
        fetch("trait/t.jsonl")


def test_install_command_uses_the_projects_pin():
    assert data.install_command("pandas") == "pip install pandas==3.1.1"
    assert data.install_command("not-a-dependency") == "pip install not-a-dependency"


# --- provisioning ends with the message, not a traceback -----------------------------------------


def test_provision_without_data_exits_with_the_message(tmp_path, isolated_cache, monkeypatch, capsys):
    from persona import provision

    monkeypatch.setenv("PERSONA_DATA_MIRROR", str(tmp_path / "no-such-mirror"))
    with pytest.raises(SystemExit) as exit_:
        provision.main(["--models"])
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert "[provision] data not available:" in err and "PERSONA_DATA_MIRROR is set to" in err


def test_provision_subprocess_has_no_traceback(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "PERSONA_CACHE_DIR": str(tmp_path / "cache"),
           "PERSONA_DATA_MIRROR": str(tmp_path / "no-such-mirror")}
    done = subprocess.run([sys.executable, "-m", "persona.provision", "--models"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "PERSONA_DATA_MIRROR is set to" in done.stderr and "does not exist" in done.stderr
