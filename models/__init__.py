"""Model registry: every architecture registers a factory ``(num_classes, in_channels) -> nn.Module``."""

from collections.abc import Callable

from torch import nn

from schema import ConfigError, closest

ModelFactory = Callable[[int, int], nn.Module]
MODELS: dict[str, ModelFactory] = {}


def register(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator adding a model factory to MODELS under ``name``."""
    def add(factory: ModelFactory) -> ModelFactory:
        MODELS[name] = factory
        return factory
    return add


def build_model(name: str, num_classes: int, in_channels: int) -> nn.Module:
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; {closest(name, MODELS)}")
    return MODELS[name](num_classes, in_channels)


def init_conv_weights(model: nn.Module) -> None:
    """He (Kaiming) normal initialisation, fan-out mode, for every convolution."""
    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")


# The model modules register themselves on import; they need ``register`` defined above.
from . import cifar_resnet, imagenet, resnet1d, vgg, wrn  # noqa: E402, F401
