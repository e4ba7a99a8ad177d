"""The lm-eval ``Task`` class of the harness tasks (the only module here that imports lm-eval).

The YAML files give the data, the metrics and the output type; this class builds each document's requests
from the prompts the document carries (``persona.harness.docs``), because a document asks several (both option
orders, every label token) and its text is already rendered as the engine renders it:

* likelihood tasks always send that text. ``--apply_chat_template`` is refused (the task applies the model's
  chat template itself, by the engine's rule; ``--metadata '{"chat_template": false}'`` asks for plain text),
  and so is ``--system_instruction`` (each task sets the system prompt the book uses). A backend that gives no
  log-probabilities (chat-completion APIs) is told to use the generation tasks;
* generation tasks send that text too, except under ``--apply_chat_template``, which a chat API needs: then
  lm-eval's chat template renders the document's system and user messages.

``--num_fewshot`` is refused: PAPI's few-shot is the subject's known answers in the system prompt, not
lm-eval's examples.
"""

from __future__ import annotations

from typing import Any

from lm_eval.api.instance import Instance
from lm_eval.api.task import ConfigurableTask

from persona.harness.docs import TaskInputError
from persona.harness.results import request_plan

GENERATION_TASKS = "trait_gen and trait_selfreport_gen"


def _lm_of(chat_template) -> Any:
    return getattr(chat_template, "__self__", None)


def _no_loglikelihood(lm) -> str | None:
    """The backend's own refusal when it cannot give log-likelihoods (asked with no request), else None."""
    if lm is None or not hasattr(lm, "loglikelihood"):
        return None
    try:
        lm.loglikelihood([])
    except NotImplementedError as exc:
        return str(exc) or type(exc).__name__
    except Exception:  # noqa: BLE001 - an empty request list may trip other backends; they are not refusals
        return None
    return None


class PersonaTask(ConfigurableTask):
    """A harness task whose documents carry their own rendered prompts (see the module docstring)."""

    def __init__(self, config: dict | None = None, **kwargs) -> None:
        config = dict(config or {})
        config.pop("class", None)
        super().__init__(config=config, **kwargs)

    @property
    def likelihood(self) -> bool:
        return self.OUTPUT_TYPE == "loglikelihood"

    def _refuse(self, message: str) -> None:
        raise TaskInputError(f"task '{self.config.task}': {message}")

    def fewshot_context(self, doc, num_fewshot, system_instruction=None, apply_chat_template=False,
                        fewshot_as_multiturn=False, chat_template=None, gen_prefix=None):
        if num_fewshot:
            self._refuse("--num_fewshot does not apply (PAPI's few-shot baseline is the task papi_fewshot: the "
                         "subject's known answers in the system prompt); run with 0")
        if system_instruction:
            self._refuse("--system_instruction does not apply: each task sets the system prompt the book uses")
        return self.contexts(doc, apply_chat_template, chat_template)[0]

    def contexts(self, doc, apply_chat_template: bool, chat_template) -> list[str]:
        """The text of each order's prompt as sent to the model."""
        if not apply_chat_template:
            return list(doc["contexts"])
        if self.likelihood:
            refusal = _no_loglikelihood(_lm_of(chat_template))
            if refusal:
                self._refuse(f"this backend gives no log-probabilities ({refusal}); this likelihood task needs "
                             f"them. Use the generation tasks {GENERATION_TASKS} (greedy answers read by the "
                             f"book's strict parser), or a backend that scores prompts: hf, vllm, or "
                             f"local-completions against a server that returns prompt log-probabilities.")
            self._refuse("do not pass --apply_chat_template: the task applies the model's chat template itself, as "
                         "the book's engine does (when the tokenizer has one); --metadata '{\"chat_template\": "
                         "false}' asks for plain text")
        if doc["prefix"]:
            self._refuse("a prompt with an answer cue cannot go through --apply_chat_template")
        if chat_template is None:
            self._refuse("--apply_chat_template needs a backend with a chat template")
        out = []
        for system, user in zip(doc["systems"], doc["users"]):
            messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
            out.append(chat_template(messages))
        return out

    def construct_requests(self, doc, ctx, **kwargs):
        apply_chat_template = kwargs.pop("apply_chat_template", False)
        chat_template = kwargs.pop("chat_template", None)
        contexts = self.contexts(doc, apply_chat_template, chat_template)
        if not self.likelihood:
            return [Instance(request_type="generate_until", doc=doc, idx=0,
                             arguments=(contexts[0], dict(self.config.generation_kwargs or {})), **kwargs)]
        return [Instance(request_type="loglikelihood", doc=doc, arguments=(contexts[o], text), idx=i, **kwargs)
                for i, (o, _, text) in enumerate(request_plan(doc))]
