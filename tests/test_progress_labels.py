"""Progress bars say which run they show: a fine-tune and a gradient ascent of the
same task read apart, and an evaluation names its task and split."""

from __future__ import annotations

import pytest
import torch

from tvcore import evaluate
from tvcore.finetune import Recipe, finetune, progress_label
from tvcore.models import ImageClassifier

RECIPE = Recipe(lr=1e-3, batch_size=4, steps=1, warmup_steps=1)


def test_a_fine_tune_and_a_gradient_ascent_of_one_task_are_labelled_apart():
    descent = progress_label(RECIPE, "digits/rot90")
    ascent = progress_label(RECIPE.with_(objective="ascent"), "digits/rot90")
    assert descent == "fine-tune digits/rot90"
    assert ascent == "gradient ascent digits/rot90"


def test_the_objective_names_the_run_even_where_the_caller_says_finetune():
    assert progress_label(RECIPE.with_(objective="ascent"), "finetune digits/rot90") == "gradient ascent digits/rot90"


def _toy_classifier() -> ImageClassifier:
    torch.manual_seed(0)
    return ImageClassifier(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))


@pytest.mark.parametrize("objective, label", [("descent", "fine-tune digits/rot90"),
                                              ("ascent", "gradient ascent digits/rot90")])
def test_the_fine_tunes_bar_shows_its_objectives_label(capsys, objective, label):
    data = torch.utils.data.TensorDataset(torch.randn(8, 4), torch.randint(0, 2, (8,)))
    finetune(_toy_classifier(), data, RECIPE.with_(objective=objective), desc="digits/rot90", progress=True)
    assert label in capsys.readouterr().err


def test_an_evaluation_bar_names_its_task_and_split(capsys):
    data = torch.utils.data.TensorDataset(torch.randn(8, 4), torch.randint(0, 2, (8,)))
    loader = torch.utils.data.DataLoader(data, batch_size=4)
    evaluate.evaluate(_toy_classifier(), loader, ["a", "b"], progress=True,
                      desc=evaluate.progress_label("digits/rot90", "val"))
    assert "evaluate digits/rot90:val" in capsys.readouterr().err
