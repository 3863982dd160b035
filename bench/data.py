"""Datasets: train / val / test splits and the batches a run trains and evaluates on.

The validation split is a fixed fraction of the dataset's training set, chosen by a
permutation from ``split_seed`` (independent of the run's seed); the rest is the training
split, and the test split is the dataset's own test set. MNIST-1D and CIFAR are held in
memory as tensors and batched by index; CIFAR stays uint8 and is augmented and normalised
per batch, with every random draw taken from the run's generator. ImageNet is read from an
ImageFolder tree by a DataLoader.
"""

import os
import pickle
import random
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from schema import ConfigError, closest

DATASETS = ("mnist1d", "cifar10", "cifar100", "imagenet")
CIFAR_PAGE = "https://www.cs.toronto.edu/~kriz/cifar.html"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

Batches = Iterator[tuple[Tensor, Tensor]]
Augmentation = Callable[[Tensor, torch.Generator], Tensor]


def default_data_root() -> Path:
    """$PRUNEBENCH_DATA if set, else ./data."""
    return Path(os.environ.get("PRUNEBENCH_DATA") or Path.cwd() / "data")


@dataclass
class Dataset(ABC):
    """A classification dataset split into train / val / test."""

    name: str
    num_classes: int
    in_channels: int

    @abstractmethod
    def size(self, split: str) -> int:
        """Number of samples in ``split`` ("train", "val" or "test")."""

    @abstractmethod
    def train_batches(self, batch_size: int, generator: torch.Generator, device) -> Batches:
        """One shuffled, augmented epoch over the training split; the last batch may be smaller."""

    @abstractmethod
    def eval_batches(self, split: str, batch_size: int, device) -> Batches:
        """The split in order, without augmentation."""

    @property
    def train_size(self) -> int:
        return self.size("train")

    @property
    def val_size(self) -> int:
        return self.size("val")

    @property
    def test_size(self) -> int:
        return self.size("test")


@dataclass
class InMemoryDataset(Dataset):
    """Splits held as tensors; ``mean`` and ``std`` are in the units of the stored inputs."""

    inputs: dict[str, Tensor]
    labels: dict[str, Tensor]
    mean: Tensor
    std: Tensor
    augment: Augmentation | None = None

    def size(self, split: str) -> int:
        return len(self.labels[split])

    def normalise(self, inputs: Tensor) -> Tensor:
        return (inputs.float() - self.mean.to(inputs.device)) / self.std.to(inputs.device)

    def train_batches(self, batch_size: int, generator: torch.Generator, device) -> Batches:
        inputs, labels = self.inputs["train"], self.labels["train"]
        for batch in torch.randperm(len(labels), generator=generator).split(batch_size):
            x = inputs[batch].to(device)
            if self.augment is not None:
                x = self.augment(x, generator)
            yield self.normalise(x), labels[batch].to(device)

    def eval_batches(self, split: str, batch_size: int, device) -> Batches:
        inputs, labels = self.inputs[split], self.labels[split]
        for start in range(0, len(labels), batch_size):
            yield (self.normalise(inputs[start:start + batch_size].to(device)),
                   labels[start:start + batch_size].to(device))


def random_crop_flip(images: Tensor, generator: torch.Generator, padding: int = 4) -> Tensor:
    """Per image: a random crop of the zero-padded image at the original size, mirrored with probability 1/2.

    Offsets and flips are drawn on the CPU from ``generator``; the crop is one gather.
    """
    n, channels, height, width = images.shape
    top = torch.randint(0, 2 * padding + 1, (n, 1), generator=generator)
    left = torch.randint(0, 2 * padding + 1, (n, 1), generator=generator)
    flip = torch.rand(n, 1, generator=generator) < 0.5
    rows = top + torch.arange(height)
    cols = left + torch.arange(width)
    cols = torch.where(flip, cols.flip(1), cols)
    device = images.device
    padded = F.pad(images, (padding,) * 4)
    return padded[torch.arange(n, device=device)[:, None, None, None],
                  torch.arange(channels, device=device)[None, :, None, None],
                  rows.to(device)[:, None, :, None],
                  cols.to(device)[:, None, None, :]]


def split_indices(n: int, val_fraction: float, split_seed: int) -> tuple[Tensor, Tensor]:
    """(train, val) indices into range(n): a random ``val_fraction`` of it fixed by ``split_seed``, both sorted."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed))
    n_val = round(val_fraction * n)
    return order[n_val:].sort().values, order[:n_val].sort().values


def holdout_splits(inputs: Tensor, labels: Tensor, test_inputs: Tensor, test_labels: Tensor,
                   val_fraction: float, split_seed: int) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Inputs and labels per split: train and val from the training set, test as given."""
    train, val = split_indices(len(labels), val_fraction, split_seed)
    return ({"train": inputs[train], "val": inputs[val], "test": test_inputs},
            {"train": labels[train], "val": labels[val], "test": test_labels})


# --- MNIST-1D -------------------------------------------------------------------------

def mnist1d_arrays(directory: Path) -> dict[str, np.ndarray]:
    """MNIST-1D with the package's default arguments, generated once and cached in ``directory``.

    The cache file is named by the mnist1d version, which fixes its default arguments, so a
    cached dataset is read without importing mnist1d (which takes most of a second).
    """
    path = directory / f"mnist1d-{version('mnist1d')}-defaults.npz"
    if not path.exists():
        from mnist1d.data import get_dataset_args

        args = get_dataset_args(as_dict=True)
        del args["url"]  # only used for downloading, which never happens here
        save_atomically(path, generate_mnist1d(args))
    with np.load(path) as cached:
        return {key: cached[key] for key in cached.files}


def generate_mnist1d(args: dict) -> dict[str, np.ndarray]:
    """Run mnist1d's make_dataset offline, restoring the global numpy and ``random`` states it reseeds."""
    from mnist1d.data import make_dataset
    from mnist1d.utils import ObjectView

    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(ObjectView(dict(args)))
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)
    return {"x": data["x"].astype(np.float32), "y": data["y"].astype(np.int64),
            "x_test": data["x_test"].astype(np.float32), "y_test": data["y_test"].astype(np.int64)}


def save_atomically(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write an .npz through a temporary file, so readers never see a partial one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".partial", delete=False) as tmp:
        try:
            np.savez(tmp, **arrays)
        except BaseException:
            Path(tmp.name).unlink()
            raise
    os.replace(tmp.name, path)


def load_mnist1d(root: Path, val_fraction: float, split_seed: int) -> Dataset:
    """4000 training (3600 train + 400 val at the default fraction) and 1000 test signals of shape (1, 40).

    Standardised by the training split's mean and std (make_dataset already scales the
    whole set to zero mean and unit std, so this changes little).
    """
    arrays = mnist1d_arrays(root / "mnist1d")
    inputs, labels = holdout_splits(torch.from_numpy(arrays["x"]).unsqueeze(1), torch.from_numpy(arrays["y"]),
                                    torch.from_numpy(arrays["x_test"]).unsqueeze(1),
                                    torch.from_numpy(arrays["y_test"]), val_fraction, split_seed)
    train = inputs["train"]
    return InMemoryDataset("mnist1d", 10, 1, inputs, labels, mean=train.mean(), std=train.std())


# --- CIFAR ----------------------------------------------------------------------------

@dataclass(frozen=True)
class CifarFormat:
    """Where a CIFAR variant lives in its python-pickle release, and its per-channel statistics."""

    title: str
    directory: str
    archive: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_key: bytes
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


# Per-channel mean and std of the training images, in [0, 1] units.
CIFAR = {
    "cifar10": CifarFormat("CIFAR-10", "cifar-10-batches-py", "cifar-10-python.tar.gz",
                           tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",), b"labels", 10,
                           mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616)),
    "cifar100": CifarFormat("CIFAR-100", "cifar-100-python", "cifar-100-python.tar.gz",
                            ("train",), ("test",), b"fine_labels", 100,
                            mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762)),
}


def read_cifar_files(directory: Path, files: tuple[str, ...], label_key: bytes) -> tuple[Tensor, Tensor]:
    """uint8 images (N, 3, 32, 32) and int64 labels from pickled CIFAR batch files."""
    images, labels = [], []
    for name in files:
        with open(directory / name, "rb") as handle:
            batch = pickle.load(handle, encoding="bytes")
        images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.append(np.asarray(batch[label_key], dtype=np.int64))
    return torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels))


def load_cifar(name: str, root: Path, val_fraction: float, split_seed: int) -> Dataset:
    """CIFAR-10/100 from the python-pickle release; training batches get random crop + flip."""
    spec = CIFAR[name]
    directory = root / spec.directory
    missing = [f for f in spec.train_files + spec.test_files if not (directory / f).is_file()]
    if missing:
        raise ConfigError(
            f"{spec.title} not found: expected {directory} with {', '.join(missing)} (data root {root}). "
            f"Download {spec.archive} from {CIFAR_PAGE} and extract it into {root}, "
            f"or pass --data-root (or set PRUNEBENCH_DATA) to a directory that holds {spec.directory}/",
            key="data_root")
    inputs, labels = holdout_splits(*read_cifar_files(directory, spec.train_files, spec.label_key),
                                    *read_cifar_files(directory, spec.test_files, spec.label_key),
                                    val_fraction, split_seed)
    return InMemoryDataset(name, spec.num_classes, 3, inputs, labels,
                           mean=255 * torch.tensor(spec.mean).view(3, 1, 1),
                           std=255 * torch.tensor(spec.std).view(3, 1, 1),
                           augment=random_crop_flip)


# --- ImageNet -------------------------------------------------------------------------

class ImageFiles(torch.utils.data.Dataset):
    """(path, label) samples, each read with PIL and passed through ``transform``."""

    def __init__(self, samples: list[tuple[str, int]], transform: Callable):
        self.samples, self.transform = samples, transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        from torchvision.datasets.folder import default_loader

        path, label = self.samples[index]
        return self.transform(default_loader(path)), label


@dataclass
class ImageFolderDataset(Dataset):
    """Splits read from disk by DataLoader workers.

    Training augmentation runs in the workers, which torch seeds from ``generator``, so an
    epoch is reproducible for a given generator state and worker count.
    """

    splits: dict[str, ImageFiles]
    workers: int

    def size(self, split: str) -> int:
        return len(self.splits[split])

    def batches(self, split: str, batch_size: int, device, generator: torch.Generator | None = None) -> Batches:
        loader = torch.utils.data.DataLoader(self.splits[split], batch_size, shuffle=generator is not None,
                                             generator=generator, num_workers=self.workers,
                                             pin_memory=torch.device(device).type == "cuda")
        for inputs, labels in loader:
            yield inputs.to(device, non_blocking=True), labels.to(device, non_blocking=True)

    def train_batches(self, batch_size: int, generator: torch.Generator, device) -> Batches:
        return self.batches("train", batch_size, device, generator)

    def eval_batches(self, split: str, batch_size: int, device) -> Batches:
        return self.batches(split, batch_size, device)


def load_imagenet(root: Path, val_fraction: float, split_seed: int) -> Dataset:
    """ImageNet in ImageFolder layout: val and train split from ``train/``, test from ``val/``.

    Training: RandomResizedCrop 224 + horizontal flip; evaluation: Resize 256 + CenterCrop 224.
    """
    from torchvision import transforms  # imported here: torchvision takes a second and a half to import
    from torchvision.datasets import ImageFolder

    directory = root / "imagenet"
    try:
        train_folder, test_folder = ImageFolder(str(directory / "train")), ImageFolder(str(directory / "val"))
    except FileNotFoundError as error:
        raise ConfigError(
            f"ImageNet not found or incomplete under {directory} (data root {root}): {error}. "
            f"Put the ILSVRC-2012 images there as train/<class>/*.JPEG and val/<class>/*.JPEG, "
            f"or pass --data-root (or set PRUNEBENCH_DATA) to a directory that holds imagenet/", key="data_root")
    if train_folder.classes != test_folder.classes:
        raise ConfigError(f"{directory}/train and {directory}/val have different class folders", key="data_root")

    normalise = [transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    augmented = transforms.Compose([transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(), *normalise])
    plain = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), *normalise])
    train, val = split_indices(len(train_folder), val_fraction, split_seed)
    splits = {"train": ImageFiles([train_folder.samples[i] for i in train], augmented),
              "val": ImageFiles([train_folder.samples[i] for i in val], plain),
              "test": ImageFiles(test_folder.samples, plain)}
    return ImageFolderDataset("imagenet", len(train_folder.classes), 3, splits, workers=min(8, os.cpu_count() or 1))


def load_dataset(name: str, data_root: str | Path, val_fraction: float = 0.1, split_seed: int = 0) -> Dataset:
    """The named dataset from ``data_root`` (MNIST-1D is generated there on first use)."""
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; {closest(name, DATASETS)}", key="dataset")
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}", key="val_fraction")
    root = Path(data_root)
    if name == "mnist1d":
        return load_mnist1d(root, val_fraction, split_seed)
    if name == "imagenet":
        return load_imagenet(root, val_fraction, split_seed)
    return load_cifar(name, root, val_fraction, split_seed)
