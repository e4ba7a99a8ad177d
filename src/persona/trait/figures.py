"""The TRAIT chapter's figures (the notebook only calls them)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from persona.trait.items import TRAITS


def profile_figure(ours: pd.DataFrame, paper: dict[str, dict[str, float]]):
    """Trait profiles: our models (dots with intervals: ``model, trait, score, ci_low, ci_high``) and the
    paper's reported profiles (open diamonds), one row per trait."""
    reported = pd.DataFrame([{"model": f"{m} (paper)", "trait": t, "score": s}
                             for m, scores in paper.items() for t, s in scores.items()])
    names = list(dict.fromkeys(ours["model"])) + list(dict.fromkeys(reported["model"]))
    palette = dict(zip(names, sns.color_palette("tab10")))
    fig, ax = plt.subplots(figsize=(7.5, 4.4))
    for k, (name, part) in enumerate(ours.groupby("model", sort=False)):
        y = np.array([TRAITS.index(t) for t in part["trait"]]) + 0.12 * k
        ax.errorbar(part["score"], y, xerr=[part["score"] - part["ci_low"], part["ci_high"] - part["score"]],
                    fmt="o", color=palette[name], label=name, capsize=2)
    for k, (name, part) in enumerate(reported.groupby("model", sort=False)):
        y = np.array([TRAITS.index(t) for t in part["trait"]]) - 0.12 * (k + 1)
        ax.plot(part["score"], y, "D", mfc="none", color=palette[name], label=name)
    ax.axvline(50, color="grey", lw=1, ls="--")
    ax.set(yticks=range(len(TRAITS)), yticklabels=TRAITS, xlim=(-3, 103),
           xlabel="trait score (100 = always the high response)")
    ax.invert_yaxis()
    ax.legend(loc="center left", bbox_to_anchor=(1, 0.5), frameon=False)
    fig.tight_layout()
    return fig
