"""Controller overhead: a controller's time per 1,000 architectures against one child's proxy training.

Each controller runs --archs archs as the search loop drives it: per step it
proposes --batch archs, learns from their rewards (a cheap deterministic
stand-in: no child is evaluated) and serializes its state. Its first step
(TensorFlow tracing for PPO) is timed apart; the steady-state seconds per
1,000 archs are split into propose, update and state_bytes.

The baseline, in the same process: one child of the search, proxy-trained as
the loop would evaluate it: ``akd_tf.distill.proxy_train`` of a seeded random
arch with hard labels (no teacher), --child-epochs epochs (default 1; the
paper's proxy task has 5) on the bundled demo data at 32x32x1, batch 128, then
scored on mini-val. One untimed child runs first, so TensorFlow's one-off
start-up costs land on neither side.

    .venv/bin/python benchmarks/controller_overhead.py [--archs 1000 --batch 8 --child-epochs 1 --seed 0]

The headline (PPO's time per 1,000 archs as a share of one child's training)
is printed last.
"""

from __future__ import annotations

import argparse
import time

from akd_tf import data
from akd_tf.distill import DistillSettings, TrainSettings, proxy_train
from akd_tf.space import SearchSpace, get_space
from search.controller import controller_names, make_controller
from search.controller_base import Controller

PARTS = ("propose", "update", "state")


def stand_in_rewards(proposals) -> list[float]:
    """A deterministic reward in [0, 1] per proposal: the share of decisions at their first value."""
    return [sum(t == 0 for t in p.tokens) / len(p.tokens) for p in proposals]


def loop_step(controller: Controller, step: int, batch: int) -> dict[str, float]:
    """Seconds of one search-loop step's controller calls, by part."""
    start = time.perf_counter()
    proposals = controller.propose(step, batch)
    proposed = time.perf_counter()
    controller.update(step, [p.tokens for p in proposals], stand_in_rewards(proposals))
    updated = time.perf_counter()
    controller.state_bytes()
    return {"propose": proposed - start, "update": updated - proposed, "state": time.perf_counter() - updated}


def time_controller(name: str, space: SearchSpace, seed: int, archs: int, batch: int) -> tuple[float, dict]:
    """(seconds of construction plus the first step, steady-state seconds by part for ``archs`` archs)."""
    start = time.perf_counter()
    controller = make_controller(name, space, seed)
    loop_step(controller, 0, batch)
    first = time.perf_counter() - start
    totals = dict.fromkeys(PARTS, 0.0)
    for step in range(1, -(-archs // batch) + 1):
        for part, seconds in loop_step(controller, step, batch).items():
            totals[part] += seconds
    return first, totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=int, default=1000, help="archs per controller (timed after the first step)")
    parser.add_argument("--batch", type=int, default=8, help="archs per controller step")
    parser.add_argument("--child-epochs", type=int, default=1, help="proxy-training epochs of the baseline child")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    space = get_space()

    per_1000 = {}
    for name in controller_names():
        first, totals = time_controller(name, space, args.seed, args.archs, args.batch)
        per_1000[name] = sum(totals.values()) * 1000 / args.archs
        parts = ", ".join(f"{part} {totals[part] * 1000 / args.archs:.2f} s" for part in PARTS)
        print(f"{name:10s}: {per_1000[name]:6.2f} s per 1,000 archs ({parts}); first step {first:.1f} s", flush=True)

    arch = space.sample_many(1, seed=args.seed)[0]
    training = data.load_training_data(data.DEMO_DATASET, resolution=32)
    train = TrainSettings(epochs=args.child_epochs, seed=args.seed, validate_every_epoch=False)
    proxy_train(arch, None, training, settings=DistillSettings.hard_label(), train=train)  # untimed warm-up
    child = proxy_train(arch, None, training, settings=DistillSettings.hard_label(), train=train)
    print(f"child: {arch.to_string()}")
    print(f"  proxy-trained with hard labels (no teacher) for {child.epochs} epoch(s), batch {train.batch_size}, on "
          f"{training.describe()}: {child.seconds:.1f} s ({child.examples_per_s:.0f} examples/s), "
          f"mini-val top-1 {child.top1:.3f}")
    for name in controller_names():
        print(f"{name:10s}: {per_1000[name] / child.seconds:.1%} of one child's training per 1,000 archs")
    print(f"controller time per 1,000 archs = {per_1000['ppo'] / child.seconds:.1%} of one child's training "
          f"(PPO at batch {args.batch}: {per_1000['ppo']:.2f} s; one {child.epochs}-epoch child {child.seconds:.1f} s)")


if __name__ == "__main__":
    main()
