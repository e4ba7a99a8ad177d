"""Beyond the papers: does aligning a model to a person carry over from questionnaire items to scenarios?

Neither paper asks it. For a subject of the alignment experiment, the model is aligned as the alignment
chapter aligned it (its stored PAS fit: heads, directions and alpha, with the few-shot prompt of the
subject's known answers; or the few-shot prompt alone; or nothing) and then answers TRAIT's Big-Five
scenario items. Its TRAIT profile (five trait scores, 0..100) is compared with the subject's IPIP-NEO domain
scores (keyed means over all 300 items): an aligned model should score high on TRAIT's Extraversion for an
extraverted person. This module sits above both studies: it imports ``persona.papi`` and ``persona.trait``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from persona.papi import psychometrics
from persona.papi.data import DOMAINS, Item, Subject
from persona.papi.methods.answering import few_shot_system
from persona.papi.methods.pas import PAS
from persona.papi.prompts import DEFAULT_SYSTEM
from persona.runs import ResultStore, Unit, resume
from persona.steering import find_head_layout, steer
from persona.trait.items import BIG_FIVE, SHORT, TraitItem
from persona.trait.prompts import TEMPLATES, trait_grid
from persona.trait.scoring import RAW_COLS, decisions, trait_score
from persona import verdicts as V
from persona.verdicts import Verdict

CONDITIONS = ("unchanged", "few-shot", "pas")
#: The modules whose code produces the transfer results (the results folder's code fingerprint).
PRODUCING_MODULES = ("persona.transfer", "persona.trait.items", "persona.trait.prompts", "persona.engine")
#: TRAIT's Big-Five trait -> the IPIP-NEO domain letter.
DOMAIN_OF = {trait: SHORT[trait] for trait in BIG_FIVE}


@dataclass(frozen=True)
class TransferSettings:
    """What the transfer experiment asks: how many subjects, TRAIT items per trait, which template."""

    n_subjects: int = 2
    per_trait: int = 1
    template: int = 0
    seed: int = 0
    sample_size: int = 300  # subjects in the alignment sample the transfer subjects come from

    def __post_init__(self) -> None:
        for name, high in (("n_subjects", self.sample_size), ("per_trait", 1000)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= high:
                raise ValueError(f"transfer {name} must be an integer from 1 to {high}, got {value!r}")
        if self.template not in range(len(TEMPLATES)):
            raise ValueError(f"template must be 0..{len(TEMPLATES) - 1}, got {self.template!r}")


def check_parameters(params: dict) -> TransferSettings:
    """The transfer chapter's parameters (the alignment chapter's and its own), checked before any work."""
    from persona.papi.experiment import check_parameters as check_alignment

    settings = check_alignment(params)
    return TransferSettings(params.get("transfer_subjects", 2), params.get("transfer_per_trait", 1),
                            params.get("transfer_template", 0), params.get("seed", 0),
                            sample_size=settings.n_subjects or 300)


def _answers(engine, items: Sequence[TraitItem], template: int, condition: str, subject: Subject | None,
             known: Sequence[Item], pas: PAS, states: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """One condition's raw option probabilities for every item in both official orders (one row per prompt)."""
    shifts = []
    if condition == "unchanged":
        system = DEFAULT_SYSTEM
    elif condition == "few-shot":
        system = few_shot_system(subject, known, pas.convention)
    else:
        pas.restore(states[subject.case], subject, known)
        system, shifts = pas.system, pas.directions.shifts(pas.alpha)
    prompts, meta = trait_grid(items, [template], system=system, persona="none")
    with steer(engine.model, shifts, layout=find_head_layout(engine.model)):
        result = engine.label_probs(prompts)
    frame = meta.assign(condition=condition, subject=subject.case if subject is not None else -1)
    frame[RAW_COLS] = result.raw
    frame["mass"] = result.mass
    return frame


def run_transfer(engine, items: Sequence[TraitItem], subjects: Sequence[Subject], known: Sequence[Item],
                 pas: PAS, states: dict[int, pd.DataFrame], store: ResultStore, template: int = 0) -> pd.DataFrame:
    """Each subject's model answers ``items`` in every condition; rows per prompt (raw option probabilities).

    ``states[case]`` is the subject's stored PAS fit (``persona.papi.experiment.fitted_state``): the model is
    steered exactly as in the alignment chapter, at the alpha the honest protocol chose there. The few-shot
    block is the subject's known answers as the alignment methods show them. The unchanged model does not
    depend on the subject: it is asked once and its rows are repeated for every subject.
    """
    ask = partial(_answers, engine, items, template, known=known, pas=pas, states=states)
    units = [Unit("unchanged", "all", partial(ask, "unchanged", None), rows=2 * len(items), label="unchanged model")]
    units += [Unit(condition, str(s.case), partial(ask, condition, s), rows=2 * len(items),
                   label=f"{condition} for subject {s.case}") for s in subjects for condition in ("few-shot", "pas")]
    frame = resume(store, units, desc="transfer")
    unchanged = frame[frame["condition"] == "unchanged"]
    copies = [unchanged.assign(subject=s.case) for s in subjects]
    return pd.concat([*copies, frame[frame["condition"] != "unchanged"]], ignore_index=True)


def trait_profiles(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (subject, condition, trait): the trait score (fixed rule, both orders) and its item count."""
    dec = decisions(rows, keys=("subject", "condition", "key", "trait", "template"))
    out = (dec.groupby(["subject", "condition", "trait"])["fixed"]
           .agg(score=lambda v: trait_score(v.to_numpy(float)), n_items=lambda v: int(np.isfinite(v).sum()))
           .reset_index())
    out["domain"] = out["trait"].map(DOMAIN_OF)
    return out


def ipip_profiles(subjects: Sequence[Subject], items: Sequence[Item]) -> pd.DataFrame:
    """Per (subject, domain): the subject's IPIP-NEO domain score (mean keyed answer over all 300 items)."""
    wide = psychometrics.scale_scores(subjects, items)
    return wide.reset_index().melt(id_vars="subject", var_name="domain", value_name="ipip")


def profile_agreement(profiles: pd.DataFrame, ipip: pd.DataFrame) -> pd.DataFrame:
    """Per (subject, condition): Pearson r over the five domains between TRAIT scores and IPIP domain scores.

    NaN when the model's five scores do not vary (a constant profile carries nothing of the person).
    """
    merged = profiles.merge(ipip, on=["subject", "domain"])

    def r(block: pd.DataFrame) -> float:
        if block["score"].nunique() < 2 or block["ipip"].nunique() < 2 or len(block) < 3:
            return np.nan
        return float(stats.pearsonr(block["score"], block["ipip"]).statistic)

    return merged.groupby(["subject", "condition"])[["score", "ipip"]].apply(r).rename("r").reset_index()


def across_subjects(profiles: pd.DataFrame, ipip: pd.DataFrame) -> pd.DataFrame:
    """Per (condition, domain): Pearson r across subjects between the TRAIT score and the IPIP domain score."""
    merged = profiles.merge(ipip, on=["subject", "domain"])
    rows = []
    for (condition, domain), block in merged.groupby(["condition", "domain"]):
        ok = block["score"].nunique() > 1 and block["ipip"].nunique() > 1 and len(block) > 2
        rows.append({"condition": condition, "domain": domain, "n_subjects": len(block),
                     "r": float(stats.pearsonr(block["score"], block["ipip"]).statistic) if ok else np.nan})
    return pd.DataFrame(rows).pivot(index="condition", columns="domain", values="r").reindex(columns=list(DOMAINS))


def person_specific(profiles: pd.DataFrame, ipip: pd.DataFrame) -> pd.DataFrame:
    """Per (condition, subject): how much better the model aligned to subject i matches i's IPIP profile than
    the other subjects' profiles: r(model_i, IPIP_i) - mean over j != i of r(model_i, IPIP_j) (Pearson r over
    the five domains). A model that answers the same way whatever the person (or shifts every profile alike)
    scores 0 in expectation, however well its one profile matches people's average shape: the contrast carries
    only person-specific information. NaN when model_i's five scores do not vary."""
    model = profiles.pivot_table(index=["condition", "subject"], columns="domain", values="score")
    people = ipip.pivot(index="subject", columns="domain", values="ipip")
    domains = [d for d in DOMAINS if d in model.columns and d in people.columns]
    rows = []
    for (condition, subject), scores in model[domains].iterrows():
        if scores.nunique() < 2 or subject not in people.index or len(people) < 2:
            rows.append({"condition": condition, "subject": subject, "matched": np.nan, "mismatched": np.nan,
                         "contrast": np.nan})
            continue
        r = {j: float(np.corrcoef(scores.to_numpy(float), people.loc[j, domains].to_numpy(float))[0, 1])
             for j in people.index}
        others = [v for j, v in r.items() if j != subject]
        rows.append({"condition": condition, "subject": subject, "matched": r[subject],
                     "mismatched": float(np.mean(others)), "contrast": r[subject] - float(np.mean(others))})
    return pd.DataFrame(rows)


def transfer_verdict(contrasts: pd.DataFrame, profiles: pd.DataFrame, condition: str, *, family_size: int,
                     model: str) -> Verdict:
    """Does ``condition`` carry the person over (the person-specific contrast above 0, subjects as units)?

    Not testable on this model when the condition gave the same TRAIT profile for every subject (nothing of the
    person reached the scenarios, so there is no contrast to estimate)."""
    block = profiles[profiles["condition"] == condition].pivot_table(index="subject", columns="domain", values="score")
    if len(block) >= 2 and (block.nunique() <= 1).all():
        return Verdict(V.NOT_TESTABLE_ON_MODEL, f"the {condition} condition gave {model} the same TRAIT profile for all "
                       f"{len(block)} subjects: nothing of the person reached the scenarios")
    values = contrasts.loc[contrasts["condition"] == condition].set_index("subject")["contrast"].dropna()
    if values.empty:
        return V.not_testable(f"no subject's {condition} profile varies across the five domains")
    return V.paired(values, pd.Series(0.0, index=values.index), higher_is_better=True, paper_effect=None,
                    family_size=family_size, effect_label=f"r(matched) - r(mismatched), {condition}", bound=2.0)
