"""Order averaging and content-free calibration, against hand computations."""

import numpy as np
import pytest

from persona.engine import MCItem, OptionProbs, calibrate, content_free_item
from persona.engine.calibration import mean_over_orders


def result(probs, mass=None):
    probs = np.asarray(probs, dtype=float)
    mass = np.ones(len(probs)) if mass is None else np.asarray(mass, dtype=float)
    return OptionProbs(probs=probs, mass=mass, raw=probs * mass[:, None])


def test_mean_over_orders_is_the_elementwise_mean_leaving_out_unanswered_orders():
    original, reversed_ = np.array([[0.7, 0.2, 0.1], [np.nan] * 3]), np.array([[0.1, 0.2, 0.7], [0.2, 0.3, 0.5]])
    both = mean_over_orders([original, reversed_])
    assert np.allclose(both[0], [0.4, 0.2, 0.4])  # position bias cancels to first order
    assert np.allclose(both[1], [0.2, 0.3, 0.5])  # an order with no answer is left out, not counted as 0
    assert np.isnan(mean_over_orders([np.array([np.nan]), np.array([np.nan])])).all()
    with pytest.raises(ValueError):
        mean_over_orders([])


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
