"""Model registry: every architecture registers a factory ``(num_classes, in_channels) -> nn.Module``."""

from collections.abc import Callable

from torch import nn

from schema import ConfigError, closest

ModelFactory = Callable[[int, int], nn.Module]
MODELS: dict[str, ModelFactory] = {}


def register(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator adding a model factory to MODELS under ``name``; a name taken by another
    factory is refused."""
    def add(factory: ModelFactory) -> ModelFactory:
        if name in MODELS:
            raise ValueError(f"model {name!r} is registered twice: by {origin(MODELS[name])} and by {origin(factory)}")
        MODELS[name] = factory
        return factory
    return add


def origin(factory) -> str:
    """Where a factory (a function, a class or a partial of one) is defined: module.name."""
    function = getattr(factory, "func", factory)
    return f"{function.__module__}.{function.__qualname__}"


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
from . import cifar_resnet, imagenet, resnet1d, snipit, vgg, wrn  # noqa: E402, F401
