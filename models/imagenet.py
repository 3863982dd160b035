"""ImageNet models, taken from torchvision and always randomly initialised (no download)."""

from torch import nn

from . import register


@register("resnet50")
def resnet50(num_classes: int, in_channels: int) -> nn.Module:
    import torchvision  # imported here: it takes a second and a half, and only this model needs it

    model = torchvision.models.resnet50(weights=None, num_classes=num_classes)
    if in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    return model
