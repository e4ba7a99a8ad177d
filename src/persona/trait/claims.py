"""The TRAIT chapter's claims, each decided by the book's one verdict rule (``persona.verdicts``).

One function per claim; each takes per-item values (items are the independent units: an item's
templates, orders and generations are nested in it) and returns a :class:`persona.verdicts.Verdict`
whose effect points in the claimed direction and is compared with the paper's effect
(``persona.trait.reported.PAPER_EFFECTS``, which says how each is derived). The chapter decides
``len(FAMILY)`` verdicts and passes that number as ``family_size`` (Bonferroni).

* ``distinct``: do two models answer the same items differently? Half of each trait's items (drawn
  with the seed) say in which direction the models differ on that trait; the other half measure the
  difference in that direction (0 when the models have the same personality). The split keeps the
  statistic unbiased, so an ordinary paired t interval over the held-out items applies.
* ``consistent_orders`` / ``consistent_templates``: agreement beyond chance between the two option
  orders (Cohen's kappa) and between the templates (Fleiss' kappa), bootstrap over items.
* ``lower_than_proxy``: TRAIT's per-item refusal / prompt / option-order sensitivity against the
  self-report proxy's per-statement values (two independent samples of items, Welch interval).
* ``persona_moves``: the positive control, answers in the intended direction averaged over the high and
  the low persona of the same item, minus 50.
* ``persona_hard``: are the directions the paper names (high psychopathy, low conscientiousness) less
  responsive than the six traits it does not name?

Before any of them, the chapter computes the capability checks they rest on (``persona.gate``):
``content_check`` (after content-free calibration the two option orders agree beyond chance: the model reads
the items, not only their letters) gates distinct, consistency and the sensitivities; ``persona_check`` (the
high and the low persona move an item's answers apart) gates the persona claims; ``refusal_check`` (the model
refused something) gates the refusal claim. ``GATES`` says which claim rests on which check.
"""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pandas as pd

from persona import gate as G
from persona import verdicts as V
from persona.trait.reliability import agreement_arrays, order_kappa, template_kappa
from persona.trait.reported import PAPER_EFFECTS
from persona.trait.scoring import persona_responsiveness

FAMILY = ("distinct", "consistent_orders", "consistent_templates", "refusal", "prompt", "order",
          "persona_moves", "persona_hard")
HARD_DIRECTIONS = (("Psychopathy", "high"), ("Conscientiousness", "low"))
#: The capability check each claim rests on (the distinct claim needs it for both models).
GATES = {"distinct": "content sensitivity", "consistent_orders": "content sensitivity",
         "consistent_templates": "content sensitivity", "prompt": "content sensitivity",
         "order": "content sensitivity", "refusal": "refusal", "persona_moves": "persona control",
         "persona_hard": "persona control"}
_PROXY = {"refusal": ("refused", "explicit refusals"), "prompt": ("prompt_sensitivity", "prompt sensitivity"),
          "order": ("order_sensitivity", "option-order sensitivity")}


def _paper(name: str) -> dict:
    value, how = PAPER_EFFECTS[name]
    return {"paper_effect": value, "paper_label": how}


def split_half(keys: pd.Series, trait: pd.Series, seed: int) -> pd.Series:
    """True for the items that set the direction, False for those that test it: half of each trait."""
    direction = pd.Series(False, index=keys.index)
    for name in sorted(set(trait)):
        mine = sorted(keys[trait == name])
        random.Random(f"{seed}/split/{name}").shuffle(mine)
        direction[keys.isin(mine[: len(mine) // 2])] = True
    return direction


def distinct(scores: pd.DataFrame, first: str, second: str, *, family_size: int, seed: int = 0) -> V.Verdict:
    """Claim: the two models' trait scores differ on the same items (``scores``: model, key, trait, score)."""
    if first == second or not {first, second} <= set(scores["model"]):
        return V.not_testable("one model only: there is no second model to compare")
    wide = scores.pivot_table(index=["key", "trait"], columns="model", values="score")[[first, second]].dropna()
    wide = wide.reset_index()
    wide = wide[wide.groupby("trait")["key"].transform("size") >= 2]
    if wide.empty:
        return V.not_testable("no trait has two items that both models answered")
    setter = split_half(wide["key"], wide["trait"], seed)
    diff = wide[first] - wide[second]
    sign = np.sign(diff[setter].groupby(wide.loc[setter, "trait"]).mean())
    test = wide[~setter].set_index("key")
    s = test["trait"].map(sign).fillna(0.0)
    label = (f"{first} minus {second}, signed by the direction found on the other half of the items (points; "
             "estimates the mean absolute per-trait profile difference, the paper's statistic, when the half finds "
             "the right sign, and falls short of it otherwise)")
    # two models that never differ are evidence of no difference (they could have differed)
    verdict = V.paired(s * test[first], s * test[second], higher_is_better=True, family_size=family_size,
                       unit="items", digits=1, effect_label=label, identical_is_evidence=True, bound=100.0,
                       **_paper("distinct"))
    return replace(verdict, reason=f"{verdict.reason}; {int(setter.sum())} items set the direction, "
                   f"{len(test)} others test it")


def _kappa(dec: pd.DataFrame, which: str, *, family_size: int, n_boot: int, seed: int) -> V.Verdict:
    orig, rev, fixed = agreement_arrays(dec)
    stat = order_kappa(orig, rev) if which == "orders" else template_kappa(fixed)
    label = ("Cohen's kappa between the two option orders" if which == "orders"
             else "Fleiss' kappa between the templates")
    return V.bootstrap(stat, orig.shape[0], claimed=0.0, family_size=family_size, n_boot=n_boot, seed=seed,
                       unit="items", effect_label=label, **_paper(f"consistent_{which}"))


def consistent_orders(dec: pd.DataFrame, *, family_size: int, n_boot: int = 2000, seed: int = 0) -> V.Verdict:
    """Claim: the decision of an item agrees between the two option orders beyond chance (one model)."""
    return _kappa(dec, "orders", family_size=family_size, n_boot=n_boot, seed=seed)


def consistent_templates(dec: pd.DataFrame, *, family_size: int, n_boot: int = 2000, seed: int = 0) -> V.Verdict:
    """Claim: the decision of an item agrees between the prompt templates beyond chance (one model)."""
    return _kappa(dec, "templates", family_size=family_size, n_boot=n_boot, seed=seed)


def lower_than_proxy(trait_items: pd.DataFrame, proxy_items: pd.DataFrame, claim: str, *,
                     family_size: int) -> V.Verdict:
    """Claim: TRAIT's per-item ``claim`` ("refusal", "prompt" or "order") is lower than the proxy's."""
    column, label = _PROXY[claim]
    x, y = proxy_items[column].dropna(), trait_items[column].dropna()
    return V.two_samples(x, y, higher_is_better=True, family_size=family_size, unit="items", digits=1,
                         effect_label=f"{label}, self-report proxy minus TRAIT (points)", scale=(0.0, 100.0),
                         **_paper(claim))


def persona_moves(items: pd.DataFrame, *, family_size: int) -> V.Verdict:
    """Claim: persona prompts move answers in the intended direction (``items``: one model's
    :func:`persona.trait.scoring.persona_items`)."""
    resp = persona_responsiveness(items).set_index("key")["responsiveness"].dropna()
    label = "answers in the intended direction (mean of the high and low persona) minus 50 (points)"
    return V.paired(resp, pd.Series(50.0, index=resp.index), higher_is_better=True, family_size=family_size,
                    unit="items", digits=1, effect_label=label, identical_is_evidence=True, bound=50.0,
                    **_paper("persona_moves"))


def persona_hard(items: pd.DataFrame, *, family_size: int) -> V.Verdict:
    """Claim: prompting is less effective for high psychopathy and low conscientiousness than for the
    other traits. Units are items: the named directions' items against the items of the six traits the
    paper does not name. Both groups are measured by the same quantity, the persona's ``shift`` (share of
    answers in the intended direction under the persona minus without it, which cancels the model's own lean on
    the item); an item of the other traits counts once, with the mean shift of its two directions. The named
    group is the small one: its size bounds the interval and is named in the evidence line."""
    hard_mask = pd.Series(False, index=items.index)
    for trait, level in HARD_DIRECTIONS:
        hard_mask |= (items["trait"] == trait) & (items["persona"] == level)
    named = {t for t, _ in HARD_DIRECTIONS}
    rest = items[~items["trait"].isin(named)]
    others = rest.groupby(["model", "key"], sort=False)["shift"].mean(numeric_only=True).dropna()
    hard = items.loc[hard_mask, "shift"].dropna()
    return V.two_samples(others, hard, higher_is_better=True, family_size=family_size, unit="items", digits=1,
                         effect_label=f"persona shift (intended share with minus without the persona), other traits "
                         f"({len(others)} items) minus the named directions ({len(hard)} items, the smaller group)",
                         scale=(-100.0, 100.0), **_paper("persona_hard"))


# ----------------------------------------------------------------------------------- capability checks


def content_check(calibrated: pd.DataFrame, model: str, *, n_boot: int = 2000, seed: int = 0,
                  family_size: int = 1) -> G.Check:
    """The gate's content-sensitivity check for one model: Cohen's kappa between the two option orders' item
    decisions after content-free calibration (``calibrated``: that model's calibrated decisions), interval above
    0. A model that answers by letter position gives the opposite answer in the reversed order (kappa below 0);
    one that reads the content gives the same."""
    orig, rev, _ = agreement_arrays(calibrated)
    verdict = V.bootstrap(order_kappa(orig, rev), orig.shape[0], claimed=0.0, family_size=family_size,
                          n_boot=n_boot, seed=seed, unit="items", paper_effect=None,
                          effect_label="calibrated order kappa")
    check = G.from_verdict("content sensitivity", model, verdict)
    return G.with_finding(check, f"{model} answers TRAIT by option position, not content: after calibration its "
                                 f"item decisions in the two option orders agree {verdict.effect:+.2f} beyond chance")


def persona_check(items: pd.DataFrame, model: str, *, family_size: int = 1) -> G.Check:
    """The gate's persona control for one model (``items``: its :func:`persona.trait.scoring.persona_items`):
    per item, the share of high answers under the high persona minus under the low one (0 when the persona
    changes nothing), interval above 0. When no item moved, the exact binomial bound says how many could."""
    resp = persona_responsiveness(items).set_index("key")["responsiveness"].dropna()
    apart = 2 * (resp - 50.0)  # intended(high) + intended(low) - 100
    verdict = V.paired(apart, pd.Series(0.0, index=apart.index), higher_is_better=True, paper_effect=None,
                       family_size=family_size, unit="items", digits=1, identical_is_evidence=True, bound=100.0,
                       effect_label="high-persona minus low-persona share of high answers (points)")
    check = G.from_verdict("persona control", model, verdict)
    moved = int((apart != 0).sum())
    if moved == 0 and len(apart):
        share = V.could_differ(len(apart), verdict.level)
        finding = (f"{model} ignores persona prompts: the high and the low persona gave the same answers on all "
                   f"{len(apart)} items; at most {share:.0%} of items respond (exact {verdict.level:.1%} bound)")
    else:
        finding = (f"{model}'s answers barely follow persona prompts: {moved} of {len(apart)} items moved, "
                   f"{verdict.effect:+.1f} points on average")
    return G.with_finding(check, finding)


def refusal_check(proxy_items: pd.DataFrame, trait_items: pd.DataFrame, model: str, *,
                  family_size: int = 1) -> G.Check:
    """The gate's refusal check: a refusal claim needs refusals. Passed when the model refused at least one
    free-text prompt of either test; failed otherwise, with the exact bound on how often it could refuse."""
    n = int(proxy_items["generations"].sum() + trait_items["generations"].sum())
    refused = float(proxy_items["refused"].fillna(0).sum() + trait_items["refused"].fillna(0).sum())
    if n == 0:
        return G.Check("refusal", model, G.UNDECIDED, "no free-text answers")
    if refused > 0:
        return G.Check("refusal", model, G.PASSED, f"refusals among {n} free-text answers")
    level = 1 - 0.05 / family_size
    share = V.could_differ(n, level)
    return G.Check("refusal", model, G.FAILED, f"no explicit refusal in {n} free-text answers",
                   f"{model} refused none of its {n} free-text prompts (self-report proxy and TRAIT): at most "
                   f"{share:.1%} of such prompts are refused (exact {level:.1%} bound), so there is no refusal "
                   "rate to lower")


def table(verdicts: dict[str, V.Verdict]) -> pd.DataFrame:
    """Verdicts as the findings page shows them: the word and the evidence line (effect, interval, n, power)."""
    return pd.DataFrame({"verdict": [v.verdict for v in verdicts.values()],
                         "evidence": [v.evidence for v in verdicts.values()]}, index=list(verdicts))


__all__ = ["FAMILY", "GATES", "HARD_DIRECTIONS", "consistent_orders", "content_check", "persona_check",
           "refusal_check", "consistent_templates", "distinct",
           "lower_than_proxy", "persona_hard", "persona_moves", "split_half", "table"]
