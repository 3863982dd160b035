"""The registries of methods and models: one name, one class, and what describe prints."""

import pytest

import methods
import models
from bench.cli import main
from methods.core.base import Method


def test_a_second_method_under_a_taken_name_is_refused_naming_both_modules():
    class Impostor(Method):
        name = "imp"

    with pytest.raises(ValueError, match=r"method 'imp' is registered twice: by methods\.prune_retrain\.imp\.IMP "
                                         r"and by test_registry\.test_a_second_method.*Impostor"):
        methods.register(Impostor)
    assert methods.METHODS["imp"].__module__ == "methods.prune_retrain.imp"


def test_a_second_model_under_a_taken_name_is_refused_naming_both_modules():
    def resnet20(num_classes, in_channels):
        raise AssertionError("never built")

    with pytest.raises(ValueError, match=r"model 'resnet20' is registered twice: by models\.cifar_resnet\.CifarResNet "
                                         r"and by test_registry\.test_a_second_model.*resnet20"):
        models.register("resnet20")(resnet20)
    assert models.MODELS["resnet20"] is not resnet20


def test_describe_prints_every_method_with_its_paper_and_hyperparameters(capsys):
    assert main(["describe"]) == 0
    out = capsys.readouterr().out
    for name, cls in methods.METHODS.items():
        assert f"{name} ({cls.__module__.replace('.', '/')}.py; {cls.paper})" in out
        for param in cls.params:
            assert f"  {param}: " in out
    assert '  retrain_epochs: int, required; > 0, or a share of T such as "5%" [T_rt]: epochs of retraining per cycle' in out
    assert "  finetune_fraction: float, default 0.15; >= 0, <= 1: " in out


def test_every_method_names_its_paper_and_explains_every_hyperparameter():
    for cls in methods.METHODS.values():
        assert cls.paper, cls.name
        assert all(param.help for param in cls.params.values()), cls.name
