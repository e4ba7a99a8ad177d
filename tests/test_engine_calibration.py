"""Order averaging and content-free calibration, against hand computations."""

import numpy as np
import pytest

from persona.engine import (
    Engine,
    MCItem,
    ScoreResult,
    average_orders,
    build_prompt,
    calibrate,
    content_free_item,
    content_free_prior,
    order_permutation,
)
from persona.engine.testing import tiny_model, tiny_tokenizer, torch_threads
from persona.papi.data import OPTIONS as PAPI_OPTIONS
from persona.papi.prompts import TEMPLATE as PAPI_TEMPLATE


def result(probs, mass=None):
    probs = np.asarray(probs, dtype=float)
    mass = np.ones(len(probs)) if mass is None else np.asarray(mass, dtype=float)
    return ScoreResult(probs=probs, mass=mass, raw=probs * mass[:, None])


def test_average_orders_is_the_elementwise_mean():
    a = result([[0.7, 0.2, 0.1]], mass=[0.9])
    b = result([[0.1, 0.2, 0.7]], mass=[0.5])
    avg = average_orders([a, b])
    assert np.allclose(avg.probs, [[0.4, 0.2, 0.4]]) and np.allclose(avg.mass, [0.7])
    with pytest.raises(ValueError):
        average_orders([a, result([[0.5, 0.5]])])


def test_calibrate_divide_and_subtract():
    r = result([[0.5, 0.3, 0.2], [0.2, 0.3, 0.5]])
    prior = result([[0.5, 0.25, 0.25]])
    divided = calibrate(r, prior, "divide")
    assert np.allclose(divided.probs[0], np.array([1.0, 1.2, 0.8]) / 3.0)
    assert np.allclose(divided.probs.sum(axis=1), 1.0)
    assert np.allclose(calibrate(r, prior.probs[0], "subtract").probs[0], [0.0, 0.05, -0.05])
    assert np.allclose(calibrate(prior, prior).probs, 1 / 3)  # the prior itself becomes uniform
    with pytest.raises(ValueError):
        calibrate(r, prior, "multiply")


def test_content_free_item():
    item = MCItem("Worry about things", ("x", "y"))
    assert content_free_item(item) == MCItem("N/A", ("x", "y"))
    assert content_free_item(item, keep_options=False) == MCItem("N/A", ("N/A", "N/A"))


def test_content_free_prior_is_scored_like_the_items_it_calibrates():
    """The prior is the score of the "N/A" item under the same template, system and order; it
    depends on the order (position bias), and calibrating it by itself gives the uniform row."""
    tok = tiny_tokenizer()
    engine = Engine(tiny_model("llama", tok), tok)
    item = MCItem("Worry about things", PAPI_OPTIONS)
    with torch_threads(1):
        priors = [content_free_prior(engine, PAPI_TEMPLATE, item, permutation=order_permutation(5, o))
                  for o in ("original", "reversed")]
        direct = engine.score([build_prompt(MCItem("N/A", PAPI_OPTIONS), PAPI_TEMPLATE)])
    assert np.allclose(priors[0].probs, direct.probs)
    assert not np.allclose(priors[0].probs, priors[1].probs, atol=1e-3)
    assert np.allclose(calibrate(priors[1], priors[1]).probs, 0.2)
