"""How a run finds the sandbox: by name, with the run's subjects excluded, never a model without a recipe."""

import pytest

from persona import models
from persona.papi import sandbox
from persona.papi.experiment import open_model


def test_the_runner_knows_every_sandbox_the_book_builds():
    names = {recipe.name: recipe.base for scales in sandbox.RECIPES.values() for recipe in scales.values()}
    assert names == models.BUILT_FROM  # the runner checks the base model of each before any notebook runs


def test_a_recipe_is_found_by_name_with_the_runs_subjects_excluded():
    recipe = sandbox.by_name("smollm2-135m-papi", excluded=[7, 3, 7])
    assert recipe.excluded == (3, 7) and recipe.base == "smollm2-135m-instruct"
    with pytest.raises(sandbox.SandboxError, match="No sandbox recipe is called 'gpt-papi'"):
        sandbox.by_name("gpt-papi", excluded=[])


def test_a_model_the_book_does_not_build_is_opened_as_it_is():
    assert open_model("meta-llama/Meta-Llama-3-8B-Instruct", setup=None) == ("meta-llama/Meta-Llama-3-8B-Instruct",
                                                                            None)
    with pytest.raises(models.ModelError, match="built by the book"):
        models.model_path("smollm2-135m-papi")
