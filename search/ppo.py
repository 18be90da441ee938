"""The PPO controller: an LSTM actor-critic that emits one decision of the space per step (MnasNet, AKD).

Policy. Step t of an architecture feeds the LSTM (``hidden_units`` wide) the
embedding of the previous choice (a learned start vector at t = 0; one
embedding row per value of every decision, ``space.onehot_width`` rows). Its
output h_t gives decision t's logits (a head of ``onehot_width`` outputs, of
which decision t reads its own ``Decision.size`` segment) and the critic's
value V_t = v . h_t + b, an estimate of the reward given the choices so far.

Update (PPO, Schulman et al. 2017). The reward R of an architecture is the
return of each of its decisions (one reward at the end, no discount), so
decision t's advantage is R - V_t under the weights at the start of
``update``, normalized to mean 0 and std 1 over all (arch, decision) pairs of
a batch of two or more archs (:func:`normalized_advantages`). Each of ``epochs`` full-batch Adam
steps minimizes::

    -mean(min(r A, clip(r, 1 - eps, 1 + eps) A)) + value_weight * mean((V - R)^2) - entropy_weight * mean(H)

with r the per-decision probability ratio to the sampling policy and H
the per-decision entropy, means over all (arch, decision) pairs. The old
log-probabilities are the sampling policy's. A batch proposed by the weights
it is learnt with (the search proposes step s + 1 after the update of step s;
a resumed search restores the state that proposed it) has them recomputed at
the start of ``update``. A batch proposed before the update of the step
before it (with several workers a search proposes step s + 1 while step s
still trains: a policy lag of one update) keeps the log-probabilities of the
weights that proposed it: the update that changes those weights first
computes them for the batches they proposed (:meth:`PPOController.remember_proposed`
names those), and the state holds them until that batch is learnt from. Its ratios
then start away from 1 and the clip bounds the step from the sampling policy,
as in PPO with stored rollout log-probabilities (Stable-Baselines3, CleanRL).
Before each Adam step the gradients are scaled down to a global L2 norm of at
most ``max_grad_norm`` (as Stable-Baselines3 and CleanRL do).

Diagnostics (:func:`policy_drift`) describe the policy *after* the update
against the sampling policy, over all (arch, decision) pairs: the approximate
KL divergence ``mean((r - 1) - log r)`` (the low-variance, never negative
estimator of Stable-Baselines3 and CleanRL) and the fraction of ratios
outside the clip range. With ``target_kl`` the epochs stop as soon as that KL
exceeds it (CleanRL's rule; the last step may overshoot it), and ``epochs``
in the stats says how many ran.

Sampling draws all n archs at once with the Gumbel-max trick on noise from
``numpy.random.default_rng([seed, step])``, so a proposal depends only on the
weights, the seed and the step. Initial weights come from initializers seeded
from ``seed``. The state is an ``.npz`` of a JSON header (controller, space,
seed, settings and the label, dtype and shape of every variable), all float
variables (weights and Adam slots) as one vector, and Adam's step counter:
about 0.6 MB for 64 units on the mnasnet space.

Graphs are traced per batch size (static shapes run ~25% faster than a
shape-agnostic trace); the first ``propose`` and ``update`` of a size take a
few seconds.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict
from typing import Sequence

import akd_tf.tf_env  # noqa: F401  (configures TensorFlow before it is imported)
import numpy as np
import tensorflow as tf
import tf_keras as keras

from akd_tf.errors import InvalidInput
from akd_tf.space import SearchSpace
from search.checks import check_int
from search.controller_base import Controller, Proposal, reward_stats
from search.controller_settings import PPOSettings

MASKED_LOGIT = -1e9  # added to the logits outside a decision's segment: softmax weight exactly 0


def normalized_advantages(advantages: tf.Tensor) -> tf.Tensor:
    """(n, steps) advantages scaled to mean 0 and std 1 over the batch.

    Left as they are for a batch of one architecture (its one reward gives no
    spread to normalize by) and when all are equal.
    """
    mean, variance = tf.nn.moments(advantages, axes=[0, 1])
    std = tf.sqrt(variance)
    spread = tf.logical_and(tf.shape(advantages)[0] > 1, std > 1e-8)
    return tf.where(spread, (advantages - mean) / tf.maximum(std, 1e-8), advantages)


def policy_drift(log_p: tf.Tensor, old_log_p: tf.Tensor, clip_ratio: float) -> dict[str, tf.Tensor]:
    """How far per-decision log-probabilities ``log_p`` moved from ``old_log_p`` (same shapes, nats).

    ``approx_kl``: ``mean((r - 1) - log r)`` with ``r = exp(log_p - old_log_p)``, an estimate of
    KL(old || new) that is never negative and exactly 0 when nothing moved; ``clip_fraction``: the share
    of ratios with ``|r - 1| > clip_ratio``.
    """
    log_ratio = log_p - old_log_p
    ratio = tf.exp(log_ratio)
    return {"approx_kl": tf.reduce_mean((ratio - 1.0) - log_ratio),
            "clip_fraction": tf.reduce_mean(tf.cast(tf.abs(ratio - 1.0) > clip_ratio, tf.float32))}


def step_layout(space: SearchSpace) -> tuple[np.ndarray, np.ndarray]:
    """(offset of each decision in the one-hot layout, (steps, width) mask of logits each step may use)."""
    sizes = [d.size for d in space.decisions]
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int32)
    mask = np.full((len(sizes), sum(sizes)), MASKED_LOGIT, np.float32)
    for t, (offset, size) in enumerate(zip(offsets, sizes)):
        mask[t, offset:offset + size] = 0.0
    return offsets, mask


class Policy:
    """The actor-critic's weights and its two forward passes (sampling, teacher forcing).

    ``named_weights`` holds every weight under a stable name; initial values
    are a function of ``seed`` only.
    """

    def __init__(self, space: SearchSpace, units: int, seed: int):
        offsets, mask = step_layout(space)
        self.steps, self.width = mask.shape
        self.offsets, self.step_mask = tf.constant(offsets), tf.constant(mask)
        seeds = iter(int(s) for s in np.random.default_rng([seed]).integers(0, 2 ** 31 - 1, size=6))

        def uniform(limit: float, shape: tuple[int, ...]) -> tf.Tensor:
            return keras.initializers.RandomUniform(-limit, limit, seed=next(seeds))(shape)

        self.cell = keras.layers.LSTMCell(
            units, kernel_initializer=keras.initializers.GlorotUniform(seed=next(seeds)),
            recurrent_initializer=keras.initializers.Orthogonal(seed=next(seeds)))
        self.cell.build((None, units))
        self.start = tf.Variable(uniform(0.1, (1, units)), name="start")
        self.embedding = tf.Variable(uniform(0.1, (self.width, units)), name="embedding")
        # Small logits at first: the initial policy is close to uniform over every decision.
        self.logits_kernel = tf.Variable(uniform(0.01, (units, self.width)), name="logits_kernel")
        self.logits_bias = tf.Variable(tf.zeros((self.width,)), name="logits_bias")
        self.value_kernel = tf.Variable(keras.initializers.GlorotUniform(seed=next(seeds))((units, 1)),
                                        name="value_kernel")
        self.value_bias = tf.Variable(tf.zeros((1,)), name="value_bias")
        self.named_weights = {
            "start": self.start, "embedding": self.embedding, "lstm_kernel": self.cell.kernel,
            "lstm_recurrent_kernel": self.cell.recurrent_kernel, "lstm_bias": self.cell.bias,
            "logits_kernel": self.logits_kernel, "logits_bias": self.logits_bias,
            "value_kernel": self.value_kernel, "value_bias": self.value_bias}
        self.weights = list(self.named_weights.values())

    def _input_table(self) -> tuple[tf.Tensor, tf.Tensor]:
        """(start, every choice's embedding) projected by the LSTM's input kernel plus bias: (1, 4u), (width, 4u)."""
        projected = tf.matmul(tf.concat([self.start, self.embedding], 0), self.cell.kernel) + self.cell.bias
        return projected[:1], projected[1:]

    def _lstm_step(self, projected_input: tf.Tensor, h: tf.Tensor, c: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """The LSTMCell's step (gates i, f, c, o; sigmoid and tanh) given its input already projected."""
        i, f, g, o = tf.split(projected_input + tf.matmul(h, self.cell.recurrent_kernel), 4, axis=1)
        c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
        return tf.sigmoid(o) * tf.tanh(c), c

    def sample(self, gumbel: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(tokens (n, steps) int32, total log-probabilities (n,)) of n archs drawn with Gumbel noise (n, width)."""
        n = tf.shape(gumbel)[0]
        start, table = self._input_table()
        x = tf.tile(start, [n, 1])
        h = c = tf.zeros([n, self.cell.units])
        log_prob = tf.zeros([n])
        tokens = []
        for t in range(self.steps):
            h, c = self._lstm_step(x, h, c)
            logits = tf.matmul(h, self.logits_kernel) + self.logits_bias + self.step_mask[t]
            choice = tf.argmax(logits + gumbel, axis=1, output_type=tf.int32)  # an index into the one-hot layout
            log_prob += tf.gather(tf.nn.log_softmax(logits), choice, batch_dims=1)
            tokens.append(choice - self.offsets[t])
            x = tf.gather(table, choice)
        return tf.stack(tokens, axis=1), log_prob

    def teacher_forced(self, tokens: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Per-decision (log-probability of the given token, entropy, value), each (n, steps), for given tokens."""
        choices = tokens + self.offsets
        n = tf.shape(tokens)[0]
        start, table = self._input_table()
        inputs = tf.concat([tf.tile(start[None], [n, 1, 1]), tf.gather(table, choices[:, :-1])], axis=1)
        h = c = tf.zeros([n, self.cell.units])
        outputs = []
        for x in tf.unstack(inputs, num=self.steps, axis=1):
            h, c = self._lstm_step(x, h, c)
            outputs.append(h)
        hidden = tf.stack(outputs, axis=1)  # (n, steps, units)
        log_p = tf.nn.log_softmax(tf.matmul(hidden, self.logits_kernel) + self.logits_bias + self.step_mask)
        entropy = -tf.reduce_sum(tf.exp(log_p) * log_p, axis=-1)
        value = tf.squeeze(tf.matmul(hidden, self.value_kernel), -1) + self.value_bias
        return tf.gather(log_p, choices, batch_dims=2), entropy, value


class PPOController(Controller):
    """PPO-trained LSTM controller (see the module docstring); ``log_prob`` of a proposal is in nats."""

    name = "ppo"
    # With several workers the search proposes step s + 1 before learning from step s; the update of a batch
    # proposed by earlier weights takes its log-probabilities from those weights (the module docstring).
    asynchronous = True

    def __init__(self, space: SearchSpace, seed: int, settings: PPOSettings = PPOSettings()):
        super().__init__(space, seed)
        self.settings = settings
        self._proposed: dict[int, np.ndarray] = {}  # step -> token rows the current weights proposed, unlearnt
        # step -> token row -> per-decision log-probabilities, for steps proposed by weights an update changed since
        self._sampled: dict[int, dict[tuple[int, ...], np.ndarray]] = {}
        self.policy = Policy(space, settings.hidden_units, self.seed)
        self.optimizer = keras.optimizers.Adam(settings.learning_rate)
        self.optimizer.build(self.policy.weights)
        # No input signatures: one trace per batch size, whose static shapes make the graphs ~25% faster.
        self._sample = tf.function(self.policy.sample)
        self._prepare_fn = tf.function(self._prepare)
        self._ppo_step_fn = tf.function(self._ppo_step)
        self._drift_fn = tf.function(self._drift)
        self._log_p_fn = tf.function(self._log_p)
        self._pack_fn = tf.function(self._pack)
        self._unpack_fn = tf.function(self._unpack)

    @property
    def variables(self) -> dict[str, tf.Variable]:
        """Every variable of the state by label, in state order: policy weights, then Adam's counter and slots."""
        return {**{f"policy/{k}": v for k, v in self.policy.named_weights.items()},
                **{f"adam/{i}": v for i, v in enumerate(self.optimizer.variables)}}

    def _split_variables(self) -> tuple[list[tf.Variable], list[tf.Variable]]:
        """(float32 variables, integer variables such as Adam's step counter), each in state order."""
        variables = list(self.variables.values())
        return [v for v in variables if v.dtype == tf.float32], [v for v in variables if v.dtype != tf.float32]

    def propose(self, step: int, n: int) -> list[Proposal]:
        n = check_int("n", n, 0)
        gumbel = self.rng(step).gumbel(size=(n, self.policy.width)).astype(np.float32)
        tokens, log_probs = self._sample(tf.constant(gumbel))
        return [Proposal(tuple(int(t) for t in row), float(lp)) for row, lp in zip(tokens.numpy(), log_probs.numpy())]

    def remember_proposed(self, step: int, tokens: Sequence[Sequence[int]]) -> None:
        """Note that the current weights proposed ``tokens`` for ``step``: should an update of another step
        come first, their log-probabilities under these weights are kept for the update of ``step``
        (:meth:`_keep_sampling_log_p`). Costs nothing when the step is learnt before any other update."""
        rows = np.asarray([list(row) for row in tokens], dtype=np.int32).reshape(len(tokens), -1)
        self._proposed[check_int("step", step, 0)] = rows

    def _keep_sampling_log_p(self, learning: int) -> None:
        """Before the weights change with the update of step ``learning``: the log-probabilities they give the
        other steps they proposed, kept for those steps' updates."""
        for step, rows in self._proposed.items():
            if step != learning and len(rows):
                log_p = self._log_p_fn(tf.constant(rows)).numpy()
                self._sampled[step] = {tuple(int(t) for t in row): lp for row, lp in zip(rows, log_p)}
        self._proposed = {}

    def _sampling_log_p(self, step: int, rows: np.ndarray, current: tf.Tensor) -> tf.Tensor:
        """The old log-probabilities of ``rows`` for the update of ``step``: those kept since an update changed
        the weights that proposed it, else ``current`` (recomputed: the weights that proposed it)."""
        kept = self._sampled.get(step)
        if kept is None:
            return current
        keys = [tuple(int(t) for t in row) for row in rows]
        missing = [key for key in keys if key not in kept]
        if missing:
            raise InvalidInput(f"PPO update of step {step}: {len(missing)} architecture(s) it did not propose "
                               f"for that step, such as {list(missing[0])}")
        return tf.constant(np.stack([kept[key] for key in keys]))

    def _log_p(self, tokens) -> tf.Tensor:
        return self.policy.teacher_forced(tokens)[0]

    def _ppo_step(self, tokens, rewards, old_log_p, advantages) -> dict:
        """One Adam step on the PPO loss, its gradients clipped to ``max_grad_norm``; returns the loss terms
        it minimized (before the step) and the gradients' global norm before clipping."""
        s = self.settings
        with tf.GradientTape() as tape:
            log_p, entropy, value = self.policy.teacher_forced(tokens)
            ratio = tf.exp(log_p - old_log_p)
            clipped = tf.clip_by_value(ratio, 1.0 - s.clip_ratio, 1.0 + s.clip_ratio)
            policy_loss = -tf.reduce_mean(tf.minimum(ratio * advantages, clipped * advantages))
            value_loss = tf.reduce_mean(tf.square(value - rewards[:, None]))
            mean_entropy = tf.reduce_mean(entropy)
            loss = policy_loss + s.value_weight * value_loss - s.entropy_weight * mean_entropy
        weights = self.policy.weights
        gradients = tape.gradient(loss, weights)
        if s.max_grad_norm is None:
            grad_norm = tf.linalg.global_norm(gradients)
        else:
            gradients, grad_norm = tf.clip_by_global_norm(gradients, s.max_grad_norm)
        self.optimizer.apply_gradients(zip(gradients, weights))
        return {"policy_loss": policy_loss, "value_loss": value_loss, "entropy": mean_entropy, "grad_norm": grad_norm}

    def _drift(self, tokens, old_log_p) -> dict:
        """:func:`policy_drift` of the current weights from ``old_log_p`` on ``tokens``."""
        return policy_drift(self.policy.teacher_forced(tokens)[0], old_log_p, self.settings.clip_ratio)

    def _prepare(self, tokens, rewards) -> tuple[tf.Tensor, tf.Tensor]:
        """(per-decision log-probabilities, normalized advantages R - V), both (n, steps), under the current weights."""
        old_log_p, _, value = self.policy.teacher_forced(tokens)
        return old_log_p, normalized_advantages(rewards[:, None] - value)

    def update(self, step: int, tokens: Sequence[Sequence[int]], rewards: Sequence[float]) -> dict:
        """Up to ``epochs`` PPO steps on the batch (fewer when ``target_kl`` stops them).

        Stats: the loss terms and gradient norm of the last step (entropy: mean nats per decision),
        ``approx_kl`` and ``clip_fraction`` of the updated policy (:func:`policy_drift`) and the
        ``epochs`` that ran.
        """
        check_int("step", step, 0)
        rows, values = self.check_batch(tokens, rewards)
        if not len(rows):
            self._forget(step)
            return reward_stats(values)
        batch = (tf.constant(rows), tf.constant(values, tf.float32))
        old_log_p, advantages = self._prepare_fn(*batch)
        old_log_p = self._sampling_log_p(step, rows, old_log_p)
        self._keep_sampling_log_p(step)
        target_kl = self.settings.target_kl
        for epoch in range(1, self.settings.epochs + 1):
            terms = self._ppo_step_fn(*batch, old_log_p, advantages)
            # Without a KL target, the drift is needed only once, after the last step.
            if target_kl is not None or epoch == self.settings.epochs:
                drift = self._drift_fn(batch[0], old_log_p)
                if target_kl is not None and float(drift["approx_kl"]) > target_kl:
                    break
        self._forget(step)
        return {**reward_stats(values), **{k: float(v) for k, v in {**terms, **drift}.items()}, "epochs": epoch}

    def _forget(self, step: int) -> None:
        """Drop what was kept for ``step`` and the steps before it (learnt from)."""
        self._sampled = {s: kept for s, kept in self._sampled.items() if s > step}
        self._proposed = {s: rows for s, rows in self._proposed.items() if s > step}

    def _pack(self) -> tuple[tf.Tensor, tf.Tensor]:
        """Every float variable flattened into one vector, and the integer ones stacked as int64."""
        floats, ints = self._split_variables()
        return (tf.concat([tf.reshape(v, [-1]) for v in floats], axis=0),
                tf.stack([tf.cast(v, tf.int64) for v in ints]))

    def _unpack(self, weights: tf.Tensor, counters: tf.Tensor) -> None:
        floats, ints = self._split_variables()
        for v, value in zip(floats, tf.split(weights, [v.shape.num_elements() for v in floats])):
            v.assign(tf.reshape(value, v.shape))
        for v, value in zip(ints, tf.unstack(counters, num=len(ints))):
            v.assign(tf.cast(value, v.dtype))

    def _layout(self) -> list[list]:
        """[label, dtype, shape] of every state variable, in order."""
        return [[label, v.dtype.name, v.shape.as_list()] for label, v in self.variables.items()]

    def state_bytes(self) -> bytes:
        header = {**self.state_header(), "settings": asdict(self.settings), "layout": self._layout()}
        if self._sampled:  # batches proposed by weights an update has changed since: their sampling log-probabilities
            header["proposed_by_earlier_weights"] = {
                str(step): [[list(row), [float(x) for x in lp]] for row, lp in kept.items()]
                for step, kept in sorted(self._sampled.items())}
        weights, counters = self._pack_fn()
        buffer = io.BytesIO()
        np.savez(buffer, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
                 weights=weights.numpy(), counters=counters.numpy())
        return buffer.getvalue()

    def load_state_bytes(self, data: bytes) -> None:
        try:
            with np.load(io.BytesIO(bytes(data)), allow_pickle=False) as archive:
                header = json.loads(archive["header"].tobytes().decode())
                weights, counters = archive["weights"], archive["counters"]
        except (OSError, ValueError, KeyError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"controller state is not the .npz a PPO controller writes: {exc}") from None
        self.check_state_header(header)
        self.check_state_settings(header.get("settings"), self.settings)
        self._check_layout(header.get("layout"), weights, counters)
        self._unpack_fn(tf.constant(weights), tf.constant(counters))
        try:
            self._sampled = {int(step): {tuple(int(t) for t in row): np.asarray(lp, np.float32) for row, lp in rows}
                             for step, rows in header.get("proposed_by_earlier_weights", {}).items()}
            self._proposed = {}
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"controller state's proposed_by_earlier_weights is malformed: {exc!r}") from None

    def _check_layout(self, layout, weights: np.ndarray, counters: np.ndarray) -> None:
        """``ValueError`` naming the first variable whose label, dtype or shape differs from this controller's."""
        expected = self._layout()
        if not isinstance(layout, list) or len(layout) != len(expected):
            got = len(layout) if isinstance(layout, list) else "no"
            raise InvalidInput(f"controller state holds {got} variables, expected {len(expected)}")
        for got, want in zip(layout, expected):
            if got != want:
                raise InvalidInput(f"controller state variable {got!r} does not match {want!r} (label, dtype, shape)")
        floats, ints = self._split_variables()
        size = sum(v.shape.num_elements() for v in floats)
        if (weights.dtype, weights.shape, counters.dtype, counters.shape) != (
                np.float32, (size,), np.int64, (len(ints),)):
            raise InvalidInput(f"controller state arrays are {weights.dtype}{list(weights.shape)} and "
                               f"{counters.dtype}{list(counters.shape)}, expected float32[{size}] and "
                               f"int64[{len(ints)}]")
