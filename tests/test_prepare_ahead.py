"""One worker prepares the next child (builds its student, traces its functions) in a thread of its own while a
child trains: the children train to exactly what they reach when each is prepared just before it trains."""

import threading

from run_fixtures import tiny_search
from search.evaluate import prepare_child, train_child
from search.executors import SequentialExecutor

TIMING = ("seconds", "train_seconds", "examples_per_s", "teacher_seconds")


def jobs_of(config, archs):
    return [{"config": config.to_dict(), "arch": arch, "number": number, "threads": None, "cache_dir": None}
            for number, arch in enumerate(archs)]


def outcome(result: dict) -> tuple:
    """What a child's training reached, without its timings."""
    return (result["status"], result["accuracy"], {k: v for k, v in result["train"].items() if k not in TIMING},
            result["history"])


def test_children_prepared_ahead_in_another_thread_train_to_the_same_results(tiny_space):
    """Warmed up ahead or only traced ahead (as ``benchmarks/scheduling.py`` compares them), each child trains
    to what it reaches prepared just before it trains."""
    archs = [arch.to_string() for arch in tiny_space.sample_many(3, seed=7)]
    jobs = jobs_of(tiny_search("ahead"), archs)
    prepared_in = []

    def child(job, prepared=None, when_prepared=None):
        return train_child(job, prepared, when_prepared)

    def recording_prepare(job):
        prepared_in.append((job["number"], threading.current_thread().name))
        return prepare_child(job, warm=job["number"] == 1)  # the last one traced but not instantiated

    child.prepare = recording_prepare
    ahead = dict((job["number"], result) for job, result in SequentialExecutor().map_unordered(child, jobs))
    assert prepared_in == [(1, "prepare-next-child"), (2, "prepare-next-child")]  # the first: in train_child
    one_by_one = [train_child(job) for job in jobs]  # each prepared in this thread, just before it trains
    assert [outcome(ahead[n]) for n in range(3)] == [outcome(r) for r in one_by_one]
    assert len({r["train"]["loss"] for r in one_by_one}) == 3  # three children, each its own result


def test_a_preparation_records_the_time_of_each_of_its_phases_in_order(tiny_space):
    """What benchmarks/child_profile.py reports: each phase of a child's preparation, as it ran."""
    [job] = jobs_of(tiny_search("phases"), [tiny_space.sample_many(1, seed=7)[0].to_string()])
    traced = prepare_child(job, warm=False)
    assert list(traced.phases) == ["build", "teacher outputs", "pipelines", "trainer", "trace"]
    warmed = prepare_child(job)
    assert list(warmed.phases) == ["build", "teacher outputs", "pipelines", "trainer", "trace", "warm-up"]
    assert all(seconds >= 0.0 for seconds in warmed.phases.values())
    assert warmed.phases["trace"] > 0.0 and warmed.phases["warm-up"] > 0.0  # both compute for real
