"""The transfer statistic: person-specific (matched against mismatched subjects), gated when nothing varies."""

import numpy as np
import pandas as pd

from persona import transfer, verdicts
from persona.papi.data import DOMAINS


def _people(n, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame([{"subject": s, "domain": d, "ipip": rng.uniform(1.5, 4.5)} for s in range(n) for d in DOMAINS])


def _profiles(ipip, condition, follow: float, seed=1, shared=None):
    """A model's TRAIT profile per subject: ``follow`` x the person's IPIP (centred) + a profile shared by all."""
    rng = np.random.default_rng(seed)
    shared = shared if shared is not None else dict(zip(DOMAINS, [60.0, 40.0, 55.0, 70.0, 30.0]))
    rows = [{"subject": r.subject, "condition": condition, "domain": r.domain,
             "score": shared[r.domain] + follow * 20 * (r.ipip - 3) + rng.normal(0, 2)} for r in ipip.itertuples()]
    return pd.DataFrame(rows)


def test_identical_profiles_for_every_subject_never_read_replicated():
    """One generic shift that matches people's average profile shape is not transfer: the same profile for all
    subjects has no person-specific contrast (the old r(condition) - r(unchanged) statistic could read replicated)."""
    ipip = _people(12)
    mean_shape = ipip.groupby("domain")["ipip"].mean()
    shape = {d: 50 + 20 * (mean_shape[d] - 3) for d in DOMAINS}  # exactly people's average shape
    same = pd.DataFrame([{"subject": s, "condition": "few-shot", "domain": d, "score": shape[d]}
                         for s in range(12) for d in DOMAINS])
    contrasts = transfer.person_specific(same, ipip)
    v = transfer.transfer_verdict(contrasts, same, "few-shot", family_size=2, model="m")
    assert v.verdict == verdicts.NOT_TESTABLE_ON_MODEL and "same TRAIT profile for all 12 subjects" in v.reason
    # a near-identical one (tiny noise, so the gate does not fire) is not replicated either
    noisy = _profiles(ipip, "few-shot", follow=0.0, shared=shape)
    v = transfer.transfer_verdict(transfer.person_specific(noisy, ipip), noisy, "few-shot", family_size=2, model="m")
    assert v.verdict != verdicts.REPLICATED


def test_a_model_that_follows_each_person_is_replicated():
    ipip = _people(12)
    follows = _profiles(ipip, "pas", follow=1.0)
    contrasts = transfer.person_specific(follows, ipip)
    assert (contrasts["matched"] > contrasts["mismatched"]).mean() > 0.8
    v = transfer.transfer_verdict(contrasts, follows, "pas", family_size=2, model="m")
    assert v.verdict == verdicts.REPLICATED and v.n == 12
