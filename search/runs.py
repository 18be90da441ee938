"""Search runs and their trials in the database: the single record of a search, whatever executes it.

The protocol that makes a search resumable after a crash at any moment:

* a controller step's trials are inserted (status "pending") in one transaction;
* each trial's latency, then its accuracy and reward, is committed as soon as it is known, so a finished
  trial is never evaluated again;
* each evaluation attempt is counted when it starts (:func:`mark_started`) and each failed one is kept with
  its kind and reason (:func:`record_failure`): an infrastructure failure leaves the trial "pending" for
  another attempt, until the run's ``max_attempts`` excludes it; an attempt that was started but never
  recorded (the search died during it) is found on resume and recorded as "interrupted", while one the
  user stopped with Ctrl-C, or that waited for farm workers in vain, is uncounted (:func:`release_attempts`);
* when every trial of step ``k`` is finished, the controller learns from them, and its new state, the
  step counter ``k + 1`` and the trials of step ``k + 1`` are committed in **one** transaction
  (:func:`advance`). A crash before that commit leaves step ``k`` complete and is redone identically on
  resume (the controller state saved before step ``k`` is restored and proposes deterministically).

Trials are numbered ``0 .. trials - 1`` within a run; (run, number) is unique, so nothing is added twice.
A trial ends "done", "failed" (the architecture's fault, reward :data:`search.rewards.FAILED_REWARD`) or
"excluded" (infrastructure failed on every attempt; no reward, never learnt from). Excluded trials count
towards the run's budget: they were proposed and hold their numbers.

One network, one evaluation: every trial stores its ``network`` (:func:`akd_tf.canonical.network_key`), and
a trial whose network a run it shares evaluations with (:func:`sharing_runs`: itself, and every run of
the same settings, data, teacher and latency source) already evaluated is recorded from that evaluation
(:func:`record_reuse`) instead of being trained again. A "done" evaluation is reused, and a "failed" one
whose training diverged (the architecture's fault: training the same network with the same seed again
diverges again); never an excluded trial's, which has none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from sqlalchemy import func, select

from akd_tf.canonical import network_key
from akd_tf.errors import InvalidInput, MissingData
from akd_tf.plan import plan_network
from akd_tf.space import get_space
from latency_db.schema import SearchRun, Trial, utcnow
from latency_db.store import Store
from search.checks import check_int
from search.config import SearchConfig
from search.failures import ARCHITECTURE, FAILURE_KINDS, Failure, exclusion_groups
from search.rewards import FAILED_REWARD

FINISHED_STATES = ("done", "failed", "excluded")
LEARNT_STATES = ("done", "failed")  # the trials a controller learns from; "excluded" ones never reach it
INTERRUPTED = Failure("interrupted", "the search stopped during this attempt")
# Facts that only name things for people (the dataset's name): a resumed run is not compared on them, the
# fingerprints say whether its data is the same. Runs stored before the proxy subset was named
# ``[proxy-N]`` hold ``[mini_train][mini_val]`` here and still resume.
DESCRIPTIVE_FACTS = ("dataset",)
# Facts runs began to record after runs were stored without them: such a run resumes, taking today's value
# (it cannot know its own), and from then on it is compared like the others. ``space_version``: the digest
# of the space's definition (:attr:`akd_tf.space.SearchSpace.version`), so an edited space neither resumes
# an old run nor shares its evaluations (its tokens may build other networks).
RECORDED_LATER = ("space_version",)
# Settings that steer a search but do not change what evaluating a child yields: runs that differ only in
# these share their evaluations (:func:`sharing_runs`). The seed is not among them: it seeds each child's
# training, and runs of different seeds are independent replicates. ``max_attempts`` is: it decides which
# children are excluded, not what an evaluation yields.
SEARCH_ONLY_SETTINGS = ("name", "trials", "controller", "controller_options", "batch_size", "max_attempts")


@dataclass(frozen=True)
class NewTrial:
    """A proposed child: its tokens and (for a policy controller) the log-probability it was sampled with."""

    tokens: tuple[int, ...]
    log_prob: float | None = None


def get_run(store: Store, name: str) -> SearchRun:
    """The run called ``name``; ``ValueError`` listing the known names otherwise."""
    with store.session() as session:
        run = session.scalar(select(SearchRun).where(SearchRun.name == name))
        if run is None:
            known = session.scalars(select(SearchRun.name).order_by(SearchRun.id)).all()
            raise MissingData(f"no search run named {name!r}; known runs: {', '.join(known) or 'none yet'}")
        return run


def find_run(store: Store, name: str) -> SearchRun | None:
    with store.session() as session:
        return session.scalar(select(SearchRun).where(SearchRun.name == name))


def run_config(run: SearchRun) -> SearchConfig:
    return SearchConfig.from_dict(run.config["settings"])


def _refuse_differences(name: str, differences: list[str]) -> None:
    if differences:
        raise InvalidInput(f"search run {name!r} exists with other settings; resume it with the same ones, or "
                           f"choose a new --name. Differences (stored -> given): " + "; ".join(differences))


def check_resumable(store: Store, config: SearchConfig) -> None:
    """``ValueError`` if a run named ``config.name`` exists with other settings (cheap: before any data is read)."""
    run = find_run(store, config.name)
    if run is not None:
        _refuse_differences(config.name, run_config(run).differences(config))


def create_or_resume(store: Store, config: SearchConfig, facts: dict) -> tuple[SearchRun, bool]:
    """(run, resumed): a new run for ``config``, or the stored run of that name if it agrees with ``config``.

    ``facts`` are what the settings resolved to (input shape, classes, data and teacher fingerprints); a
    stored run whose facts differ (say, the teacher file changed) cannot be resumed: its trials would not
    be comparable. The stored facts are kept as they were (:data:`DESCRIPTIVE_FACTS` are not compared).
    A larger ``trials`` budget reopens a finished run.
    """
    config.validate()
    with store.session() as session:
        run = session.scalar(select(SearchRun).where(SearchRun.name == config.name).with_for_update())
        if run is None:
            run = SearchRun(name=config.name, status="running", space=config.space, device=config.device,
                            controller=config.controller, reward=config.reward, reward_source=config.reward_source,
                            target_ms=config.target_ms, target_mmacs=config.target_mmacs,
                            trials_budget=config.trials, batch_size=config.batch_size, seed=config.seed,
                            config={"settings": config.to_dict(), "facts": facts}, controller_step=0,
                            controller_stats=[])
            session.add(run)
            session.flush()
            return run, False
        stored = run_config(run)
        _refuse_differences(config.name, stored.differences(config) + [
            f"{key}: {run.config['facts'].get(key)!r} -> {value!r}" for key, value in facts.items()
            if key not in DESCRIPTIVE_FACTS and (key in run.config["facts"] or key not in RECORDED_LATER)
            and run.config["facts"].get(key) != value])
        missing = {key: facts[key] for key in RECORDED_LATER if key in facts and key not in run.config["facts"]}
        if missing:  # a run stored before these facts were recorded takes today's
            run.config = {**run.config, "facts": {**run.config["facts"], **missing}}
        done = session.scalar(select(func.count()).select_from(Trial).where(Trial.run_id == run.id))
        if config.trials < done:
            raise InvalidInput(f"search run {config.name!r} already has {done} trials; a budget of "
                               f"{config.trials} would drop some (give --trials >= {done})")
        if config.trials != stored.trials:
            run.trials_budget = config.trials
            run.config = {**run.config, "settings": {**run.config["settings"], "trials": config.trials}}
        if run.status == "finished" and config.trials > done:
            run.status, run.finished_at = "running", None
        return run, True


def priced_by_earlier_source(store: Store, trials: Sequence[Trial]) -> set[int]:
    """The ids of those of ``trials`` whose latency came from a latency source their run used before the one it
    prices children with now (a run resumed with --allow-latency-change: :func:`record_latency_source`); each
    run's record is read once."""
    with store.session() as session:
        records = {run_id: (session.get(SearchRun, run_id).config.get("latency") or {}).get("earlier") or []
                   for run_id in {trial.run_id for trial in trials}}
    stale = set()
    for trial in trials:
        earlier = records[trial.run_id]
        if not earlier:
            continue
        if "priced" in earlier[-1]:  # the trials priced when the source last changed, whatever their order
            old = trial.number in earlier[-1]["priced"]
        else:  # recorded before runs kept that list
            old = trial.number < earlier[-1]["until_trial"]
        if old:
            stale.add(trial.id)
    return stale


def record_latency_source(store: Store, run_id: int, identity: dict) -> None:
    """Record ``identity`` (:meth:`search.latency.LatencySource.identity`) as what prices the run's children from
    now on, in ``config["latency"]["current"]``. Another one recorded before moves to ``earlier`` with
    ``until_trial``, the lowest number of a trial it had not priced (for display: ``before trial #N``), and
    ``priced``, the numbers of every trial priced by then (children of several workers finish out of order, so
    a number above ``until_trial`` may be among them)."""
    with store.session() as session:
        run = session.get(SearchRun, run_id, with_for_update=True)
        recorded = run.config.get("latency")
        if recorded is not None and recorded["current"] == identity:
            return
        earlier = []
        if recorded is not None:
            unpriced = session.scalar(select(func.min(Trial.number)).where(
                Trial.run_id == run_id, Trial.status == "pending", Trial.latency_ms.is_(None)))
            until = unpriced if unpriced is not None else session.scalar(
                select(func.count()).select_from(Trial).where(Trial.run_id == run_id))
            priced = session.scalars(select(Trial.number).where(
                Trial.run_id == run_id, Trial.latency_ms.is_not(None)).order_by(Trial.number)).all()
            earlier = [*recorded["earlier"], {"latency": recorded["current"], "until_trial": until,
                                              "priced": list(priced)}]
        run.config = {**run.config, "latency": {"current": identity, "earlier": earlier}}


def step_trials(store: Store, run_id: int, step: int) -> list[Trial]:
    """The trials of controller step ``step``, by number."""
    with store.session() as session:
        return list(session.scalars(select(Trial).where(Trial.run_id == run_id, Trial.step == step)
                                    .order_by(Trial.number)))


def trial_count(store: Store, run_id: int) -> int:
    with store.session() as session:
        return session.scalar(select(func.count()).select_from(Trial).where(Trial.run_id == run_id))


def _trial_rows(session, run: SearchRun, step: int, proposals: Sequence[NewTrial]) -> None:
    existing = session.scalar(select(func.count()).select_from(Trial)
                              .where(Trial.run_id == run.id, Trial.step == step))
    if existing:  # this step's trials were added before a crash: nothing to add twice
        return
    space = get_space(run.space)
    shape, classes = run.config["facts"]["input_shape"], run.config["facts"]["classes"]
    first = session.scalar(select(func.count()).select_from(Trial).where(Trial.run_id == run.id))
    for offset, proposal in enumerate(proposals):
        arch = space.from_tokens(proposal.tokens)
        plan = plan_network(arch, tuple(shape), classes)
        session.add(Trial(run_id=run.id, number=first + offset, step=step, arch=arch.to_string(),
                          tokens=list(arch.tokens), log_prob=proposal.log_prob, status="pending",
                          mmacs=plan.macs / 1e6, params=plan.params, network=network_key(arch)))


def add_trials(store: Store, run_id: int, step: int, proposals: Sequence[NewTrial]) -> None:
    """Insert the trials of ``step`` unless that step already has trials (idempotent)."""
    with store.session() as session:
        run = session.get(SearchRun, run_id, with_for_update=True)
        _trial_rows(session, run, step, proposals)


def advance(store: Store, run_id: int, step: int, state: bytes, stats: dict,
            next_proposals: Sequence[NewTrial]) -> None:
    """Atomically: the controller learnt from ``step``; save its state, move to ``step + 1``, add its trials
    (unless step ``step + 1`` has trials already: proposed early, while ``step`` finished).

    With no ``next_proposals`` and no trials of ``step + 1`` (the budget is spent) the run is marked finished.
    """
    with store.session() as session:
        run = session.get(SearchRun, run_id, with_for_update=True)
        if run.controller_step != step:
            raise InvalidInput(f"search run {run.name!r} is at controller step {run.controller_step}, not {step}: "
                               "is another process running it?")
        run.controller_state = state
        run.controller_stats = [*(run.controller_stats or []), {"step": step, **stats}]
        run.controller_step = step + 1
        if next_proposals:
            _trial_rows(session, run, step + 1, next_proposals)
        elif not session.scalar(select(func.count()).select_from(Trial)
                                .where(Trial.run_id == run.id, Trial.step == step + 1)):
            run.status, run.finished_at = "finished", utcnow()


def finish(store: Store, run_id: int) -> None:
    with store.session() as session:
        run = session.get(SearchRun, run_id)
        run.status, run.finished_at = "finished", utcnow()


def record_latency(store: Store, trial_id: int, *, latency_ms: float, source: str, measurement_id: int | None,
                   seconds: float) -> None:
    with store.session() as session:
        trial = session.get(Trial, trial_id)
        trial.latency_ms, trial.latency_source = latency_ms, source
        trial.measurement_id, trial.latency_seconds = measurement_id, seconds


def mark_started(store: Store, trial_ids: Sequence[int], max_attempts: int) -> list[int]:
    """Start one more evaluation attempt of each pending trial; returns the ids of those excluded instead.

    A trial whose last attempt started but was never recorded (the search stopped during it) gets that
    attempt recorded as "interrupted" first; a trial that has had ``max_attempts`` attempts is excluded.
    """
    check_int("max_attempts", max_attempts, 1)
    excluded = []
    with store.session() as session:
        for trial in session.scalars(select(Trial).where(Trial.id.in_(list(trial_ids)), Trial.status == "pending")
                                     .order_by(Trial.number)):
            if trial.attempts > _counted_failures(trial):
                _add_failure(trial, INTERRUPTED)
            if trial.attempts >= max_attempts:
                _exclude(trial)
                excluded.append(trial.id)
                continue
            trial.attempts += 1
            trial.started_at = trial.started_at or utcnow()
    return excluded


def release_attempts(store: Store, trial_ids: Sequence[int]) -> None:
    """Uncount the current attempt of each still pending trial that has no recorded outcome for it: the search
    was stopped on purpose (Ctrl-C) or gave up waiting for farm workers, which says nothing about the child
    or its infrastructure. A search that dies instead (killed, out of memory, a crash) leaves its attempts
    counted, to be recorded as interrupted."""
    with store.session() as session:
        for trial in session.scalars(select(Trial).where(Trial.id.in_(list(trial_ids)), Trial.status == "pending")):
            if trial.attempts > _counted_failures(trial):
                trial.attempts -= 1


def record_result(store: Store, trial_id: int, *, accuracy: float, reward_terms: dict, train: dict,
                  train_seconds: float, worker: str) -> Trial:
    with store.session() as session:
        trial = session.get(Trial, trial_id)
        trial.accuracy, trial.reward, trial.reward_terms = accuracy, reward_terms["reward"], reward_terms
        trial.train, trial.train_seconds, trial.worker = train, train_seconds, worker
        trial.status, trial.error, trial.finished_at = "done", None, utcnow()
    return get_trial_by_id(store, trial_id)


def _evaluation_identity(run: SearchRun) -> dict:
    """What decides a child's evaluation in ``run``: its settings but :data:`SEARCH_ONLY_SETTINGS`, its
    facts but :data:`DESCRIPTIVE_FACTS` (input shape, classes, data and teacher fingerprints), and the
    latency source pricing its children now (:func:`record_latency_source`: a reused evaluation carries
    its latency, so a run takes only latencies of its own source)."""
    settings = {k: v for k, v in run_config(run).to_dict().items() if k not in SEARCH_ONLY_SETTINGS}
    facts = {k: v for k, v in run.config["facts"].items() if k not in DESCRIPTIVE_FACTS}
    return {"settings": settings, "facts": facts, "latency": (run.config.get("latency") or {}).get("current")}


def sharing_runs(store: Store, run_id: int) -> dict[int, str]:
    """Id -> name of the runs whose evaluations run ``run_id`` reuses, itself first: those whose settings and
    facts agree with its own but for :data:`SEARCH_ONLY_SETTINGS` (the controller, its options, the budget,
    the batch size, the name) and :data:`DESCRIPTIVE_FACTS`, and whose children are priced by the same latency
    source now, in the order they were created."""
    with store.session() as session:
        run = session.get(SearchRun, run_id)
        identity = _evaluation_identity(run)
        others = session.scalars(select(SearchRun).where(SearchRun.space == run.space, SearchRun.id != run.id)
                                 .order_by(SearchRun.id)).all()
        return {run.id: run.name, **{other.id: other.name for other in others
                                     if _evaluation_identity(other) == identity}}


def fill_networks(store: Store, run_ids: Sequence[int]) -> int:
    """Store the ``network`` of every trial of ``run_ids`` stored without one (before migration 0013);
    returns how many were filled. Runs of a space not registered in this process are left as they are."""
    filled = 0
    with store.session() as session:
        for run in session.scalars(select(SearchRun).where(SearchRun.id.in_(list(run_ids)))):
            try:
                space = get_space(run.space)
            except InvalidInput:
                continue
            for trial in session.scalars(select(Trial).where(Trial.run_id == run.id, Trial.network.is_(None))):
                trial.network = network_key(space.parse(trial.arch))
                filled += 1
    return filled


def evaluations_of(store: Store, run_ids: Sequence[int], networks: Sequence[str]) -> dict[str, Trial]:
    """For each of ``networks`` that a run of ``run_ids`` evaluated, its first evaluation: the trial of that
    network that was evaluated itself (not a reuse) and is "done", or "failed" for a fault of the architecture
    (:func:`is_architecture_failure`), earliest in ``run_ids`` order, then by number."""
    order = {run_id: i for i, run_id in enumerate(run_ids)}
    with store.session() as session:
        rows = session.scalars(select(Trial).where(
            Trial.run_id.in_(list(run_ids)), Trial.network.in_(list(set(networks))),
            Trial.status.in_(("done", "failed")), Trial.reused_from.is_(None))).all()
    found: dict[str, Trial] = {}
    for trial in sorted(rows, key=lambda t: (order[t.run_id], t.number)):
        if trial.status == "done" or is_architecture_failure(trial):
            found.setdefault(trial.network, trial)
    return found


def is_architecture_failure(trial: Trial) -> bool:
    """Whether ``trial`` failed for a fault of its architecture (its last attempt's failure kind, such as
    ``diverged``): a result about the network. Runs stored before failures had kinds (every failure then
    ended "failed", infrastructure ones too) have none, and are not."""
    kind = _last_failure_kind(trial)
    return trial.status == "failed" and kind is not None and kind.fault == ARCHITECTURE


def _last_failure_kind(trial: Trial):
    """The :class:`search.failures.FailureKind` of the trial's last failed attempt; None without one (or for
    rows stored before failures had kinds)."""
    return FAILURE_KINDS.get((trial.attempt_failures or [{}])[-1].get("kind"))


def record_reuse(store: Store, trial_id: int, original: Trial, reward_terms: dict | None) -> Trial:
    """Trial ``trial_id`` is finished with the evaluation of ``original`` (the same network): its latency
    (source and measurement too) unless the trial was priced itself, and its training summary; if
    ``original`` is "done", its accuracy and ``reward_terms`` computed from them with this run's reward, done;
    if it "failed" (its training diverged), failed as it did, with its error and :data:`FAILED_REWARD`
    (``reward_terms`` None). Nothing was trained for it: its training time and worker stay empty."""
    with store.session() as session:
        trial = session.get(Trial, trial_id)
        if trial.network != original.network:
            raise InvalidInput(f"trial #{trial.number} ({trial.network}) cannot reuse trial #{original.number} "
                               f"of another network ({original.network})")
        if trial.latency_ms is None:
            trial.latency_ms, trial.latency_source = original.latency_ms, original.latency_source
            trial.measurement_id, trial.latency_seconds = original.measurement_id, None
        trial.train, trial.train_seconds, trial.worker = original.train, None, None
        if original.status == "failed":
            trial.accuracy, trial.reward, trial.reward_terms = None, FAILED_REWARD, None
            trial.status, trial.error = "failed", original.error
        else:
            trial.accuracy, trial.reward = original.accuracy, reward_terms["reward"]
            trial.reward_terms, trial.status, trial.error = reward_terms, "done", None
        trial.reused_from = original.id
        trial.started_at = trial.finished_at = utcnow()
    return get_trial_by_id(store, trial_id)


def _add_failure(trial: Trial, failure: Failure, counted: bool = True) -> None:
    """Keep ``failure`` as the failure of the trial's current attempt (a new list: JSON columns change whole);
    one that does not count as an attempt is marked ``"counted": False``."""
    entry = {"attempt": trial.attempts, "kind": failure.kind, "reason": failure.reason[:4000]}
    if not counted:
        entry["counted"] = False
    trial.attempt_failures = [*(trial.attempt_failures or []), entry]
    trial.error = entry["reason"]


def _counted_failures(trial: Trial) -> int:
    """How many of the trial's attempts have a recorded failure (an uncounted failure is no attempt)."""
    return sum(1 for entry in trial.attempt_failures or [] if entry.get("counted", True))


def runs_alone(trial: Trial) -> bool:
    """Whether pending ``trial`` must run its next attempt with no other child beside it: its last attempt
    ended in a failure that may have been a neighbour's (a kind with ``alone``, :mod:`search.failures`)."""
    kind = _last_failure_kind(trial)
    return trial.status == "pending" and kind is not None and kind.alone


def _exclude(trial: Trial) -> None:
    """Infrastructure failed on every attempt: no reward; ``error`` keeps the last attempt's reason."""
    trial.status, trial.reward, trial.finished_at = "excluded", None, utcnow()


def record_failure(store: Store, trial_id: int, failure: Failure, *, max_attempts: int, worker: str | None = None,
                   train_seconds: float | None = None, counted: bool = True) -> Trial:
    """Record the failed current attempt of a trial; returns the trial as it now is.

    The architecture's fault (:mod:`search.failures`): "failed" with reward :data:`FAILED_REWARD`. An
    infrastructure failure: "excluded" once the trial has had ``max_attempts`` attempts, else still
    "pending", to be retried with the same proposal. ``counted=False`` (an infrastructure failure no child
    can be blamed for, such as a worker death that failed several children at once): the failure is kept,
    marked so, the attempt is uncounted, and the trial stays "pending".
    """
    check_int("max_attempts", max_attempts, 1)
    if not counted and not failure.is_infrastructure:
        raise InvalidInput(f"a {failure.kind!r} failure is the architecture's fault: it always counts")
    with store.session() as session:
        trial = session.get(Trial, trial_id)
        _add_failure(trial, failure, counted)
        trial.worker = worker or trial.worker
        trial.train_seconds = train_seconds if train_seconds is not None else trial.train_seconds
        if not counted:
            trial.attempts -= 1
        elif not failure.is_infrastructure:
            trial.status, trial.reward, trial.finished_at = "failed", FAILED_REWARD, utcnow()
        elif trial.attempts >= max_attempts:
            _exclude(trial)
    return get_trial_by_id(store, trial_id)


def list_runs(store: Store) -> list[dict]:
    """One summary per run, oldest first: name, status, controller, reward, device, trials done/budget, best."""
    with store.session() as session:
        runs = session.scalars(select(SearchRun).order_by(SearchRun.id)).all()
        return [_summary(session, run) for run in runs]


def run_status(store: Store, name: str) -> dict:
    """The summary of run ``name`` (see :func:`list_runs`); ``ValueError`` listing the known runs otherwise."""
    return run_status_by_id(store, get_run(store, name).id)


def run_status_by_id(store: Store, run_id: int) -> dict:
    with store.session() as session:
        return _summary(session, session.get(SearchRun, run_id))


def get_trial_by_id(store: Store, trial_id: int) -> Trial:
    """Trial ``trial_id`` as stored now, with its original (a trial read back after a change: a flush leaves
    its ``run_name`` to be read again, which a closed session cannot)."""
    with store.session() as session:
        return session.get(Trial, trial_id)


def _excluded_reasons(session, run: SearchRun) -> list[dict]:
    """The run's excluded trials grouped by the kind of their last failure (:func:`exclusion_groups`)."""
    return exclusion_groups(session.scalars(select(Trial).where(Trial.run_id == run.id, Trial.status == "excluded")
                                            .order_by(Trial.number)))


def _summary(session, run: SearchRun) -> dict:
    counts = dict(session.execute(select(Trial.status, func.count()).where(Trial.run_id == run.id)
                                  .group_by(Trial.status)).all())
    reused = dict(session.execute(select(Trial.status, func.count()).where(
        Trial.run_id == run.id, Trial.reused_from.is_not(None)).group_by(Trial.status)).all())
    best = session.scalar(select(Trial).where(Trial.run_id == run.id, Trial.status == "done")
                          .order_by(Trial.reward.desc(), Trial.number).limit(1))
    seconds = session.scalar(select(func.sum(Trial.train_seconds)).where(Trial.run_id == run.id)) or 0.0
    return {
        "name": run.name, "status": run.status, "space": run.space, "device": run.device,
        "strategy": run.config["settings"].get("strategy", "akd"), "controller": run.controller,
        "reward": run.reward, "reward_source": run.reward_source,
        "target_ms": run.target_ms, "target_mmacs": run.target_mmacs, "seed": run.seed,
        "trials_budget": run.trials_budget, "batch_size": run.batch_size, "controller_step": run.controller_step,
        "trials": {state: counts.get(state, 0) for state in ("pending", *FINISHED_STATES)},
        "reused": reused.get("done", 0), "reused_failed": reused.get("failed", 0),
        "excluded": _excluded_reasons(session, run) if counts.get("excluded") else [],
        "train_seconds": seconds, "facts": run.config["facts"], "latency": run.config.get("latency"),
        "best": None if best is None else trial_dict(best),
        "created_at": run.created_at.isoformat(), "finished_at": run.finished_at and run.finished_at.isoformat(),
    }


def trial_dict(trial: Trial) -> dict:
    """A trial as a JSON-safe dict (what ``search top --json`` prints)."""
    original = trial.original
    return {
        "number": trial.number, "step": trial.step, "status": trial.status, "arch": trial.arch,
        "accuracy": trial.accuracy, "latency_ms": trial.latency_ms, "latency_source": trial.latency_source,
        "mmacs": trial.mmacs, "params": trial.params, "reward": trial.reward, "error": trial.error,
        "train_seconds": trial.train_seconds, "latency_seconds": trial.latency_seconds, "worker": trial.worker,
        "run": trial.run_name, "network": trial.network,
        "reused_from": None if original is None else {"run": original.run_name, "number": original.number},
        "attempts": trial.attempts, "attempt_failures": list(trial.attempt_failures or []),
        "stopped_at_epoch": (trial.train or {}).get("stopped_at_epoch"),  # early stopping: the epoch it stopped after
    }


def top_trials(store: Store, name: str, k: int = 10, max_latency_ms: float | None = None) -> list[dict]:
    """The ``k`` finished trials of run ``name`` with the highest reward (ties: earlier first).

    ``max_latency_ms`` keeps only children at or under that latency.
    """
    check_int("k", k, 1)
    run = get_run(store, name)
    with store.session() as session:
        query = select(Trial).where(Trial.run_id == run.id, Trial.status == "done")
        if max_latency_ms is not None:
            query = query.where(Trial.latency_ms <= max_latency_ms)
        rows = session.scalars(query.order_by(Trial.reward.desc(), Trial.number).limit(k)).all()
        return [trial_dict(t) for t in rows]


def all_trials(store: Store, run_id: int) -> list[Trial]:
    with store.session() as session:
        return list(session.scalars(select(Trial).where(Trial.run_id == run_id).order_by(Trial.number)))


def get_trial(store: Store, name: str, number: int | None = None) -> Trial:
    """Trial ``number`` of run ``name``, or (``None``) its best finished trial; ``ValueError`` if there is none."""
    run = get_run(store, name)
    with store.session() as session:
        if number is None:
            trial = session.scalar(select(Trial).where(Trial.run_id == run.id, Trial.status == "done")
                                   .order_by(Trial.reward.desc(), Trial.number).limit(1))
            if trial is None:
                raise MissingData(f"search run {name!r} has no finished trial yet")
            return trial
        trial = session.scalar(select(Trial).where(Trial.run_id == run.id, Trial.number == number))
        if trial is None:
            count = session.scalar(select(func.count()).select_from(Trial).where(Trial.run_id == run.id))
            raise MissingData(f"search run {name!r} has no trial {number} (trials 0-{count - 1})" if count else
                              f"search run {name!r} has no trials yet")
        if trial.status != "done":
            raise InvalidInput(f"trial {number} of {name!r} is {trial.status}"
                               + (f": {trial.error}" if trial.error else ""))
        return trial
