"""The one error of ``persona.models``: a model that cannot be had, run or trusted, with the fix named."""


class ModelError(RuntimeError):
    """A model cannot be resolved, is missing its package, is corrupt, or does not fit the device."""
