"""common.errors: one-line option errors, and the close choice they name."""

import pytest

from common.errors import OptionError, check_choice, did_you_mean


@pytest.mark.parametrize(
    ("typed", "choices", "hint"),
    [
        ("prorg", ["proreg", "kd", "ce"], "; did you mean 'proreg'?"),
        ("PROREG ", ["proreg", "kd"], "; did you mean 'proreg'?"),  # case and stray characters
        ("onnx", ["onnxruntime", "openvino"], "; did you mean 'onnxruntime'?"),  # a prefix
        ("tensorbord", ["tensorboard", "mlflow", "wandb"], "; did you mean 'tensorboard'?"),
        ("proreg-office-home", ["proreg-official", "proreg-pacs"], ""),  # nothing close enough
        ("xyz", ["proreg", "kd"], ""),
    ],
)
def test_did_you_mean_names_only_a_close_choice(typed, choices, hint):
    assert did_you_mean(typed, choices) == hint


def test_an_unknown_choice_lists_the_choices_and_names_the_close_one():
    with pytest.raises(OptionError) as info:
        check_choice("tracker", "mlflw", ["tensorboard", "mlflow", "wandb"])
    assert str(info.value) == "unknown tracker 'mlflw' (choose from tensorboard, mlflow, wandb); did you mean 'mlflow'?"
