"""Defect checks of the original PAS code (Llama-3 path): the ``[:-5]`` cut removes the answer."""

from __future__ import annotations

import numpy as np
import pytest
from audit import llama3_like_tokenizer, palign_llama3_contrast_tokens, palign_mass_mean_direction

ITEM = 'Given a statement of you: "You worry about things."\nPlease choose ...'


@pytest.fixture(scope="module")
def llama3_tokenizer():
    from transformers import AutoTokenizer

    from persona.models import model_path

    try:
        base = AutoTokenizer.from_pretrained(model_path("smollm2-135m-instruct"))
    except Exception as exc:  # the embedded model is not installed
        pytest.skip(f"embedded tokenizer unavailable: {exc}")
    return llama3_like_tokenizer(base)


def test_cut_of_five_makes_a_and_e_prompts_identical(llama3_tokenizer):
    a = palign_llama3_contrast_tokens(llama3_tokenizer, "sys", ITEM, "A", cut=5)
    e = palign_llama3_contrast_tokens(llama3_tokenizer, "sys", ITEM, "E", cut=5)
    assert a == e, "with [:-5] the answer token is cut away, so both contrast prompts are the same"
    kept = llama3_tokenizer.decode(a)
    assert "<|end_header_id|>" in kept and not kept.endswith("A")


def test_cut_of_one_keeps_the_answer(llama3_tokenizer):
    a = palign_llama3_contrast_tokens(llama3_tokenizer, "sys", ITEM, "A", cut=1)
    e = palign_llama3_contrast_tokens(llama3_tokenizer, "sys", ITEM, "E", cut=1)
    assert a != e and a[:-1] == e[:-1]
    assert llama3_tokenizer.decode(a[-1:]).strip() == "A"


def test_identical_classes_give_a_nan_direction():
    acts = np.random.default_rng(0).normal(size=(10, 64))
    assert np.isnan(palign_mass_mean_direction(acts, acts)).all()
    assert np.isfinite(palign_mass_mean_direction(acts + 1.0, acts)).all()
