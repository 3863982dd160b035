"""ImageNet ResNets (He et al. 2016): ResNet-34 and ResNet-50, taken from torchvision and
always randomly initialised (no download)."""

from functools import partial

from torch import nn

from . import register


def torchvision_resnet(name: str, num_classes: int, in_channels: int) -> nn.Module:
    import torchvision  # imported here: it takes a second and a half, and only these models need it

    model = getattr(torchvision.models, name)(weights=None, num_classes=num_classes)
    if in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    return model


for name in ("resnet34", "resnet50"):
    register(name)(partial(torchvision_resnet, name))
