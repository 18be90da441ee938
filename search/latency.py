"""The latency of a search's children on its device, where each number came from, and that it is one source.

Within one search every child's latency comes from one source (:func:`latency_mode`):

* ``predicted`` (the default): the lookup table's prediction, by the device's current table version and
  its calibration, loaded once: one predictor for the whole run;
* ``measured`` (``--measure``): a whole-model measurement on the device of the child's network (its canonical
  form, :mod:`akd_tf.canonical`), taken the way a search measures
  (:data:`latency_db.measure.WHOLE_MODEL_SETTINGS` by the device's current runtime): a stored one whose
  run settings match, else a new one (in this process for the host; as farm jobs for phones, a whole
  controller step queued at once so the farm measures them in parallel, each latency handed out as its job
  finishes: :meth:`LatencySource.start`);
* ``mixed`` (``--mix-latency``, asked for explicitly): a stored matching measurement where there is one,
  else the prediction.

A stored measurement taken otherwise (``akd-tf latency measure --runs 5``, another interpreter version, another
core of a phone) is never reused. :meth:`LatencySource.identity` is what the run records as its latency
source (``config["latency"]``, :func:`search.runs.record_latency_source`); a resumed run whose source
changed (a new table version or calibration, a new runtime) is refused unless the user accepts the change
(:func:`check_resumed_latency`), and then the run records which trials the old source priced.

A child whose latency cannot be had gets an error and its kind of failure (:mod:`search.failures`: a
conversion or measurement crash, a failed farm job, a key the table lacks; none is the architecture's
fault, so the search tries it again).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Sequence

from sqlalchemy.exc import SQLAlchemyError

from akd_tf.benchmark import latency_us
from akd_tf.canonical import canonical_arch
from akd_tf.errors import InvalidInput
from akd_tf.space import Arch
from akd_tf.target import ModelTarget
from latency_db import farm, queue
from latency_db.devices import current_runtime, get_device, is_host_name, lookup_device, this_host_runtime
from latency_db import measure
from latency_db.measure import WHOLE_MODEL_SETTINGS
from latency_db.measurements import measurement_by_run_key, measurements_of_network
from latency_db.predictor import LutPredictor
from latency_db.store import Store
from search.display import describe_latency
from search.failures import Failure, failure_reason

# Run settings a stored measurement need not share with a search's own to be reused: the interpreter and the
# core it ran on are compared apart (LatencySource.matches); every other setting must be equal.
NOT_PROTOCOL = ("core", "runtime")


def latency_mode(measure: bool, mix: bool) -> str:
    """``measured``, ``mixed`` or ``predicted`` (see the module docstring) for a search's two latency settings."""
    return "measured" if measure else "mixed" if mix else "predicted"


@dataclass(frozen=True)
class ChildLatency:
    """One child's latency (``None`` with ``error`` and its failure ``kind`` when it could not be had) and how
    long getting it took."""

    latency_ms: float | None
    source: str | None  # "measured" | "predicted"
    measurement_id: int | None
    seconds: float
    error: str | None = None
    kind: str | None = None  # a kind of search.failures.FAILURE_KINDS when error is set

    @property
    def failure(self) -> Failure | None:
        return None if self.error is None else Failure(self.kind, self.error)


def _failed(kind: str, reason: str, start: float) -> ChildLatency:
    return ChildLatency(None, None, None, time.perf_counter() - start, reason, kind)


def check_resumed_latency(name: str, recorded: dict | None, identity: dict, *, allow_change: bool) -> None:
    """``ValueError`` if run ``name`` recorded another latency source (``recorded``: its ``config["latency"]``)
    than ``identity`` and the user did not ``allow_change``; the message says what changed and what to do.
    A run that recorded none (stored before runs did) takes ``identity``."""
    if recorded is None or recorded["current"] == identity or allow_change:
        return
    raise InvalidInput(
        f"search run {name!r} priced its children with {describe_latency(recorded['current'])}; they would now be "
        f"priced with {describe_latency(identity)}, so later children would not be comparable with earlier ones. "
        "Resume with --allow-latency-change to price the rest with the new source (the run records which trials "
        "the old one priced), or start a new run (--name).")


class LatencySource:
    """Latencies of architectures on ``device`` at ``target`` (see the module docstring): measured with
    ``measure``, else predicted, or with ``mix`` stored matching measurements where there are some."""

    def __init__(self, store: Store, device: str, target: ModelTarget, *, measure: bool, mix: bool = False,
                 wait_timeout_s: float | None = None):
        if measure and mix:
            raise InvalidInput("a latency source either measures every child (measure) or mixes stored "
                               "measurements with predictions (mix), not both")
        self.store, self.device, self.target = store, device, target
        self.mode = latency_mode(measure, mix)
        self.wait_timeout_s = wait_timeout_s
        self._predictor: LutPredictor | None = None
        with store.session() as session:  # a host measures in this process, also before its device row exists
            device_row = lookup_device(session, device) if is_host_name(device) else get_device(session, device)
            self._farm = not is_host_name(device) and farm.is_farm_device(device_row)
            runtime = this_host_runtime() if device_row is None else current_runtime(device_row)
            # A phone's core is chosen once (a big or a little one: it decides the latency); a host measures on
            # whichever core its process may use, all alike, so its core is not part of how it measures.
            core = None if is_host_name(device) else device_row.core
        protocol = {key: value for key, value in asdict(WHOLE_MODEL_SETTINGS).items() if key not in NOT_PROTOCOL}
        self._measurement = {"runtime": runtime, "protocol": protocol, "core": core}

    def check(self, space) -> None:
        """Fail before any training if children could get no latency: ``ValueError`` saying what to do."""
        if self.mode == "measured":
            return
        try:
            predictor = self._lut(space)
            for largest in (False, True):
                predictor.predict_ms(space.extreme(largest))
        except ValueError as exc:
            raise InvalidInput(f"{exc}\nOr pass --measure to measure every child on {self.device!r} instead "
                               "of predicting it.") from None

    def identity(self, space) -> dict:
        """What prices this search's children, as the run records it: the mode, the predictor (table version
        and calibration) unless measured, the measurement (runtime, run settings, core) unless predicted."""
        predictor = None
        if self.mode != "measured":
            lut = self._lut(space)
            predictor = {"table_id": lut.table_id,
                         "calibration_id": None if lut.calibration is None else lut.calibration.id}
        return {"source": self.mode, "predictor": predictor,
                "measurement": None if self.mode == "predicted" else self._measurement}

    def _lut(self, space) -> LutPredictor:
        if self._predictor is None:
            self._predictor = LutPredictor.load(self.store, self.device, space, self.target)
        return self._predictor

    def latencies(self, archs: Sequence[Arch]) -> list[ChildLatency]:
        """One :class:`ChildLatency` per arch, in order, once all are known (:meth:`start`, waited for); a child
        that cannot be priced gets an ``error``."""
        return self.start(archs).wait_all()

    def start(self, archs: Sequence[Arch]) -> Pricing:
        """Start pricing ``archs``; their latencies come through the :class:`Pricing` as they become known.

        Each network is priced once: the first of ``archs`` that builds it gets that price (or error), the
        others a copy with ``seconds`` 0, as nothing was spent on them. A stored measurement of the network is
        found under those tokens, else its canonical form (:func:`latency_db.measurements.measurements_of_network`);
        a new one is taken under the canonical form (:func:`akd_tf.canonical.canonical_arch`), so a network has
        one measurement on a device whatever tokens built it (the same layers, the same ``.tflite``). Only a
        farm's measurements take time: their jobs are queued here (each network exported first) and each
        latency is known once its job finishes; every other latency is known when this returns."""
        networks = [canonical_arch(arch) for arch in archs]
        first: dict[Arch, Arch] = {}  # network -> the first of archs that builds it
        for arch, network in zip(archs, networks):
            first.setdefault(network, arch)
        distinct = list(first)
        if self.mode == "measured" and self._farm:
            stored = dict(zip(distinct, self._stored(list(first.values()))))
            known = {network: found for network, found in stored.items() if found is not None}
            return _FarmPricing(self, networks, known, [network for network in distinct if network not in known])
        return Pricing(networks, dict(zip(distinct, self._latencies(distinct, list(first.values())))))

    def _latencies(self, networks: Sequence[Arch], given: Sequence[Arch]) -> list[ChildLatency]:
        """The latencies of distinct ``networks`` (canonical forms), each ``given`` as the tokens of a child,
        measured in this process or predicted (not on a farm: :class:`_FarmPricing`)."""
        found = [None] * len(networks) if self.mode == "predicted" else self._stored(given)
        missing = [i for i, row in enumerate(found) if row is None]
        if missing and self.mode == "measured":
            for i in missing:
                found[i] = self._measure_one_here(networks[i])
        elif missing:
            for i in missing:
                start = time.perf_counter()
                try:
                    found[i] = ChildLatency(self._lut(networks[i].space).predict_ms(networks[i]), "predicted", None,
                                            time.perf_counter() - start)
                except ValueError as exc:  # a key the table lacks: the child fails, the search goes on
                    found[i] = _failed("latency-unknown", failure_reason(exc), start)
        return found

    def matches(self, settings: dict) -> bool:
        """Whether a stored measurement's run settings are the ones this search measures with."""
        wanted = self._measurement
        return (isinstance(settings, dict) and settings.get("runtime") == wanted["runtime"]
                and all(settings.get(key) == value for key, value in wanted["protocol"].items())
                and (wanted["core"] is None or settings.get("core") == wanted["core"]))

    def _stored(self, archs: Sequence[Arch]) -> list[ChildLatency | None]:
        """For each arch, the first stored measurement of its network whose run settings match (:meth:`matches`;
        in the order of :func:`latency_db.measurements.measurements_of_network`: its own tokens' newest first),
        or None."""
        with self.store.session() as session:
            device = lookup_device(session, self.device)  # None: this host has measured nothing yet
            if device is None:
                return [None] * len(archs)
            rows = [next((row for row in measurements_of_network(session, device, arch, self.target)
                          if self.matches(row.settings)), None) for arch in archs]
            return [None if row is None else ChildLatency(latency_us(row) / 1000.0, "measured", row.id, 0.0)
                    for row in rows]

    def _measure_one_here(self, arch: Arch) -> ChildLatency:
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="akd-tf-") as tmp:
            try:
                exported = measure.export_untrained(arch, self.target, Path(tmp) / "model.tflite", 0)
            except Exception as exc:  # the converter's failure is this child's, not the search's
                return _failed("conversion-failed", failure_reason(exc), start)
            try:
                row = measure.measure_tflite(self.store, self.device, arch, self.target, exported.path,
                                             exported.sha256)
            except SQLAlchemyError:
                raise
            except Exception as exc:  # so is the benchmark's
                return _failed("measurement-failed", failure_reason(exc), start)
        return ChildLatency(latency_us(row) / 1000.0, "measured", row.id, time.perf_counter() - start)

    def _queue_on_farm(self, networks: Sequence[Arch]) -> list[farm.FarmOutcome]:
        """Export each network untrained and queue its farm job (deterministic run keys: a resumed search finds
        its jobs); a network whose export or queueing failed has that ``exception`` as its outcome."""
        return measure.request_archs(self.store, self.device, networks, self.target,
                                     settings=measure.WHOLE_MODEL_SETTINGS, keep_going=True, wait=False)

    def _farm_latency(self, outcome: farm.FarmOutcome, seconds: float) -> ChildLatency:
        """The latency a finished farm ``outcome`` gives its network (``seconds``: the search's time spent on it)."""
        if outcome.exception is not None:  # its export or queueing failed: this child fails
            return ChildLatency(None, None, None, seconds, failure_reason(outcome.exception), "conversion-failed")
        if outcome.state == "failed":
            return ChildLatency(None, None, None, seconds, f"farm job {outcome.job.job_id} failed: {outcome.failure}",
                                "farm-job-failed")
        row = measurement_by_run_key(self.store, outcome.job.run_key)
        return ChildLatency(latency_us(row) / 1000.0, "measured", row.id, seconds)


class Pricing:
    """The latencies of a list of archs (:meth:`LatencySource.start`), handed out as they become known.

    :meth:`ready` returns ``(index, ChildLatency)`` for each arch whose latency became known and was not handed
    out before; :attr:`finished` once every arch's was. :meth:`wait` blocks until another network's latency is
    known; only a farm's take time (:class:`_FarmPricing`), every other is known from the start. The archs of
    one network get its latency together: the first of them as it is, the others with ``seconds`` 0.
    """

    def __init__(self, networks: Sequence[Arch], known: dict[Arch, ChildLatency]):
        self._networks = list(networks)  # each arch's network, in order
        self._known = dict(known)
        self._first = {}  # network -> the index of the first arch that builds it
        for i, network in enumerate(self._networks):
            self._first.setdefault(network, i)
        self._handed: set[int] = set()

    @property
    def finished(self) -> bool:
        return len(self._handed) == len(self._networks)

    def ready(self) -> list[tuple[int, ChildLatency]]:
        self._refresh()
        out = []
        for i, network in enumerate(self._networks):
            if i not in self._handed and network in self._known:
                found = self._known[network]
                out.append((i, found if self._first[network] == i else replace(found, seconds=0.0)))
                self._handed.add(i)
        return out

    def wait(self) -> None:
        """Block until another network's latency is known (at once: every latency here is known)."""

    def wait_all(self) -> list[ChildLatency]:
        """Every arch's latency, in order, once all are known (of a pricing none was taken from yet)."""
        found = {}
        while True:
            found.update(self.ready())
            if self.finished:
                return [found[i] for i in range(len(self._networks))]
            self.wait()

    def _refresh(self) -> None:
        """Learn the latencies that became known since the last call."""


class _FarmPricing(Pricing):
    """Latencies measured by farm jobs: each is known once its job finished (:func:`latency_db.farm.settled`).

    :meth:`wait` waits for the next job to finish, up to the source's ``wait_timeout_s``
    (:class:`latency_db.queue.WaitTimedOut`: no worker served the phone meanwhile). A network's ``seconds`` are
    its share of the search's time spent on pricing: the exports and queueing, split evenly among the networks
    queued, and each wait with nothing else to do, split among the networks whose latencies it ended with.
    """

    def __init__(self, source: LatencySource, networks: Sequence[Arch], known: dict[Arch, ChildLatency],
                 missing: Sequence[Arch]):
        super().__init__(networks, known)
        start = time.perf_counter()
        self._source = source
        self._outcomes = source._queue_on_farm(missing) if missing else []
        self._queueing_share = (time.perf_counter() - start) / max(1, len(missing))
        self._unpaid = 0.0  # waiting time not yet split among networks

    def wait(self) -> None:
        waiting = [o.job.job_id for o in self._outcomes if o.job is not None and o.state is None]
        if not waiting:
            return
        start = time.perf_counter()
        try:
            queue.wait_for(self._source.store, waiting, timeout_s=self._source.wait_timeout_s, first=True)
        finally:
            self._unpaid += time.perf_counter() - start

    def _refresh(self) -> None:
        self._outcomes = farm.settled(self._source.store, self._outcomes)
        finished = [o for o in self._outcomes
                    if o.request.subject not in self._known and (o.exception is not None or o.state is not None)]
        if finished:
            seconds, self._unpaid = self._queueing_share + self._unpaid / len(finished), 0.0
            for outcome in finished:
                self._known[outcome.request.subject] = self._source._farm_latency(outcome, seconds)
