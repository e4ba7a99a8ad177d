"""The questionnaire engine: multiple-choice prompts -> model -> option probabilities or parsed answers.

The engine knows no task: PAPI (``persona.papi.prompts``) and TRAIT (``persona.trait.prompts``) are data
it is given, as lm-evaluation-harness separates task definitions from model evaluation. Modules:
``items`` (items, prompts, option orders), ``templates`` (how an item becomes user text), ``rendering``
(chat template or plain text), ``scoring`` (batched next-token likelihood with a shared-prefix cache),
``cloze`` (the likelihood of each option's text, normalised by length or by a neutral context),
``generation`` and ``parsing`` (greedy answers and their classification), ``calibration`` (order
averaging, content-free priors), ``engine`` (the ``Engine`` object).

Typical use::

    engine = Engine(model, tokenizer)              # chat template when the tokenizer has one
    template = Template("q", "Q: {stem}\\n{options}Answer:", "{label}. {text}", ("A", "B"))
    item = MCItem("Is the sky blue?", ("yes", "no"))
    runs = [engine.label_probs([build_prompt(item, template, permutation=order_permutation(2, o))])
            for o in ("original", "reversed")]
    both = mean_over_orders([r.probs for r in runs])  # identity order, position bias averaged (calibration)
    answers = engine.answer(prompts, option_texts=[item.options])   # generation mode
    texts = engine.score_options(prompts, [item.options], normalisation="length")  # option-text mode
"""

from persona.engine.calibration import CONTENT_FREE, calibrate, content_free_item
from persona.engine.cloze import NORMALISATIONS, OptionScores
from persona.engine.engine import Engine
from persona.engine.items import MCItem, MCPrompt, order_permutation
from persona.engine.parsing import REFUSED, UNPARSEABLE, GenerationResult, parse_answer
from persona.engine.scoring import OptionProbs
from persona.engine.templates import Template, build_prompt

__all__ = [
    "CONTENT_FREE",
    "Engine",
    "GenerationResult",
    "MCItem",
    "MCPrompt",
    "NORMALISATIONS",
    "OptionScores",
    "REFUSED",
    "OptionProbs",
    "Template",
    "UNPARSEABLE",
    "build_prompt",
    "calibrate",
    "content_free_item",
    "order_permutation",
    "parse_answer",
]
