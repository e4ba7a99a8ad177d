"""The questionnaire engine: items -> prompts -> model -> option probabilities or parsed answers.

PAPI and TRAIT are two tasks over this one engine (as lm-evaluation-harness separates task
definitions from model evaluation). Modules: ``items`` (items, prompts, option orders),
``templates`` (the papers' exact prompt texts), ``rendering`` (chat template or plain text),
``scoring`` (batched next-token likelihood with a shared-prefix cache), ``generation`` and
``parsing`` (greedy answers and their classification), ``calibration`` (order averaging,
content-free priors), ``engine`` (the ``Engine`` object), ``testing`` (tiny in-memory models).

Typical use::

    engine = Engine(model, tokenizer)              # chat template when the tokenizer has one
    items = [MCItem("Worry about things", PAPI_OPTIONS), MCItem("Make friends easily", PAPI_OPTIONS)]
    runs = [engine.score([build_prompt(it, PAPI_TEMPLATE, system=few_shot, permutation=order_permutation(5, o))
                          for it in items]) for o in ("original", "reversed")]
    both = average_orders(runs)                    # probs in identity order, position bias averaged
    answers = engine.answer(prompts, option_texts=[PAPI_OPTIONS] * len(prompts))   # generation mode
"""

from persona.engine.calibration import CONTENT_FREE, average_orders, calibrate, content_free_item, content_free_prior
from persona.engine.engine import Engine
from persona.engine.items import MCItem, MCPrompt, order_permutation
from persona.engine.parsing import REFUSED, UNPARSEABLE, GenerationResult, parse_answer
from persona.engine.scoring import ScoreResult
from persona.engine.templates import (
    PAPI_ANSWER_TEXT,
    PAPI_FEWSHOT_HEADER,
    PAPI_OPTIONS,
    PAPI_SYSTEM_PROMPT,
    PAPI_TEMPLATE,
    TEMPLATES,
    TRAIT_TEMPLATES,
    Template,
    build_prompt,
    papi_fewshot_system,
    papi_fewshot_system_from_values,
)

__all__ = [
    "CONTENT_FREE",
    "Engine",
    "GenerationResult",
    "MCItem",
    "MCPrompt",
    "PAPI_ANSWER_TEXT",
    "PAPI_FEWSHOT_HEADER",
    "PAPI_OPTIONS",
    "PAPI_SYSTEM_PROMPT",
    "PAPI_TEMPLATE",
    "REFUSED",
    "ScoreResult",
    "TEMPLATES",
    "TRAIT_TEMPLATES",
    "Template",
    "UNPARSEABLE",
    "average_orders",
    "build_prompt",
    "calibrate",
    "content_free_item",
    "content_free_prior",
    "order_permutation",
    "papi_fewshot_system",
    "papi_fewshot_system_from_values",
    "parse_answer",
]
