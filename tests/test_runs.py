"""Resumable results: an interrupted run resumes without recomputing or duplicating; timing helpers."""

from __future__ import annotations

import time
from functools import partial

import pandas as pd
import pytest
from conftest import mode

from persona.runs import ResultStore, Unit, resume
from persona.timing import StageTimer, interleave


def _rows(subject):
    return pd.DataFrame({"subject": [subject] * 2, "item": [1, 2], "predicted": [3, 4]})


def _units(calls, crash_at=None):
    def compute(subject):
        if subject == crash_at and not calls.count("crashed"):
            calls.append("crashed")
            raise KeyboardInterrupt  # the run dies while this subject is being computed
        calls.append(subject)
        return _rows(subject)

    return [Unit("few-shot", str(s), partial(compute, s), rows=2) for s in range(5)]


def test_interrupted_run_resumes_without_recomputing(tmp_path):
    calls = []
    store = ResultStore(tmp_path, {"model": "tiny", "n": 5}, code="c1")
    with pytest.raises(KeyboardInterrupt):
        resume(store, _units(calls, crash_at=3), desc="test")
    assert calls == [0, 1, 2, "crashed"]
    assert not list(tmp_path.rglob(".partial-*"))  # nothing half-written is left behind
    assert sorted(store.load(["few-shot"])["subject"].unique()) == [0, 1, 2]

    store = ResultStore(tmp_path, {"model": "tiny", "n": 5}, code="c1")  # a new process resumes
    frame = resume(store, _units(calls, crash_at=3), desc="test")
    assert calls[-2:] == [3, 4]  # only the missing subjects were computed
    assert len(frame) == 10 and not frame.duplicated(["subject", "item"]).any()
    resume(store, _units(calls), desc="test")
    assert calls[-1] == 4 and len(calls) == 6  # nothing recomputed


def test_resume_with_other_parameters_or_code_is_refused(tmp_path):
    ResultStore(tmp_path, {"model": "a"}, code="c1")
    with pytest.raises(ValueError, match="other parameters"):
        ResultStore(tmp_path, {"model": "b"}, code="c1")
    with pytest.raises(ValueError, match="other code"):
        ResultStore(tmp_path, {"model": "a"}, code="c2")


@pytest.mark.parametrize("damage", ["cut", "empty", "list", "binary"])
def test_a_damaged_run_file_is_called_damaged_and_the_units_are_kept(tmp_path, damage):
    """Issue #28: a damaged run.json was reported as 'written by other parameters', and the suggested fix
    (delete the folder) threw verified units away. It is named damaged, no unit is touched, and deleting
    only run.json, as the message says, reuses every unit of these parameters."""
    store = ResultStore(tmp_path, {"n": 5}, code="c")
    calls = []
    resume(store, _units(calls), desc="test")
    other = ResultStore(tmp_path / "other", {"n": 6}, code="c")  # a unit of other parameters, moved in by mistake
    other.save("few-shot", "9", _rows(9), expected_rows=2)
    for suffix in (".csv", ".meta.json"):
        (tmp_path / "other" / "few-shot" / f"9{suffix}").rename(tmp_path / "few-shot" / f"9{suffix}")
    run = tmp_path / "run.json"
    text = run.read_text()
    run.write_bytes({"cut": text[: len(text) // 2].encode(), "empty": b"", "list": b"[1, 2]",
                     "binary": b"\xff\xfe\x00"}[damage])
    units = sorted(p.name for p in (tmp_path / "few-shot").iterdir())
    with pytest.raises(ValueError) as refused:
        ResultStore(tmp_path, {"n": 5}, code="c")
    message = str(refused.value)
    assert "run.json is damaged" in message and "written by other parameters" not in message
    assert "the 6 stored unit(s) beside it are kept, 5 of them made by these parameters" in message
    assert "Delete only" in message and "Delete the folder" not in message
    assert sorted(p.name for p in (tmp_path / "few-shot").iterdir()) == units  # nothing deleted
    run.unlink()  # the fix the message names
    again = resume(ResultStore(tmp_path, {"n": 5}, code="c"), _units(calls), desc="test")
    assert len(calls) == 5 and len(again) == 10  # every unit of these parameters reused, none recomputed


@pytest.mark.parametrize("damage", ["cut_line", "truncate", "empty", "no_meta", "edit"])
def test_a_damaged_unit_is_reported_and_recomputed_never_used(tmp_path, damage, capsys):
    store = ResultStore(tmp_path, {"n": 5}, code="c")
    calls = []
    first = resume(store, _units(calls), desc="test")
    path = store.path("few-shot", "2")
    text = path.read_text()
    if damage == "cut_line":  # a shard cut at a line boundary still parses: only the checksum catches it
        path.write_text("\n".join(text.splitlines()[:-1]) + "\n")
    elif damage == "truncate":
        path.write_text(text[: len(text) // 2])
    elif damage == "empty":
        path.write_text("")
    elif damage == "no_meta":
        path.with_suffix(".meta.json").unlink()
    else:
        path.write_text(text.replace("4", "3"))
    again = resume(store, _units(calls), desc="test")
    assert calls[-1] == 2 and len(calls) == 6  # exactly the damaged unit was recomputed
    pd.testing.assert_frame_equal(first, again)
    assert str(path) in capsys.readouterr().err  # reported by path


def test_leftover_temporary_files_are_never_read(tmp_path):
    store = ResultStore(tmp_path, {}, code="c")
    store.save("dpo", 1, _rows(1))
    (tmp_path / "dpo" / ".partial-abc.csv").write_text("subject,item,predicted\n9,9,9\n")
    (tmp_path / "dpo" / "7.csv").write_text("subject,item,predicted\n7,1,1\n")  # no meta: unfinished
    assert store.keys("dpo") == ["1"]
    assert store.load(["dpo"])["subject"].tolist() == [1, 1]


def test_a_unit_with_the_wrong_row_count_is_refused(tmp_path):
    store = ResultStore(tmp_path, {}, code="c")
    with pytest.raises(ValueError, match="3 expected"):
        store.save("pas", 1, _rows(1), expected_rows=3)
    store.save("pas", 1, _rows(1))
    assert not store.done("pas", 1, expected_rows=3)  # made for another sample size: recomputed


def test_load_selects_groups(tmp_path):
    store = ResultStore(tmp_path, {}, code="c")
    store.save("pas[honest,corrected]", 1, _rows(1).assign(method="pas[honest,corrected]"))
    store.save("dpo", 1, _rows(1).assign(method="dpo"))
    assert set(store.load(["dpo"])["method"]) == {"dpo"}
    assert len(store.load(["dpo", "pas[honest,corrected]"])) == 4


def test_interleave_alternates_order():
    assert interleave([1, 2, 3], ["A", "B"]) == [(1, "A"), (1, "B"), (2, "B"), (2, "A"), (3, "A"), (3, "B")]


def test_stage_timer_measures_wall_and_cpu():
    timer = StageTimer()
    with timer.stage("sleep", method="x", subject=0):
        time.sleep(0.2)
    with timer.stage("spin", method="x", subject=0):
        end = time.process_time() + 0.2
        while time.process_time() < end:
            pass
    frame = timer.frame()
    sleep, spin = frame.iloc[0], frame.iloc[1]
    assert sleep.wall_s >= 0.2 and sleep.cpu_s < 0.1  # waiting costs wall time, not CPU
    assert spin.cpu_s >= 0.2
    assert (frame.peak_rss_mb > 0).all()


def test_code_fingerprint_and_params_folder(tmp_path):
    from persona.runs import code_fingerprint, params_folder

    a = code_fingerprint("persona.runs", "persona.papi.methods")
    assert a == code_fingerprint("persona.runs", "persona.papi.methods") and len(a) == 12
    assert a != code_fingerprint("persona.runs")
    assert params_folder(tmp_path, {"x": 1}) == params_folder(tmp_path, {"x": 1})
    assert params_folder(tmp_path, {"x": 1}) != params_folder(tmp_path, {"x": 2})


# --- results are shared: readable as the umask allows, and a file this user may not read is named ------------


def test_result_files_are_as_readable_as_the_umask_allows(tmp_path, umask):
    umask(0o022)
    store = ResultStore(tmp_path, {"n": 1}, code="c")
    csv = store.save("few-shot", "0", _rows(0))
    written = [tmp_path / "run.json", csv, csv.with_suffix(".meta.json")]
    assert [mode(p) for p in written] == [0o644] * 3  # not mkstemp's 0600: a group can read the shards


def test_an_unreadable_result_is_named_and_neither_deleted_nor_recomputed(tmp_path, deny_reading):
    store = ResultStore(tmp_path, {"n": 1}, code="c")
    csv = store.save("few-shot", "0", _rows(0))
    deny_reading(csv)  # a colleague's shard that only its owner may read
    calls = []
    with pytest.raises(ValueError) as err:
        resume(store, _units(calls)[:1], desc="test")
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"Cannot read {csv}: permission denied.")
    assert f"chmod -R g+rX {tmp_path}" in message and "PERSONA_RESULTS_DIR" in message
    assert csv.exists() and calls == []
