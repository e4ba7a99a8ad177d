"""Turn an ``MCPrompt`` into the exact token ids a model sees.

Chat models get the tokenizer's chat template (system turn, user turn, generation prompt) and
then ``assistant_prefix``; a template that rejects the system role gets the system text
prepended to the user turn. Base models (``use_chat_template=False``) get plain text:
``system + "\\n\\n" + user + assistant_prefix``, the layout TRAIT uses for persona prompts.
Chat-rendered text already holds any BOS the template wants, so it is tokenized without
special tokens; plain text is tokenized with them (a base model's BOS).
"""

from __future__ import annotations

from jinja2.exceptions import TemplateError

from persona.engine.items import MCPrompt

SYSTEM_USER_SEPARATOR = "\n\n"


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def merge_system(system: str | None, user: str) -> str:
    return user if system is None else system + SYSTEM_USER_SEPARATOR + user


def render_text(prompt: MCPrompt, tokenizer, use_chat_template: bool) -> str:
    """The prompt as text, ending right where the answer token should come."""
    if not use_chat_template:
        return merge_system(prompt.system, prompt.user) + prompt.assistant_prefix
    messages = [{"role": "user", "content": prompt.user}]
    if prompt.system is not None:
        messages.insert(0, {"role": "system", "content": prompt.system})
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except TemplateError:
        if prompt.system is None:
            raise
        merged = [{"role": "user", "content": merge_system(prompt.system, prompt.user)}]
        text = tokenizer.apply_chat_template(merged, tokenize=False, add_generation_prompt=True)
    return text + prompt.assistant_prefix


def encode(prompt: MCPrompt, tokenizer, use_chat_template: bool) -> list[int]:
    text = render_text(prompt, tokenizer, use_chat_template)
    return list(tokenizer(text, add_special_tokens=not use_chat_template)["input_ids"])
