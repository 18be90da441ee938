"""Search controllers: valid and reproducible proposals, PPO's probabilities and learning, states, evolution."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from akd_tf.space import BlockOptions, BlockSkeleton, ConvOp, SearchSpace
from search.controller import CONTROLLERS, controller_names, make_controller

SMALL_EVOLUTION = {"population_size": 4, "tournament_size": 2}


def tokens_of(proposals):
    return [p.tokens for p in proposals]


def toy_rewards(proposals):
    """A deterministic reward in [0, 1] per proposal."""
    return [float(sum(p.tokens) % 7) / 6.0 for p in proposals]


def numpy_step_log_probs(controller, tokens):
    """Per decision, the log-softmax over that decision's values, recomputed in float64 from the weights."""
    w = {k: v.numpy().astype(np.float64) for k, v in controller.policy.named_weights.items()}
    sigmoid = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    h = c = np.zeros(w["lstm_bias"].shape[0] // 4)
    x, offset, out = w["start"][0], 0, []
    for d, token in zip(controller.space.decisions, tokens):
        i, f, g, o = np.split(x @ w["lstm_kernel"] + h @ w["lstm_recurrent_kernel"] + w["lstm_bias"], 4)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        logits = h @ w["logits_kernel"][:, offset:offset + d.size] + w["logits_bias"][offset:offset + d.size]
        out.append(logits - np.log(np.sum(np.exp(logits - logits.max()))) - logits.max())
        x = w["embedding"][offset + token]
        offset += d.size
    return out


@pytest.mark.parametrize("name", ["ppo", "evolution", "random"])
def test_proposals_are_n_valid_archs_the_same_for_a_step_and_different_for_another(space, name):
    controller = make_controller(name, space, seed=3)
    first, again, other = controller.propose(5, 6), controller.propose(5, 6), controller.propose(6, 6)
    assert len(first) == 6 and first == again and tokens_of(first) != tokens_of(other)
    assert all(space.from_tokens(p.tokens).tokens == p.tokens for p in first + other)
    assert all((p.log_prob is not None) == (name == "ppo") for p in first)
    twin, stranger = make_controller(name, space, seed=3), make_controller(name, space, seed=4)
    assert twin.propose(5, 6) == first and tokens_of(stranger.propose(5, 6)) != tokens_of(first)


def test_ppo_log_prob_is_the_sum_of_teacher_forced_log_softmax_and_propose_changes_nothing(space):
    controller = make_controller("ppo", space, seed=0)
    controller.update(0, tokens_of(controller.propose(0, 8)), [1.0, 0.0] * 4)  # weights away from the init
    state = controller.state_bytes()
    proposals = controller.propose(1, 5)
    assert controller.state_bytes() == state
    for p in proposals:
        expected = sum(lp[t] for lp, t in zip(numpy_step_log_probs(controller, p.tokens), p.tokens))
        assert p.log_prob == pytest.approx(expected, abs=1e-4)
    forced = controller.policy.teacher_forced(np.array(tokens_of(proposals), np.int32))[0].numpy().sum(axis=1)
    np.testing.assert_allclose(forced, [p.log_prob for p in proposals], atol=1e-4)


def test_a_ppo_update_raises_the_probability_of_the_rewarded_first_decision(space):
    controller = make_controller("ppo", space, seed=0)
    chosen = 2  # mbconv3 at block 1's conv_op
    prob = lambda: float(np.exp(numpy_step_log_probs(controller, [0])[0][chosen]))  # noqa: E731
    history = [prob()]
    for step in range(16):
        proposals = controller.propose(step, 16)
        stats = controller.update(step, tokens_of(proposals), [float(p.tokens[0] == chosen) for p in proposals])
        history.append(prob())
    assert history[0] == pytest.approx(0.25, abs=0.01)
    assert all(after > before for before, after in zip(history, history[1:])) and history[-1] > 0.5
    assert set(stats) == {"n", "mean_reward", "max_reward", "policy_loss", "value_loss", "entropy", "grad_norm",
                          "approx_kl", "clip_fraction", "epochs"}
    assert json.loads(json.dumps(stats)) == stats and stats["n"] == 16


def test_policy_drift_is_the_reference_kl_estimator_and_the_share_of_ratios_outside_the_clip_range():
    from search.ppo import policy_drift

    old = np.log([[0.5, 0.2], [0.4, 0.25]]).astype(np.float32)
    unchanged = policy_drift(old, old, 0.2)
    assert float(unchanged["approx_kl"]) == 0.0 and float(unchanged["clip_fraction"]) == 0.0
    ratios = np.array([[1.3, 0.9], [0.7, 1.0]])
    moved = policy_drift(old + np.log(ratios).astype(np.float32), old, 0.2)
    # (r - 1) - log r: 0.3 - log 1.3, -0.1 - log 0.9, -0.3 - log 0.7, 0; 1.3 and 0.7 lie outside [0.8, 1.2]
    assert float(moved["approx_kl"]) == pytest.approx(
        (0.0376357 + 0.0053605 + 0.0566749 + 0.0) / 4, abs=1e-6)
    assert float(moved["clip_fraction"]) == 0.5


def drift_of(controller, before, tokens):
    """approx_kl and clip fraction of ``controller``'s policy from the weights ``before``, recomputed in numpy."""
    def log_probs(c):
        return np.array([[lp[t] for lp, t in zip(numpy_step_log_probs(c, row), row)] for row in tokens])

    after = log_probs(controller)
    controller.load_state_bytes(before)
    log_ratio = after - log_probs(controller)
    ratio = np.exp(log_ratio)
    return (np.mean((ratio - 1) - log_ratio),
            np.mean(np.abs(ratio - 1) > controller.settings.clip_ratio))


@pytest.mark.parametrize("epochs", [1, 4])
def test_ppo_stats_describe_the_policy_after_the_update(tiny_space, epochs):
    controller = make_controller("ppo", tiny_space, seed=0, epochs=epochs, learning_rate=0.05)
    before = controller.state_bytes()
    proposals = controller.propose(0, 8)
    stats = controller.update(0, tokens_of(proposals), toy_rewards(proposals))
    kl, clip_fraction = drift_of(controller, before, tokens_of(proposals))
    assert stats["epochs"] == epochs and stats["approx_kl"] > 0.0  # one epoch used to report 0: the pre-step value
    assert stats["approx_kl"] == pytest.approx(kl, rel=1e-3, abs=1e-7)
    assert stats["clip_fraction"] == pytest.approx(clip_fraction)
    if epochs == 4:
        assert stats["clip_fraction"] > 0.0


def policy_weights(controller):
    return {k: v.numpy() for k, v in controller.policy.named_weights.items()}


def ppo_header(state: bytes) -> dict:
    import io

    with np.load(io.BytesIO(state)) as archive:
        return json.loads(archive["header"].tobytes().decode())


def test_ppo_a_step_ahead_of_its_update_learns_against_the_weights_that_proposed_it(tiny_space):
    """As a search with several workers runs it: step 1 proposed (and remembered) before the update of step 0.
    The update of step 1 takes its ratios from the weights that proposed it, and a controller resumed from the
    state saved after the update of step 0 learns step 1 exactly as the uninterrupted one does."""
    def proposed(controller, step):
        batch = controller.propose(step, 8)
        controller.remember_proposed(step, tokens_of(batch))
        return batch

    controller = make_controller("ppo", tiny_space, seed=0, epochs=2, learning_rate=0.05)
    initial = controller.state_bytes()
    first, second = proposed(controller, 0), proposed(controller, 1)
    controller.update(0, tokens_of(first), toy_rewards(first))
    saved = controller.state_bytes()
    assert list(ppo_header(saved)["proposed_by_earlier_weights"]) == ["1"]
    resumed = make_controller("ppo", tiny_space, seed=0, epochs=2, learning_rate=0.05)
    resumed.load_state_bytes(saved)
    stats = controller.update(1, tokens_of(second), toy_rewards(second))
    assert resumed.update(1, tokens_of(second), toy_rewards(second)) == stats
    assert all(np.array_equal(a, b) for a, b in zip(policy_weights(resumed).values(),
                                                    policy_weights(controller).values()))
    assert "proposed_by_earlier_weights" not in ppo_header(controller.state_bytes())  # learnt: dropped
    kl, clip_fraction = drift_of(controller, initial, tokens_of(second))  # from the weights that proposed it
    assert stats["approx_kl"] == pytest.approx(kl, rel=1e-3, abs=1e-7)
    assert stats["clip_fraction"] == pytest.approx(clip_fraction)

    # one step at a time (propose after the update before): the ratios start at 1, as without remembering
    sequential = make_controller("ppo", tiny_space, seed=0, epochs=2, learning_rate=0.05)
    plain = make_controller("ppo", tiny_space, seed=0, epochs=2, learning_rate=0.05)
    batch = proposed(sequential, 0)
    assert "proposed_by_earlier_weights" not in ppo_header(sequential.state_bytes())
    assert sequential.update(0, tokens_of(batch), toy_rewards(batch)) == plain.update(
        0, tokens_of(plain.propose(0, 8)), toy_rewards(batch))


def test_target_kl_stops_the_epochs_after_the_first_step_beyond_it(tiny_space):
    batch = make_controller("ppo", tiny_space, seed=0).propose(0, 8)
    after = {}
    for epochs in (1, 2, 3):  # the KL after each epoch, from runs of that many epochs
        controller = make_controller("ppo", tiny_space, seed=0, epochs=epochs, learning_rate=0.05)
        after[epochs] = (controller.update(0, tokens_of(batch), toy_rewards(batch))["approx_kl"],
                         policy_weights(controller))
    assert after[1][0] < after[2][0] < after[3][0]
    stopped = make_controller("ppo", tiny_space, seed=0, epochs=4, learning_rate=0.05,
                              target_kl=(after[1][0] + after[2][0]) / 2)
    stats = stopped.update(0, tokens_of(batch), toy_rewards(batch))
    assert stats["epochs"] == 2 and stats["approx_kl"] == pytest.approx(after[2][0], rel=1e-4)
    for name, value in policy_weights(stopped).items():
        np.testing.assert_array_equal(value, after[2][1][name], err_msg=name)
    never = make_controller("ppo", tiny_space, seed=0, epochs=4, learning_rate=0.05, target_kl=10.0)
    assert never.update(0, tokens_of(batch), toy_rewards(batch))["epochs"] == 4


def test_gradients_are_clipped_to_max_grad_norm_before_the_adam_step(tiny_space):
    batch = make_controller("ppo", tiny_space, seed=0).propose(0, 8)
    start = policy_weights(make_controller("ppo", tiny_space, seed=0))
    moved = {}
    for max_grad_norm in (None, 1e-12):
        controller = make_controller("ppo", tiny_space, seed=0, epochs=1, max_grad_norm=max_grad_norm)
        stats = controller.update(0, tokens_of(batch), toy_rewards(batch))
        assert stats["grad_norm"] > 1e-3  # the norm before clipping
        moved[max_grad_norm] = max(np.abs(w - start[k]).max() for k, w in policy_weights(controller).items())
    # Adam moves each weight by about the learning rate whatever the gradients' scale, unless they are far
    # below its epsilon (1e-7): only gradients really clipped to a norm of 1e-12 leave the weights in place.
    assert moved[None] == pytest.approx(0.002, rel=0.01) and moved[1e-12] < 1e-6


def test_advantages_are_normalized_over_the_batch_except_for_one_arch_or_no_spread():
    from search.ppo import normalized_advantages

    batch = np.array([[0.5, 0.1, -0.2], [0.9, 0.3, 0.0]], np.float32)
    normalized = normalized_advantages(batch).numpy()
    assert normalized.mean() == pytest.approx(0.0, abs=1e-6) and normalized.std() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_array_equal(normalized_advantages(batch[:1]).numpy(), batch[:1])
    np.testing.assert_array_equal(normalized_advantages(np.full((3, 2), 0.4, np.float32)).numpy(), np.float32(0.4))


@pytest.mark.parametrize("name, options", [("ppo", {}), ("evolution", SMALL_EVOLUTION), ("random", {})])
def test_a_loaded_state_proposes_and_learns_exactly_like_the_original(tiny_space, name, options):
    original = make_controller(name, tiny_space, seed=1, **options)
    for step in range(2):
        batch = original.propose(step, 8)
        original.update(step, tokens_of(batch), toy_rewards(batch))
    resumed = make_controller(name, tiny_space, seed=1, **options)
    resumed.load_state_bytes(original.state_bytes())
    batch = original.propose(2, 8)
    assert resumed.propose(2, 8) == batch
    original.update(2, tokens_of(batch), toy_rewards(batch))
    resumed.update(2, tokens_of(batch)[::-1], toy_rewards(batch)[::-1])  # the loop may pass results in any order
    assert resumed.state_bytes() == original.state_bytes()


def test_a_ppo_state_only_loads_into_the_same_space_seed_settings_and_layout(space, tiny_space):
    state = make_controller("ppo", tiny_space, seed=1).state_bytes()
    with pytest.raises(ValueError, match="space 'lut-test', expected 'mnasnet'"):
        make_controller("ppo", space, seed=1).load_state_bytes(state)
    with pytest.raises(ValueError, match="seed 1, expected 2"):
        make_controller("ppo", tiny_space, seed=2).load_state_bytes(state)
    with pytest.raises(ValueError, match="settings"):
        make_controller("ppo", tiny_space, seed=1, hidden_units=8).load_state_bytes(state)
    with pytest.raises(ValueError, match="not the .npz"):
        make_controller("ppo", tiny_space, seed=1).load_state_bytes(b"not a state")
    # Same name, other decisions: only the variables' shapes tell.
    impostor = SearchSpace(name="lut-test", stem_filters=8, head_filters=32,
                           skeleton=(BlockSkeleton(stride=2, filters=16, layers=1),),
                           block_options=(BlockOptions(conv_ops=(ConvOp("dwconv", "dwconv"),), kernels=(3, 5),
                                                       se_ratios=(0.0,), skip_ops=("noskip",),
                                                       width_multipliers=(1.0,), layer_deltas=(0,)),))
    from search.ppo import PPOController

    with pytest.raises(ValueError, match=r"policy/embedding.*does not match"):
        PPOController(impostor, 1).load_state_bytes(state)


def test_a_ppo_state_written_before_clipping_and_target_kl_existed_loads_as_unclipped(tiny_space):
    import io

    unclipped = make_controller("ppo", tiny_space, seed=1, max_grad_norm=None)
    with np.load(io.BytesIO(unclipped.state_bytes())) as archive:
        arrays = dict(archive)
    header = json.loads(arrays["header"].tobytes())
    for added in ("max_grad_norm", "target_kl"):
        del header["settings"][added]
    buffer = io.BytesIO()
    np.savez(buffer, **{**arrays, "header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)})
    make_controller("ppo", tiny_space, seed=1, max_grad_norm=None).load_state_bytes(buffer.getvalue())
    with pytest.raises(ValueError, match="controller state has settings .*'epochs': 4}, expected .*'max_grad_norm': "
                                         "0.5, 'target_kl': None}"):
        make_controller("ppo", tiny_space, seed=1).load_state_bytes(buffer.getvalue())


def test_baseline_states_reject_another_controller_or_space(space, tiny_space):
    with pytest.raises(ValueError, match="controller 'random', expected 'evolution'"):
        make_controller("evolution", space, seed=0).load_state_bytes(make_controller("random", space, 0).state_bytes())
    with pytest.raises(ValueError, match="space 'lut-test', expected 'mnasnet'"):
        make_controller("random", space, 0).load_state_bytes(make_controller("random", tiny_space, 0).state_bytes())
    with pytest.raises(ValueError, match="settings"):
        make_controller("evolution", space, seed=0).load_state_bytes(
            make_controller("evolution", space, 0, **SMALL_EVOLUTION).state_bytes())


def test_evolution_mutates_one_decision_of_a_tournament_winner_once_the_population_is_full(space):
    controller = make_controller("evolution", space, seed=0, population_size=8, tournament_size=3)
    first = controller.propose(0, 8)
    controller.update(0, tokens_of(first), [i / 10 for i in range(8)])
    ranked = sorted(controller.population, key=lambda member: member[1])
    never_winners = {tokens for tokens, _ in ranked[:2]}  # the best of 3 distinct members is never a bottom-2 one
    for p in controller.propose(1, 8):
        parents = [t for t, _ in controller.population if np.count_nonzero(np.subtract(t, p.tokens)) == 1]
        assert set(parents) - never_winners
    second = controller.propose(1, 8)
    controller.update(1, tokens_of(second), toy_rewards(second))
    assert [t for t, _ in controller.population] == sorted(tokens_of(second))  # the oldest 8 aged out
    assert controller.observed == 16


def test_make_controller_names_unknown_controllers_options_and_bad_values(space):
    assert controller_names() == ["ppo", "evolution", "random"]
    assert all(CONTROLLERS[name].description for name in controller_names())
    assert CONTROLLERS["evolution"].options == {"population_size": 16, "tournament_size": 4}
    with pytest.raises(ValueError, match="unknown controller 'nope'; known: ppo, evolution, random"):
        make_controller("nope", space, seed=0)
    with pytest.raises(ValueError, match="no option 'learning_rat'; its options: hidden_units, learning_rate"):
        make_controller("ppo", space, seed=0, learning_rat=0.1)
    with pytest.raises(ValueError, match="random' has no option 'population_size'; its options: none"):
        make_controller("random", space, seed=0, population_size=3)
    with pytest.raises(ValueError, match="tournament_size must be <= population_size=16, got 17"):
        make_controller("evolution", space, seed=0, tournament_size=17)
    with pytest.raises(ValueError, match="learning_rate must be a finite number > 0.0, got -1"):
        make_controller("ppo", space, seed=0, learning_rate=-1)
    with pytest.raises(ValueError, match="seed must be an int >= 0, got -1"):
        make_controller("random", space, seed=-1)


def test_propose_and_update_reject_bad_input(space):
    controller = make_controller("random", space, seed=0)
    with pytest.raises(ValueError, match="n must be an int >= 0, got 2.5"):
        controller.propose(0, 2.5)
    with pytest.raises(ValueError, match="step must be an int >= 0, got -1"):
        controller.propose(-1, 2)
    with pytest.raises(ValueError, match="2 token lists but 1 rewards"):
        controller.update(0, tokens_of(controller.propose(0, 2)), [0.5])
    with pytest.raises(ValueError, match="expected 42 tokens"):
        controller.update(0, [(0, 1)], [0.5])
    with pytest.raises(ValueError, match="a reward must be a finite number, got nan"):
        controller.update(0, tokens_of(controller.propose(0, 1)), [float("nan")])


def test_the_controller_module_does_not_import_tensorflow():
    code = "import sys, search.controller; print('tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


def test_evolution_never_proposes_a_network_it_has_seen_until_none_is_left(tiny_space):
    from akd_tf.canonical import canonical_arch, count_networks
    from search.baselines import MAX_PROPOSAL_TRIES

    controller = make_controller("evolution", tiny_space, seed=0, **SMALL_EVOLUTION)
    seen, notes, exhausted_steps = set(), [], []
    for step in range(20):
        exhausted = len(seen) == count_networks(tiny_space) == 48
        exhausted_steps += [step] if exhausted else []
        proposals = controller.propose(step, 4)
        for p in proposals:
            network = canonical_arch(tiny_space.from_tokens(p.tokens)).tokens
            if p.note is None:
                assert network not in seen and not exhausted  # new: neither learnt from nor proposed before
            else:
                assert network in seen  # proposed again only after MAX_PROPOSAL_TRIES draws, and said
                notes.append((step, p.note))
            seen.add(network)
        controller.update(step, tokens_of(proposals), toy_rewards(proposals))
    assert controller.seen == seen and len(seen) == 48 and exhausted_steps == [16, 17, 18, 19]
    assert notes[0] == (9, f"evolution, step 9: none of {MAX_PROPOSAL_TRIES} mutations of tournament winners is a "
                           f"network not seen before; proposing one seen before")


def test_evolution_a_step_ahead_of_its_update_proposes_no_network_twice(tiny_space):
    """As a search keeping its workers busy runs it: step s + 1 proposed before step s is learnt from. A
    controller restored from the state saved before step s + 1 was proposed, told of it (as a resumed search
    does), goes on proposing what the uninterrupted one does."""
    from akd_tf.canonical import canonical_arch

    def proposed(controller, step):
        """``propose``, then ``remember_proposed``, as the search does with every step it stores."""
        batch = controller.propose(step, 4)
        controller.remember_proposed(step, tokens_of(batch))
        return batch

    def ahead(controller, steps, first, last):
        """Steps ``first``..``last`` the pipelined way: propose step s + 1, then learn from step s."""
        for step in range(first, last):
            steps.append(proposed(controller, step + 1))
            controller.update(step, tokens_of(steps[step]), toy_rewards(steps[step]))
        return steps

    controller = make_controller("evolution", tiny_space, seed=0, **SMALL_EVOLUTION)
    steps = ahead(controller, [proposed(controller, 0)], 0, 6)
    networks = [canonical_arch(tiny_space.from_tokens(p.tokens)).tokens for batch in steps for p in batch]
    assert [p.note for batch in steps for p in batch] == [None] * 28
    assert len(networks) == len(set(networks)) == 28  # 7 steps of 4, none proposed twice

    stopped = make_controller("evolution", tiny_space, seed=0, **SMALL_EVOLUTION)
    before = ahead(stopped, [proposed(stopped, 0)], 0, 2)  # then stopped after proposing step 3
    saved = stopped.state_bytes()
    before.append(proposed(stopped, 3))
    resumed = make_controller("evolution", tiny_space, seed=0, **SMALL_EVOLUTION)
    resumed.load_state_bytes(saved)
    resumed.remember_proposed(3, tokens_of(before[3]))
    resumed.update(2, tokens_of(before[2]), toy_rewards(before[2]))
    assert ahead(resumed, before, 3, 6) == steps


def test_ppo_refuses_a_lagged_update_of_archs_it_did_not_propose_and_a_malformed_kept_state(tiny_space):
    import io

    controller = make_controller("ppo", tiny_space, seed=0)
    first, second = controller.propose(0, 4), controller.propose(1, 4)
    controller.remember_proposed(0, tokens_of(first))
    controller.remember_proposed(1, tokens_of(second))
    controller.update(0, tokens_of(first), toy_rewards(first))  # step 1's log-probabilities are kept
    stranger = next(p for p in controller.propose(7, 16) if p.tokens not in tokens_of(second))
    with pytest.raises(ValueError, match=re.escape(f"PPO update of step 1: 1 architecture(s) it did not propose for "
                                                   f"that step, such as {list(stranger.tokens)}")):
        controller.update(1, [stranger.tokens], [0.5])

    with np.load(io.BytesIO(controller.state_bytes())) as archive:
        header, weights, counters = (json.loads(archive["header"].tobytes().decode()), archive["weights"],
                                     archive["counters"])
    header["proposed_by_earlier_weights"] = {"1": [["not", "rows"]]}
    buffer = io.BytesIO()
    np.savez(buffer, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8), weights=weights,
             counters=counters)
    with pytest.raises(ValueError, match="controller state's proposed_by_earlier_weights is malformed"):
        make_controller("ppo", tiny_space, seed=0).load_state_bytes(buffer.getvalue())


def test_an_evolution_state_without_seen_networks_knows_its_population_s(tiny_space):
    controller = make_controller("evolution", tiny_space, seed=0, **SMALL_EVOLUTION)
    for step in range(3):
        batch = controller.propose(step, 4)
        controller.update(step, tokens_of(batch), toy_rewards(batch))
    state = json.loads(controller.state_bytes())
    assert len(state["seen"]) == 12 and state["seen"] == sorted(state["seen"])
    del state["seen"]  # as written before evolution kept them
    older = make_controller("evolution", tiny_space, seed=0, **SMALL_EVOLUTION)
    older.load_state_bytes(json.dumps(state).encode())
    assert older.seen == {controller._network(t) for t, _ in controller.population} and len(older.seen) == 4
