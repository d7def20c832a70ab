"""Where each built-in data set lives: its sub-folder, its files, and the official downloads with checksums."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Download:
    """One official file: where to fetch it (mirrors in order) and its published MD5, or its SHA-256."""
    filename: str
    urls: tuple[str, ...]
    md5: str = ""
    extract: bool = False  # a tar.gz archive unpacked into the data directory
    # hex, or its first digits where that is all the publisher gives (torchvision: 8, in the file name)
    sha256: str = ""

    @property
    def checksum(self) -> tuple[str, str]:
        """(algorithm, expected hex digits): SHA-256 where given, else MD5."""
        return ("sha256", self.sha256) if self.sha256 else ("md5", self.md5)


@dataclass(frozen=True)
class Source:
    name: str
    subdir: str                   # conventional folder inside a data directory
    required: tuple[str, ...]     # files that must be there (for idx sets, with or without .gz)
    downloads: tuple[Download, ...]
    classes: tuple[str, ...] = field(default=())
    reader: str = "idx"           # which reader in readers.py understands the layout
    input_shape: tuple = (1, 28, 28)
    num_classes: int = 10
    train_images: int = 60_000    # in the official training set (what a recipe's FLOP budget counts)


_MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
_FASHION_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _idx_downloads(mirrors: tuple[str, ...], md5s: tuple[str, ...]) -> tuple[Download, ...]:
    return tuple(Download(f"{f}.gz", tuple(m + f + ".gz" for m in mirrors), md5) for f, md5 in zip(IDX_FILES, md5s))


SOURCES: dict[str, Source] = {
    "cifar10": Source(
        "cifar10", "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",),
        (Download("cifar-10-python.tar.gz", ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
                  "c58f30108f718f92721af3b95e74349a", extract=True),),
        ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
        reader="cifar10", input_shape=(3, 32, 32), train_images=50_000),
    "cifar100": Source(
        "cifar100", "cifar-100-python", ("train", "test"),
        (Download("cifar-100-python.tar.gz", ("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",),
                  "eb9058c3a382ffc7106e4002c42a8d85", extract=True),),
        reader="cifar100", input_shape=(3, 32, 32), num_classes=100, train_images=50_000),
    "mnist": Source(
        "mnist", "mnist", IDX_FILES,
        _idx_downloads(_MNIST_MIRRORS, ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
                                        "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c")),
        tuple(str(i) for i in range(10))),
    "fashion-mnist": Source(
        "fashion-mnist", "fashion-mnist", IDX_FILES,
        _idx_downloads(_FASHION_MIRRORS, ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
                                          "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310")),
        ("t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot")),
}

DATASET_NAMES = tuple(SOURCES) + ("imagefolder",)
