"""PAPI loading and keying: real files load and validate, malformed input fails naming subject and item."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import mirror_or_skip

from persona.papi import (
    DOMAINS,
    Item,
    PapiDataError,
    Subject,
    agreement,
    agreement_to_keyed,
    answers_frame,
    items_by_number,
    keyed,
    load_item_key,
    load_split,
    load_subjects,
    load_subjects_table,
    shown_value,
    split_items,
    stored_to_agreement,
    subjects_from_frame,
)


@pytest.fixture(scope="module")
def real():
    mirror_or_skip()
    return load_item_key(), load_split(), load_subjects()


def _record(case: int, value: int = 3, **override) -> dict:
    record = {"case": case, "sex": 1, **{f"i{n}": value for n in range(1, 301)}}
    record.update(override)
    return record


# ---------------------------------------------------------------- real files


def test_item_key_has_300_items_60_per_domain_10_per_facet(real):
    items, _, _ = real
    assert len(items) == 300
    assert {d: sum(i.domain == d for i in items) for d in DOMAINS} == dict.fromkeys(DOMAINS, 60)
    facets = pd.Series([i.facet for i in items]).value_counts()
    assert len(facets) == 30 and set(facets) == {10}
    assert sum(i.sign == 1 for i in items) == 152  # counts from the upstream spreadsheet
    first = items_by_number(items)[1]
    assert (first.domain, first.facet, first.facet_name, first.sign, first.text) == (
        "N", "N1", "Anxiety", 1, "Worry about things.")


def test_split_is_the_ipip_neo_120_with_4_known_and_6_heldout_per_facet(real):
    items, split, _ = real
    assert len(split.known) == 120 and len(split.heldout) == 180
    by = items_by_number(items)
    assert sorted(split.known) == sorted(i.number for i in items if i.short_number is not None)
    known = pd.Series([by[n].facet for n in split.known]).value_counts()
    heldout = pd.Series([by[n].facet for n in split.heldout]).value_counts()
    assert set(known) == {4} and set(heldout) == {6}
    known_items, heldout_items = split_items(items, split)
    assert [i.number for i in known_items] == list(split.known) and len(heldout_items) == 180


def test_subjects_load_with_values_in_range_and_52_missing(real):
    _, _, subjects = real
    assert len(subjects) == 300 and len({s.case for s in subjects}) == 300
    values = np.array([[s.answers[n] for n in range(1, 301)] for s in subjects])
    assert values.min() == 0 and values.max() == 5
    assert (values == 0).sum() == 52  # SOURCE.md: 52 zeros across 41 subjects
    assert ((values == 0).sum(axis=1) > 0).sum() == 41
    assert [s.index for s in load_subjects(limit=5)] == [0, 1, 2, 3, 4]


# ---------------------------------------------------------------- validation


def test_value_outside_range_names_subject_and_item(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps([_record(11), _record(12, i57=7)]))
    with pytest.raises(PapiDataError, match=r"case=12 \(row 1\) item i57.*outside 0\.\.5"):
        load_subjects(path=path)


def test_non_integer_and_non_numeric_values_are_rejected(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps([_record(11, i3=2.5)]))
    with pytest.raises(PapiDataError, match="i3"):
        load_subjects(path=path)
    path.write_text(json.dumps([_record(11, i4="x")]))
    with pytest.raises(PapiDataError, match="i4.*not a number"):
        load_subjects(path=path)


def test_missing_item_column_names_subject_and_column(tmp_path):
    record = _record(99)
    del record["i120"]
    path = tmp_path / "t.json"
    path.write_text(json.dumps([record]))
    with pytest.raises(PapiDataError, match="case=99.*lacks item column i120"):
        load_subjects(path=path)


def test_malformed_files_fail_clearly(tmp_path):
    path = tmp_path / "t.json"
    path.write_text("{not json")
    with pytest.raises(PapiDataError, match="not valid JSON"):
        load_subjects(path=path)
    path.write_text(json.dumps({"case": 1}))
    with pytest.raises(PapiDataError, match="JSON list"):
        load_subjects(path=path)
    path.write_text(json.dumps([_record(5), _record(5)]))
    with pytest.raises(PapiDataError, match="case 5 appears"):
        load_subjects(path=path)
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train_index": [1, 2], "test_index": [3]}))
    with pytest.raises(PapiDataError, match="partition"):
        load_split(split)


# ---------------------------------------------------------------- full-data (hub) layout


def _johnson_frame() -> pd.DataFrame:
    """A small frame in the archive layout: CASE, demographics, I1..I300, one missing cell."""
    rng = np.random.default_rng(0)
    answers = rng.integers(1, 6, size=(4, 300)).astype("float64")
    answers[2, 9] = np.nan  # I10 missing for the third subject
    frame = pd.DataFrame(answers, columns=[f"I{n}" for n in range(1, 301)])
    frame.insert(0, "CASE", [101, 102, 103, 104])
    frame.insert(1, "COUNTRY", ["USA"] * 4)
    return frame


def test_frame_layout_gives_the_same_records_as_json(tmp_path):
    frame = _johnson_frame()
    subjects = subjects_from_frame(frame)
    assert [s.case for s in subjects] == [101, 102, 103, 104]
    assert subjects[2].answers[10] == 0  # NaN cell -> missing
    assert subjects[0].answers[1] == int(frame.loc[0, "I1"])
    # the JSON path gives identical records for the same data
    records = [{"case": s.case, **{f"i{n}": v for n, v in s.answers.items()}} for s in subjects]
    (tmp_path / "t.json").write_text(json.dumps(records))
    assert load_subjects(path=tmp_path / "t.json") == subjects


def test_table_loader_reads_parquet_csv_and_frames(tmp_path):
    frame = _johnson_frame()
    frame.to_parquet(tmp_path / "p.parquet")
    frame.to_csv(tmp_path / "p.csv", index=False)
    expected = subjects_from_frame(frame)
    assert load_subjects_table(tmp_path / "p.parquet") == expected
    assert [s.answers for s in load_subjects_table(tmp_path / "p.csv")] == [s.answers for s in expected]
    assert len(load_subjects_table(frame, limit=2)) == 2
    bad = frame.copy()
    bad.loc[1, "I7"] = 9
    with pytest.raises(PapiDataError, match="case=102.*i7"):
        load_subjects_table(bad)


# ---------------------------------------------------------------- keying


PLUS = Item(1, 1, "N", "N1", "Anxiety", +1, "Worry about things.")
MINUS = Item(2, None, "N", "N1", "Anxiety", -1, "Am not easily bothered by things.")


def test_keyed_is_stored_and_agreement_reverses_minus_items():
    subject = Subject(case=1, index=0, answers={1: 5, 2: 5})
    assert keyed(subject, PLUS) == 5 and agreement(subject, PLUS) == 5
    # a stored 5 on a '-' item = high anxiety = the person ticked "Very Inaccurate" (1)
    assert keyed(subject, MINUS) == 5 and agreement(subject, MINUS) == 1


def test_missing_is_none_in_both_readings_and_shown_as_zero_only_by_the_paper_prompt():
    subject = Subject(case=1, index=0, answers={1: 0, 2: 0})
    assert keyed(subject, MINUS) is None and agreement(subject, MINUS) is None
    assert shown_value(subject, MINUS, "paper") == 0
    assert shown_value(subject, MINUS, "corrected") is None


@pytest.mark.parametrize("stored", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("sign", [1, -1])
def test_agreement_is_an_involution_fixing_neutral(stored, sign):
    agree = stored_to_agreement(stored, sign)
    assert agreement_to_keyed(agree, sign) == stored
    assert 1 <= agree <= 5
    if stored == 3:
        assert agree == 3


def test_shown_value_differs_from_agreement_exactly_on_minus_items(real):
    items, _, subjects = real
    subject = subjects[0]
    for item in items:
        stored = subject.answers[item.number]
        if stored in (0, 3):
            continue
        same = shown_value(subject, item, "paper") == shown_value(subject, item, "corrected")
        assert same == (item.sign == 1)


def test_answers_frame_columns_and_readings(real):
    items, split, subjects = real
    frame = answers_frame(subjects[:3], items, split)
    assert len(frame) == 900 and frame["known"].sum() == 360
    minus = frame[(frame["sign"] == -1) & (frame["stored"] > 0)]
    assert (minus["agreement"] == 6 - minus["stored"]).all()
    assert frame.loc[frame["stored"] == 0, ["keyed", "agreement"]].isna().all().all()
