"""PAPI data: the IPIP-NEO-300 item key, the 120/180 split and the subjects' answers, as typed records.

Public API
----------
``load_item_key() -> list[Item]``            the 300 items (number, short number, domain, facet, sign, text)
``load_split() -> Split``                    ``Split(known, heldout)``: the IPIP-NEO-120 items / the other 180
``split_items(items, split)``                (known items, held-out items) as ``Item`` lists
``load_subjects(limit=None) -> list[Subject]``  the 300 subjects of ``Test-set.json``
``load_subjects_table(source, limit=None)``  the same records from the hub layout (``WestlakeNLP/PAPI-300K``),
                                             a local parquet/csv file, or a DataFrame with columns i1..i300
``keyed(subject, item)`` / ``agreement(subject, item)``  the two readings of one stored answer
``shown_value(subject, item, convention)``   what a questionnaire prompt shows (see below)
``answers_frame(subjects, items)``           a tidy long table (one row per subject x item)

Keying (checked in ``notebooks/01_papi_data.ipynb``)
-----------------------------------------------------
The stored values of reverse-keyed ('-') items are **already reverse-scored**, as in Johnson's IPIP-NEO
archive: a stored 5 on "Am not easily bothered by things" (-N1) means *high anxiety*, i.e. the person
ticked "Very Inaccurate". So one stored value has two readings:

* **keyed score** = stored value; points in the direction of the facet; what trait scores and
  reliabilities use;
* **agreement** = what the person ticked for the item text (5 = Very Accurate ... 1 = Very Inaccurate):
  stored for '+' items, ``6 - stored`` for '-' items; what a questionnaire prompt must show and what a
  model's answer is compared with.

A stored 0 means *missing*: both readings return ``None`` and it is excluded from prompts and targets
(PAlign instead shows it as "Unknown" and scores it as a target; ``persona.papi.metrics`` reproduces that
under the ``paper`` convention only).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from persona.datafiles import fetch

N_ITEMS = 300
MISSING = 0
DOMAINS: tuple[str, ...] = ("A", "C", "E", "N", "O")  # the paper's table order
DOMAIN_NAMES: dict[str, str] = {
    "A": "Agreeableness",
    "C": "Conscientiousness",
    "E": "Extraversion",
    "N": "Neuroticism",
    "O": "Openness",
}
#: The five response options in identity order: option ``k`` is agreement value ``5 - k`` (A = 5 ... E = 1),
#: as PAlign's ``SCORES = {"A": 5, ..., "E": 1}`` reads the letters.
OPTIONS: tuple[str, ...] = (
    "Very Accurate",
    "Moderately Accurate",
    "Neither Accurate Nor Inaccurate",
    "Moderately Inaccurate",
    "Very Inaccurate",
)


def option_text(value: int) -> str:
    """The option text of an agreement value 1..5 (5 = "Very Accurate")."""
    if not 1 <= int(value) <= 5:
        raise ValueError(f"agreement values are 1..5, got {value!r}")
    return OPTIONS[5 - int(value)]


Convention = Literal["paper", "corrected"]


class PapiDataError(ValueError):
    """A PAPI file is malformed or holds an impossible value; the message names the file, subject and item."""


@dataclass(frozen=True)
class Item:
    """One IPIP-NEO-300 item. ``number`` is the ``Full#`` used in the ``i<number>`` answer columns."""

    number: int
    short_number: int | None  # position in the IPIP-NEO-120, None for the other 180 items
    domain: str  # 'O', 'C', 'E', 'A' or 'N'
    facet: str  # facet code, e.g. 'N1'
    facet_name: str  # e.g. 'Anxiety'
    sign: int  # +1 keyed in the facet's direction, -1 reverse-keyed
    text: str  # e.g. 'Worry about things.'


@dataclass(frozen=True)
class Split:
    """PAlign's split: ``known`` = the IPIP-NEO-120 items shown to a method, ``heldout`` = the 180 to predict."""

    known: tuple[int, ...]
    heldout: tuple[int, ...]


@dataclass(frozen=True)
class Subject:
    """One respondent. ``answers`` maps item number -> STORED value (1..5 keyed score, 0 = missing)."""

    case: int
    index: int  # row position in the source file
    answers: Mapping[int, int]


# ---------------------------------------------------------------- item key and split


def load_item_key(path: Path | str | None = None) -> list[Item]:
    """The 300 items of ``IPIP-NEO-ItemKey.csv`` in file order, validated (numbers 1..300, signs, facets)."""
    path = Path(path) if path is not None else fetch("papi/IPIP-NEO-ItemKey.csv")
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    required = {"Full#", "Short#", "Sign", "Key", "Facet", "Item"}
    if not rows or not required <= set(rows[0]):
        raise PapiDataError(f"{path}: item key needs columns {sorted(required)}")
    items = []
    for line, row in enumerate(rows, start=2):
        sign_text, key = row["Sign"].strip(), row["Key"].strip()
        if not re.fullmatch(r"[+-][OCEAN][1-6]", sign_text) or sign_text[1:] != key:
            raise PapiDataError(f"{path} line {line}: bad Sign/Key {sign_text!r}/{key!r}")
        short = row["Short#"].strip()
        items.append(
            Item(
                number=int(row["Full#"]),
                short_number=int(float(short)) if short else None,
                domain=key[0],
                facet=key,
                facet_name=row["Facet"].strip(),
                sign=1 if sign_text[0] == "+" else -1,
                text=row["Item"].strip(),
            )
        )
    numbers = sorted(item.number for item in items)
    if numbers != list(range(1, N_ITEMS + 1)):
        raise PapiDataError(f"{path}: expected item numbers 1..{N_ITEMS} once each")
    return items


def items_by_number(items: Iterable[Item]) -> dict[int, Item]:
    return {item.number: item for item in items}


def split_items(items: Sequence[Item], split: Split) -> tuple[list[Item], list[Item]]:
    """(known items, held-out items) in the split's order, the order PAlign prompts them in."""
    by_number = items_by_number(items)
    return [by_number[n] for n in split.known], [by_number[n] for n in split.heldout]


def load_split(path: Path | str | None = None) -> Split:
    """The 120 known / 180 held-out item numbers of ``mpi_300_split.json``; checked to partition 1..300."""
    path = Path(path) if path is not None else fetch("papi/mpi_300_split.json")
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        split = Split(tuple(int(i) for i in raw["train_index"]), tuple(int(i) for i in raw["test_index"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise PapiDataError(f"{path}: expected {{'train_index': [...], 'test_index': [...]}} ({exc!r})") from exc
    if sorted(split.known + split.heldout) != list(range(1, N_ITEMS + 1)):
        raise PapiDataError(f"{path}: train_index and test_index must partition 1..{N_ITEMS}")
    return split


# ---------------------------------------------------------------- subjects


def _answer_columns(columns: Iterable[str]) -> dict[int, str]:
    """Map item number -> column name for columns spelled i<N> or I<N> (Johnson's archive uses I1..I300)."""
    found = {}
    for column in columns:
        match = re.fullmatch(r"[iI](\d+)", str(column))
        if match:
            found[int(match.group(1))] = str(column)
    return found


def _parse_value(value: object, where: str) -> int:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise PapiDataError(f"{where}: answer {value!r} is not a number") from None
    if number != number:  # NaN: a missing cell in a table
        return MISSING
    if not number.is_integer() or not 0 <= number <= 5:
        raise PapiDataError(f"{where}: answer {value!r} is outside 0..5 (0 = missing)")
    return int(number)


def _subject_from_record(record: Mapping[str, object], index: int, origin: str, case_key: str | None) -> Subject:
    case = int(record[case_key]) if case_key is not None else index  # type: ignore[call-overload]
    columns = _answer_columns(record.keys())
    missing = [n for n in range(1, N_ITEMS + 1) if n not in columns]
    if missing:
        raise PapiDataError(
            f"{origin}: subject case={case} (row {index}) lacks item column i{missing[0]}"
            f"{f' and {len(missing) - 1} more' if len(missing) > 1 else ''}"
        )
    answers = {
        n: _parse_value(record[columns[n]], f"{origin}: subject case={case} (row {index}) item i{n}")
        for n in range(1, N_ITEMS + 1)
    }
    return Subject(case=case, index=index, answers=answers)


def _check_limit(limit: int | None) -> None:
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise ValueError(f"limit (n_subjects) must be a positive integer or None (all), got {limit!r}")


@dataclass(frozen=True)
class DataSettings:
    """The data chapter's parameters, checked before any work (a slice such as ``[:-5]`` silently dropped
    subjects, and ``n_boot=0`` turned every interval into ``[nan, nan]``)."""

    n_subjects: int | None = 300
    n_boot: int = 200
    n_folds: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        for name, low, high in (("n_subjects", 2, 300), ("n_boot", 100, 1_000_000), ("n_folds", 2, 300)):
            value = getattr(self, name)
            if name == "n_subjects" and value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ValueError(f"{name} must be an integer from {low} to {high}, got {value!r}")
        if self.n_subjects is not None and self.n_folds > self.n_subjects:
            raise ValueError(f"n_folds={self.n_folds} exceeds n_subjects={self.n_subjects}: every fold needs subjects")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")


def check_data_parameters(params: dict) -> DataSettings:
    """The data chapter's parameters as checked settings (the runner calls it before any notebook runs)."""
    return DataSettings(**{k: params[k] for k in DataSettings.__dataclass_fields__ if k in params})


def load_subjects(limit: int | None = None, path: Path | str | None = None) -> list[Subject]:
    """Subjects of PAlign's ``Test-set.json`` (300), in file order, validated on load."""
    _check_limit(limit)
    path = Path(path) if path is not None else fetch("papi/Test-set.json")
    try:
        records = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise PapiDataError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise PapiDataError(f"{path}: expected a JSON list of subject objects")
    records = records[:limit] if limit is not None else records
    subjects = [_subject_from_record(r, i, str(path), "case") for i, r in enumerate(records)]
    _check_unique_cases(subjects, str(path))
    return subjects


def subjects_from_frame(frame: pd.DataFrame, origin: str = "frame", limit: int | None = None) -> list[Subject]:
    """Subjects from a wide table with answer columns i1..i300 (or I1..I300) and optionally a case column."""
    _check_limit(limit)
    frame = frame.iloc[:limit] if limit is not None else frame
    case_key = next((c for c in frame.columns if str(c).lower() == "case"), None)
    subjects = [
        _subject_from_record(record, i, origin, case_key)
        for i, record in enumerate(frame.to_dict(orient="records"))
    ]
    _check_unique_cases(subjects, origin)
    return subjects


def load_subjects_table(source: str | Path | pd.DataFrame, limit: int | None = None) -> list[Subject]:
    """Subjects from the full-data layout: a DataFrame, a local ``.parquet``/``.csv`` file, or a hub dataset id.

    A hub id (e.g. ``WestlakeNLP/PAPI-300K``) is read with ``datasets.load_dataset(id, split="train")``,
    which needs network access (or a populated hub cache); every path ends in ``subjects_from_frame``.
    """
    if isinstance(source, pd.DataFrame):
        return subjects_from_frame(source, "frame", limit)
    path = Path(source)
    if path.suffix == ".parquet":
        return subjects_from_frame(pd.read_parquet(path), str(path), limit)
    if path.suffix == ".csv":
        return subjects_from_frame(pd.read_csv(path, nrows=limit), str(path), limit)
    if path.exists():
        raise PapiDataError(f"{path}: unsupported file type (use .parquet or .csv)")
    from datasets import load_dataset  # lazy: heavy, and only the full-data path needs it

    split = "train" if limit is None else f"train[:{limit}]"
    return subjects_from_frame(load_dataset(str(source), split=split).to_pandas(), str(source), limit)


def _check_unique_cases(subjects: Sequence[Subject], origin: str) -> None:
    seen: dict[int, int] = {}
    for subject in subjects:
        if subject.case in seen:
            raise PapiDataError(
                f"{origin}: case {subject.case} appears in rows {seen[subject.case]} and {subject.index}"
            )
        seen[subject.case] = subject.index


# ---------------------------------------------------------------- the two readings of a stored value


def stored_to_agreement(stored: int, sign: int) -> int | None:
    """Agreement with the item text for one stored value; None when missing (stored 0)."""
    if stored == MISSING:
        return None
    return stored if sign > 0 else 6 - stored


def keyed(subject: Subject, item: Item) -> int | None:
    """Keyed score (facet direction, 1..5) = the stored value; None when missing."""
    value = subject.answers[item.number]
    return None if value == MISSING else value


def agreement(subject: Subject, item: Item) -> int | None:
    """What the subject ticked for the item text (5 = Very Accurate); None when missing."""
    return stored_to_agreement(subject.answers[item.number], item.sign)


def agreement_to_keyed(value: float, sign: int) -> float:
    """Inverse of the agreement reading (the map x -> 6 - x is its own inverse)."""
    return value if sign > 0 else 6 - value


def shown_value(subject: Subject, item: Item, convention: Convention) -> int | None:
    """The answer value a questionnaire prompt shows as the subject's tick.

    ``paper``: the stored value, as PAlign's prompt shows it (wrong for '-' items; 0 is shown, as "Unknown").
    ``corrected``: the agreement; None for a missing answer (leave the item out of the prompt).
    """
    if convention == "paper":
        return subject.answers[item.number]
    if convention == "corrected":
        return agreement(subject, item)
    raise ValueError(f"unknown convention {convention!r}")


def answers_frame(subjects: Sequence[Subject], items: Sequence[Item], split: Split | None = None) -> pd.DataFrame:
    """Tidy table, one row per subject x item: subject (case), item, domain, facet, sign, stored, keyed,
    agreement (keyed/agreement are NaN when missing), and ``known`` when a split is given."""
    known = set(split.known) if split is not None else set()
    rows = []
    for subject in subjects:
        for item in items:
            stored = subject.answers[item.number]
            agree = stored_to_agreement(stored, item.sign)
            rows.append(
                (subject.case, item.number, item.domain, item.facet, item.sign, stored,
                 stored if stored != MISSING else None, agree, item.number in known)
            )
    frame = pd.DataFrame(
        rows,
        columns=["subject", "item", "domain", "facet", "sign", "stored", "keyed", "agreement", "known"],
    )
    frame[["keyed", "agreement"]] = frame[["keyed", "agreement"]].astype("float64")
    if split is None:
        frame = frame.drop(columns="known")
    return frame
