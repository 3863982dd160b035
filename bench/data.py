"""Datasets: train / val / test splits and the batches a run trains and evaluates on.

The validation split is a fixed fraction of the dataset's training set, chosen by a
permutation from ``split_seed`` (independent of the run's seed); the rest is the training
split, and the test split is the dataset's own test set (scikit-learn's digits, which has
none, sets a fixed fifth aside). MNIST-1D, the digits, MNIST and CIFAR are held in memory as
tensors and batched by index; MNIST and CIFAR stay uint8 and are normalised per batch, and
CIFAR augmented (``augment`` names another pipeline than the default), with every random
draw taken from the run's generator. Imagenette and ImageNet
are read from ImageFolder trees by a DataLoader. MNIST-1D and the digits are made offline and
cached under the data root; the others are never downloaded: a missing one is an error that
says where to get it.
"""

import gzip
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

DATASETS = ("mnist1d", "digits", "mnist", "cifar10", "cifar100", "imagenette", "imagenet")
CIFAR_PAGE = "https://www.cs.toronto.edu/~kriz/cifar.html"
MNIST_PAGE = "http://yann.lecun.com/exdb/mnist/"
IMAGENETTE_PAGE = "https://github.com/fastai/imagenette"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SNIPIT_FLIP = 0.2  # the SNIP-it authors' FLIP_CHANCE (utils/constants.py), the paper's appendix J

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


def random_flip(images: Tensor, generator: torch.Generator, p: float = SNIPIT_FLIP) -> Tensor:
    """Per image: mirrored with probability ``p``, drawn on the CPU from ``generator``; no crop."""
    flip = (torch.rand(len(images), generator=generator) < p).to(images.device)
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


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
    def make() -> dict[str, np.ndarray]:
        from mnist1d.data import get_dataset_args

        args = get_dataset_args(as_dict=True)
        del args["url"]  # only used for downloading, which never happens here
        return generate_mnist1d(args)

    return cached_arrays(directory / f"mnist1d-{version('mnist1d')}-defaults.npz", make)


def cached_arrays(path: Path, make: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The arrays of the .npz at ``path``, written there from ``make()`` first if it is missing."""
    if not path.exists():
        save_atomically(path, make())
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


# --- scikit-learn's digits ------------------------------------------------------------

DIGITS_TEST_FRACTION = 0.2
DIGITS_TEST_SEED = 0


def digits_arrays(directory: Path) -> dict[str, np.ndarray]:
    """scikit-learn's 8x8 digits (shipped inside the package), copied once into ``directory``
    so that later reads skip importing scikit-learn, which takes seconds."""
    def make() -> dict[str, np.ndarray]:
        from sklearn.datasets import load_digits

        digits = load_digits()
        return {"images": digits.images.astype(np.float32), "labels": digits.target.astype(np.int64)}

    return cached_arrays(directory / f"digits-scikit-learn-{version('scikit-learn')}.npz", make)


def load_sklearn_digits(root: Path, val_fraction: float, split_seed: int) -> Dataset:
    """The 1797 images (1, 8, 8) of scikit-learn's digits, 16 grey levels, in 10 classes.

    A fixed fifth (359 images, drawn with seed ``DIGITS_TEST_SEED`` whatever ``split_seed``)
    is the test split; train and val split the other 1438 (1294 + 144 at the default
    fraction). Standardised by the training split's mean and std.
    """
    arrays = digits_arrays(root / "digits")
    images, labels = torch.from_numpy(arrays["images"]).unsqueeze(1), torch.from_numpy(arrays["labels"])
    training, test = split_indices(len(labels), DIGITS_TEST_FRACTION, DIGITS_TEST_SEED)
    inputs, labels = holdout_splits(images[training], labels[training], images[test], labels[test],
                                    val_fraction, split_seed)
    train = inputs["train"]
    return InMemoryDataset("digits", 10, 1, inputs, labels, mean=train.mean(), std=train.std())


# --- MNIST ----------------------------------------------------------------------------

# torchvision's layout: <root>/MNIST/raw/ holds the four IDX files, plain or gzipped.
MNIST_DIRECTORY = Path("MNIST") / "raw"
MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
# Mean and std of the training images in [0, 1] units (the authors' normalisation).
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def read_idx(path: Path) -> np.ndarray:
    """An IDX file of unsigned bytes: two zero bytes, 0x08, the number of dimensions, their
    sizes as big-endian int32, then the data."""
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as handle:
        content = handle.read()
    if content[:3] != b"\x00\x00\x08":
        raise ConfigError(f"{path} is not an IDX file of unsigned bytes", key="data_root")
    dims = content[3]
    shape = np.frombuffer(content, ">i4", dims, offset=4)
    return np.frombuffer(content, np.uint8, offset=4 + 4 * dims).reshape(shape)


def load_mnist(root: Path, val_fraction: float, split_seed: int) -> Dataset:
    """MNIST: 60,000 training images (1, 28, 28) (54,000 train + 6,000 val at the default
    fraction) and 10,000 test images, normalised, not augmented (the paper's appendix J)."""
    directory = root / MNIST_DIRECTORY
    found = {name: next((p for p in (directory / name, directory / f"{name}.gz") if p.is_file()), None)
             for files in MNIST_FILES.values() for name in files}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise ConfigError(
            f"MNIST not found: expected {directory} with {', '.join(missing)} (or the same .gz; data root {root}). "
            f"Download the four files from {MNIST_PAGE} or a mirror (torchvision.datasets.MNIST(<root>, "
            f"download=True) leaves them there), or pass --data-root (or set PRUNEBENCH_DATA) to a directory "
            f"that holds {MNIST_DIRECTORY}/", key="data_root")
    arrays = {split: [torch.from_numpy(read_idx(found[name]).copy()) for name in files]
              for split, files in MNIST_FILES.items()}
    (images, labels), (test_images, test_labels) = arrays["train"], arrays["test"]
    inputs, labels = holdout_splits(images.unsqueeze(1), labels.long(), test_images.unsqueeze(1),
                                    test_labels.long(), val_fraction, split_seed)
    return InMemoryDataset("mnist", 10, 1, inputs, labels, mean=torch.tensor(255 * MNIST_MEAN),
                           std=torch.tensor(255 * MNIST_STD))


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


def load_cifar(name: str, root: Path, val_fraction: float, split_seed: int, augment: str | None = None) -> Dataset:
    """CIFAR-10/100 from the python-pickle release: training batches randomly cropped and
    flipped, normalised with CIFAR's statistics; with ``augment = "snipit"`` (CIFAR-10
    only), the SNIP-it authors' pipeline (StijnVerdenius/SNIP-it, utils/data_loaders.py,
    ``get_cifar10_loaders``): mirrored with probability 0.2 (``SNIPIT_FLIP``) without crops, normalised with ImageNet's mean and std."""
    spec = CIFAR[name]
    if augment == "snipit" and name != "cifar10":
        raise ConfigError(f"augment = \"snipit\" is the SNIP-it authors' CIFAR-10 pipeline, not {spec.title}'s",
                          key="augment")
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
    mean, std, transform = ((IMAGENET_MEAN, IMAGENET_STD, random_flip) if augment == "snipit"
                            else (spec.mean, spec.std, random_crop_flip))
    return InMemoryDataset(name, spec.num_classes, 3, inputs, labels, mean=255 * torch.tensor(mean).view(3, 1, 1),
                           std=255 * torch.tensor(std).view(3, 1, 1), augment=transform)


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


def image_folders(root: Path, name: str, title: str, how: str):
    """The ImageFolders ``<root>/<name>/train`` and ``val``; missing ones are an error that
    says ``how`` to get them."""
    from torchvision.datasets import ImageFolder  # imported here: torchvision takes a second and a half to import

    directory = root / name
    try:
        train_folder, test_folder = ImageFolder(str(directory / "train")), ImageFolder(str(directory / "val"))
    except FileNotFoundError as error:
        raise ConfigError(
            f"{title} not found or incomplete under {directory} (data root {root}): {error}. {how}, "
            f"or pass --data-root (or set PRUNEBENCH_DATA) to a directory that holds {name}/", key="data_root")
    if train_folder.classes != test_folder.classes:
        raise ConfigError(f"{directory}/train and {directory}/val have different class folders", key="data_root")
    return train_folder, test_folder


def folder_dataset(name: str, folders: tuple, val_fraction: float, split_seed: int,
                   augmented: Callable, plain: Callable) -> Dataset:
    """Train and val split from the first folder (train with ``augmented``), test the second."""
    train_folder, test_folder = folders
    train, val = split_indices(len(train_folder), val_fraction, split_seed)
    splits = {"train": ImageFiles([train_folder.samples[i] for i in train], augmented),
              "val": ImageFiles([train_folder.samples[i] for i in val], plain),
              "test": ImageFiles(test_folder.samples, plain)}
    return ImageFolderDataset(name, len(train_folder.classes), 3, splits, workers=min(8, os.cpu_count() or 1))


def load_imagenet(root: Path, val_fraction: float, split_seed: int) -> Dataset:
    """ImageNet in ImageFolder layout: val and train split from ``train/``, test from ``val/``.

    Training: RandomResizedCrop 224 + horizontal flip; evaluation: Resize 256 + CenterCrop 224.
    """
    from torchvision import transforms

    folders = image_folders(root, "imagenet", "ImageNet", "Put the ILSVRC-2012 images there as "
                            "train/<class>/*.JPEG and val/<class>/*.JPEG")
    normalise = [transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    augmented = transforms.Compose([transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(), *normalise])
    plain = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), *normalise])
    return folder_dataset("imagenet", folders, val_fraction, split_seed, augmented, plain)


IMAGENETTE_DIRECTORY = "imagenette-320"
IMAGENETTE_SIDE = 128


def load_imagenette(root: Path, val_fraction: float, split_seed: int) -> Dataset:
    """Imagenette v1 at 320 pixels (fast.ai's 10 ImageNet classes; 12,894 training and 500
    validation images), the release SNIP-it used (appendix J; the authors' imagenette-320),
    in ImageFolder layout: val and train split from ``train/``, test from ``val/``.

    Images are resized to 128x128, not keeping the aspect ratio (the authors'
    transforms.Resize((128, 128)), utils/data_loaders.py get_imagenette_loaders), and
    normalised with ImageNet's mean and std; training images are mirrored with probability
    0.2. The authors' loader mirrors the test images too (one transform for both splits);
    here evaluation is never augmented, so that it is deterministic.
    """
    from torchvision import transforms

    folders = image_folders(root, IMAGENETTE_DIRECTORY, "Imagenette",
                            f"Extract imagenette-320.tgz (v1; the link of imagenette2-320.tgz on {IMAGENETTE_PAGE} "
                            f"without the 2) into the data root, giving {IMAGENETTE_DIRECTORY}/train/<class>/*.JPEG "
                            f"and {IMAGENETTE_DIRECTORY}/val/<class>/*.JPEG")
    plain = [transforms.Resize((IMAGENETTE_SIDE, IMAGENETTE_SIDE)), transforms.ToTensor(),
             transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    augmented = transforms.Compose([transforms.RandomHorizontalFlip(SNIPIT_FLIP), *plain])
    return folder_dataset("imagenette", folders, val_fraction, split_seed, augmented, transforms.Compose(plain))


def load_dataset(name: str, data_root: str | Path, val_fraction: float = 0.1, split_seed: int = 0,
                 augment: str | None = None) -> Dataset:
    """The named dataset from ``data_root`` (MNIST-1D is generated there, and the digits
    copied there from scikit-learn, on first use). ``augment = "snipit"`` changes CIFAR-10's
    pipeline to the SNIP-it authors' (``load_cifar``); MNIST's and Imagenette's are theirs
    already, and MNIST-1D and the digits are not augmented."""
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; {closest(name, DATASETS)}", key="dataset")
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}", key="val_fraction")
    root = Path(data_root)
    loaders = {"mnist1d": load_mnist1d, "digits": load_sklearn_digits, "mnist": load_mnist,
               "imagenette": load_imagenette, "imagenet": load_imagenet}
    if name in loaders:
        return loaders[name](root, val_fraction, split_seed)
    return load_cifar(name, root, val_fraction, split_seed, augment)
