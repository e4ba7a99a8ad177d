"""``python -m persona.harness`` prints the folder to give lm-eval as ``--include_path``."""

from persona.harness import include_path

print(include_path())
