"""Dataset loaders, the mini-train / mini-val split and the input pipeline (akd_tf.data)."""

import hashlib
import sys

import numpy as np
import pytest

import akd_tf.tf_env  # noqa: F401
import tensorflow as tf

from akd_tf import data
from akd_tf.data import ImageDataset, labels_array, load_dataset, make_pipeline, normalize, split_train_val


def indexed_dataset(labels, name="indexed") -> ImageDataset:
    """Example i is a 2x2 grayscale image whose pixels spell i (base 256), so pipelines can be traced."""
    n = len(labels)
    x = np.zeros((n, 2, 2), dtype=np.uint8)
    x[:, 0, 0], x[:, 0, 1] = np.arange(n) // 256, np.arange(n) % 256
    return ImageDataset.from_arrays(x, np.asarray(labels), name=name)


def example_ids(ds: ImageDataset) -> np.ndarray:
    images = np.stack([image.numpy() for image, _ in ds.examples()])
    return images[:, 0, 0, 0].astype(int) * 256 + images[:, 0, 1, 0]


def all_examples(ds: ImageDataset) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of a dataset whose images share one shape, read in large batches (fast)."""
    images, labels = zip(*((i.numpy(), y.numpy()) for i, y in ds.examples().batch(4096)))
    return np.concatenate(images), np.concatenate(labels)


def batches(pipeline):
    return [tuple(t.numpy() for t in batch) for batch in pipeline]


def image_hash(image: np.ndarray) -> str:
    return hashlib.sha256(image.tobytes()).hexdigest()


def write_png(path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tf.io.encode_png(image).numpy())


# --- normalize -----------------------------------------------------------------------------------

def test_normalize_maps_0_255_to_minus_one_one_exactly():
    out = normalize(np.array([0, 255], dtype=np.uint8)).numpy()
    assert out.dtype == np.float32 and out.tolist() == [-1.0, 1.0]
    assert normalize(np.array([0.0, 127.5, 255.0])).numpy().tolist() == [-1.0, 0.0, 1.0]


# --- demo ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo():
    return load_dataset("demo"), load_dataset("demo", split="test")


def test_demo_splits_are_balanced_and_described(demo):
    train, test = demo
    assert (train.num_examples, test.num_examples) == (8000, 2000)
    assert np.bincount(labels_array(train)).tolist() == [800] * 10
    assert np.bincount(labels_array(test)).tolist() == [200] * 10
    assert train.class_names == ("bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep",
                                 "zebra")
    assert train.num_classes == test.num_classes == 10
    assert train.image_shape == test.image_shape == (28, 28, 1)
    assert (train.name, test.name) == ("demo@train", "demo@test")
    image, label = next(iter(train.examples()))
    assert (image.shape, image.dtype, label.shape, label.dtype) == ((28, 28, 1), tf.uint8, (), tf.int32)
    assert train.fingerprint != test.fingerprint and len(train.fingerprint) == 64
    assert load_dataset("demo").fingerprint == train.fingerprint


def test_demo_test_images_never_appear_in_train_and_together_they_are_the_bundle(demo):
    train, test = demo
    train_pairs = [(image_hash(i), int(y)) for i, y in zip(*all_examples(train))]
    test_pairs = [(image_hash(i), int(y)) for i, y in zip(*all_examples(test))]
    assert not {h for h, _ in train_pairs} & {h for h, _ in test_pairs}
    with np.load(data.DEMO_PATH, allow_pickle=False) as arrays:
        bundle = sorted((image_hash(x[..., None]), int(y)) for x, y in zip(arrays["x"], arrays["y"]))
    assert sorted(train_pairs + test_pairs) == bundle


def test_demo_rejects_other_splits():
    with pytest.raises(ValueError, match=r"the demo dataset has splits 'train' and 'test', got split 'val'"):
        load_dataset("demo", split="val")


# --- npz -----------------------------------------------------------------------------------------

def test_npz_round_trips_images_labels_and_splits(tmp_path):
    x = np.arange(3 * 2 * 2, dtype=np.uint8).reshape(3, 2, 2)
    x_test = np.full((2, 2, 2), 7.0, dtype=np.float32)
    path = tmp_path / "d.npz"
    np.savez(path, x=x, y=np.array([2, 3, 1], np.uint8), x_test=x_test, y_test=np.array([1.0, 2.0]),
             class_names=np.array(["a", "b", "c"]))
    train = load_dataset(str(path), label_offset=-1)
    assert [(i.numpy()[..., 0].tolist(), int(y)) for i, y in train.examples()] == [
        (x[0].tolist(), 1), (x[1].tolist(), 2), (x[2].tolist(), 0)]
    assert (train.class_names, train.num_classes, train.image_shape) == (("a", "b", "c"), 3, (2, 2, 1))
    assert train.name == f"npz:{path}@train"
    test = load_dataset(f"npz:{path}", split="test", label_offset=-1)
    assert labels_array(test).tolist() == [0, 1]
    assert [i.numpy().dtype for i, _ in test.examples()] == [np.uint8, np.uint8]
    assert int(next(iter(test.examples()))[0].numpy().max()) == 7


def test_npz_without_class_names_counts_classes_over_all_splits(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((2, 2, 2, 3), np.uint8), y=np.array([0, 1]),
             x_test=np.zeros((1, 2, 2, 3), np.uint8), y_test=np.array([4]))
    train = load_dataset(str(path))
    assert (train.num_classes, train.class_names, train.image_shape) == (5, ("0", "1", "2", "3", "4"), (2, 2, 3))


@pytest.mark.parametrize("arrays, split, message", [
    ({"images": np.zeros((2, 2, 2)), "y": np.zeros(2)}, "train",
     r"has no 'x' array for split 'train'; it holds \['images', 'y'\]"),
    ({"x": np.zeros((2, 2, 2)), "y": np.zeros(2)}, "test", r"has no 'x_test' or 'y_test' array for split 'test'"),
    ({"x": np.zeros((3, 2, 2)), "y": np.zeros(2)}, "train", r"x and y must have the same length, got 3 and 2"),
    ({"x": np.zeros((2, 2, 2)), "y": np.array([0, 3]), "class_names": np.array(["a", "b"])}, "train",
     r"y must be in 0\.\.1 \(2 classes\), got 3"),
    ({"x": np.zeros((2, 2, 2)), "y": np.array([0, -1])}, "train", r"y must be in 0\.\.0 \(1 classes\), got -1"),
    ({"x": np.zeros((2, 2, 2)), "y": np.array([0.0, 1.5])}, "train", r"y must hold integer labels, got 1\.5"),
    ({"x": np.full((2, 2, 2), 0.5), "y": np.array([0, 1])}, "train", r"scaled to \[0, 1\]\? multiply by 255"),
    ({"x": np.full((2, 2, 2), 300.0), "y": np.array([0, 1])}, "train", r"x must be in 0\.\.255, got values in"),
    ({"x": np.zeros((2, 2)), "y": np.array([0, 1])}, "train", r"x must have shape \(N, H, W\) or \(N, H, W, C\)"),
])
def test_npz_errors_name_the_problem(tmp_path, arrays, split, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=message):
        load_dataset(str(path), split=split)


# --- image folders -------------------------------------------------------------------------------

@pytest.fixture
def image_folder(tmp_path):
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 10
    gray = np.array([[[5], [6], [7]], [[8], [9], [10]]], dtype=np.uint8)
    write_png(tmp_path / "imgs" / "dog" / "b.png", rgb)
    write_png(tmp_path / "imgs" / "dog" / "a.png", gray)
    write_png(tmp_path / "imgs" / "cat" / "z.PNG", rgb[::-1])
    (tmp_path / "imgs" / "cat" / "notes.txt").write_text("not an image")
    return tmp_path / "imgs", rgb, gray


def test_folder_decodes_sorted_files_to_rgb_with_sorted_class_names(image_folder):
    root, rgb, gray = image_folder
    ds = load_dataset(str(root))
    assert (ds.class_names, ds.num_examples, ds.image_shape, ds.name) == (("cat", "dog"), 3, None, f"folder:{root}")
    got = [(i.numpy(), int(y)) for i, y in ds.examples()]
    expected = [(rgb[::-1], 0), (np.repeat(gray, 3, axis=-1), 1), (rgb, 1)]
    assert [y for _, y in got] == [y for _, y in expected]
    for (image, _), (want, _) in zip(got, expected):
        np.testing.assert_array_equal(image, want)


def test_folder_fingerprint_follows_the_files(image_folder):
    root, rgb, _ = image_folder
    before = load_dataset(str(root)).fingerprint
    assert load_dataset(f"folder:{root}").fingerprint == before
    write_png(root / "cat" / "y.png", rgb)
    assert load_dataset(str(root)).fingerprint != before


def test_folder_with_split_subfolders(tmp_path):
    pixel = np.zeros((1, 1, 3), np.uint8)
    for split, classes in (("train", ("a", "b")), ("test", ("a", "b"))):
        for name in classes:
            write_png(tmp_path / split / name / "0.png", pixel)
    write_png(tmp_path / "test" / "b" / "1.png", pixel)
    assert load_dataset(str(tmp_path)).num_examples == 2
    test = load_dataset(str(tmp_path), split="test")
    assert (test.num_examples, labels_array(test).tolist(), test.name) == (3, [0, 1, 1], f"folder:{tmp_path / 'test'}")
    with pytest.raises(ValueError, match=r"has split folders \['train', 'test'\], none named 'val'"):
        load_dataset(str(tmp_path), split="val")


def test_folder_errors(tmp_path, image_folder):
    root, _, _ = image_folder
    with pytest.raises(ValueError, match=r"holds a single split \('train'\), not 'test'"):
        load_dataset(str(root), split="test")
    (root / "emu").mkdir()
    (root / "emu" / "readme.md").write_text("")
    with pytest.raises(ValueError, match=r"class folder .*emu has no images \(\.jpg, \.jpeg, \.png, \.bmp, \.gif\)"):
        load_dataset(str(root))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"image folder .*empty has no class sub-folders"):
        load_dataset(str(tmp_path / "empty"))


def test_missing_path_names_it_and_the_accepted_forms(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(ValueError, match=rf"no such file or directory '{missing}'; expected one of 'demo', "
                                         r"an image folder .*a \.npz file, a TFRecord file, glob or directory, "
                                         r"'tfds:NAME'"):
        load_dataset(str(missing))


def test_options_for_other_sources_are_refused():
    with pytest.raises(ValueError, match=r"label_offset applies to npz and TFRecord sources, got -1 for 'demo'"):
        load_dataset("demo", label_offset=-1)
    with pytest.raises(ValueError, match=r"image_key and label_key apply to TFRecord sources"):
        load_dataset("demo", label_key="label")
    with pytest.raises(ValueError, match=r"data_dir applies to tfds:NAME sources, got '/x' for 'demo'"):
        load_dataset("demo", data_dir="/x")


# --- TFRecords -----------------------------------------------------------------------------------

def write_records(path, images, labels, image_key="image/encoded", label_key="image/class/label"):
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for image, label in zip(images, labels):
            features = {
                image_key: tf.train.Feature(bytes_list=tf.train.BytesList(value=[tf.io.encode_png(image).numpy()])),
                label_key: tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())


@pytest.fixture
def records(tmp_path):
    images = [np.full((2, 3, 3), 10 * i, np.uint8) for i in range(5)]
    write_records(tmp_path / "rec" / "train-00000-of-00002", images[:3], [1, 3, 2])
    write_records(tmp_path / "rec" / "train-00001-of-00002", images[3:], [1, 1])
    write_records(tmp_path / "rec" / "validation-00000-of-00001", images[:1], [4])
    return tmp_path / "rec", images


def test_tfrecords_round_trip_with_label_offset(records):
    directory, images = records
    ds = load_dataset(str(directory), label_offset=-1)
    assert (ds.num_examples, ds.num_classes, ds.class_names, ds.image_shape) == (5, 3, ("0", "1", "2"), None)
    got = [(i.numpy(), int(y)) for i, y in ds.examples()]
    assert [y for _, y in got] == [0, 2, 1, 0, 0]
    for (image, _), want in zip(got, images):
        np.testing.assert_array_equal(image, want)
    val = load_dataset(str(directory), split="validation", label_offset=-1)
    assert (val.num_examples, labels_array(val).tolist(), val.num_classes) == (1, [3], 4)
    one_file = load_dataset(str(directory / "train-00001-of-00002"))
    assert labels_array(one_file).tolist() == [1, 1]
    globbed = load_dataset(f"{directory}/train-*", label_offset=-1)
    assert (globbed.num_examples, globbed.fingerprint) == (5, ds.fingerprint)
    assert load_dataset(str(directory)).fingerprint != ds.fingerprint  # the offset changes the content


def test_tfrecord_directory_with_split_words_in_file_names(tmp_path):
    pixel = [np.zeros((1, 1, 3), np.uint8)]
    write_records(tmp_path / "mnist_train.tfrecord", pixel * 2, [0, 1])
    write_records(tmp_path / "mnist_test.tfrecord", pixel, [1])
    write_records(tmp_path / "trained.tfrecord", pixel, [2])  # "train" is not a word of this name
    assert load_dataset(str(tmp_path)).num_examples == 2
    assert labels_array(load_dataset(str(tmp_path), split="test")).tolist() == [1]


def test_tfrecord_subsets_keep_file_order(records):
    directory, images = records
    ds = load_dataset(f"tfrecord:{directory}", label_offset=-1)
    subset = ds.take_indices([1, 3, 4], "some")
    assert labels_array(subset).tolist() == [2, 0, 0]
    np.testing.assert_array_equal(np.stack([i.numpy() for i, _ in subset.examples()]),
                                  np.stack([images[1], images[3], images[4]]))
    with pytest.raises(ValueError, match=r"is read sequentially: take_indices needs increasing indices"):
        ds.take_indices([3, 1], "reversed")


def test_tfrecord_errors(records, tmp_path):
    directory, _ = records
    with pytest.raises(ValueError, match=r"an integer label under 'label'"):
        load_dataset(str(directory), label_key="label")
    with pytest.raises(ValueError, match=r"labels must be >= 0 after label_offset -2, got -1"):
        load_dataset(str(directory), label_offset=-2)
    with pytest.raises(ValueError, match=r"has no record files for split 'test'"):
        load_dataset(str(directory), split="test")
    with pytest.raises(ValueError, match=r"TFRecord glob '.*nothing-\*' matches no files"):
        load_dataset(f"{tmp_path}/nothing-*")
    with pytest.raises(ValueError, match=r"holds a single split \('train'\), not 'test'"):
        load_dataset(str(directory / "train-00001-of-00002"), split="test")
    (tmp_path / "junk.bin").write_bytes(b"not a record at all, just some bytes")
    with pytest.raises(ValueError, match=r"not a TFRecord file among"):
        load_dataset(str(tmp_path / "junk.bin"))


def test_tfds_without_the_package_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # as if not installed
    with pytest.raises(ValueError, match=r"tfds:mnist needs the tensorflow_datasets package, which is not "
                                         r"installed; .*\(nothing is downloaded\)"):
        load_dataset("tfds:mnist", data_dir="/data/tfds")


# --- take_indices and split_train_val ------------------------------------------------------------

def test_take_indices_keeps_the_given_order_and_composes():
    ds = indexed_dataset([0, 1, 2, 0, 1, 2, 0])
    sub = ds.take_indices([5, 0, 3], "x")
    assert example_ids(sub).tolist() == [5, 0, 3] and labels_array(sub).tolist() == [2, 0, 0]
    assert (sub.name, sub.num_examples, sub.num_classes) == ("indexed[x]", 3, 3)
    assert example_ids(sub.take_indices([2, 0], "y")).tolist() == [3, 5]
    assert sub.fingerprint != ds.fingerprint != ds.take_indices([5, 0, 3], "other").fingerprint
    for bad, message in (([7], r"indices must be in \[0, 7\)"), ([1, 1], r"must not repeat, got 1 duplicates"),
                         ([], r"non-empty 1-D array of integers"), ([0.5], r"non-empty 1-D array of integers")):
        with pytest.raises(ValueError, match=message):
            ds.take_indices(bad, "bad")


def test_split_is_stratified_disjoint_complete_and_seeded():
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    ds = indexed_dataset(np.random.default_rng(1).permutation(labels))
    train, val = split_train_val(ds, val_size=25, seed=3)
    train_ids, val_ids = example_ids(train), example_ids(val)
    assert (train.num_examples, val.num_examples) == (75, 25)
    assert sorted(train_ids.tolist() + val_ids.tolist()) == list(range(100))
    assert train_ids.tolist() == sorted(train_ids) and val_ids.tolist() == sorted(val_ids)  # ds order kept
    val_counts = np.bincount(labels_array(val), minlength=3)
    assert np.all(np.abs(val_counts - np.array([50, 30, 20]) * 25 / 100) < 1) and val_counts.sum() == 25
    assert np.array_equal(labels_array(val), labels_array(ds)[val_ids])
    assert (train.name, val.name) == ("indexed[mini_train]", "indexed[mini_val]")
    again_train, again_val = split_train_val(ds, val_size=25, seed=3)
    assert example_ids(again_val).tolist() == val_ids.tolist() and again_val.fingerprint == val.fingerprint
    other_train, other_val = split_train_val(ds, val_size=25, seed=4)
    assert example_ids(other_val).tolist() != val_ids.tolist()
    assert len({train.fingerprint, val.fingerprint, other_train.fingerprint, other_val.fingerprint}) == 4


def test_split_sizes_from_fraction_and_default(demo):
    train, _ = demo
    mini_train, mini_val = split_train_val(train)
    assert (mini_train.num_examples, mini_val.num_examples) == (6400, 1600)
    assert np.bincount(labels_array(mini_val)).tolist() == [160] * 10
    assert split_train_val(train, val_fraction=0.05)[1].num_examples == 400


@pytest.mark.parametrize("kwargs, message", [
    ({"val_size": 10, "val_fraction": 0.1}, r"give val_size or val_fraction, not both \(got 10 and 0\.1\)"),
    ({"val_size": 0}, r"val_size must be an integer in \[1, 9\] for indexed \(10 examples\), got 0"),
    ({"val_size": 10}, r"val_size must be an integer in \[1, 9\] for indexed \(10 examples\), got 10"),
    ({"val_size": 2.5}, r"val_size must be an integer in \[1, 9\].*got 2\.5"),
    ({"val_fraction": 1.0}, r"val_fraction must be in \(0, 1\), got 1\.0"),
    ({"val_fraction": 0.0}, r"val_fraction must be in \(0, 1\), got 0\.0"),
    ({"val_fraction": 0.01}, r"val_fraction 0\.01 of 10 examples leaves an empty mini-train or mini-val"),
])
def test_split_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        split_train_val(indexed_dataset([0, 1] * 5), **kwargs)


# --- make_pipeline -------------------------------------------------------------------------------

def test_pipeline_resizes_tiles_channels_and_normalizes(demo):
    train, _ = demo
    subset = train.take_indices(range(10), "first10")
    (images, labels), (last_images, _) = batches(make_pipeline(subset, resolution=32, channels=3, batch_size=8))
    assert (images.shape, images.dtype, labels.dtype, last_images.shape) == (
        (8, 32, 32, 3), np.float32, np.int32, (2, 32, 32, 3))
    assert images.min() >= -1.0 and images.max() <= 1.0 and images.min() == -1.0
    np.testing.assert_array_equal(images[..., 0], images[..., 2])
    assert labels.tolist() == labels_array(subset)[:8].tolist()
    raw = all_examples(subset)[0]
    (same_size, _), _ = batches(make_pipeline(subset, resolution=28, channels=1, batch_size=8))
    np.testing.assert_array_equal(same_size, raw[:8].astype(np.float32) / 127.5 - 1.0)
    expected = tf.image.resize(raw[:8].astype(np.float32), [32, 32]).numpy() / 127.5 - 1.0
    np.testing.assert_allclose(images[..., :1], expected, atol=1e-6)


def test_pipeline_converts_rgb_to_luminance_and_rejects_other_channel_counts():
    rgb = np.zeros((2, 4, 4, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 255, 100, 10
    ds = ImageDataset.from_arrays(rgb, np.array([0, 1]))
    [(images, _)] = batches(make_pipeline(ds, resolution=4, channels=1, batch_size=2))
    expected = (0.2989 * 255 + 0.587 * 100 + 0.114 * 10) / 127.5 - 1.0
    assert images.shape == (2, 4, 4, 1)
    np.testing.assert_allclose(images, expected, atol=1e-5)
    two = ImageDataset.from_arrays(np.zeros((2, 4, 4, 2), np.uint8), np.array([0, 1]))
    with pytest.raises(ValueError, match=r"cannot convert images with 2 channels to 3"):
        make_pipeline(two, resolution=4, channels=3, batch_size=2)


def test_pipeline_batches_and_drop_remainder():
    ds = indexed_dataset(list(range(10)))
    sizes = [len(b[1]) for b in batches(make_pipeline(ds, resolution=2, channels=1, batch_size=4))]
    dropped = [len(b[1]) for b in batches(make_pipeline(ds, resolution=2, channels=1, batch_size=4,
                                                        drop_remainder=True))]
    assert (sizes, dropped) == ([4, 4, 2], [4, 4])
    order = np.concatenate([b[1] for b in batches(make_pipeline(ds, resolution=2, channels=1, batch_size=4))])
    assert order.tolist() == list(range(10))  # no shuffle: examples() order


def test_pipelines_run_without_tf_data_autotuning():
    # with it, deleting an iterator waited for the autotuning thread: a fit returned up to 24 s after its last batch
    ds = indexed_dataset(list(range(10)))
    for augment in (False, True):
        pipeline = make_pipeline(ds, resolution=2, channels=1, batch_size=4, shuffle=True, augment=augment)
        assert pipeline.options().autotune.enabled is False
    assert make_pipeline(ds, resolution=2, channels=1, batch_size=4).options().autotune.enabled is False


def test_extra_rows_stay_with_their_examples_under_shuffle():
    labels = np.arange(50) % 5
    ds = indexed_dataset(labels)
    extra = np.eye(5, dtype=np.float32)[labels] * 1000 + np.arange(50, dtype=np.float32)[:, None]
    pipeline = make_pipeline(ds, resolution=2, channels=1, batch_size=8, shuffle=True, seed=7, extra=extra)
    seen = []
    for epoch in range(2):
        epoch_ids = []
        for images, batch_labels, rows in batches(pipeline):
            ids = np.rint((images[:, 0, 0, 0] + 1) * 127.5).astype(int) * 256 + np.rint(
                (images[:, 0, 1, 0] + 1) * 127.5).astype(int)
            np.testing.assert_array_equal(rows, extra[ids])
            np.testing.assert_array_equal(batch_labels, labels[ids])
            epoch_ids.extend(ids.tolist())
        assert sorted(epoch_ids) == list(range(50))
        seen.append(epoch_ids)
    assert seen[0] != seen[1] and seen[0] != list(range(50))  # shuffled, and reshuffled each epoch
    with pytest.raises(ValueError, match=r"extra must have first dimension 50 .*got shape \(49, 5\)"):
        make_pipeline(ds, resolution=2, channels=1, batch_size=8, extra=extra[:49])


def test_shuffle_and_augment_are_seeded(demo):
    train, _ = demo
    subset = train.take_indices(range(0, 8000, 125), "every125th")  # all classes

    def first_batch(seed, augment=True, shuffle=True):
        pipeline = make_pipeline(subset, resolution=32, channels=1, batch_size=64, shuffle=shuffle,
                                 augment=augment, seed=seed)
        return batches(pipeline)[0]

    a, b, c = first_batch(0), first_batch(0), first_batch(1)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])
    plain, augmented = first_batch(0, augment=False, shuffle=False), first_batch(0, shuffle=False)
    np.testing.assert_array_equal(plain[1], augmented[1])  # labels untouched
    changed = [not np.array_equal(p, q) for p, q in zip(plain[0], augmented[0])]
    assert sum(changed) > 32
    assert augmented[0].min() >= -1.0 and augmented[0].max() <= 1.0


def test_augment_only_flips_and_translates():
    constant = ImageDataset.from_arrays(np.full((4, 16, 16), 51, np.uint8), np.arange(4))
    [(images, _)] = batches(make_pipeline(constant, resolution=16, channels=1, batch_size=4, augment=True))
    np.testing.assert_array_equal(images, np.full((4, 16, 16, 1), 51 / 127.5 - 1.0, np.float32))
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, size=(32, 16, 16), dtype=np.uint8)
    ds = ImageDataset.from_arrays(raw, np.zeros(32, int))
    [(images, _)] = batches(make_pipeline(ds, resolution=16, channels=1, batch_size=32, augment=True, seed=5))
    pad = 16 // 8
    shifted = 0
    for original, got in zip(raw, np.rint((images[..., 0] + 1) * 127.5).astype(np.uint8)):
        candidates = {(flip, dy, dx): np.pad(original[:, ::-1] if flip else original, pad, mode="reflect")
                      [dy:dy + 16, dx:dx + 16] for flip in (False, True) for dy in range(5) for dx in range(5)}
        matches = [key for key, candidate in candidates.items() if np.array_equal(candidate, got)]
        assert matches, "augmented image is not a flipped/translated copy"
        shifted += matches[0][1:] != (pad, pad)
    assert shifted > 16


def test_cache_to_file_prefix_keys_the_file(tmp_path):
    ds = indexed_dataset([0, 1, 0, 1])
    pipeline = make_pipeline(ds, resolution=2, channels=1, batch_size=4, cache=str(tmp_path / "cache"))
    assert batches(pipeline)[0][1].tolist() == [0, 1, 0, 1]
    assert any(p.name.startswith(f"cache.{ds.fingerprint[:16]}.2x2x1") for p in tmp_path.iterdir())
    with pytest.raises(ValueError, match=r"cache must be True, False or a file prefix, got ''"):
        make_pipeline(ds, resolution=2, channels=1, batch_size=4, cache="")
    with pytest.raises(ValueError, match=r"batch_size must be a positive integer, got 0"):
        make_pipeline(ds, resolution=2, channels=1, batch_size=0)
