"""Train steps with convolutions computed by cheaper ops (:mod:`akd_tf.conv_gradients`), against TensorFlow's own
kernels.

Three measurements, each way in the same process, with a search's threads (one thread per op, as many ops side
by side as this process has cores: :func:`search.evaluate.configure_child_threads`):

* one 1152 -> 1280 pointwise convolution on a 1x1 map (a head on a 32x32 input), batch 32: the forward
  op, the built-in input and filter gradients, and the same gradients as matrix products;
* kernels larger than their maps (5x5 on a 1x1 and on a 2x2 map), batch 32: forward and every gradient,
  built in against the taps that touch the map;
* whole train steps (hard labels, batch 32, 32x32x3, the demo's 10 classes) of ``--children`` random
  children of ``--seed``, each timed ``--rounds`` times each way, alternating, after two warm-up steps.

    .venv/bin/python benchmarks/conv_gradients.py [--children 6 --seed 0 --rounds 2 --steps 20]

The headline (the mean train step, built in against rerouted, and their ratio) is printed last.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import akd_tf.tf_env  # noqa: F401
import tensorflow as tf
import tf_keras as keras

from akd_tf.conv_gradients import fast_conv_gradients
from akd_tf.distill import Distiller, make_optimizer
from akd_tf.models import build_student
from akd_tf.space import get_space
from akd_tf.train_settings import DistillSettings, TrainSettings
from search.evaluate import configure_child_threads

BATCH = 32


def _ms(fn, runs: int = 50) -> float:
    fn(), fn()
    start = time.perf_counter()
    for _ in range(runs):
        fn()
    return (time.perf_counter() - start) / runs * 1000


def one_layer() -> None:
    x = tf.random.normal((BATCH, 1, 1, 1152))
    w = tf.random.normal((1, 1, 1152, 1280))
    dy = tf.random.normal((BATCH, 1, 1, 1280))
    rows_x, rows_dy, w2 = tf.reshape(x, (BATCH, 1152)), tf.reshape(dy, (BATCH, 1280)), tf.reshape(w, (1152, 1280))
    strides = [1, 1, 1, 1]
    times = {
        "forward": tf.function(lambda: tf.nn.conv2d(x, w, 1, "SAME")),
        "input gradient, built in": tf.function(lambda: tf.raw_ops.Conv2DBackpropInput(
            input_sizes=tf.shape(x), filter=w, out_backprop=dy, strides=strides, padding="SAME")),
        "input gradient, product": tf.function(lambda: tf.matmul(rows_dy, w2, transpose_b=True)),
        "filter gradient, built in": tf.function(lambda: tf.raw_ops.Conv2DBackpropFilter(
            input=x, filter_sizes=tf.shape(w), out_backprop=dy, strides=strides, padding="SAME")),
        "filter gradient, product": tf.function(lambda: tf.matmul(rows_x, rows_dy, transpose_a=True)),
    }
    print(f"1152 -> 1280 pointwise convolution on a 1x1 map, batch {BATCH}:")
    for name, fn in times.items():
        print(f"  {name:26s} {_ms(fn):7.2f} ms")


def cropped_kernels() -> None:
    for size, channels in ((1, 200), (2, 100)):
        inputs = keras.Input((size, size, channels))
        model = keras.Model(inputs, keras.layers.Conv2D(channels, 5, padding="same", use_bias=False)(inputs))
        x = tf.random.normal((BATCH, size, size, channels))

        def gradients(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(tf.square(model(x, training=True)))
            return tape.gradient(loss, [x, *model.trainable_variables])

        built_in = tf.function(gradients)
        with fast_conv_gradients(model):
            rerouted = tf.function(gradients)
            rerouted(x)
        print(f"{channels} -> {channels} 5x5 convolution on a {size}x{size} map, batch {BATCH}, forward and "
              f"gradients: built in {_ms(lambda: built_in(x)):.2f} ms, touching taps {_ms(lambda: rerouted(x)):.2f} ms")


def step_ms(arch, rerouted: bool, steps: int) -> float:
    """Mean train step of a fresh student of ``arch`` (ms), its gradients rerouted or not."""
    keras.backend.clear_session()
    student = build_student(arch, (32, 32, 3), 10)
    model = Distiller(student, 10, DistillSettings.hard_label())
    model.compile(optimizer=make_optimizer(TrainSettings(batch_size=BATCH), 10))
    batch = (tf.random.normal((BATCH, 32, 32, 3)), tf.zeros((BATCH,), tf.int32))
    iterator = iter(tf.data.Dataset.from_tensors(batch).repeat())
    with fast_conv_gradients(student) if rerouted else contextlib.nullcontext():
        train = model.make_train_function()
        train(iterator), train(iterator)
        start = time.perf_counter()
        for _ in range(steps):
            logs = train(iterator)
        float(logs["loss"])
    return (time.perf_counter() - start) / steps * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    configure_child_threads(None)
    one_layer()
    cropped_kernels()
    built_in, rerouted = [], []
    for number, arch in enumerate(get_space().sample_many(args.children, args.seed), start=1):
        times = {False: [], True: []}
        for _ in range(args.rounds):
            for way in (False, True):
                times[way].append(step_ms(arch, way, args.steps))
        built_in.append(statistics.mean(times[False]))
        rerouted.append(statistics.mean(times[True]))
        print(f"child {number}: train step {built_in[-1]:.1f} ms built in, {rerouted[-1]:.1f} ms rerouted", flush=True)
    before, after = statistics.mean(built_in), statistics.mean(rerouted)
    print(f"mean train step over {len(built_in)} children: {before:.1f} ms built in, {after:.1f} ms rerouted "
          f"({before / after:.2f}x)")


if __name__ == "__main__":
    main()
