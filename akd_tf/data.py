"""Labelled image sources and the input pipeline of the distillation trainer.

Every image that reaches a network (student, teacher, TFLite export) is
float32 in :data:`akd_tf.export.INPUT_RANGE` ([-1, 1]); :func:`normalize` is
the one function that maps pixel values 0..255 there.

:func:`load_dataset` reads one split of a source into an :class:`ImageDataset`,
a labelled source in a fixed order. Its forms:

* ``"demo"`` – the bundled animal-mnist (MIT, 10 classes of 28x28 grayscale
  drawings, 1,000 each): a fixed seeded hold-out of 200 images per class is
  ``split="test"``, the other 8,000 ``split="train"``;
* ``DIR`` (or ``folder:DIR``) – one sub-folder per class (class names are the
  sorted sub-folder names), or ``DIR/<split>/<class>/...``; images are decoded
  to 3 channels (grayscale files are replicated, alpha is dropped);
* ``FILE.npz`` (or ``npz:FILE``) – arrays ``x`` (N, H, W[, C]) in 0..255 and
  ``y`` (N,) integer labels, optional ``class_names``, optional
  ``x_test``/``y_test`` for ``split="test"`` (``x_<split>`` in general);
* a TFRecord file, glob or directory (or ``tfrecord:...``) of
  ``tf.train.Example`` with an encoded image under ``image_key`` and an integer
  label under ``label_key``; decoded to 3 channels;
* ``tfds:NAME`` – a tensorflow_datasets dataset already prepared in
  ``data_dir`` (nothing is ever downloaded).

A source that holds a single split is its ``"train"`` split; asking a source
for a split it does not have raises :class:`akd_tf.errors.MissingSplit`.
:func:`split_train_val` carves the paper's mini-train / mini-val split out of
a training set, and :func:`make_pipeline` turns a dataset into batches.
"""

from __future__ import annotations

import functools
import glob as globlib
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

import akd_tf.tf_env  # noqa: F401  (configures TensorFlow before it is imported)
import tensorflow as tf

from akd_tf.errors import InvalidInput, MissingData, MissingSplit

DEMO_DATASET = "demo"
DEMO_PATH = Path(__file__).resolve().parent / "demo_data" / "animal_mnist.npz"
DEMO_CLASS_NAMES = ("bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra")
DEMO_TEST_SIZE = 2000
DEMO_SPLIT_SEED = 20250101  # fixed forever: changing it would leak test images into training sets

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
SPLIT_DIRS = ("train", "val", "validation", "test")  # a folder holding any of these is split-structured
DEFAULT_VAL_FRACTION = 0.2
SHUFFLE_BUFFER_BYTES = 1 << 30  # shuffle over all examples when they fit in 1 GiB of float32 images
LARGE_SHUFFLE_BUFFER = 10_000
PREPROCESS_CHUNK = 256  # examples resized per op when they share one shape
ENCODED_CHANNELS = 3  # folders and TFRecords hold RGB, grayscale or RGBA files: all decode to RGB

SOURCE_FORMS = ("'demo'", "an image folder (DIR/<class>/... or DIR/<split>/<class>/...)", "a .npz file",
                "a TFRecord file, glob or directory", "'tfds:NAME'")


def normalize(images) -> tf.Tensor:
    """Map pixel values 0..255 (uint8 or float) to float32 in [-1, 1]: ``x / 127.5 - 1``."""
    return tf.cast(images, tf.float32) / 127.5 - 1.0


def _sha256(*parts) -> str:
    digest = hashlib.sha256()
    for part in parts:
        data = part if isinstance(part, bytes) else str(part).encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


# --- sources: where the examples come from, before any index selection ---------------------------

class _ArraySource:
    """Images held in memory: uint8 (N, H, W, C) and int32 labels (N,)."""

    sequential = False

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images, labels

    def examples(self, indices: np.ndarray | None) -> tf.data.Dataset:
        images, labels = (self.images, self.labels) if indices is None else (self.images[indices], self.labels[indices])
        return tf.data.Dataset.from_tensor_slices((images, labels))


def _decode(encoded: tf.Tensor) -> tf.Tensor:
    image = tf.io.decode_image(encoded, channels=ENCODED_CHANNELS, expand_animations=False)
    image.set_shape([None, None, ENCODED_CHANNELS])
    return image


class _FileSource:
    """Encoded image files, one per example, decoded on the fly."""

    sequential = False

    def __init__(self, paths: np.ndarray, labels: np.ndarray):
        self.paths, self.labels = paths, labels

    def examples(self, indices: np.ndarray | None) -> tf.data.Dataset:
        paths, labels = (self.paths, self.labels) if indices is None else (self.paths[indices], self.labels[indices])
        ds = tf.data.Dataset.from_tensor_slices((paths, labels))
        return ds.map(lambda path, label: (_decode(tf.io.read_file(path)), label),
                      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _select(ds: tf.data.Dataset, indices: np.ndarray | None, count: int) -> tf.data.Dataset:
    """Keep the elements of a sequentially read ``ds`` at increasing ``indices``."""
    if indices is None:
        return ds
    mask = np.zeros(count, dtype=bool)
    mask[indices] = True
    mask = tf.constant(mask)
    return ds.enumerate().filter(lambda i, _: tf.gather(mask, i)).map(lambda _, element: element)


class _TFRecordSource:
    """``tf.train.Example`` records read in file order."""

    sequential = True

    def __init__(self, files: tuple[str, ...], labels: np.ndarray, image_key: str, label_key: str,
                 label_offset: int):
        self.files, self.labels = files, labels
        self.image_key, self.label_key, self.label_offset = image_key, label_key, label_offset

    def examples(self, indices: np.ndarray | None) -> tf.data.Dataset:
        features = {self.image_key: tf.io.FixedLenFeature([], tf.string),
                    self.label_key: tf.io.FixedLenFeature([], tf.int64)}

        def parse(record):
            example = tf.io.parse_single_example(record, features)
            label = tf.cast(example[self.label_key] + self.label_offset, tf.int32)
            return _decode(example[self.image_key]), label

        records = _select(tf.data.TFRecordDataset(list(self.files)), indices, len(self.labels))
        return records.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


class _TfdsSource:
    """One split of a prepared tensorflow_datasets builder, read without shuffling files."""

    sequential = True

    def __init__(self, builder, split: str, labels: np.ndarray):
        self.builder, self.split, self.labels = builder, split, labels

    def examples(self, indices: np.ndarray | None) -> tf.data.Dataset:
        ds = self.builder.as_dataset(split=self.split, as_supervised=True, shuffle_files=False)
        ds = ds.map(lambda image, label: (image, tf.cast(label, tf.int32)))
        return _select(ds, indices, len(self.labels))


# --- the dataset ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class ImageDataset:
    """A labelled image source in a fixed, deterministic order (not resized, not normalized).

    ``fingerprint`` (sha256 hex) changes when the content or the selection of
    examples changes: it keys caches of teacher outputs. ``image_shape`` is
    (H, W, C) when every image is known to have it (array sources), else None.
    """

    name: str
    fingerprint: str
    num_classes: int
    class_names: tuple[str, ...]
    num_examples: int
    image_shape: tuple | None
    _source: object = field(repr=False, compare=False)
    _indices: np.ndarray | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_arrays(cls, images, labels, *, name: str = "arrays",
                    class_names: Sequence[str] | None = None) -> ImageDataset:
        """A dataset over in-memory ``images`` (N, H, W[, C]) in 0..255 and integer ``labels`` (N,)."""
        x, y = _check_arrays(images, labels, "images", "labels")
        x = np.array(x)  # a private copy: the caller's array may change, the fingerprint may not
        x.flags.writeable = False
        names = _class_names(class_names, y, "labels")
        return cls._of_arrays(name, x, y, names)

    @classmethod
    def _of_arrays(cls, name: str, x: np.ndarray, y: np.ndarray, class_names: tuple[str, ...]) -> ImageDataset:
        fingerprint = _sha256("arrays", x.shape, x.tobytes(), y.tobytes(), *class_names)
        return cls(name, fingerprint, len(class_names), class_names, len(y), tuple(x.shape[1:]),
                   _ArraySource(x, y))

    def examples(self) -> tf.data.Dataset:
        """``(image uint8 (H, W, C), label int32 ())`` pairs, always in the same order."""
        return self._source.examples(self._indices)

    def take_indices(self, indices, suffix: str) -> ImageDataset:
        """The examples at ``indices`` (positions in :meth:`examples` order), in the given order.

        Sources read sequentially (TFRecord, tfds) need increasing indices.
        The name gets ``[suffix]``; the fingerprint covers the selection.
        """
        indices = np.asarray(indices)
        if indices.ndim != 1 or indices.size == 0 or not np.issubdtype(indices.dtype, np.integer):
            raise InvalidInput(f"indices must be a non-empty 1-D array of integers, got shape {indices.shape} "
                               f"dtype {indices.dtype}")
        if indices.min() < 0 or indices.max() >= self.num_examples:
            raise InvalidInput(f"indices must be in [0, {self.num_examples}) for {self.name}, "
                               f"got values in [{indices.min()}, {indices.max()}]")
        if len(np.unique(indices)) != len(indices):
            raise InvalidInput(f"indices must not repeat, got {len(indices) - len(np.unique(indices))} duplicates")
        selected = indices.astype(np.int64) if self._indices is None else self._indices[indices]
        if self._source.sequential and np.any(np.diff(selected) <= 0):
            raise InvalidInput(f"{self.name} is read sequentially: take_indices needs increasing indices")
        fingerprint = _sha256(self.fingerprint, suffix, indices.astype(np.int64).tobytes())
        return ImageDataset(f"{self.name}[{suffix}]", fingerprint, self.num_classes, self.class_names,
                            len(selected), self.image_shape, self._source, selected)


def labels_array(ds: ImageDataset) -> np.ndarray:
    """The int32 labels of ``ds`` in :meth:`ImageDataset.examples` order."""
    labels = ds._source.labels
    return (labels if ds._indices is None else labels[ds._indices]).astype(np.int32)


# --- array validation ----------------------------------------------------------------------------

def _check_arrays(x, y, x_name: str, y_name: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate images in 0..255 and integer labels; return uint8 (N, H, W, C) and int32 (N,)."""
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim not in (3, 4):
        raise InvalidInput(f"{x_name} must have shape (N, H, W) or (N, H, W, C), got {x.shape}")
    if y.ndim != 1:
        raise InvalidInput(f"{y_name} must have shape (N,), got {y.shape}")
    if len(x) != len(y):
        raise InvalidInput(f"{x_name} and {y_name} must have the same length, got {len(x)} and {len(y)}")
    if len(y) == 0:
        raise InvalidInput(f"{x_name} holds no examples")
    if x.dtype != np.uint8:
        if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
            raise InvalidInput(f"{x_name} must be uint8 or float in 0..255, got dtype {x.dtype}")
        if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
            raise InvalidInput(f"{x_name} must be in 0..255, got NaN or infinite values")
        low, high = x.min(), x.max()
        if low < 0 or high > 255:
            raise InvalidInput(f"{x_name} must be in 0..255, got values in [{low}, {high}]")
        if np.issubdtype(x.dtype, np.floating) and 0 < high <= 1.0:
            raise InvalidInput(f"{x_name} must be in 0..255, got floats with max {high}: scaled to [0, 1]? "
                               "multiply by 255")
        x = np.rint(x).astype(np.uint8)
    if not np.issubdtype(y.dtype, np.integer):
        if not np.issubdtype(y.dtype, np.floating):
            raise InvalidInput(f"{y_name} must hold integer labels, got dtype {y.dtype}")
        fractional = y[y != np.round(y)]
        if fractional.size:
            raise InvalidInput(f"{y_name} must hold integer labels, got {float(fractional[0])!r}")
    if x.ndim == 3:
        x = x[..., np.newaxis]
    return x, y.astype(np.int64).astype(np.int32)


def _class_names(class_names, labels: np.ndarray, y_name: str) -> tuple[str, ...]:
    """Class names given, or "0".."K-1" with K = max label + 1; every label must be in 0..K-1."""
    if class_names is None:
        num_classes = int(labels.max()) + 1
        names = tuple(str(c) for c in range(num_classes))
    else:
        names = tuple(str(c) for c in np.asarray(class_names).reshape(-1))
    bad = labels[(labels < 0) | (labels >= len(names))]
    if bad.size:
        raise InvalidInput(f"{y_name} must be in 0..{len(names) - 1} ({len(names)} classes), got {int(bad[0])}")
    return names


# --- loaders -------------------------------------------------------------------------------------

def _stratified_holdout(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Sorted indices of a seeded hold-out of ``size`` examples with class proportions kept (within 1)."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quotas = counts * size / len(labels)
    taken = np.floor(quotas).astype(int)
    remainders = quotas - taken
    # Largest remainders first; seeded random tie-breaks so no class is always favoured.
    order = np.lexsort((rng.permutation(len(classes)), -remainders))
    taken[order[:size - taken.sum()]] += 1
    held = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, taken)]
    return np.sort(np.concatenate(held))


@functools.lru_cache(maxsize=1)
def _demo_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The demo's images, labels and sorted test indices: a seeded draw of the same number per class.

    The source holds 284 pairs of identical images; test images are drawn
    among images that occur once, so no test image is also a training image.
    """
    with np.load(DEMO_PATH, allow_pickle=False) as arrays:
        x, y = _check_arrays(arrays["x"], arrays["y"], "x", "y")
    rows = np.ascontiguousarray(x).reshape(len(x), -1)
    rows = rows.view(np.dtype((np.void, rows.shape[1]))).ravel()  # one opaque value per image: fast np.unique
    _, inverse, counts = np.unique(rows, return_inverse=True, return_counts=True)
    unique = counts[inverse.reshape(-1)] == 1
    rng = np.random.default_rng(DEMO_SPLIT_SEED)
    per_class = DEMO_TEST_SIZE // len(DEMO_CLASS_NAMES)
    test = [rng.permutation(np.flatnonzero(unique & (y == c)))[:per_class] for c in range(len(DEMO_CLASS_NAMES))]
    for arr in (x, y):
        arr.flags.writeable = False
    return x, y, np.sort(np.concatenate(test))


def _load_demo(split: str) -> ImageDataset:
    x, y, test = _demo_arrays()
    if split == "test":
        chosen = test
    elif split == "train":
        chosen = np.setdiff1d(np.arange(len(y)), test)
    else:
        raise MissingSplit(f"the demo dataset has splits 'train' and 'test', got split {split!r}")
    return ImageDataset._of_arrays(f"{DEMO_DATASET}@{split}", x[chosen], y[chosen], DEMO_CLASS_NAMES)


def _offset(labels: np.ndarray, label_offset: int) -> np.ndarray:
    """``labels + label_offset`` without wrapping around small unsigned dtypes (uint8 labels, offset -1)."""
    labels = np.asarray(labels)
    return (labels.astype(np.int64) if np.issubdtype(labels.dtype, np.integer) else labels) + label_offset


def _load_npz(path: Path, split: str, label_offset: int) -> ImageDataset:
    """``x``/``y`` are the train split, ``x_<split>``/``y_<split>`` any other (``x_test``/``y_test``)."""
    x_key, y_key = ("x", "y") if split == "train" else (f"x_{split}", f"y_{split}")
    with np.load(path, allow_pickle=False) as arrays:
        keys = sorted(arrays.files)
        missing = [k for k in (x_key, y_key) if k not in keys]
        if missing:
            error = MissingSplit if len(missing) == 2 else InvalidInput  # one array alone is a broken split
            raise error(f"{path} has no {' or '.join(repr(k) for k in missing)} array for split {split!r}; "
                        f"it holds {keys}")
        x, y = _check_arrays(arrays[x_key], _offset(arrays[y_key], label_offset), x_key, y_key)
        names = arrays["class_names"] if "class_names" in keys else None
        if names is None:
            # Every split shares one label space: K = max label + 1 over all of them.
            label_keys = [k for k in keys if (k == "y" or k.startswith("y_")) and arrays[k].size]
            top = max(int(np.max(_offset(arrays[k], label_offset))) for k in label_keys)
            names = [str(c) for c in range(top + 1)]
    return ImageDataset._of_arrays(f"npz:{path}@{split}", x, y, _class_names(names, y, y_key))


def _split_root(directory: Path, split: str) -> Path:
    """``directory/split`` when ``directory`` holds split folders; else ``directory`` itself, the train split."""
    present = [name for name in SPLIT_DIRS if (directory / name).is_dir()]
    if present:
        if not (directory / split).is_dir():
            raise MissingSplit(f"{directory} has split folders {present}, none named {split!r}")
        return directory / split
    if split != "train":
        raise MissingSplit(f"{directory} holds a single split ('train'), not {split!r}: "
                           f"expected a folder {directory / split}")
    return directory


def _visible(entries) -> list[Path]:
    return sorted((p for p in entries if not p.name.startswith(".")), key=lambda p: p.name)


def _load_folder(directory: Path, split: str) -> ImageDataset:
    root = _split_root(directory, split)
    class_dirs = _visible(p for p in root.iterdir() if p.is_dir())
    if not class_dirs:
        raise InvalidInput(f"image folder {root} has no class sub-folders: expected {root}/<class>/<image>")
    paths, labels, listing = [], [], []
    for label, class_dir in enumerate(class_dirs):
        files = _visible(p for p in class_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise InvalidInput(f"class folder {class_dir} has no images ({', '.join(IMAGE_EXTENSIONS)})")
        for file in files:
            stat = file.stat()
            paths.append(str(file))
            labels.append(label)
            listing.append(f"{class_dir.name}/{file.name}:{stat.st_size}:{stat.st_mtime_ns}")
    class_names = tuple(p.name for p in class_dirs)
    fingerprint = _sha256("folder", *class_names, "\n".join(listing))
    source = _FileSource(np.array(paths), np.array(labels, dtype=np.int32))
    return ImageDataset(f"folder:{root}", fingerprint, len(class_names), class_names, len(paths), None, source)


def _is_record_file(path: Path) -> bool:
    """``*.tfrecord*``, or a shard of ImageNet's build script (``train-00000-of-01024``)."""
    name = path.name
    return path.is_file() and not name.startswith(".") and (".tfrecord" in name or "-of-" in name)


def _names_split(file_name: str, split: str) -> bool:
    """Whether ``split`` is a word of ``file_name``: ``train-00000-of-01024``, ``mnist_test.tfrecord``."""
    return re.search(rf"(^|[-_.]){re.escape(split)}([-_.]|$)", file_name) is not None


def _tfrecord_files(location: str, split: str) -> list[Path]:
    """The record files of ``split``: a file or glob is one split; a directory holds ``split/``,
    files with ``split`` as a word of their name, or (train, when no name has a split word) all its records."""
    if any(c in location for c in "*?["):
        files = [Path(p) for p in sorted(globlib.glob(os.path.expanduser(location))) if Path(p).is_file()]
        if not files:
            raise InvalidInput(f"TFRecord glob {location!r} matches no files")
    elif Path(location).expanduser().is_file():
        files = [Path(location).expanduser()]
    else:
        directory = Path(location).expanduser()
        if (directory / split).is_dir():
            files = _visible(p for p in (directory / split).iterdir() if _is_record_file(p))
        else:
            records = _visible(p for p in directory.iterdir() if _is_record_file(p))
            files = [p for p in records if _names_split(p.name, split)]
            if not files and split == "train" and not any(_names_split(p.name, s) for p in records for s in SPLIT_DIRS):
                files = records
        if not files:
            raise MissingSplit(f"TFRecord directory {directory} has no record files for split {split!r} "
                               f"(expected {directory / split}/*.tfrecord*, or {split} as a word of record file names "
                               f"like {split}-00000-of-00001 or data_{split}.tfrecord)")
        return [p.resolve() for p in files]
    if split != "train":
        raise MissingSplit(f"TFRecord source {location!r} holds a single split ('train'), not {split!r}")
    return [p.resolve() for p in files]


def _scan_tfrecords(files: list[Path], image_key: str, label_key: str, label_offset: int) -> np.ndarray:
    """One pass over the records: their labels (after ``label_offset``), checking both keys parse."""
    features = {image_key: tf.io.FixedLenFeature([], tf.string), label_key: tf.io.FixedLenFeature([], tf.int64)}
    batches = tf.data.TFRecordDataset([str(f) for f in files]).batch(4096)
    batches = batches.map(lambda records: tf.io.parse_example(records, features)[label_key])
    try:
        labels = [batch.numpy() for batch in batches]
    except tf.errors.DataLossError as error:
        raise InvalidInput(f"not a TFRecord file among {[str(f) for f in files]}: {error.message}") from None
    except tf.errors.InvalidArgumentError as error:
        raise InvalidInput(f"TFRecords must hold tf.train.Example with an encoded image under {image_key!r} and "
                           f"an integer label under {label_key!r}: {error.message}") from None
    if not labels:
        raise InvalidInput(f"TFRecord files {[str(f) for f in files]} hold no records")
    labels = np.concatenate(labels) + label_offset
    if labels.min() < 0:
        raise InvalidInput(f"TFRecord labels must be >= 0 after label_offset {label_offset}, got {labels.min()}")
    return labels.astype(np.int32)


def _load_tfrecords(location: str, split: str, image_key: str, label_key: str, label_offset: int) -> ImageDataset:
    files = _tfrecord_files(location, split)
    labels = _scan_tfrecords(files, image_key, label_key, label_offset)
    class_names = tuple(str(c) for c in range(int(labels.max()) + 1))
    stats = [f"{f}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files]
    fingerprint = _sha256("tfrecord", image_key, label_key, label_offset, *stats)
    source = _TFRecordSource(tuple(str(f) for f in files), labels, image_key, label_key, label_offset)
    return ImageDataset(f"tfrecord:{location}@{split}", fingerprint, len(class_names), class_names, len(labels),
                        None, source)


def _load_tfds(name: str, split: str, data_dir: str | None) -> ImageDataset:
    """A split of a tensorflow_datasets dataset already prepared in ``data_dir`` (tfds' default when None)."""
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise InvalidInput(f"tfds:{name} needs the tensorflow_datasets package, which is not installed; "
                           "install it and prepare the dataset in data_dir first (nothing is downloaded)") from None
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise InvalidInput(f"tensorflow_datasets knows no dataset {name!r}") from None
    if not tf.io.gfile.exists(os.path.join(builder.data_dir, "dataset_info.json")):
        raise InvalidInput(f"tfds dataset {name!r} is not prepared in {builder.data_dir}; nothing can be "
                           "downloaded: prepare it there first (tfds build --data_dir)")
    info = builder.info
    if split not in info.splits:
        raise MissingSplit(f"tfds dataset {name!r} has splits {sorted(info.splits)}, not {split!r}")
    if not info.supervised_keys:
        raise InvalidInput(f"tfds dataset {name!r} has no (image, label) supervised keys")
    image_feature, label_feature = info.supervised_keys[:2]
    raw = builder.as_dataset(split=split, shuffle_files=False,
                             decoders={image_feature: tfds.decode.SkipDecoding()})
    labels = np.concatenate([b.numpy() for b in raw.map(lambda e: e[label_feature]).batch(4096)]).astype(np.int32)
    label_info = info.features[label_feature]
    class_names = tuple(label_info.names)
    fingerprint = _sha256("tfds", info.full_name, str(info.version), split)
    shape = tuple(info.features[image_feature].shape)
    image_shape = shape if None not in shape else None
    return ImageDataset(f"tfds:{name}/{split}", fingerprint, len(class_names), class_names, len(labels),
                        image_shape, _TfdsSource(builder, split, labels))


def _source_kind(source: str) -> tuple[str, str]:
    """(kind, location) of a source string; a missing path is a ValueError naming the accepted forms."""
    if source == DEMO_DATASET:
        return "demo", ""
    prefix, colon, rest = source.partition(":")
    kind, location = (prefix, rest) if colon and prefix in ("tfds", "folder", "npz", "tfrecord") else ("", source)
    if kind == "tfds":
        if not location:
            raise InvalidInput(f"dataset source {source!r}: expected tfds:NAME")
        return kind, location
    if kind in ("", "tfrecord") and any(c in location for c in "*?["):
        return "tfrecord", location
    path = Path(location).expanduser()
    if not path.exists():
        raise MissingData(f"dataset source {source!r}: no such file or directory {str(path)!r}; "
                          f"expected one of {', '.join(SOURCE_FORMS)}")
    location = str(path.resolve())
    if not kind and path.is_file():
        kind = "npz" if path.suffix == ".npz" else "tfrecord"
    elif not kind:
        split_dirs = [path / name for name in SPLIT_DIRS if (path / name).is_dir()]
        has_records = any(_is_record_file(p) for d in [path, *split_dirs] for p in d.iterdir())
        kind = "tfrecord" if has_records else "folder"
    if kind == "folder" and not path.is_dir():
        raise InvalidInput(f"dataset source {source!r}: an image folder must be a directory, got {location!r}")
    if kind == "npz" and not path.is_file():
        raise InvalidInput(f"dataset source {source!r}: an npz source must be a file, got {location!r}")
    return kind, location


def load_dataset(source: str, *, split: str = "train", data_dir: str | None = None,
                 image_key: str = "image/encoded", label_key: str = "image/class/label",
                 label_offset: int = 0) -> ImageDataset:
    """One split of ``source`` (see the module docstring for its forms) as an :class:`ImageDataset`.

    ``label_offset`` is added to stored labels (npz, TFRecord; ``-1`` for
    ImageNet's 1-based labels); ``image_key``/``label_key`` name the
    TFRecord features; ``data_dir`` is where tfds datasets are prepared.
    """
    kind, location = _source_kind(source)
    if label_offset and kind not in ("npz", "tfrecord"):
        raise InvalidInput(f"label_offset applies to npz and TFRecord sources, got {label_offset} for {source!r}")
    if kind != "tfrecord" and (image_key, label_key) != ("image/encoded", "image/class/label"):
        raise InvalidInput(f"image_key and label_key apply to TFRecord sources, got {image_key!r}, {label_key!r} "
                           f"for {source!r}")
    if data_dir is not None and kind != "tfds":
        raise InvalidInput(f"data_dir applies to tfds:NAME sources, got {data_dir!r} for {source!r}")
    if kind == "demo":
        return _load_demo(split)
    if kind == "npz":
        return _load_npz(Path(location), split, label_offset)
    if kind == "folder":
        return _load_folder(Path(location), split)
    if kind == "tfrecord":
        return _load_tfrecords(location, split, image_key, label_key, label_offset)
    return _load_tfds(location, split, data_dir)


# --- mini-train / mini-val -----------------------------------------------------------------------

def split_train_val(ds: ImageDataset, *, val_size: int | None = None, val_fraction: float | None = None,
                    seed: int = 0) -> tuple[ImageDataset, ImageDataset]:
    """Seeded stratified (mini_train, mini_val) split of ``ds``, the paper's held-out mini-val.

    Give ``val_size`` (examples) or ``val_fraction`` (of ``ds``), not both;
    neither means ``val_fraction`` :data:`DEFAULT_VAL_FRACTION`. Each class
    is in mini-val in proportion (within one example). Both halves keep
    ``ds``'s order; they are disjoint and together are all of ``ds``.
    """
    n = ds.num_examples
    if val_size is not None and val_fraction is not None:
        raise InvalidInput(f"give val_size or val_fraction, not both (got {val_size!r} and {val_fraction!r})")
    if val_size is None:
        fraction = DEFAULT_VAL_FRACTION if val_fraction is None else val_fraction
        if not 0.0 < fraction < 1.0:
            raise InvalidInput(f"val_fraction must be in (0, 1), got {fraction!r}")
        val_size = int(round(n * fraction))
        if not 0 < val_size < n:
            raise InvalidInput(f"val_fraction {fraction!r} of {n} examples leaves an empty mini-train or mini-val")
    elif isinstance(val_size, bool) or not isinstance(val_size, (int, np.integer)) or not 0 < val_size < n:
        raise InvalidInput(f"val_size must be an integer in [1, {n - 1}] for {ds.name} ({n} examples), "
                           f"got {val_size!r}")
    val = _stratified_holdout(labels_array(ds), int(val_size), seed)
    train = np.setdiff1d(np.arange(n), val)
    return ds.take_indices(train, "mini_train"), ds.take_indices(val, "mini_val")


# --- the input pipeline --------------------------------------------------------------------------

def _channel_conversion_error(have, channels: int) -> str | None:
    """Why images with ``have`` channels cannot become ``channels`` channels, or None if they can."""
    if have is None or have == channels or have == 1 or (have == 3 and channels == 1):
        return None
    return (f"cannot convert images with {have} channels to {channels} "
            "(supported: 1 -> C by tiling, 3 -> 1 by luminance)")


def _convert_channels(images: tf.Tensor, channels: int) -> tf.Tensor:
    """1 -> C by tiling, 3 -> 1 by luminance; any other change of channel count is an error. Rank 3 or 4."""
    have = images.shape[-1]
    if have == channels:
        return images
    if have == 1:
        return tf.repeat(images, channels, axis=-1)
    if have == 3 and channels == 1:
        return tf.image.rgb_to_grayscale(images)
    # Traced inside a dataset map: autograph re-raises only built-in exception types, so the user-facing
    # InvalidInput comes from _preprocessed's check before the map; this one catches what that cannot see.
    raise ValueError(_channel_conversion_error(have, channels))


def _preprocess(images: tf.Tensor, resolution: int, channels: int) -> tf.Tensor:
    """uint8 ([B,] H, W, C0) -> float32 ([B,] R, R, C) in [-1, 1]: channels, bilinear resize, normalize.

    Resizing is per channel, so it runs on the fewer channels: before 3 -> 1, after 1 -> C (same result).
    """
    images = tf.cast(images, tf.float32)
    if images.shape[-1] is not None and images.shape[-1] > channels:
        images = _convert_channels(images, channels)
    if tuple(images.shape[-3:-1]) != (resolution, resolution):
        images = tf.image.resize(images, [resolution, resolution], method="bilinear")
        images = tf.clip_by_value(images, 0.0, 255.0)  # bilinear is convex; this only absorbs rounding
        images.set_shape([*images.shape[:-3], resolution, resolution, images.shape[-1]])
    return normalize(_convert_channels(images, channels))


def _preprocessed(ds: ImageDataset, resolution: int, channels: int) -> tf.data.Dataset:
    """``ds.examples()`` preprocessed, in order; images of one known shape are processed in chunks (faster)."""
    examples = ds.examples()
    problem = _channel_conversion_error(examples.element_spec[0].shape[-1], channels)
    if problem is not None:
        raise InvalidInput(problem)
    if examples.element_spec[0].shape.is_fully_defined():
        chunks = examples.batch(PREPROCESS_CHUNK).map(
            lambda images, labels: (_preprocess(images, resolution, channels), labels),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return chunks.unbatch()
    return examples.map(lambda image, label: (_preprocess(image, resolution, channels), label),
                        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _augment(images: tf.Tensor, seed: tf.Tensor, resolution: int) -> tf.Tensor:
    """Per image of a batch (B, R, R, C): a random horizontal flip, then a random translation of up to
    resolution // 8 pixels each way with reflected borders (as ``tf.pad(mode="REFLECT")`` + random crop).

    Done as one index gather per axis: several times faster on CPU than flip, mirror-pad and crop ops.
    """
    pad = resolution // 8
    count = tf.shape(images)[0]
    flip_seed, shift_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    flip = tf.random.stateless_uniform([count, 1], flip_seed, maxval=2, dtype=tf.int32) == 1
    shifts = tf.random.stateless_uniform([count, 2], shift_seed, maxval=2 * pad + 1, dtype=tf.int32) - pad
    window = tf.range(resolution)
    last = resolution - 1

    def reflect(index):  # mirror positions outside [0, R) back inside, the edge pixel not repeated
        return last - tf.abs(last - tf.abs(index))

    rows = reflect(shifts[:, :1] + window)
    cols = reflect(shifts[:, 1:] + window)
    cols = tf.where(flip, last - cols, cols)  # sampling the flipped image at cols = the original at last - cols
    images = tf.gather(images, rows, axis=1, batch_dims=1)
    return tf.gather(images, cols, axis=2, batch_dims=1)


def _shuffle_buffer(ds: ImageDataset, resolution: int, channels: int) -> int:
    example_bytes = resolution * resolution * channels * 4
    return ds.num_examples if ds.num_examples * example_bytes <= SHUFFLE_BUFFER_BYTES else LARGE_SHUFFLE_BUFFER


def _cache(pipeline: tf.data.Dataset, cache: bool | str, ds: ImageDataset, resolution: int,
           channels: int) -> tf.data.Dataset:
    if cache is True:
        return pipeline.cache()
    if cache is False:
        return pipeline
    if not isinstance(cache, str) or not cache:
        raise InvalidInput(f"cache must be True, False or a file prefix, got {cache!r}")
    # The file holds preprocessed images: key it so a changed dataset or shape never reads a stale cache.
    return pipeline.cache(f"{cache}.{ds.fingerprint[:16]}.{resolution}x{resolution}x{channels}")


def _pipeline_options() -> tf.data.Options:
    """tf.data's autotuning off: ``AUTOTUNE`` parallelism and prefetching take TensorFlow's defaults (the cores).

    With autotuning on, an iterator's destructor waits for the autotuning thread to wake from its
    optimisation period: measured on TensorFlow 2.21 (``benchmarks/child_profile.py``), a Keras ``fit``
    returned 8 to 24 s after its last batch for 3 of 10 proxy children, as its iterator was deleted. Our
    pipelines cache the preprocessed examples in memory, so after the first epoch there is little to tune.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return options


_PIPELINE_OPTIONS = _pipeline_options()


def make_pipeline(ds: ImageDataset, *, resolution: int, channels: int, batch_size: int,
                  shuffle: bool = False, augment: bool = False, seed: int = 0,
                  extra: np.ndarray | None = None, cache: bool | str = True,
                  drop_remainder: bool = False) -> tf.data.Dataset:
    """Batches ``(images float32 (B, R, R, C) in [-1, 1], labels int32 (B,))`` of ``ds``.

    With ``extra`` (first dim = ``ds.num_examples``, rows in
    :meth:`ImageDataset.examples` order, e.g. cached teacher logits) batches
    are ``(images, labels, extra_rows)`` with rows kept with their examples.
    Steps: channels (1 -> C tiled, 3 -> 1 luminance), bilinear resize to R x R
    (skipped when already that size), :func:`normalize`, ``cache`` (True: in
    memory; str: a file prefix, suffixed with the fingerprint and shape),
    seeded ``shuffle`` reshuffled each epoch, batch, seeded ``augment`` of
    each image (flip + translation of up to R // 8 px), prefetch. Without
    shuffle and augment, the order is :meth:`ImageDataset.examples` order.
    """
    for label, value in (("resolution", resolution), ("channels", channels), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise InvalidInput(f"{label} must be a positive integer, got {value!r}")
    pipeline = _preprocessed(ds, resolution, channels)
    pipeline = _cache(pipeline, cache, ds, resolution, channels)
    if extra is not None:
        extra = np.asarray(extra)
        if extra.ndim == 0 or extra.shape[0] != ds.num_examples:
            raise InvalidInput(f"extra must have first dimension {ds.num_examples} (the examples of {ds.name}), "
                               f"got shape {extra.shape}")
        # Elements are ((image, label), extra_row) until batched: flattened once per batch, not per example.
        pipeline = tf.data.Dataset.zip((pipeline, tf.data.Dataset.from_tensor_slices(extra)))
    if shuffle:
        pipeline = pipeline.shuffle(_shuffle_buffer(ds, resolution, channels), seed=seed,
                                    reshuffle_each_iteration=True)
    pipeline = pipeline.batch(batch_size, drop_remainder=drop_remainder)
    if augment:
        def augment_batch(batch, batch_seed):
            if extra is None:
                return _augment(batch[0], batch_seed, resolution), batch[1]
            (images, labels), rows = batch
            return (_augment(images, batch_seed, resolution), labels), rows

        # Each batch draws a stateless seed from a seeded stream that changes every epoch: reproducible runs.
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2, drop_remainder=True)
        pipeline = tf.data.Dataset.zip((pipeline, seeds)).map(
            augment_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if extra is not None:
        pipeline = pipeline.map(lambda pair, rows: (*pair, rows))
    return pipeline.prefetch(tf.data.AUTOTUNE).with_options(_PIPELINE_OPTIONS)


# --- what a trainer gets -------------------------------------------------------------------------

DEFAULT_RESOLUTION = 224  # for sources whose images have no single size (folders, TFRecords)


@dataclass(frozen=True)
class TrainingData:
    """A dataset's mini-train and mini-val, and the input shape students (and teachers) are fed at."""

    mini_train: ImageDataset
    mini_val: ImageDataset
    resolution: int
    channels: int

    @property
    def num_classes(self) -> int:
        return self.mini_train.num_classes

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.resolution, self.resolution, self.channels)

    def describe(self) -> str:
        return (f"{self.mini_train.name}: {self.mini_train.num_examples} mini-train / {self.mini_val.num_examples} "
                f"mini-val examples, {self.num_classes} classes, fed at {self.resolution}x{self.resolution}x"
                f"{self.channels}")


def load_training_data(source: str, *, data_dir: str | None = None, val_size: int | None = None,
                       val_fraction: float | None = None, split_seed: int = 0, resolution: int | None = None,
                       channels: int | None = None, min_resolution: int = 32,
                       **load_options) -> TrainingData:
    """Load the training split of ``source`` and carve mini-train / mini-val from it (the test split is never read).

    ``resolution`` defaults to the images' own size raised to ``min_resolution``
    (the search space's smallest input) when every image has one known shape
    (demo, npz, fixed-size tfds), else (folders, TFRecords, tfds of varying
    size: their images are not opened to find out) :data:`DEFAULT_RESOLUTION`;
    ``channels`` defaults to the images' own channels, else 3.
    """
    ds = load_dataset(source, split="train", data_dir=data_dir, **load_options)
    mini_train, mini_val = split_train_val(ds, val_size=val_size, val_fraction=val_fraction, seed=split_seed)
    native = ds.image_shape
    if resolution is None:
        resolution = max(min_resolution, max(native[:2])) if native else max(min_resolution, DEFAULT_RESOLUTION)
    if channels is None:
        channels = native[-1] if native else ENCODED_CHANNELS
    if resolution < 1 or channels < 1:
        raise InvalidInput(f"resolution and channels must be positive, got {resolution!r} and {channels!r}")
    return TrainingData(mini_train, mini_val, int(resolution), int(channels))
