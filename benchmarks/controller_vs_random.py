"""Controllers against random search on a surrogate reward: how much better, and how much sooner.

No child is trained. Each architecture's "accuracy" is a fixed random
function of its tokens: z(linear weights . one-hot) + 0.5 z(sum of random
pairwise interaction terms) + 0.5 z(log MACs at 32x32x3, 10 classes), each
term standardized over 1,000 random archs, squashed by 0.5 + 0.45 sigmoid
into (0.5, 0.95). The reward is the real ``mnas-soft`` reward of that
accuracy and the latency the host's lookup table predicts, against a target
T = the median predicted latency of the same 1,000 random archs (printed).

PPO, evolution and random search each get the same budget of samples
(proposed --batch at a time, one controller step per batch) on each of
--seeds seeds. Reported per controller: the best reward found and the mean
reward of the last 10% of samples (mean +- std over seeds), and the samples
it needs to reach random's final best on the same seed (median over seeds;
"never" when more than half never do). Ratios are against random, run in this
process.

Needs the table built by benchmarks/lut_build.py.

    .venv/bin/python benchmarks/controller_vs_random.py [--budget 2000 --batch 8 --seeds 5]
        [--controllers ppo,evolution,random] [--ppo OPTION=VALUE ...] [--surrogate-seed 0] [--policy-lag 1]
        [--db URL]

--policy-lag 1 proposes each step before the controller has learnt from the step before, as a search with
several workers does (:class:`search.loop._Pipeline`), for every controller.

The headline (PPO's samples to random's final best, and its best and last-10%
rewards against random) is printed last.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from dataclasses import dataclass

import numpy as np

from akd_tf.plan import plan_network
from akd_tf.space import SearchSpace, get_space
from akd_tf.target import ModelTarget
from latency_db.predictor import LutPredictor
from latency_db.store import open_store
from search.controller import CONTROLLERS, make_controller
from search.rewards import compute_reward
from table_args import add_table_arguments

REFERENCE_ARCHS = 1000
INTERACTION_PAIRS = 32


def _standardize(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return (values - reference.mean()) / reference.std()


class SurrogateReward:
    """A fixed, seeded reward of tokens alone: surrogate accuracy times MnasNet's soft latency term."""

    def __init__(self, space: SearchSpace, predictor: LutPredictor, seed: int):
        self.space, self.predictor = space, predictor
        rng = np.random.default_rng([seed])
        width, decisions = space.onehot_width, space.decisions
        offsets = np.concatenate([[0], np.cumsum([d.size for d in decisions])[:-1]])
        self.linear = rng.normal(size=width)
        pairs = [rng.choice(len(decisions), size=2, replace=False) for _ in range(INTERACTION_PAIRS)]
        self.pairs = np.array([[offsets[d] + rng.integers(decisions[d].size) for d in pair] for pair in pairs])
        self.pair_weights = rng.normal(size=INTERACTION_PAIRS)
        reference = space.sample_many(REFERENCE_ARCHS, seed=seed + 1)
        self.reference_terms = self._raw_terms(reference)
        self.target_ms = float(np.median(predictor.predict_many_ms(reference)))
        self._memo: dict[tuple[int, ...], float] = {}

    def _raw_terms(self, archs) -> np.ndarray:
        """(n, 3): linear term, interaction term and log MACs of each arch."""
        onehot = np.stack([a.onehot() for a in archs])
        macs = [plan_network(a, self.predictor.target.input_shape, self.predictor.target.classes).macs for a in archs]
        interactions = (onehot[:, self.pairs[:, 0]] * onehot[:, self.pairs[:, 1]]) @ self.pair_weights
        return np.stack([onehot @ self.linear, interactions, np.log(macs)], axis=1)

    def accuracy(self, arch) -> float:
        terms = self._raw_terms([arch])[0]
        z = [_standardize(terms[i], self.reference_terms[:, i]) for i in range(3)]
        return float(0.5 + 0.45 / (1.0 + math.exp(-(z[0] + 0.5 * z[1] + 0.5 * z[2]))))

    def __call__(self, tokens: tuple[int, ...]) -> float:
        if tokens not in self._memo:
            arch = self.space.from_tokens(tokens)
            latency_ms = self.predictor.predict_ms(arch)
            self._memo[tokens] = compute_reward("mnas-soft", self.accuracy(arch), latency_ms=latency_ms,
                                                target_ms=self.target_ms)["reward"]
        return self._memo[tokens]


def run_search(name: str, space: SearchSpace, reward: SurrogateReward, seed: int, budget: int, batch: int,
               options: dict, lag: int = 0) -> np.ndarray:
    """Rewards of the ``budget`` archs one controller proposes, in proposal order. With ``lag`` 1, step s + 1
    is proposed before the controller learns from step s, as a search with several workers runs it (its
    proposals lag one update); with 0, each step after the update before it."""
    controller = make_controller(name, space, seed, **options)
    rewards: list[float] = []
    unlearnt: list[tuple[int, list]] = []  # proposed steps the controller has not learnt from yet
    proposed = step = 0
    while proposed < budget or unlearnt:
        while len(unlearnt) <= lag and proposed < budget:
            proposals = controller.propose(step, min(batch, budget - proposed))
            controller.remember_proposed(step, [p.tokens for p in proposals])  # as the search does
            unlearnt.append((step, proposals))
            proposed, step = proposed + len(proposals), step + 1
        learning, proposals = unlearnt.pop(0)
        batch_rewards = [reward(p.tokens) for p in proposals]
        controller.update(learning, [p.tokens for p in proposals], batch_rewards)
        rewards.extend(batch_rewards)
    return np.array(rewards)


def samples_to_reach(rewards: np.ndarray, threshold: float) -> float:
    """1-based count of samples after which the best reward is >= ``threshold`` (inf if never)."""
    hits = np.flatnonzero(rewards >= threshold)
    return float(hits[0] + 1) if len(hits) else math.inf


@dataclass
class Summary:
    best: list[float]
    last: list[float]
    to_reach: list[float]

    @property
    def median_to_reach(self) -> float:
        return statistics.median(self.to_reach)


def summarize(runs: dict[str, list[np.ndarray]], baseline: str) -> dict[str, Summary]:
    """Best, last-10% mean and samples to the baseline's final best, per controller and seed."""
    out = {}
    for name, per_seed in runs.items():
        out[name] = Summary(
            best=[float(r.max()) for r in per_seed],
            last=[float(r[-max(1, len(r) // 10):].mean()) for r in per_seed],
            to_reach=[samples_to_reach(r, b.max()) for r, b in zip(per_seed, runs[baseline])])
    return out


def _mean_std(values: list[float]) -> str:
    return f"{np.mean(values):.4f} +- {np.std(values):.4f}"


def _reach(samples: float, budget: int) -> str:
    return "never" if math.isinf(samples) else f"{samples:.0f} ({samples / budget:.0%} of the budget)"


def _parse_options(pairs: list[str]) -> dict:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--ppo expects OPTION=VALUE, got {pair!r}")
        options[key] = int(value) if value.lstrip("-").isdigit() else float(value)
    return options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=2000, help="samples per controller and seed")
    parser.add_argument("--batch", type=int, default=8, help="archs per controller step")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 per controller")
    parser.add_argument("--controllers", default="ppo,evolution,random",
                        help=f"comma-separated, random always included (known: {', '.join(CONTROLLERS)})")
    parser.add_argument("--ppo", action="append", default=[], metavar="OPTION=VALUE", help="a PPO option")
    parser.add_argument("--surrogate-seed", type=int, default=0, help="which fixed random reward function")
    parser.add_argument("--policy-lag", type=int, default=0, choices=(0, 1),
                        help="1: each step proposed before the update of the step before (as with several workers)")
    add_table_arguments(parser)
    args = parser.parse_args()
    names = list(dict.fromkeys([n for n in args.controllers.split(",") if n != "random"] + ["random"]))

    space, target = get_space(), ModelTarget(args.resolution, args.classes)
    predictor = LutPredictor.load(open_store(args.db), "local", space, target)
    reward = SurrogateReward(space, predictor, args.surrogate_seed)
    print(f"surrogate reward: mnas-soft, target T = {reward.target_ms:.4f} ms "
          f"(median predicted latency of {REFERENCE_ARCHS} random archs on {predictor.device!r})")
    print(f"budget {args.budget} samples per run, batch {args.batch}, seeds 0..{args.seeds - 1}, policy lag "
          f"{args.policy_lag} update{'s' if args.policy_lag != 1 else ''}")

    runs: dict[str, list[np.ndarray]] = {}
    options = {"ppo": _parse_options(args.ppo)}
    for name in names:
        start = time.perf_counter()
        runs[name] = [run_search(name, space, reward, seed, args.budget, args.batch, options.get(name, {}),
                                 args.policy_lag) for seed in range(args.seeds)]
        print(f"  {name}: {args.seeds} runs in {time.perf_counter() - start:.0f} s", flush=True)

    summary = summarize(runs, "random")
    base = summary["random"]
    for name in names:
        s = summary[name]
        print(f"{name:10s} best {_mean_std(s.best)}  last-10% mean {_mean_std(s.last)}  "
              f"reaches random's final best after {_reach(s.median_to_reach, args.budget)} (median)")
    for name in names[:-1]:
        s = summary[name]
        print(f"{name} vs random: best {np.mean(s.best) / np.mean(base.best) - 1:+.1%}, "
              f"last-10% mean {np.mean(s.last) / np.mean(base.last) - 1:+.1%}")
    head = names[0]
    s = summary[head]
    print(f"{head.upper() if head == 'ppo' else head} reaches random's final best after "
          f"{_reach(s.median_to_reach, args.budget)} (median over {args.seeds} seeds; goal <= 33%); "
          f"best reward {np.mean(s.best) / np.mean(base.best) - 1:+.1%} vs random; "
          f"last-10% mean {np.mean(s.last) / np.mean(base.last) - 1:+.1%} vs random")


if __name__ == "__main__":
    main()
