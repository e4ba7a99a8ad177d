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
