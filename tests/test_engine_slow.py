"""The engine on the real embedded SmolLM2-135M-Instruct: fast path equals the naive loop, and
the answer cue "(" puts almost all next-token mass on the option letters."""

import numpy as np
import pytest
from tiny_models import torch_threads

from persona.engine import Engine, MCItem, build_prompt, order_permutation
from persona.papi.data import OPTIONS as PAPI_OPTIONS
from persona.papi.prompts import TEMPLATE as PAPI_TEMPLATE
from persona.papi.prompts import fewshot_system
from persona.trait.prompts import TEMPLATES as TRAIT_TEMPLATES

TEXTS = ["Worry about things", "Make friends easily", "Trust others"]


@pytest.mark.slow
def test_smollm2_fast_path_equals_naive_and_letters_get_the_mass():
    from persona.models import load_model

    model, tok = load_model("smollm2-135m-instruct")
    engine = Engine(model, tok, batch_size=4)
    system = fewshot_system([(t, v) for t, v in zip(TEXTS * 4, [5, 4, 2, 1, 3, 0] * 2)])
    prompts = [build_prompt(MCItem(t, PAPI_OPTIONS), PAPI_TEMPLATE, system=system, assistant_prefix="(",
                            permutation=order_permutation(5, order))
               for t in TEXTS for order in ("original", "reversed")]
    trait = [build_prompt(MCItem("A friend asks you for help. What do you do?",
                                 ("Help at once.", "Ignore it.", "Offer a plan.", "Say no.")), template)
             for template in TRAIT_TEMPLATES[::2]]
    with torch_threads(1):
        fast, naive = engine.label_probs(prompts), engine.label_probs_naive(prompts)
        fast_trait, naive_trait = engine.label_probs(trait), engine.label_probs_naive(trait)
    assert np.abs(fast.probs - naive.probs).max() < 1e-4
    assert np.abs(fast_trait.probs - naive_trait.probs).max() < 1e-4
    assert fast.mass.min() > 0.9
