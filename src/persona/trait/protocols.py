"""TRAIT's measures under each scoring protocol, side by side: the letter protocol and the option-text (cloze)
protocols, each judged by the same capability gate.

Small models are usually scored by the likelihood of each option's text rather than its letter. For every
protocol of a run (``TraitRun.settings.scoring``) and one model, :func:`protocol_rows` gives the item-level
reliability (order and prompt sensitivity), the agreement between the two option orders (Cohen's kappa, the
content check of ``persona.gate``), and, for a cloze protocol, how often its item decisions equal those of its
*text-only control* (the same decision from the option texts alone, without the question): a protocol that
mostly agrees with its control owes its consistency to preferences among option texts, not to the question.
The letter protocol's content check is taken after content-free calibration (``claims.content_check`` on
calibrated decisions, as the chapter's gate does); cloze scores have no letter prior to divide out.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from persona import gate as G
from persona.trait import claims, reliability
from persona.trait.scoring import decisions, persona_items, persona_responsiveness

KEYS = ("model", "test", "key", "trait", "template", "persona")


def protocol_decisions(run, task: str, protocol: str, model: str) -> pd.DataFrame:
    """Item decisions of ``task`` ("main", "persona", "self") under ``protocol`` for one model."""
    frame = run.scored(task, protocol)
    frame = frame[frame["model"] == model]
    if "test" not in frame:
        frame = frame.assign(test="self-report" if task == "self" else "TRAIT")
    return decisions(frame, keys=KEYS).assign(scoring=protocol)


def control_agreement(dec: pd.DataFrame, control: pd.DataFrame) -> float:
    """Percent of item decisions (per template, both orders averaged) equal to the text-only control's."""
    both = dec.merge(control, on=["key", "template"], suffixes=("", "_control"))
    both = both.dropna(subset=["fixed", "fixed_control"])
    return float(100 * (both["fixed"] == both["fixed_control"]).mean()) if len(both) else float("nan")


def protocol_rows(run, model: str, protocols: Sequence[str], *, calibrated_letter: pd.DataFrame, n_boot: int,
                  seed: int, family_size: int) -> tuple[pd.DataFrame, dict[str, G.Check]]:
    """One row per protocol: order and prompt sensitivity (TRAIT and the self-report proxy, percent), order
    kappa with its interval, the text-only control's agreement (cloze only) and the persona responsiveness;
    and the content check of each protocol (``calibrated_letter``: the model's calibrated letter decisions)."""
    rows, checks = [], {}
    for protocol in protocols:
        main = protocol_decisions(run, "main", protocol, model)
        has_self = "self" in run.frames and len(run.frames["self"]) and model in set(run.frames["self"]["model"])
        proxy = protocol_decisions(run, "self", protocol, model) if has_self else main.iloc[:0]
        items = reliability.item_reliability(pd.concat([main, proxy], ignore_index=True))
        means = items.groupby("test")[["order_sensitivity", "prompt_sensitivity"]].mean()
        label = f"{model} ({protocol})"
        checked = calibrated_letter if protocol == "letter" else main
        check = claims.content_check(checked, label, n_boot=n_boot, seed=seed, family_size=family_size)
        checks[protocol] = check
        row = {"protocol": protocol, "content check": check.status, "order kappa": check.evidence,
               "TRAIT order sensitivity": means.loc["TRAIT", "order_sensitivity"] if "TRAIT" in means.index else np.nan,
               "TRAIT prompt sensitivity": means.loc["TRAIT", "prompt_sensitivity"] if "TRAIT" in means.index else np.nan,
               "proxy order sensitivity": (means.loc["self-report", "order_sensitivity"]
                                           if "self-report" in means.index else np.nan),
               "proxy prompt sensitivity": (means.loc["self-report", "prompt_sensitivity"]
                                            if "self-report" in means.index else np.nan),
               "agrees with text-only control (%)": np.nan, "persona: intended direction (%)": np.nan}
        if protocol.startswith("cloze-"):
            control = protocol_decisions(run, "main", protocol.replace("cloze-", "text-only-"), model)
            row["agrees with text-only control (%)"] = control_agreement(main, control)
        has_persona = "persona" in run.frames and len(run.frames["persona"]) and \
            model in set(run.frames["persona"]["model"])
        if has_persona:
            p_items = persona_items(protocol_decisions(run, "persona", protocol, model), main)
            row["persona: intended direction (%)"] = float(persona_responsiveness(p_items)["responsiveness"].mean())
        rows.append(row)
    return pd.DataFrame(rows).set_index("protocol"), checks


def proxy_verdicts(run, model: str, protocol: str, check: G.Check, *, family_size: int) -> dict:
    """The prompt- and order-sensitivity claims (TRAIT lower than the proxy) under one protocol, each through
    that protocol's content check."""
    main = protocol_decisions(run, "main", protocol, model)
    proxy = protocol_decisions(run, "self", protocol, model)
    items = reliability.item_reliability(pd.concat([main, proxy], ignore_index=True)).groupby("test")
    return {claim: G.gated(claims.lower_than_proxy(items.get_group("TRAIT"), items.get_group("self-report"), claim,
                                                   family_size=family_size), check)
            for claim in ("prompt", "order")}


__all__ = ["KEYS", "control_agreement", "protocol_decisions", "protocol_rows", "proxy_verdicts"]
