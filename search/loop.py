"""The search loop: propose a step of children, get their latency, train them, learn, repeat.

:func:`run_search` starts a run or resumes the one of the same name (see :mod:`search.runs` for why
an interrupted run loses nothing and evaluates nothing twice). Per controller step:

1. the controller proposes ``batch_size`` children (stored at once, "pending");
2. their latencies are found (:class:`search.latency.LatencySource`): predicted, or measured on the host,
   for the whole step before any child trains, so host measurements never compete with training for the
   cores; measured on a farm, the step's jobs are queued at once and each child starts training as soon as
   its own measurement is back, while the phones measure the others (:func:`_attempt`);
3. the executor trains them (:func:`search.evaluate.train_child`; with several workers the children with the
   most multiply-adds start first, :func:`start_order`); each result is stored with its reward as it arrives.
   A child whose training diverged is "failed" with :data:`search.rewards.FAILED_REWARD` (the architecture's
   fault); a child whose evaluation failed for any other reason (:mod:`search.failures`) is tried again with
   the same proposal, latency first if it has none, until the run's ``max_attempts``, and then "excluded".
   A worker death that failed several children at once counts none of them an attempt, and a child whose
   last attempt ended in a worker death trains its next one alone (:mod:`search.failures`);
4. the controller learns from the step's done and failed children only, and its state moves on with the
   next step's children.

With more than one worker, a controller that need not wait for an update before proposing (random search,
evolution, PPO: ``Controller.asynchronous``) runs through :class:`_Pipeline` instead of step 3: children start as
workers free, and the next step is proposed and started while this step's last children train (a lag of
one update); steps 1, 2 and 4 are unchanged (latencies are found per child as it starts, so this is not
used with ``measure``).

What the update gets. ``Controller.update`` takes any subset of a step's proposals, so excluded children
are simply left out: PPO recomputes the old log-probabilities of the children it gets from the weights
that proposed them and normalises the advantages over those children alone (one child: not normalised),
so a missing child shifts no other child's advantage (a batch of a new size costs PPO one more graph
trace, seconds); evolution never adds an excluded child to its population; random search learns nothing
either way. The trial numbers the update got and those it did not are stored with its statistics
(``controller_stats``: ``trials`` and ``excluded``). A step whose children were all excluded gives the
controller an empty batch: its state does not change (no gradient step, no population change, ``n`` 0)
and the step is committed; unless the budget is spent, the search then stops with
:class:`search.failures.EveryChildExcluded` naming the reasons rather than spend the rest of its budget on
infrastructure failures (running it again resumes with the next step). Excluded children count towards
the budget.

One network, one evaluation: a child whose network (:func:`akd_tf.canonical.network_key`) was evaluated
before, by this run or a run it shares evaluations with (:func:`search.runs.sharing_runs`), takes that
evaluation (accuracy, training summary, latency) and is neither measured nor trained; of several children
of one step that build one new network, the first (by number) is evaluated and the others take its result
(:func:`_evaluate_step`). Only a finished evaluation is reused, "done" or failed for a fault of the
architecture (its training diverged: :func:`search.runs.evaluations_of`): the duplicate of a child excluded
after infrastructure failures is evaluated itself (a retried child keeps its place as its network's first
until it is done or excluded). After a change of latency source (``allow_latency_change``), a duplicate of a
network priced by the earlier source takes its accuracy but is priced by the current one.
The controller still learns over raw tokens: every done or failed child of the step, duplicates included,
enters its update with its own tokens and the reward of its network, exactly as if it had been trained
(and given the same result). A duplicate is a fresh sample of the policy, so leaving it out would bias the
update against the networks the policy already favours; a network's decisions that change nothing (a
removed block's, a skip op where no residual can exist) get the network's reward whichever value was drawn.

With ``early_stop`` each child starts with the thresholds of its rule (median stopping or successive halving)
computed from the children of the run trained before its step (:mod:`search.early_stop`); one that falls
behind them stops after that epoch and its reward is that of the accuracy it had then.

After the first step, if the proxy cannot rank its children (:mod:`search.proxy_ranking`: all at chance,
or all within the noise of mini-val), the search says so with what to change, and stores the reason with
that step's controller statistics (``proxy_cannot_rank``).
"""

from __future__ import annotations

import time
from typing import Callable

from akd_tf.space import get_space
from akd_tf.target import ModelTarget
from latency_db.store import Store
from search import runs
from search.config import SearchConfig
from search.controller import make_controller
from search.controller_base import Proposal
from search.display import TrialEvent, describe_latency
from search.evaluate import configure_child_threads, run_training_data, teacher_for, train_child
from search.executors import SequentialExecutor
from search.early_stop import stop_thresholds
from search.failures import EveryChildExcluded, Failure, describe_exclusions, exclusion_groups
from search.latency import LatencySource, check_resumed_latency
from search.pause import CtrlCWatch
from search.proxy_ranking import advice, cannot_rank
from search.rewards import compute_reward, get_reward
from search.tensorboard_log import SearchBoard


class _Progress:
    """Reports each finished child to the live display (``on_event``) and the TensorBoard log (``board``)."""

    def __init__(self, store: Store, run_id: int, budget: int, on_event, board: SearchBoard | None = None):
        self.store, self.run_id, self.budget, self.on_event, self.board = store, run_id, budget, on_event, board
        self.started = time.monotonic()
        self.finished_here = 0
        best = runs.run_status_by_id(store, run_id)["best"]
        self.best_number = None if best is None else best["number"]  # a resumed run's best is not new

    def report(self, trial) -> None:
        self.finished_here += 1
        if self.on_event is None and self.board is None:
            return
        summary = runs.run_status_by_id(self.store, self.run_id)
        finished = sum(summary["trials"][state] for state in runs.FINISHED_STATES)
        if self.board is not None:
            self.board.trial_finished(runs.trial_dict(trial), finished,
                                      None if summary["best"] is None else summary["best"]["reward"])
        if self.on_event is None:
            return
        elapsed = time.monotonic() - self.started
        eta = elapsed / self.finished_here * (self.budget - finished)
        best = summary["best"]
        new_best = best is not None and best["number"] != self.best_number
        if new_best:
            self.best_number = best["number"]
        self.on_event(TrialEvent(runs.trial_dict(trial), finished, self.budget, best, elapsed, eta, new_best))


def _facts(config: SearchConfig, training, teacher) -> dict:
    return {"space_version": get_space(config.space).version,  # an edited space builds other networks
            "input_shape": [training.resolution, training.resolution, training.channels],
            "classes": training.num_classes, "dataset": training.mini_train.name,
            "data_fingerprint": f"{training.mini_train.fingerprint}/{training.mini_val.fingerprint}",
            "teacher_fingerprint": None if teacher is None else teacher.fingerprint}


def _fill_teacher_cache(teacher, training, cache_dir, say) -> None:
    from akd_tf.teacher_cache import teacher_outputs

    for split in (training.mini_train, training.mini_val):
        outputs = teacher_outputs(teacher, split, resolution=training.resolution, channels=training.channels,
                                  with_embeddings=False, cache_dir=cache_dir)
        how = "cached" if outputs.hit else f"computed in {outputs.seconds:.1f} s and cached"
        say(f"teacher outputs for {split.name}: {how}")


def run_search(store: Store, config: SearchConfig, *, executor=None, cache_dir: str | None = None,
               wait_timeout_s: float | None = None, on_event: Callable[[TrialEvent], None] | None = None,
               say: Callable[[str], None] = lambda _message: None, allow_latency_change: bool = False,
               logdir: str | None = None) -> dict:
    """Run (or resume) the search ``config`` describes until its budget is spent; returns its summary.

    ``executor`` trains children (default: in this process); ``on_event`` gets a :class:`TrialEvent` per
    finished child; ``say`` gets one-line progress messages. Errors in the settings, data, teacher or
    latency table raise ``ValueError`` before anything is trained, and so does a resumed run whose latency
    source changed (a new table version or calibration, a new runtime) unless ``allow_latency_change``
    (:func:`search.latency.check_resumed_latency`). ``logdir``: write TensorBoard event files there
    (:mod:`search.tensorboard_log`); one that cannot be written raises ``ValueError`` first.

    A Ctrl-C pauses the search: it raises ``KeyboardInterrupt`` with no attempt counted for the children it
    stopped, even when it landed somewhere that turned it into another exception (:mod:`search.pause`).
    """
    config.validate()
    board = None if logdir is None else SearchBoard(logdir, config.name)
    try:
        with CtrlCWatch() as pause:
            try:
                return _run(store, config, executor, cache_dir, wait_timeout_s, on_event, say, allow_latency_change,
                            board, pause)
            except BaseException as exc:
                if pause.is_pause(exc):
                    raise pause.as_pause(exc)
                raise
    finally:
        if board is not None:
            board.close()


def _run(store: Store, config: SearchConfig, executor, cache_dir, wait_timeout_s, on_event, say,
         allow_latency_change: bool, board: SearchBoard | None, pause: CtrlCWatch) -> dict:
    runs.check_resumable(store, config)
    executor = executor or SequentialExecutor()
    # Before this process's first TensorFlow op (the teacher, the controller): children trained here, and the
    # controller, run one thread per op as every worker does, so no result depends on where it was computed.
    if not configure_child_threads(None):
        say("TensorFlow ran in this process before the search started, with more than one thread per op: "
            "children trained here may score slightly differently from the same children in a fresh process")
    space = get_space(config.space)
    training = run_training_data(config)
    teacher = teacher_for(config)
    if teacher is not None:
        teacher.check_compatible(training.num_classes, training.channels, training.mini_train.name)
    target = ModelTarget(training.resolution, training.num_classes, training.channels, config.quantization)
    latency = LatencySource(store, config.device, target, measure=config.measure, mix=config.mix_latency,
                            wait_timeout_s=wait_timeout_s)
    latency.check(space)
    latency_identity = latency.identity(space)
    stored = runs.find_run(store, config.name)
    check_resumed_latency(config.name, None if stored is None else stored.config.get("latency"), latency_identity,
                          allow_change=allow_latency_change)
    run, resumed = runs.create_or_resume(store, config, _facts(config, training, teacher))
    runs.record_latency_source(store, run.id, latency_identity)
    done = runs.trial_count(store, run.id)
    say(f"{'resuming' if resumed else 'started'} search {config.name!r}: {done} of {config.trials} trials "
        f"proposed; {config.controller} controller, reward {config.reward} "
        f"({get_reward(config.reward).description}), accuracy from {config.reward_source}")
    say(f"latency: {describe_latency(latency_identity)}")
    say(training.describe())
    if teacher is not None:
        _fill_teacher_cache(teacher, training, cache_dir, say)
    controller = make_controller(config.controller, space, config.seed, **config.controller_options)
    if run.controller_state is not None:
        controller.load_state_bytes(run.controller_state)
    _remember_stored_proposals(store, run, controller)
    sharing = _sharing_runs(store, run.id, say)
    progress = _Progress(store, run.id, config.trials, on_event, board)
    job_base = {"config": config.to_dict(), "threads": executor.threads_per_child, "cache_dir": cache_dir}
    pipeline = None
    if controller.asynchronous and executor.capacity > 1 and not config.measure:
        pipeline = _Pipeline(store, config, run.id, controller, latency, executor, progress, say, sharing, job_base,
                             training.mini_val.num_examples, pause)
        say(f"{executor.capacity} children train at once; the {config.controller} controller's next step starts "
            f"while this one's last children finish (its proposals lag at most one update)")
    while True:
        pause.check()  # between steps, where nothing is in flight: a Ctrl-C that never raised pauses here
        run = runs.get_run(store, config.name)
        step = run.controller_step
        trials = runs.step_trials(store, run.id, step)
        if not trials:
            remaining = config.trials - runs.trial_count(store, run.id)
            if remaining <= 0:
                runs.finish(store, run.id)
                break
            proposals = _propose(controller, step, min(config.batch_size, remaining), say)
            runs.add_trials(store, run.id, step, _new_trials(proposals))
            trials = runs.step_trials(store, run.id, step)
        if pipeline is None:
            _evaluate_step(store, config, trials, latency, executor, progress, say, sharing, job_base,
                           training.mini_val.num_examples, pause)
        else:
            pipeline.finish_step(step)
        finished = runs.step_trials(store, run.id, step)
        learnt = [t for t in finished if t.status in runs.LEARNT_STATES]
        excluded = [t for t in finished if t.status == "excluded"]
        stats = controller.update(step, [t.tokens for t in learnt], [t.reward for t in learnt])
        if board is not None:
            board.controller_step(step, stats, [t.reward for t in learnt])
        stats = {**stats, "trials": [t.number for t in learnt], "excluded": [t.number for t in excluded]}
        if step == 0:
            stats = {**stats, **_check_ranking(config, training, finished, say)}
        remaining = config.trials - runs.trial_count(store, run.id)
        proposed_early = bool(runs.step_trials(store, run.id, step + 1))  # by the pipeline, while this step ended
        proposals = (_propose(controller, step + 1, min(config.batch_size, remaining), say)
                     if remaining > 0 and not proposed_early else [])
        runs.advance(store, run.id, step, controller.state_bytes(), stats, _new_trials(proposals))
        if excluded:
            reasons = describe_exclusions(exclusion_groups(excluded))
            say(f"step {step}: {len(excluded)} of {len(finished)} children excluded from learning: {reasons}")
            if not learnt and (proposals or proposed_early):
                raise EveryChildExcluded(
                    f"search {config.name!r} stopped: every child of step {step} was excluded, its attempts having "
                    f"failed for reasons that say nothing about its architecture ({reasons}). Fix the cause, then "
                    f"run the same command again to resume with step {step + 1} (`akd-tf search status "
                    f"{config.name}` shows the reasons).")
    return runs.run_status(store, config.name)


def _remember_stored_proposals(store: Store, run, controller) -> None:
    """Tell a controller just made (and restored) the proposals stored after its state was: those of step 0 and
    1 without a state, else of the step after the run's current one (proposed early by :class:`_Pipeline`),
    so a resumed search proposes what it would have proposed without the stop."""
    first = 0 if run.controller_state is None else run.controller_step + 1
    for step in range(first, run.controller_step + 2):
        trials = runs.step_trials(store, run.id, step)
        if trials:
            controller.remember_proposed(step, [t.tokens for t in trials])


def _sharing_runs(store: Store, run_id: int, say) -> list[int]:
    """The ids of this run and the runs whose evaluations it reuses (their trials' networks filled in); the
    others are named when there are any."""
    sharing = runs.sharing_runs(store, run_id)
    runs.fill_networks(store, list(sharing))
    others = [name for other, name in sharing.items() if other != run_id]
    if others:
        runs_named = f"run{'s' if len(others) > 1 else ''} {', '.join(map(repr, others))}"
        say(f"reusing the evaluations of {runs_named} (the same settings, data and teacher): a child whose network "
            f"{'they' if len(others) > 1 else 'it'} evaluated is not trained again")
    return list(sharing)


def _propose(controller, step: int, n: int, say) -> list[Proposal]:
    """The controller's proposals for ``step``, which it is told are stored
    (:meth:`~search.controller_base.Controller.remember_proposed`); what it notes about them (say, no unseen
    network found) is said."""
    proposals = controller.propose(step, n)
    controller.remember_proposed(step, [p.tokens for p in proposals])
    for note in dict.fromkeys(p.note for p in proposals if p.note):
        say(note)
    return proposals


def _check_ranking(config: SearchConfig, training, finished, say) -> dict:
    """After the first step: ``{"proxy_cannot_rank": reason}`` (also said, with what to change) when the proxy
    cannot rank the step's finished networks (:func:`search.proxy_ranking.cannot_rank`; a network's
    duplicates count once), else ``{}``."""
    scores = {t.network: t.accuracy for t in finished if t.status == "done"}  # duplicates are no evidence
    reason = cannot_rank(list(scores.values()), training.num_classes, training.mini_val.num_examples)
    if reason is None:
        return {}
    say(f"warning: the proxy task cannot rank this search's children: {reason}; "
        + advice(config.proxy.epochs, config.proxy.train_size, training.mini_train.num_examples,
                 weighs_cost=get_reward(config.reward).cost is not None))
    return {"proxy_cannot_rank": reason}


def _new_trials(proposals: list[Proposal]) -> list[runs.NewTrial]:
    return [runs.NewTrial(tuple(p.tokens), p.log_prob) for p in proposals]


def _evaluate_step(store, config: SearchConfig, trials, latency: LatencySource, executor, progress, say,
                   sharing: list[int], job_base: dict, val_examples: int, pause: CtrlCWatch) -> None:
    """Finish every pending trial of a step, round after round: reuse the evaluation of each network evaluated
    before, make one attempt at the first pending child of each other network, and repeat until none is
    pending (a child whose infrastructure failed is tried again until it is done or excluded; the duplicates
    of a network whose first child was excluded are then evaluated themselves). A pause
    (:meth:`search.pause.CtrlCWatch.is_pause`) uncounts the attempts it stopped."""
    run_id, step = trials[0].run_id, trials[0].step
    while True:
        pending = [t for t in runs.step_trials(store, run_id, step) if t.status == "pending"]
        if not pending:
            return
        evaluated = runs.evaluations_of(store, sharing, [t.network for t in pending])
        _reuse_evaluated(store, config, pending, evaluated, latency, progress, say, pause)
        first_of_network = {}
        for trial in pending:
            if trial.network not in evaluated:
                first_of_network.setdefault(trial.network, trial)
        if not first_of_network:
            continue  # all reused, but for any whose pricing failed: they are tried again, or were excluded
        chosen = [t.id for t in first_of_network.values()]
        alone = [t.id for t in first_of_network.values() if runs.runs_alone(t)]
        if alone:
            chosen = alone[:1]  # its last attempt ended in a worker death: the next one runs with no child beside it
        for trial_id in runs.mark_started(store, chosen, config.max_attempts):
            progress.report(runs.get_trial_by_id(store, trial_id))  # excluded: its attempts ran out before
        try:
            if config.early_stop:
                job_base = {**job_base, "early_stop": _stop_thresholds(store, config, run_id, val_examples)}
            _attempt(store, config, run_id, step, chosen, latency, executor, progress, say, job_base, pause)
        except BaseException as exc:
            if not pause.is_pause(exc):
                raise
            runs.release_attempts(store, chosen)  # paused (Ctrl-C), or no farm worker came: nothing failed
            raise pause.as_pause(exc)


class _Pipeline:
    """Keeps every worker busy across the end of a step, for controllers that propose without waiting for the
    update before (:attr:`search.controller_base.Controller.asynchronous`: random search, evolution, PPO).

    :meth:`finish_step` evaluates a step's children as :func:`_evaluate_step` does (reuse first, one child per
    network trained, failed attempts retried up to ``max_attempts``), but child by child: a child starts as
    soon as a worker is free. When the step has no child left to start and a worker is free, the next step
    is proposed there and then, from the controller as it is (it has not learnt from this step yet: its
    proposals lag one update), stored, and its children start. Updates still come one per step, in order, once
    every child of the step finished; the next step's children that are still training carry over to the next
    :meth:`finish_step`. A child whose network is training in either step waits for it and reuses its result,
    so no network is trained twice. Never more than one step ahead: step s + 2 is proposed only after the
    update of step s. Resuming needs nothing more: the early step's trials are stored like any others, and the
    restored controller is told of them (:func:`_remember_stored_proposals`).
    """

    def __init__(self, store, config: SearchConfig, run_id: int, controller, latency: LatencySource, executor,
                 progress: _Progress, say, sharing: list[int], job_base: dict, val_examples: int, pause: CtrlCWatch):
        self.store, self.config, self.run_id, self.controller = store, config, run_id, controller
        self.latency, self.executor, self.progress, self.say = latency, executor, progress, say
        self.sharing, self.job_base, self.val_examples, self.pause = sharing, job_base, val_examples, pause
        self.in_flight: dict[object, tuple[int, int, str]] = {}  # handle -> (trial id, step, network)
        self.starting: list[int] = []  # trials whose attempts count, not yet submitted (their latencies first)
        self.alone = None  # the handle of a child that trains with no other beside it (runs.runs_alone)

    def finish_step(self, step: int) -> None:
        """Return once no child of ``step`` is pending or training (children of ``step + 1`` may be)."""
        try:
            while True:
                self._start_children(step)
                training = any(s == step for _, s, _ in self.in_flight.values())
                if not training and not any(t.status == "pending"
                                            for t in runs.step_trials(self.store, self.run_id, step)):
                    return
                if self.in_flight:
                    handle, result = self.executor.wait_one(list(self.in_flight))
                    self.pause.check()  # a Ctrl-C that never raised: this child is stopped like the others
                    self._record(handle, result)
                # else: a start failed (its latency) and left its child pending: started again, or excluded
        except BaseException as exc:
            if not self.pause.is_pause(exc):
                raise
            stopped = {trial_id for trial_id, _, _ in self.in_flight.values()} | set(self.starting)
            runs.release_attempts(self.store, sorted(stopped))
            self.in_flight.clear()
            self.starting = []
            raise self.pause.as_pause(exc)

    def _free(self) -> int:
        return 0 if self.alone in self.in_flight else self.executor.capacity - len(self.in_flight)

    def _start_children(self, step: int) -> None:
        """Start pending children of ``step``, then of ``step + 1`` (proposed now if it has none and the budget
        allows), while workers are free."""
        for current in (step, step + 1):
            if self._free() <= 0:
                return
            trials = runs.step_trials(self.store, self.run_id, current)
            if current == step + 1 and not trials:
                remaining = self.config.trials - runs.trial_count(self.store, self.run_id)
                if remaining <= 0:
                    return
                proposals = _propose(self.controller, current, min(self.config.batch_size, remaining), self.say)
                runs.add_trials(self.store, self.run_id, current, _new_trials(proposals))
                trials = runs.step_trials(self.store, self.run_id, current)
            self._start_pending(trials)
            if current == step and any(t.status == "pending" and t.network not in self._training_networks()
                                       for t in runs.step_trials(self.store, self.run_id, step)):
                return  # this step's own children come first

    def _training_networks(self) -> set[str]:
        return {network for _, _, network in self.in_flight.values()}

    def _start_pending(self, trials) -> None:
        running = {trial_id for trial_id, _, _ in self.in_flight.values()}
        pending = [t for t in trials if t.status == "pending" and t.id not in running]
        evaluated = runs.evaluations_of(self.store, self.sharing, [t.network for t in pending])
        _reuse_evaluated(self.store, self.config, pending, evaluated, self.latency, self.progress, self.say,
                         self.pause)
        training, chosen = self._training_networks(), {}
        for trial in start_order(pending, self.executor.capacity):
            if trial.network not in evaluated and trial.network not in training:
                chosen.setdefault(trial.network, trial)
        alone = [t for t in chosen.values() if runs.runs_alone(t)]
        if alone and self.in_flight:
            return  # it waits for the workers to empty, and nothing else starts meanwhile
        chosen = alone[:1] or list(chosen.values())[:max(self._free(), 0)]
        if not chosen:
            return
        self.starting = [t.id for t in chosen]  # from here, a pause uncounts their attempts
        excluded = runs.mark_started(self.store, self.starting, self.config.max_attempts)
        for trial_id in excluded:  # its attempts ran out before
            self.progress.report(runs.get_trial_by_id(self.store, trial_id))
        chosen = [t for t in chosen if t.id not in excluded]
        failed = _price(self.store, self.config, chosen, self.latency, self.progress, self.say)
        job_base = self.job_base
        if self.config.early_stop:
            job_base = {**job_base, "early_stop": _stop_thresholds(self.store, self.config, self.run_id,
                                                                   self.val_examples)}
        for trial in chosen:
            if trial.id not in failed:
                job = {**job_base, "arch": trial.arch, "number": trial.number, "trial_id": trial.id}
                handle = self.executor.submit(train_child, job, name=task_name(self.config, trial.number))
                self.in_flight[handle] = (trial.id, trial.step, trial.network)
                if alone:
                    self.alone = handle
        self.starting = []

    def _record(self, handle, result: dict) -> None:
        trial_id, _, _ = self.in_flight.pop(handle)
        _record_training(self.store, self.config, runs.get_trial_by_id(self.store, trial_id), result, self.progress,
                         self.say)


def task_name(config: SearchConfig, number: int) -> str:
    """What a child's training job is called where its worker shows it (a Ray task: ``ray list tasks``, the
    dashboard, the worker's process title ``ray::train child #3 of my-run``)."""
    return f"train child #{number} of {config.name}"


def start_order(trials, workers: int) -> list:
    """The order in which ``trials`` start training. With one worker: by number. With several: the children with
    the most multiply-adds first (those that train longest), by number among equals, so the last children of a
    step to start are short ones and no worker idles long while the step's last child trains (the
    longest-processing-time-first rule of scheduling). The first child of a network by number still comes
    before its duplicates, which have its multiply-adds."""
    trials = list(trials)
    if workers <= 1:
        return sorted(trials, key=lambda t: t.number)
    return sorted(trials, key=lambda t: (-t.mmacs, t.number))


def _stop_thresholds(store, config: SearchConfig, run_id: int, val_examples: int) -> dict[int, float]:
    """The early-stopping thresholds for the children about to train, from the curves of the run's children
    trained before (:func:`search.early_stop.stop_thresholds`; a reused child trained nothing)."""
    curves = [t.train["val_top1"] for t in runs.all_trials(store, run_id)
              if t.status == "done" and t.reused_from is None and t.train and t.train.get("val_top1")]
    return stop_thresholds(curves, config.proxy.epochs, val_examples, config.early_stop)


def _price(store, config: SearchConfig, trials, latency: LatencySource, progress, say) -> set[int]:
    """Price each of ``trials`` (pending, their attempt started) that has no latency yet with the run's latency
    source; returns the ids of those whose pricing failed, each recorded as a failed attempt."""
    space = get_space(config.space)
    unpriced = [t for t in trials if t.latency_ms is None]
    found = latency.latencies([space.parse(t.arch) for t in unpriced])
    priced = _record_prices(store, config, unpriced, enumerate(found), progress, say)
    return {t.id for t in unpriced} - set(priced)


def _record_prices(store, config: SearchConfig, unpriced, found, progress, say) -> list[int]:
    """Record each ``(index, ChildLatency)`` of ``found`` as the latency of ``unpriced[index]``, or as a failed
    attempt; returns the ids of those priced."""
    priced = []
    for i, latency in found:
        trial = unpriced[i]
        if latency.error is not None:
            _record_failure(store, config, trial.id, Failure(latency.kind, f"latency: {latency.error}"), progress,
                            say)
        else:
            runs.record_latency(store, trial.id, latency_ms=latency.latency_ms, source=latency.source,
                                measurement_id=latency.measurement_id, seconds=latency.seconds)
            priced.append(trial.id)
    return priced


def _reuse_evaluated(store, config: SearchConfig, pending, evaluated: dict, latency: LatencySource, progress, say,
                     pause: CtrlCWatch) -> None:
    """Record each of ``pending`` whose network is in ``evaluated`` (network -> its first evaluation) with that
    evaluation. Its latency is the original's, unless the original was priced by a latency source the run
    used before (resumed with --allow-latency-change, :func:`search.runs.priced_by_earlier_source`): then the
    child lends the original's accuracy only, and is priced by the current source as one attempt (which can
    fail and be retried like any, and a pause uncounts)."""
    reusing = [t for t in pending if t.network in evaluated]
    unpriced = [t for t in reusing if t.latency_ms is None and evaluated[t.network].status == "done"]
    old_prices = runs.priced_by_earlier_source(store, [evaluated[t.network] for t in unpriced]) if unpriced else set()
    stale = [t for t in unpriced if evaluated[t.network].id in old_prices]
    failed = set()
    if stale:
        started = [t.id for t in stale]
        failed = set(runs.mark_started(store, started, config.max_attempts))
        for trial_id in failed:  # excluded: its attempts ran out before
            progress.report(runs.get_trial_by_id(store, trial_id))
        try:
            failed |= _price(store, config, [t for t in stale if t.id not in failed], latency, progress, say)
            pause.check()  # a Ctrl-C that library code swallowed while pricing: nothing is recorded as reused
        except BaseException as exc:
            if not pause.is_pause(exc):
                raise
            runs.release_attempts(store, started)
            raise pause.as_pause(exc)
    for trial in reusing:
        if trial.id not in failed:
            progress.report(_reuse(store, config, runs.get_trial_by_id(store, trial.id), evaluated[trial.network]))


def _reuse(store, config: SearchConfig, trial, original):
    """Record ``trial`` with the evaluation of ``original`` (same network), its reward from this run's reward
    with its own latency if it was priced, else the original's (a diverged original's failure as it is)."""
    if original.status == "failed":
        return runs.record_reuse(store, trial.id, original, None)
    latency_ms = original.latency_ms if trial.latency_ms is None else trial.latency_ms
    terms = compute_reward(config.reward, original.accuracy, latency_ms=latency_ms, mmacs=trial.mmacs,
                           target_ms=config.target_ms, target_mmacs=config.target_mmacs)
    return runs.record_reuse(store, trial.id, original, terms)


# How often a search whose children are still being measured on a farm looks for new latencies while children train
PRICE_POLL_S = 1.0


def _attempt(store, config: SearchConfig, run_id: int, step: int, trial_ids: list[int], latency: LatencySource,
             executor, progress, say, job_base: dict, pause: CtrlCWatch) -> None:
    """One attempt at each of ``trial_ids`` still pending (one step's trials, each of another network): its
    latency if it has none, then its training. A child is submitted for training as soon as its latency is
    known (:meth:`search.latency.LatencySource.start`), so children measured on a farm train while the phones
    measure the others (a farm that stalls holds back only the children it has not measured). Children priced
    together start in :func:`start_order`; with one worker the next child is prepared while one trains only if
    it was priced before that one started (:class:`search.executors.SequentialExecutor`). A child that finished
    after a Ctrl-C that never raised is not recorded: the pause is raised in its place
    (:meth:`search.pause.CtrlCWatch.check`)."""
    space = get_space(config.space)
    wanted = set(trial_ids)
    trials = [t for t in runs.step_trials(store, run_id, step) if t.status == "pending" and t.id in wanted]
    unpriced = [t for t in trials if t.latency_ms is None]
    pricing = latency.start([space.parse(t.arch) for t in unpriced])
    ready = [t.id for t in trials if t.latency_ms is not None]
    in_flight: dict[object, int] = {}  # handle -> trial id
    while True:
        pause.check()  # a Ctrl-C swallowed while exporting or waiting: nothing more starts
        ready += _record_prices(store, config, unpriced, pricing.ready(), progress, say)
        if ready:
            priced = [runs.get_trial_by_id(store, trial_id) for trial_id in ready]
            for trial in start_order(priced, executor.capacity):
                job = {**job_base, "arch": trial.arch, "number": trial.number, "trial_id": trial.id}
                in_flight[executor.submit(train_child, job, name=task_name(config, trial.number))] = trial.id
            ready = []
        if in_flight:
            finished = executor.wait_one(list(in_flight), timeout=None if pricing.finished else PRICE_POLL_S)
            if finished is not None:
                handle, result = finished
                pause.check()
                _record_training(store, config, runs.get_trial_by_id(store, in_flight.pop(handle)), result,
                                 progress, say)
        elif not pricing.finished:
            pricing.wait()
        else:
            return


def _record_training(store, config: SearchConfig, trial, result: dict, progress, say) -> None:
    """Store what training ``trial`` gave (:func:`search.evaluate.train_child`'s result): its accuracy and reward,
    or a failed attempt."""
    if result["status"] == "done":
        if progress.board is not None and result.get("history"):
            progress.board.child_curves(trial.number, result["history"])
        terms = compute_reward(config.reward, result["accuracy"], latency_ms=trial.latency_ms, mmacs=trial.mmacs,
                               target_ms=config.target_ms, target_mmacs=config.target_mmacs)
        progress.report(runs.record_result(store, trial.id, accuracy=result["accuracy"], reward_terms=terms,
                                           train=result["train"], train_seconds=result["train_seconds"],
                                           worker=result["worker"]))
    else:
        _record_failure(store, config, trial.id, Failure(result["kind"], result["error"]), progress, say,
                        worker=result["worker"], train_seconds=result["train_seconds"],
                        shared_with=result.get("shared_with", 0))


def _record_failure(store, config: SearchConfig, trial_id: int, failure: Failure, progress, say,
                    shared_with: int = 0, **details) -> None:
    """Store a failed attempt; report the trial if that finished it, else say that it will be tried again.
    ``shared_with``: how many other children the same failure took (a worker death that broke the pool): then
    no child is to blame, and the attempt is not counted (:mod:`search.failures`)."""
    trial = runs.record_failure(store, trial_id, failure, max_attempts=config.max_attempts, counted=not shared_with,
                                **details)
    if trial.status != "pending":
        progress.report(trial)
        return
    again = "trying it again alone" if runs.runs_alone(trial) else "trying it again"
    if shared_with:
        say(f"child #{trial.number}: failed with {shared_with} other child{'ren' if shared_with > 1 else ''} "
            f"({failure.kind}: {failure.reason}); no attempt counted, {again}")
    else:
        say(f"child #{trial.number}: attempt {trial.attempts} of {config.max_attempts} failed ({failure.kind}: "
            f"{failure.reason}); {again}")
