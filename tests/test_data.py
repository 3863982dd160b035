import gzip
import pickle
import random
import socket
import struct

import mnist1d
import mnist1d.data
import numpy as np
import pytest
import torch
from PIL import Image

from bench import data
from bench.data import InMemoryDataset, default_data_root, load_dataset, random_crop_flip, random_flip
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


def test_snipit_pipeline_normalises_with_imagenet_statistics_and_only_flips(cifar10_root):
    dataset = load_dataset("cifar10", cifar10_root, augment="snipit")
    test_inputs, _ = all_samples(dataset, "test")
    raw = torch.from_numpy(fake_images(10, 0)).view(10, 3, 32, 32).float() / 255
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(test_inputs, (raw - mean.view(3, 1, 1)) / std.view(3, 1, 1), atol=1e-5)
    plain = dataset.normalise(dataset.inputs["train"])
    for inputs, labels in dataset.train_batches(16, torch.Generator().manual_seed(3), "cpu"):
        for image, label in zip(inputs, labels):  # each the stored image of its label, maybe mirrored, not shifted
            same = (plain[dataset.labels["train"] == label] - image).abs().flatten(1).amax(1) < 1e-6
            mirrored = (plain[dataset.labels["train"] == label].flip(-1) - image).abs().flatten(1).amax(1) < 1e-6
            assert same.any() or mirrored.any()


def test_snipit_pipeline_is_refused_for_cifar100(tmp_path):
    with pytest.raises(ConfigError, match="augment.*SNIP-it authors' CIFAR-10 pipeline, not CIFAR-100's"):
        load_dataset("cifar100", tmp_path, augment="snipit")


def test_random_flip_mirrors_about_a_fifth_and_never_crops():
    images = torch.arange(2000 * 4, dtype=torch.float32).view(2000, 1, 1, 4)
    out = random_flip(images, torch.Generator().manual_seed(0))
    mirrored = (out == images.flip(-1)).flatten(1).all(1)
    assert ((out == images).flatten(1).all(1) | mirrored).all()
    assert 0.17 < mirrored.float().mean() < 0.23
    assert torch.equal(out, random_flip(images, torch.Generator().manual_seed(0)))


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
    ("mnist", "MNIST/raw", "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte"),
    ("imagenette", "imagenette-320", "imagenette-320.tgz"),
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


def write_image_folders(directory, colour=lambda i: (40 * i, 100, 200)):
    """train/ with 5 and val/ with 2 images of 20x16 pixels for each of two classes."""
    for split, count in (("train", 5), ("val", 2)):
        for label in ("cat", "dog"):
            folder = directory / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", (20, 16), colour(i)).save(folder / f"{i}.png")


def test_imagenet_reads_an_image_folder_tree(tmp_path):
    write_image_folders(tmp_path / "imagenet")
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


def test_imagenette_reads_an_image_folder_tree_at_128_pixels_mirroring_a_fifth(tmp_path):
    # Each image is a left-to-right ramp, so a mirrored one is its reverse.
    def ramp(i):
        image = Image.new("RGB", (20, 16))
        image.putdata([(12 * x, 10 * i, 0) for y in range(16) for x in range(20)])
        return image

    for split, count in (("train", 5), ("val", 2)):
        for label in ("cat", "dog"):
            folder = tmp_path / "imagenette-320" / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                ramp(i).save(folder / f"{i}.png")
    dataset = load_dataset("imagenette", tmp_path, val_fraction=0.2)
    assert (dataset.num_classes, dataset.in_channels) == (2, 3)
    assert (dataset.train_size, dataset.val_size, dataset.test_size) == (8, 2, 4)
    test_inputs, test_labels = all_samples(dataset, "test")
    assert test_inputs.shape == (4, 3, 128, 128) and test_labels.tolist() == [0, 0, 1, 1]
    red = test_inputs[:, 0]  # normalised with ImageNet's mean and std
    assert (red[..., 1:] >= red[..., :-1]).all() and torch.equal(all_samples(dataset, "test")[0], test_inputs)
    assert red.mean().item() == pytest.approx((12 * 9.5 / 255 - 0.485) / 0.229, abs=0.05)

    dataset.workers = 0  # augment in this process, from torch's global generator: no workers to start per epoch
    torch.manual_seed(0)
    draws = [bool(x[0, 0, 0, 0] > x[0, 0, 0, -1])  # a mirrored image's red ramp falls
             for _ in range(40) for x, _ in dataset.train_batches(1, torch.Generator(), "cpu")]
    assert sum(draws) / len(draws) == pytest.approx(0.2, abs=0.06)  # 320 draws of p = 0.2: sd 0.022


def test_digits_load_offline_standardised_in_three_disjoint_splits(tmp_path, monkeypatch):
    from sklearn.datasets import load_digits

    block_downloads(monkeypatch)
    dataset = load_dataset("digits", tmp_path)
    assert (dataset.num_classes, dataset.in_channels) == (10, 1)
    # 1797 images: a fixed fifth, round(0.2 * 1797) = 359, is the test split; val is
    # round(0.1 * 1438) = 144 of the other 1438, train the remaining 1294.
    assert (dataset.train_size, dataset.val_size, dataset.test_size) == (1294, 144, 359)
    splits = {split: all_samples(dataset, split) for split in ("train", "val", "test")}
    train_inputs = splits["train"][0]
    assert train_inputs.shape == (1294, 1, 8, 8) and splits["test"][0].shape == (359, 1, 8, 8)
    assert abs(train_inputs.mean().item()) < 1e-4 and train_inputs.std().item() == pytest.approx(1, abs=1e-4)
    # Undo the standardisation and find every image among scikit-learn's: each once, none twice.
    mean, std = dataset.mean, dataset.std
    digits = load_digits()
    index = {image.tobytes(): i for i, image in enumerate(digits.images.astype(np.float32))}
    positions = {split: [index[(x * std + mean).round().numpy().astype(np.float32).tobytes()] for x in inputs[:, 0]]
                 for split, (inputs, _) in splits.items()}
    assert sorted(sum(positions.values(), [])) == list(range(1797))
    for split, (_, labels) in splits.items():
        assert labels.tolist() == digits.target[positions[split]].tolist()


def test_digits_test_split_is_fixed_and_val_follows_split_seed(tmp_path):
    def split(seed, name, fraction=0.1):
        """The split's images as stored, before the standardisation (which the train split sets)."""
        return load_dataset("digits", tmp_path, val_fraction=fraction, split_seed=seed).inputs[name]

    assert torch.equal(split(0, "test"), split(1, "test"))
    assert torch.equal(split(0, "test"), split(0, "test", fraction=0.25))
    assert torch.equal(split(0, "val"), split(0, "val"))
    assert not torch.equal(split(0, "val"), split(1, "val"))


def test_digits_are_read_from_the_cache_without_scikit_learn(tmp_path, monkeypatch):
    import sklearn.datasets

    first = load_dataset("digits", tmp_path)
    monkeypatch.setattr(sklearn.datasets, "load_digits", refuse)
    again = load_dataset("digits", tmp_path)
    assert [p.name for p in (tmp_path / "digits").iterdir()] == [
        f"digits-scikit-learn-{sklearn.__version__}.npz"]
    assert torch.equal(all_samples(first, "train")[0], all_samples(again, "train")[0])


def write_idx(path, array, compress):
    """``array`` (uint8) in the IDX format: 0, 0, 0x08, the number of dimensions, then their sizes."""
    content = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape) + array.tobytes()
    path = path.with_name(path.name + ".gz") if compress else path
    with (gzip.open if compress else open)(path, "wb") as handle:
        handle.write(content)


def test_mnist_reads_the_idx_files_plain_or_gzipped(tmp_path):
    directory = tmp_path / "MNIST" / "raw"
    directory.mkdir(parents=True)
    rng = np.random.default_rng(0)
    train_images, test_images = (rng.integers(0, 256, (n, 28, 28), dtype=np.uint8) for n in (30, 5))
    write_idx(directory / "train-images-idx3-ubyte", train_images, compress=True)
    write_idx(directory / "train-labels-idx1-ubyte", (np.arange(30) % 10).astype(np.uint8), compress=False)
    write_idx(directory / "t10k-images-idx3-ubyte", test_images, compress=False)
    write_idx(directory / "t10k-labels-idx1-ubyte", np.array([3, 1, 4, 1, 5], np.uint8), compress=True)
    dataset = load_dataset("mnist", tmp_path, val_fraction=0.2)
    assert (dataset.num_classes, dataset.in_channels) == (10, 1)
    assert (dataset.train_size, dataset.val_size, dataset.test_size) == (24, 6, 5)
    test_inputs, test_labels = all_samples(dataset, "test")
    assert test_labels.tolist() == [3, 1, 4, 1, 5] and test_labels.dtype == torch.int64
    expected = (torch.from_numpy(test_images).float().unsqueeze(1) / 255 - 0.1307) / 0.3081
    assert test_inputs.shape == (5, 1, 28, 28) and torch.allclose(test_inputs, expected, atol=1e-5)
    train_labels = torch.cat([all_samples(dataset, split)[1] for split in ("train", "val")])
    assert sorted(train_labels.tolist()) == sorted(np.arange(30) % 10)
    first, _ = next(dataset.train_batches(30, torch.Generator().manual_seed(0), "cpu"))
    second, _ = next(dataset.train_batches(30, torch.Generator().manual_seed(0), "cpu"))
    assert torch.equal(first, second)  # not augmented: the same images in the same order


def test_mnist_refuses_a_file_that_is_not_idx(tmp_path):
    directory = tmp_path / "MNIST" / "raw"
    directory.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (directory / name).write_bytes(b"<html>not found</html>")
    with pytest.raises(ConfigError, match="train-images-idx3-ubyte is not an IDX file") as error:
        load_dataset("mnist", tmp_path)
    assert error.value.key == "data_root"
