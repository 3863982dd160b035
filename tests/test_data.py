import pickle
import random
import socket

import mnist1d
import mnist1d.data
import numpy as np
import pytest
import torch
from PIL import Image

from bench import data
from bench.data import InMemoryDataset, default_data_root, load_dataset, random_crop_flip
from schema import ConfigError


def refuse(*args, **kwargs):
    raise AssertionError("the network or mnist1d.get_dataset was used")


def block_downloads(monkeypatch):
    monkeypatch.setattr(mnist1d, "get_dataset", refuse)
    monkeypatch.setattr(mnist1d.data, "get_dataset", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture(scope="module")
def mnist1d_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    with pytest.MonkeyPatch.context() as monkeypatch:
        block_downloads(monkeypatch)
        load_dataset("mnist1d", root)
    return root


def all_samples(dataset, split):
    inputs, labels = zip(*dataset.eval_batches(split, 512, "cpu"))
    return torch.cat(inputs), torch.cat(labels)


def test_mnist1d_is_generated_offline_without_side_effects(tmp_path, monkeypatch):
    block_downloads(monkeypatch)
    numpy_state, python_state = np.random.get_state(), random.getstate()
    dataset = load_dataset("mnist1d", tmp_path)
    after = np.random.get_state()
    assert after[0] == numpy_state[0] and np.array_equal(after[1], numpy_state[1]) and after[2:] == numpy_state[2:]
    assert random.getstate() == python_state
    assert [p.suffix for p in (tmp_path / "mnist1d").iterdir()] == [".npz"]
    assert (dataset.num_classes, dataset.in_channels) == (10, 1)
    assert (dataset.train_size, dataset.val_size, dataset.test_size) == (3600, 400, 1000)
    inputs, labels = all_samples(dataset, "train")
    assert inputs.shape == (3600, 1, 40) and inputs.dtype == torch.float32
    assert abs(inputs.mean().item()) < 1e-4 and inputs.std().item() == pytest.approx(1, abs=1e-4)
    assert set(labels.tolist()) == set(range(10))


def test_mnist1d_cache_is_reused_and_regenerates_identically(mnist1d_root, monkeypatch):
    block_downloads(monkeypatch)
    first = load_dataset("mnist1d", mnist1d_root)
    with monkeypatch.context() as patched:
        patched.setattr(data, "generate_mnist1d", refuse)
        cached = load_dataset("mnist1d", mnist1d_root)
    for cache in (mnist1d_root / "mnist1d").iterdir():
        cache.unlink()
    regenerated = load_dataset("mnist1d", mnist1d_root)
    for split in ("train", "val", "test"):
        expected = all_samples(first, split)
        for other in (cached, regenerated):
            assert all(torch.equal(a, b) for a, b in zip(expected, all_samples(other, split)))


def test_validation_split_is_fixed_by_split_seed(mnist1d_root):
    def val_labels(seed):
        return all_samples(load_dataset("mnist1d", mnist1d_root, split_seed=seed), "val")[1]

    assert torch.equal(val_labels(0), val_labels(0))
    assert not torch.equal(val_labels(0), val_labels(1))
    assert load_dataset("mnist1d", mnist1d_root, val_fraction=0.25).val_size == 1000


def indexed_dataset(n):
    """A dataset whose training inputs are their own indices."""
    inputs = {split: torch.arange(n, dtype=torch.float32).view(n, 1, 1) for split in ("train", "val", "test")}
    labels = {split: torch.arange(n) for split in ("train", "val", "test")}
    return InMemoryDataset("indexed", n, 1, inputs, labels, mean=torch.tensor(0.0), std=torch.tensor(1.0))


def test_train_batches_cover_each_index_once_and_repeat_per_seed():
    dataset = indexed_dataset(300)

    def epoch(seed):
        return [x.flatten().long() for x, _ in dataset.train_batches(128, torch.Generator().manual_seed(seed), "cpu")]

    batches = epoch(0)
    assert [len(b) for b in batches] == [128, 128, 44]
    assert sorted(torch.cat(batches).tolist()) == list(range(300))
    assert all(torch.equal(a, b) for a, b in zip(batches, epoch(0)))
    assert not torch.equal(torch.cat(batches), torch.cat(epoch(1)))


def test_eval_batches_are_in_order():
    inputs, labels = all_samples(indexed_dataset(300), "val")
    assert torch.equal(labels, torch.arange(300)) and torch.equal(inputs.flatten(), torch.arange(300.0))


def write_pickle(path, batch):
    with open(path, "wb") as handle:
        pickle.dump(batch, handle)


def fake_images(n, seed):
    return np.random.default_rng(seed).integers(0, 256, (n, 3072), dtype=np.uint8)


@pytest.fixture
def cifar10_root(tmp_path):
    """CIFAR-10 in the python-pickle format: 5 batches of 20 training images and 10 test images."""
    directory = tmp_path / "cifar-10-batches-py"
    directory.mkdir()
    for i in range(1, 6):
        write_pickle(directory / f"data_batch_{i}",
                     {b"data": fake_images(20, i), b"labels": [(i + j) % 10 for j in range(20)]})
    write_pickle(directory / "test_batch", {b"data": fake_images(10, 0), b"labels": list(range(10))})
    return tmp_path


def test_cifar10_loads_the_pickle_format(cifar10_root):
    dataset = load_dataset("cifar10", cifar10_root)
    assert (dataset.num_classes, dataset.in_channels) == (10, 3)
    assert (dataset.train_size, dataset.val_size, dataset.test_size) == (90, 10, 10)
    test_inputs, test_labels = all_samples(dataset, "test")
    assert test_inputs.shape == (10, 3, 32, 32) and test_labels.tolist() == list(range(10))
    raw = torch.from_numpy(fake_images(10, 0)).view(10, 3, 32, 32).float() / 255
    mean, std = torch.tensor([0.4914, 0.4822, 0.4465]), torch.tensor([0.2470, 0.2435, 0.2616])
    assert torch.allclose(test_inputs, (raw - mean.view(3, 1, 1)) / std.view(3, 1, 1), atol=1e-5)
    train_labels = torch.cat([all_samples(dataset, split)[1] for split in ("train", "val")])
    assert sorted(train_labels.tolist()) == sorted((i + j) % 10 for i in range(1, 6) for j in range(20))


def test_cifar100_loads_fine_labels(tmp_path):
    directory = tmp_path / "cifar-100-python"
    directory.mkdir()
    write_pickle(directory / "train", {b"data": fake_images(50, 1), b"fine_labels": list(range(50)),
                                       b"coarse_labels": [0] * 50})
    write_pickle(directory / "test", {b"data": fake_images(5, 2), b"fine_labels": [99] * 5, b"coarse_labels": [0] * 5})
    dataset = load_dataset("cifar100", tmp_path)
    assert (dataset.num_classes, dataset.train_size, dataset.val_size) == (100, 45, 5)
    assert all_samples(dataset, "test")[1].tolist() == [99] * 5


def test_cifar_training_batches_are_augmented_deterministically(cifar10_root):
    dataset = load_dataset("cifar10", cifar10_root)

    def epoch(seed):
        return list(dataset.train_batches(32, torch.Generator().manual_seed(seed), "cpu"))

    batches = epoch(7)
    assert [tuple(x.shape) for x, _ in batches] == [(32, 3, 32, 32), (32, 3, 32, 32), (26, 3, 32, 32)]
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(batches, epoch(7)))
    assert not torch.equal(batches[0][0], epoch(8)[0][0])


def test_random_crop_flip_takes_a_shifted_window_maybe_mirrored():
    images = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8)
    out = random_crop_flip(images, torch.Generator().manual_seed(0), padding=2)
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    windows = [padded[..., top:top + 8, left:left + 8] for top in range(5) for left in range(5)]
    candidates = torch.stack(windows + [w.flip(-1) for w in windows], dim=1)
    assert out.shape == images.shape and out.dtype == torch.uint8
    assert all((candidates[i] == out[i]).flatten(1).all(1).any() for i in range(16))
    assert not torch.equal(out, images)


@pytest.mark.parametrize("name, directory, how", [
    ("cifar10", "cifar-10-batches-py", "cifar-10-python.tar.gz"),
    ("cifar100", "cifar-100-python", "cifar-100-python.tar.gz"),
    ("imagenet", "imagenet", "train/<class>"),
])
def test_missing_data_names_the_directory_and_how_to_get_it(tmp_path, name, directory, how):
    root = tmp_path / "nowhere"
    with pytest.raises(ConfigError) as error:
        load_dataset(name, root)
    message = str(error.value)
    assert error.value.key == "data_root"
    assert str(root / directory) in message and how in message and "PRUNEBENCH_DATA" in message


def test_unknown_dataset_suggests_the_closest_name(tmp_path):
    with pytest.raises(ConfigError, match="unknown dataset 'cifar-10'.*did you mean 'cifar10'"):
        load_dataset("cifar-10", tmp_path)


def test_default_data_root(monkeypatch, tmp_path):
    monkeypatch.setenv("PRUNEBENCH_DATA", str(tmp_path))
    assert default_data_root() == tmp_path
    monkeypatch.delenv("PRUNEBENCH_DATA")
    monkeypatch.chdir(tmp_path)
    assert default_data_root() == tmp_path / "data"


def test_imagenet_reads_an_image_folder_tree(tmp_path):
    for split, count in (("train", 5), ("val", 2)):
        for label in ("cat", "dog"):
            folder = tmp_path / "imagenet" / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", (20, 16), (40 * i, 100, 200)).save(folder / f"{i}.png")
    dataset = load_dataset("imagenet", tmp_path, val_fraction=0.2)
    assert (dataset.num_classes, dataset.train_size, dataset.val_size, dataset.test_size) == (2, 8, 2, 4)
    inputs, labels = next(dataset.eval_batches("test", 4, "cpu"))
    assert inputs.shape == (4, 3, 224, 224) and labels.tolist() == [0, 0, 1, 1]

    def epoch(seed):
        return list(dataset.train_batches(8, torch.Generator().manual_seed(seed), "cpu"))

    (first, first_labels), = epoch(3)
    (again, again_labels), = epoch(3)
    assert first.shape == (8, 3, 224, 224)
    assert torch.equal(first, again) and torch.equal(first_labels, again_labels)
