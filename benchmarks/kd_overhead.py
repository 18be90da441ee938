"""KD overhead: proxy-training speed with a cached teacher and an online teacher, against hard labels.

One student architecture is proxy-trained on the demo data (mini-train /
mini-val of the bundled animal-mnist at 32x32x1, the demo resolution) three
ways, interleaved and repeated in this process:

* ``hard``: alpha = 0, no teacher (conventional NAS);
* ``cached``: KD with the teacher's logits read from the teacher-output cache
  (filled once before timing; that one-off cost is reported separately);
* ``online``: KD with the teacher run on every batch (the paper's setting).

The teacher is a CIFAR ResNet-20 (random weights: speed does not depend on
what it learned). Throughput is mini-train examples per second of ``fit``
(training plus the final mini-val pass); a child's seconds are the whole
``proxy_train`` call. Ratios are median child time of a KD mode over the
median of ``hard``.

    .venv/bin/python benchmarks/kd_overhead.py [--epochs 5] [--repeats 2] [--arch ARCH]

The headline (cached and online time ratios) is printed last.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import akd_tf  # noqa: F401
from akd_tf import data
from akd_tf.distill import DistillSettings, TrainSettings, proxy_train
from akd_tf.space import get_space
from akd_tf.teacher_cache import teacher_outputs
from akd_tf.teachers import build_teacher_model, load_teacher

MODES = ("hard", "cached", "online")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="proxy epochs per child (the paper's 5)")
    parser.add_argument("--repeats", type=int, default=2, help="children per mode")
    parser.add_argument("--arch", default=None, help="student architecture (default: a seeded random sample)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    space = get_space()
    arch = space.parse(args.arch) if args.arch else space.sample_many(1, seed=args.seed)[0]
    training = data.load_training_data(data.DEMO_DATASET, min_resolution=space.min_resolution)
    print(f"student {arch.to_string()}")
    print(training.describe())

    with tempfile.TemporaryDirectory() as tmp:
        teacher_path = Path(tmp) / "teacher.keras"
        build_teacher_model("resnet20", training.input_shape, training.num_classes, seed=args.seed).save(teacher_path)
        teacher = load_teacher(teacher_path)
        cache_dir = Path(tmp) / "cache"
        fill = sum(teacher_outputs(teacher, split, resolution=training.resolution, channels=training.channels,
                                   cache_dir=cache_dir).seconds for split in (training.mini_train, training.mini_val))
        print(f"teacher-output cache filled once in {fill:.1f} s (ResNet-20 on {training.mini_train.num_examples} + "
              f"{training.mini_val.num_examples} images)")
        print("the teacher has random weights (speed only): KD children's top-1 against labels is chance by design")

        runs = {mode: [] for mode in MODES}
        train = TrainSettings(epochs=args.epochs, seed=args.seed, validate_every_epoch=False)
        # One untimed child per mode first: TensorFlow's one-off start-up costs would land on whichever ran first.
        for mode in MODES:
            proxy_train(arch, None if mode == "hard" else teacher, training,
                        settings=DistillSettings.hard_label() if mode == "hard" else DistillSettings(),
                        train=TrainSettings(epochs=1, seed=args.seed, validate_every_epoch=False),
                        cache_dir=cache_dir, use_cache=mode != "online")
        for repeat in range(args.repeats):
            for mode in MODES:
                settings = DistillSettings.hard_label() if mode == "hard" else DistillSettings()
                result = proxy_train(arch, None if mode == "hard" else teacher, training, settings=settings,
                                     train=train, cache_dir=cache_dir, use_cache=mode != "online")
                if mode == "cached" and not result.teacher_cache_hit:
                    raise RuntimeError("the cached run missed the teacher-output cache")
                runs[mode].append(result)
                print(f"  round {repeat + 1} {mode:6s}: {result.seconds:6.1f} s per child, "
                      f"{result.examples_per_s:6.0f} examples/s, mini-val top-1 {result.top1:.3f}", flush=True)

    seconds = {mode: statistics.median(r.seconds for r in runs[mode]) for mode in MODES}
    rate = {mode: statistics.median(r.examples_per_s for r in runs[mode]) for mode in MODES}
    for mode in MODES:
        print(f"{mode:6s}: median {seconds[mode]:.1f} s per child ({args.epochs} epochs), "
              f"{rate[mode]:.0f} examples/s")
    print(f"KD time per child vs hard labels: cached teacher {seconds['cached'] / seconds['hard']:.3f}x "
          f"(goal <= 1.15), online teacher {seconds['online'] / seconds['hard']:.3f}x")


if __name__ == "__main__":
    main()
