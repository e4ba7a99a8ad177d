"""Numbers the TRAIT paper reports (project page; lee2025trait), for side-by-side tables. Lower is better
for refusal and the sensitivities (percent); trait scores are 0..100."""

PAPER_PROFILES: dict[str, dict[str, float]] = {
    "GPT-4": {"Openness": 58, "Conscientiousness": 93, "Extraversion": 35, "Agreeableness": 86,
              "Neuroticism": 24, "Psychopathy": 0, "Machiavellianism": 11, "Narcissism": 8},
    "Llama2-7B": {"Openness": 69, "Conscientiousness": 76, "Extraversion": 55, "Agreeableness": 53,
                  "Neuroticism": 34, "Psychopathy": 48, "Machiavellianism": 43, "Narcissism": 42},
}
# Percent, lower is better: refusal in generation mode, prompt and option-order sensitivity.
PAPER_RELIABILITY: dict[str, dict[str, float]] = {
    "BFI": {"refusal_rate": 53.9, "prompt_sensitivity": 37.2, "option_order_sensitivity": 62.0},
    "TRAIT Big Five": {"refusal_rate": 3.1, "prompt_sensitivity": 31.6, "option_order_sensitivity": 33.5},
    "SD-3": {"refusal_rate": 45.7, "prompt_sensitivity": 54.7, "option_order_sensitivity": 66.5},
    "TRAIT Dark Triad": {"refusal_rate": 3.3, "prompt_sensitivity": 28.1, "option_order_sensitivity": 28.2},
}
PAPER_PERSONA_SUCCESS = 85.2  # percent, average over traits and directions
PAPER_PERSONA_HIGH_PSYCHOPATHY = 79.8

# --- the paper's effect for each claim the chapter tests, derived from the numbers above -----------
# Our sample pools the eight traits with equal numbers of items, so a paper number that exists for the
# Big Five and the Dark Triad separately is averaged with weights 5/8 and 3/8 (the share of traits).
_WEIGHTS = {"Big Five": 5 / 8, "Dark Triad": 3 / 8}
_PAIRS = {"Big Five": ("BFI", "TRAIT Big Five"), "Dark Triad": ("SD-3", "TRAIT Dark Triad")}


def pooled(measure: str, test: str = "TRAIT") -> float:
    """The paper's ``measure`` for TRAIT (or the self-report tests), averaged over the eight traits."""
    side = 1 if test == "TRAIT" else 0
    return sum(w * PAPER_RELIABILITY[_PAIRS[half][side]][measure] for half, w in _WEIGHTS.items())


def kappa_from_disagreement(rate: float, raters: int) -> float:
    """Chance-corrected agreement implied by a disagreement rate when answers are balanced (half high).

    Two raters (orders): agreement 1 - rate against chance 1/2, kappa = 1 - 2 x rate. Three raters
    (templates, Fleiss): an item is unanimous with probability u = 1 - rate and otherwise split 2-1
    (pairwise agreement 1/3), so the mean pairwise agreement is u + (1 - u)/3 against chance 1/2, and
    kappa = (4u - 1)/3.
    """
    if raters == 2:
        return 1 - 2 * rate
    if raters == 3:
        return (4 * (1 - rate) - 1) / 3
    raise ValueError("derived for 2 or 3 raters")


def _distinct() -> float:
    gpt4, llama = PAPER_PROFILES["GPT-4"], PAPER_PROFILES["Llama2-7B"]
    return sum(abs(gpt4[t] - llama[t]) for t in gpt4) / len(gpt4)


#: name -> (paper effect, how it is derived). Units: points of a 0-100 scale, or kappa.
PAPER_EFFECTS: dict[str, tuple[float, str]] = {
    "distinct": (_distinct(), "GPT-4 and Llama2-7B differ by this many points per trait on average"),
    "consistent_orders": (kappa_from_disagreement(pooled("option_order_sensitivity") / 100, 2),
                          "kappa implied by the paper's option-order sensitivity of TRAIT "
                          f"({pooled('option_order_sensitivity'):.1f}%) with balanced answers: 1 - 2 x rate"),
    "consistent_templates": (kappa_from_disagreement(pooled("prompt_sensitivity") / 100, 3),
                             "Fleiss' kappa implied by the paper's prompt sensitivity of TRAIT "
                             f"({pooled('prompt_sensitivity'):.1f}%) over three templates with balanced "
                             "answers, if its measure is ours"),
    "refusal": (pooled("refusal_rate", "self") - pooled("refusal_rate"),
                "refusal in generation, BFI/SD-3 minus TRAIT"),
    "prompt": (pooled("prompt_sensitivity", "self") - pooled("prompt_sensitivity"),
               "prompt sensitivity, BFI/SD-3 minus TRAIT"),
    "order": (pooled("option_order_sensitivity", "self") - pooled("option_order_sensitivity"),
              "option-order sensitivity, BFI/SD-3 minus TRAIT"),
    "persona_moves": (PAPER_PERSONA_SUCCESS - 50, "85.2% of answers in the intended direction, minus the 50% "
                      "that a persona without effect gives"),
    "persona_hard": (PAPER_PERSONA_SUCCESS - PAPER_PERSONA_HIGH_PSYCHOPATHY,
                     "average success 85.2% minus high psychopathy 79.8%"),
}
