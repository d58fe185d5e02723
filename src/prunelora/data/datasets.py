"""Dataset registry: every dataset becomes an in-memory `ImageDataset` (uint8 images + `.targets`).

Holding images as one uint8 tensor lets a whole batch be normalised and augmented in one tensor
operation, which is several times faster on a CPU than torchvision's per-image transforms. Labels
are always read from `.targets` (never by decoding images, as the reference code did).
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import stat
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from prunelora.data.generic import fetch, targets_of
from prunelora.data.guarded import MAX_CLASSES, GuardedDataset, check_records, checked_labels
from prunelora.data.images import ImageDataset
from prunelora.errors import InvalidInputError, MissingFileError, did_you_mean
from prunelora.factories import get_factory
from prunelora.usercode import call_user

# Per-dataset normalisation constants, defined once; stored in every checkpoint's meta.json so
# that evaluation normalises exactly as training did (the reference code did not).
NORMALIZATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "digits": ((0.3064,), (0.3805,)),
    "mnist": ((0.1307,), (0.3081,)),
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "svhn": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
    "imagefolder": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


@dataclass
class DatasetBundle:
    """A dataset's train and test parts plus what a model and a checkpoint need to know of it."""

    name: str
    train: ImageDataset
    test: ImageDataset
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    extra: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def _sample_shape(self) -> tuple[int, ...]:
        images = getattr(self.train, "images", None)
        return tuple(images.shape[1:]) if images is not None else tuple(self.train[0][0].shape)

    @property
    def in_channels(self) -> int:
        return int(self._sample_shape()[0])

    @property
    def image_size(self) -> int:
        return int(self._sample_shape()[-1])

    def describe(self) -> dict:
        return {
            "name": self.name, "classes": self.classes, "num_classes": self.num_classes,
            "in_channels": self.in_channels, "image_size": self.image_size,
            "normalization": {"mean": list(self.mean), "std": list(self.std)},
            "train_size": len(self.train), "test_size": len(self.test), **self.extra,
        }


def data_digest(bundle: DatasetBundle) -> str:
    """A content digest of the data as a model sees it: SHA-256 over the train and test images and
    labels (after any train subset), with their shapes.

    Recorded in every checkpoint's meta.json (`dataset.digest`): forget indices and classes refer to
    these exact records, so unlearning, retraining or evaluating on other data (an image folder
    that gained files, another copy of a dataset) is refused rather than silently hitting other
    records. Cheap: the images are in-memory uint8 tensors (digits: ~0.1 MB; Fashion-MNIST: 55 MB).
    """
    digest = hashlib.sha256()
    for part in (bundle.train, bundle.test):
        if isinstance(part, ImageDataset):
            tensors = [part.images, part.targets.long()]
        else:  # a user's dataset: what its transform yields, record by record, batched
            tensors = [fetch(part, range(i, min(i + 512, len(part))))[0].float()
                       for i in range(0, len(part), 512)] + [targets_of(part)]
        for tensor in tensors:
            array = tensor.detach().contiguous().cpu().numpy()
            digest.update(f"{array.dtype}{array.shape}".encode())
            digest.update(array.data)
    return "sha256:" + digest.hexdigest()


def check_data_identity(bundle: DatasetBundle, recorded: dict, source: str, digest: str | None = None) -> bool:
    """Refuse data whose `data_digest` differs from the one a checkpoint recorded. False when the
    checkpoint records none (written before digests existed): nothing could be checked. `digest`:
    the bundle's `data_digest` when already computed (checking several checkpoints digests once)."""
    expected = recorded.get("digest")
    if expected is None:
        return False
    found = digest if digest is not None else data_digest(bundle)
    if found != expected:
        raise InvalidInputError(
            f"{source} was trained on other data than the {bundle.name} found now (content digest "
            f"{str(expected)[:19]}... recorded, {found[:19]}... now); forget indices and classes would name "
            "other records: restore the original data or pass --data-dir with it"
        )
    return True


Loader = Callable[..., DatasetBundle]
_DATASETS: dict[str, tuple[Loader, str]] = {}


def register_dataset(name: str, offline: str) -> Callable[[Loader], Loader]:
    """Register a loader `fn(data_dir, download, augment) -> DatasetBundle` under `name` (a new name:
    a second loader for a registered name is refused, so none is replaced silently)."""

    def wrap(fn: Loader) -> Loader:
        if name in _DATASETS:
            raise InvalidInputError(f"dataset {name!r} is already registered; pick another name")
        _DATASETS[name] = (fn, offline)
        return fn

    return wrap


def list_datasets() -> dict[str, str]:
    """Registered dataset names and how each is reached offline.

    Returns:
        `{name: description}`.
    """
    return {name: offline for name, (_, offline) in _DATASETS.items()} | {
        "imagefolder:PATH": "your own class-per-folder images under PATH (offline)"
    }


def load_dataset(
    name: str, data_dir: str | os.PathLike | None = None, download: bool = False, augment: bool = False,
    image_size: int = 32,
) -> DatasetBundle:
    """Load a registered dataset by name.

    Args:
        name: `digits`, `fashion-mnist`, ..., `imagefolder:PATH`, or a trusted
            `factory:FILE.py:FUNC` (see `prunelora.factories`); `prunelora.list_datasets()` lists
            them.
        data_dir: folder holding the dataset's files (default: the dataset's own place).
        download: let torchvision download the dataset (needs the internet).
        augment: random crop and flip on the training images.
        image_size: the side images of an image folder are resized to.

    Returns:
        A `DatasetBundle`: the train and test sets, class names and normalisation.

    Raises:
        InvalidInputError: an unknown dataset name.
        MissingFileError: the dataset's files are not there (and `download` is off).
    """
    if isinstance(image_size, bool) or not isinstance(image_size, int) or not 4 <= image_size <= 1024:
        raise InvalidInputError(f"image size {image_size!r} is not an integer in [4, 1024]")
    if name.startswith("factory:"):
        return _factory_dataset(name, augment)
    if name.startswith("imagefolder:"):
        return _load_imagefolder(Path(name.split(":", 1)[1]), augment, image_size)
    if name not in _DATASETS:
        raise InvalidInputError(
            f"unknown dataset {name!r}{did_you_mean(name, _DATASETS)}; accepted: {', '.join(sorted(_DATASETS))}, "
            "imagefolder:PATH"
        )
    return _DATASETS[name][0](data_dir=data_dir, download=download, augment=augment)


def _factory_dataset(name: str, augment: bool) -> DatasetBundle:
    """A user's `--dataset-factory FILE.py:FUNC` data (see `prunelora.factories`): `(train, test)` or
    `(train, test, class_names)`, map-style Datasets of (image tensor C×H×W, integer label)."""
    shown = name[len("factory:"):]
    if augment:
        raise InvalidInputError(f"--augment is prunelora's crop + flip for its own datasets; dataset factory {shown} "
                                "brings its own transform")
    what = f"dataset factory {shown}"
    made = call_user(what, get_factory(name, "--dataset-factory"))
    if not isinstance(made, tuple) or len(made) not in (2, 3):
        raise InvalidInputError(f"dataset factory {shown} must return (train, test) or (train, test, class_names), "
                                f"not {type(made).__name__}")
    parts = {}
    for part, ds in (("train", made[0]), ("test", made[1])):
        if not hasattr(ds, "__getitem__") or not hasattr(ds, "__len__"):
            raise InvalidInputError(f"dataset factory {shown}: its {part} set is not a non-empty map-style Dataset")
        # its records are the user's code too: an error while reading one is one line naming it
        parts[part] = ds if isinstance(ds, ImageDataset) else GuardedDataset(ds, f"{what}'s {part} set")
        if len(parts[part]) == 0:
            raise InvalidInputError(f"dataset factory {shown}: its {part} set is not a non-empty map-style Dataset")
    train, test = parts["train"], parts["test"]
    shape = check_records(train, f"{what}'s train set")
    check_records(test, f"{what}'s test set", shape)
    names = None
    if len(made) == 3:
        given = made[2]
        if isinstance(given, (str, bytes)) or not hasattr(given, "__len__") or not 2 <= len(given) <= MAX_CLASSES:
            raise InvalidInputError(f"dataset factory {shown}: class_names must be a list of 2 to {MAX_CLASSES:,} "
                                    "names")
        names = [str(c) for c in given]
    # labels are bounded before any class name is made (a label of 10^9 would make 10^9 names)
    labels = torch.cat([checked_labels(train, f"{what}'s train set", len(names) if names else None),
                        checked_labels(test, f"{what}'s test set", len(names) if names else None)])
    classes = names if names is not None else [str(i) for i in range(int(labels.max()) + 1)]
    if len(classes) < 2:
        raise InvalidInputError(f"dataset factory {shown}: {len(classes)} class; need at least 2")
    return DatasetBundle(name=name, train=train, test=test, classes=classes, mean=(), std=(),
                         extra={"factory": shown})


def _bundle(name, x_train, y_train, x_test, y_test, classes, augment, **extra) -> DatasetBundle:
    if augment and x_train.shape[1] != 3:
        # crop + flip would turn a 6 into a mirrored 6: only meant for colour photographs
        raise InvalidInputError(f"--augment (random crop + flip) is for colour images; {name} has "
                                f"{x_train.shape[1]} channel(s)")
    mean, std = NORMALIZATION[name]
    return DatasetBundle(
        name=name,
        train=ImageDataset(x_train, y_train, mean, std, augment=augment),
        test=ImageDataset(x_test, y_test, mean, std, augment=False),
        classes=list(classes), mean=mean, std=std, extra=extra,
    )


@register_dataset("digits", "always (bundled with scikit-learn)")
def _load_digits(data_dir=None, download=False, augment=False) -> DatasetBundle:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    # Pixel values are 0..16; scale to the uint8 range every other dataset uses.
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    x_tr, x_te, y_tr, y_te = train_test_split(
        images, digits.target, test_size=0.25, stratify=digits.target, random_state=0
    )
    return _bundle(
        "digits", torch.from_numpy(x_tr), torch.from_numpy(y_tr), torch.from_numpy(x_te),
        torch.from_numpy(y_te), [str(i) for i in range(10)], augment=augment, split_seed=0,
    )


FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot"]


# The largest IDX payload read (1 GiB: MNIST's training images are 47 MB, EMNIST's 550 MB). A
# folder may come from a checkpoint's meta.json: a small gzip must not inflate without bound.
MAX_IDX_BYTES = 2**30


def check_regular_file(path: Path, what: str = "file") -> Path:
    """`path` if it is a regular file (after symbolic links); one line otherwise. Checked with
    `stat`, never by opening it: opening a FIFO blocks until something writes to it."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise MissingFileError(f"{what} {str(path)!r} cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        raise InvalidInputError(f"{what} {str(path)!r} is not a regular file (a FIFO, device or socket "
                                "is never opened); give a regular file")
    return path


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file of unsigned bytes (gzipped or not), read no further than its header declares:
    a payload above `MAX_IDX_BYTES`, or data beyond the declared size, is refused."""
    check_regular_file(path, "IDX file")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            # IDX header: two zero bytes, a type byte (0x08 = uint8), the number of dimensions, then sizes.
            head = f.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] != 0x08 or not 1 <= head[3] <= 4:
                raise InvalidInputError(f"{path} is not an IDX file of unsigned bytes (bad header)")
            ndim = head[3]
            sizes = f.read(4 * ndim)
            if len(sizes) < 4 * ndim:
                raise InvalidInputError(f"{path} is not an IDX file of unsigned bytes (bad header)")
            shape = tuple(int.from_bytes(sizes[4 * i: 4 + 4 * i], "big") for i in range(ndim))
            expected = math.prod(shape)
            if expected > MAX_IDX_BYTES:
                raise InvalidInputError(f"{path} declares {expected:,} values ({'x'.join(map(str, shape))}); "
                                        f"an IDX file read here holds at most {MAX_IDX_BYTES:,}")
            raw = f.read(expected)
            if len(raw) != expected:
                raise InvalidInputError(f"{path} is truncated: expected {expected} values, found {len(raw)}")
            if f.read(1):  # more than declared: a corrupt file, or a decompression bomb
                raise InvalidInputError(f"{path} holds more data than its header declares ({expected:,} values)")
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise InvalidInputError(f"{path} cannot be read as an IDX file ({type(exc).__name__}: {exc})") from None
    return np.frombuffer(raw, dtype=np.uint8).reshape(shape)


def _find_idx(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz", folder / "raw" / stem, folder / "raw" / f"{stem}.gz"):
        if os.path.lexists(candidate):
            return check_regular_file(candidate, "IDX file")
    return None


def _load_mnist_like(name: str, classes, torchvision_cls: str, data_dir, download, debian_dir=None, augment=False):
    stems = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    folders = [Path(data_dir)] if data_dir else []
    if debian_dir is not None and not data_dir:
        folders.append(debian_dir)
    for folder in folders:
        paths = [_find_idx(folder, s) for s in stems]
        if all(paths):
            x_tr, y_tr, x_te, y_te = (_read_idx(p) for p in paths)
            return _bundle(name, torch.from_numpy(x_tr.copy())[:, None], torch.from_numpy(y_tr.astype(np.int64)),
                           torch.from_numpy(x_te.copy())[:, None], torch.from_numpy(y_te.astype(np.int64)),
                           classes, augment=augment, source=str(folder))
    if not download:
        where = " or ".join(str(f) for f in folders) or "no --data-dir given"
        hint = " (Debian: apt-get install dataset-fashion-mnist)" if debian_dir else ""
        raise MissingFileError(
            f"{name} files not found ({where}); pass --data-dir with the idx files{hint}, or --download"
        )
    import torchvision

    root = Path(data_dir or Path.home() / ".cache" / "prunelora")
    cls = getattr(torchvision.datasets, torchvision_cls)
    train, test = cls(root, train=True, download=True), cls(root, train=False, download=True)
    return _bundle(name, train.data[:, None].clone(), train.targets.clone(), test.data[:, None].clone(),
                   test.targets.clone(), classes, augment=augment, source=str(root))


@register_dataset("fashion-mnist", "from /usr/share/datasets/fashion-mnist (apt-get install dataset-fashion-mnist) or --data-dir")
def _load_fashion(data_dir=None, download=False, augment=False) -> DatasetBundle:
    return _load_mnist_like("fashion-mnist", FASHION_CLASSES, "FashionMNIST", data_dir, download,
                            debian_dir=DEBIAN_FASHION_MNIST, augment=augment)


@register_dataset("mnist", "from --data-dir (idx files), else --download")
def _load_mnist(data_dir=None, download=False, augment=False) -> DatasetBundle:
    return _load_mnist_like("mnist", [str(i) for i in range(10)], "MNIST", data_dir, download, augment=augment)


def _torchvision_colour(name: str, data_dir, download, augment) -> DatasetBundle:
    import torchvision

    root = Path(data_dir) if data_dir else Path.home() / ".cache" / "prunelora"
    try:
        if name == "svhn":
            train = torchvision.datasets.SVHN(root, split="train", download=download)
            test = torchvision.datasets.SVHN(root, split="test", download=download)
            x_tr, y_tr, x_te, y_te = train.data, train.labels, test.data, test.labels  # already N,C,H,W
            classes = [str(i) for i in range(10)]
        else:
            cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
            train, test = cls(root, train=True, download=download), cls(root, train=False, download=download)
            x_tr, x_te = train.data.transpose(0, 3, 1, 2), test.data.transpose(0, 3, 1, 2)
            y_tr, y_te, classes = train.targets, test.targets, train.classes
    except RuntimeError as exc:  # torchvision raises RuntimeError("Dataset not found ...")
        raise MissingFileError(
            f"{name} not found under {root}; pass --data-dir where it was downloaded, or --download "
            f"(needs the internet) [{exc}]"
        ) from None
    return _bundle(name, torch.from_numpy(np.ascontiguousarray(x_tr)), torch.as_tensor(np.asarray(y_tr)),
                   torch.from_numpy(np.ascontiguousarray(x_te)), torch.as_tensor(np.asarray(y_te)),
                   classes, augment=augment, source=str(root))


for _name in ("cifar10", "cifar100", "svhn"):
    register_dataset(_name, "from --data-dir, else --download (needs the internet)")(
        lambda data_dir=None, download=False, augment=False, _n=_name: _torchvision_colour(_n, data_dir, download, augment)
    )


MAX_IMAGE_BYTES = 256 * 2**20  # one image file of an image folder


def _read_image(path: Path, image_size: int) -> np.ndarray:
    """One image as (H, W, 3) uint8, resized; one line naming the file if it cannot be read, or if it
    is larger than PIL's decompression-bomb limit (`Image.MAX_IMAGE_PIXELS`, ~89 megapixels)."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                return np.asarray(img.convert("RGB").resize((image_size, image_size)), dtype=np.uint8)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidInputError(f"image {str(path)!r} has more than {Image.MAX_IMAGE_PIXELS:,} pixels "
                                "(refused as a possible decompression bomb)") from None
    except (OSError, SyntaxError, ValueError, MemoryError) as exc:  # UnidentifiedImageError is an OSError
        raise InvalidInputError(f"image {str(path)!r} cannot be read ({type(exc).__name__}: "
                                f"{str(exc).splitlines()[0] if str(exc) else 'corrupt'})") from None


def _listing(folder: Path, what: str) -> list[Path]:
    """The entries of `folder`; a folder that cannot be read (no permission) is one line naming it."""
    try:
        return list(folder.iterdir())
    except OSError as exc:
        raise InvalidInputError(f"{what} cannot be read ({exc.strerror or type(exc).__name__})") from None


def _load_imagefolder(root: Path, augment: bool, image_size: int = 32, test_fraction: float = 0.2) -> DatasetBundle:
    """A user's class-per-folder images, resized to `image_size`, split 80/20 (stratified, seed 0)."""
    from sklearn.model_selection import train_test_split

    if not root.is_dir():
        raise MissingFileError(f"imagefolder path {str(root)!r} is not a directory of class folders")
    classes = sorted(d.name for d in _listing(root, f"imagefolder {str(root)!r}") if d.is_dir())
    if len(classes) < 2:
        raise InvalidInputError(f"imagefolder {str(root)!r} has {len(classes)} class folders; need at least 2")
    images, labels = [], []
    for label, cls in enumerate(classes):
        count = 0
        for path in sorted(_listing(root / cls, f"imagefolder {str(root)!r}: class folder {cls!r}")):
            if path.suffix.lower() not in {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}:
                continue
            check_regular_file(path, "image")  # a FIFO named x.png would block the open forever
            if path.stat().st_size > MAX_IMAGE_BYTES:
                raise InvalidInputError(f"image {str(path)!r} is {path.stat().st_size:,} bytes; an image read "
                                        f"here is at most {MAX_IMAGE_BYTES:,}")
            images.append(_read_image(path, image_size).transpose(2, 0, 1))
            labels.append(label)
            count += 1
        if count < 2:  # a stratified train/test split needs two images of every class
            raise InvalidInputError(f"imagefolder {str(root)!r}: class folder {cls!r} holds {count} images; "
                                    "need at least 2 per class")
    x, y = np.stack(images), np.asarray(labels)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, stratify=y, random_state=0)
    bundle = _bundle("imagefolder", torch.from_numpy(x_tr), torch.from_numpy(y_tr), torch.from_numpy(x_te),
                     torch.from_numpy(y_te), classes, augment=augment, source=str(root))
    bundle.name = f"imagefolder:{root}"  # the name a checkpoint needs to reload the same data
    return bundle
