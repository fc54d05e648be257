"""The byte-bounded cache of traces and projections (app/cache.py), and the torch thread's queue count."""

from __future__ import annotations

import numpy as np

from app.cache import ByteBudgetCache, approx_nbytes


def test_the_cache_stays_under_its_budget_and_drops_the_least_recently_used():
    cache = ByteBudgetCache(budget_bytes=3_500_000)
    calls = []

    def make(i):
        calls.append(i)
        return {"states": np.zeros((1000, 250), np.float32)}  # 1 MB

    for i in range(3):
        cache.get_or_compute(i, lambda i=i: make(i))
    cache.get_or_compute(0, lambda: make(0))  # a hit: 0 becomes the most recent
    cache.get_or_compute(3, lambda: make(3))  # over the budget: 1, the least recently used, goes
    assert calls == [0, 1, 2, 3] and len(cache) == 3 and cache.bytes <= cache.budget
    cache.get_or_compute(1, lambda: make(1))
    assert calls[-1] == 1  # recomputed
    cache.get_or_compute(0, lambda: make(0))
    assert calls[-1] == 1  # 0 was kept
    huge = cache.get_or_compute("huge", lambda: np.zeros(2_000_000, np.float32))  # larger than the budget
    assert huge.nbytes == 8_000_000 and "huge" not in cache._items
    cache.clear()
    assert len(cache) == 0 and cache.bytes == 0


def test_callers_of_a_key_being_computed_wait_for_that_one_computation():
    import threading
    import time

    cache = ByteBudgetCache(10**6)
    calls, started, release = [], threading.Event(), threading.Event()

    def slow():
        calls.append(1)
        started.set()
        release.wait(5)
        return np.ones(10)

    results = []
    owner = threading.Thread(target=lambda: results.append(cache.get_or_compute("k", slow)))
    owner.start()
    assert started.wait(5)
    waiters = [threading.Thread(target=lambda: results.append(cache.get_or_compute("k", slow))) for _ in range(3)]
    for t in waiters:
        t.start()
    time.sleep(0.1)
    assert len(results) == 0  # the three wait for the first caller's computation
    release.set()
    for t in [owner, *waiters]:
        t.join(5)
    assert len(calls) == 1 and len(results) == 4
    assert all(r is results[0] for r in results)  # one shared value
    assert cache.misses == 1 and len(cache) == 1


def test_when_the_computing_caller_fails_a_waiting_caller_computes_the_key_itself():
    import threading

    cache = ByteBudgetCache(10**6)
    started, release = threading.Event(), threading.Event()

    def fails():
        started.set()
        release.wait(5)
        raise RuntimeError("this caller's own failure (its session left)")

    errors, results = [], []

    def first():
        try:
            cache.get_or_compute("k", fails)
        except RuntimeError as exc:
            errors.append(exc)

    owner = threading.Thread(target=first)
    owner.start()
    assert started.wait(5)
    waiter = threading.Thread(target=lambda: results.append(cache.get_or_compute("k", lambda: np.zeros(3))))
    waiter.start()
    release.set()
    owner.join(5)
    waiter.join(5)
    assert len(errors) == 1 and len(results) == 1 and np.array_equal(results[0], np.zeros(3))
    assert np.array_equal(cache.get_or_compute("k", fails), np.zeros(3))  # kept: no new computation


def test_the_cache_gives_memory_back_after_evictions_and_when_dropped(monkeypatch):
    import gc
    import time

    import app.cache as cache_module

    import threading

    gc.collect()  # the earlier tests' caches are dropped, and their releases run, before the patches
    time.sleep(2.5)
    for timer in [t for t in threading.enumerate() if isinstance(t, threading.Timer)]:
        timer.join(60)  # a release still running (a full collection after the app's tests can take seconds)
    calls = []
    monkeypatch.setattr(cache_module, "trim_heap", lambda: calls.append("trim"))
    monkeypatch.setattr(cache_module, "release_memory", lambda: calls.append("release"))
    monkeypatch.setattr(cache_module, "TRIM_EVERY_BYTES", 2_500_000)
    cache = ByteBudgetCache(budget_bytes=1_500_000)
    for i in range(3):  # 1 MB each: the second and third evict one entry each (2 MB evicted)
        cache.get_or_compute(i, lambda: {"states": np.zeros((1000, 250), np.float32)})
    time.sleep(1.0)
    assert calls == []  # under TRIM_EVERY_BYTES evicted so far
    cache.get_or_compute(3, lambda: {"states": np.zeros((1000, 250), np.float32)})  # 3 MB evicted: a trim
    time.sleep(1.0)
    assert calls == ["trim"]
    del cache  # what Streamlit's "Clear caches" does to it: a full collection and a trim follow
    gc.collect()
    time.sleep(2.5)
    assert calls == ["trim", "release"]


def test_a_trace_is_sized_by_its_states(minilm):
    from pyramid.core.schedule import Schedule
    from pyramid.trace import trace_text

    tr = trace_text(minilm, "a gripping , funny film with a weak ending .", "coreset", Schedule(retention=0.3))
    states = tr.embedding.nbytes + sum(lt.hidden.nbytes for lt in tr.layers)
    assert states < approx_nbytes(tr) < 3 * states


def test_the_torch_thread_counts_what_is_queued():
    import threading

    from app.resources import TorchThread

    t = TorchThread()
    gate = threading.Event()
    runner = threading.Thread(target=lambda: t.run(gate.wait, 10))
    runner.start()
    for _ in range(100):
        if t.pending == 1:
            break
        threading.Event().wait(0.01)
    assert t.pending == 1
    gate.set()
    runner.join()
    assert t.pending == 0 and t.run(lambda: 41 + 1) == 42


def test_the_torch_thread_skips_the_jobs_of_a_session_that_left(monkeypatch):
    import threading

    import app.resources as resources

    connected = {"value": True}
    monkeypatch.setattr(resources, "_session_alive", lambda: (lambda: connected["value"]))
    t = resources.TorchThread()
    gate, ran = threading.Event(), []
    first = threading.Thread(target=lambda: t.run(gate.wait, 10))
    first.start()
    errors = []

    def queued():
        try:
            t.run(ran.append, "queued job ran")
        except resources.SessionGone as exc:
            errors.append(exc)

    second = threading.Thread(target=queued)
    second.start()
    for _ in range(100):
        if t.pending == 2:
            break
        threading.Event().wait(0.01)
    assert t.pending == 2
    connected["value"] = False  # the second job's session disconnects while it waits
    gate.set()
    first.join()
    second.join()
    assert ran == [] and len(errors) == 1 and t.pending == 0
    connected["value"] = True
    assert t.run(lambda: 6 * 7) == 42


def test_the_torch_thread_runs_a_job_on_one_thread_while_others_wait_and_on_all_when_alone(monkeypatch):
    import threading

    import torch

    import app.resources as resources

    monkeypatch.setenv("PYRAMID_LENS_TORCH_THREADS", "2")
    before = torch.get_num_threads()
    t = resources.TorchThread()
    assert t.run(torch.get_num_threads) == 2  # alone
    gate, started, seen = threading.Event(), threading.Event(), []

    def first_job():
        started.set()
        gate.wait(10)
        return torch.get_num_threads()

    first = threading.Thread(target=lambda: seen.append(("first", t.run(first_job))))
    first.start()
    assert started.wait(10)  # the first job has begun (alone) before the others are queued
    waiting = [threading.Thread(target=lambda: seen.append(("queued", t.run(torch.get_num_threads))))
               for _ in range(2)]
    for w in waiting:
        w.start()
    for _ in range(100):
        if t.pending == 3:
            break
        threading.Event().wait(0.01)
    gate.set()
    for th in [first, *waiting]:
        th.join()
    # the first job started alone (2 threads); the second started with one more behind it (1 thread); the
    # last ran alone again (2 threads)
    assert dict(seen)["first"] == 2 and sorted(n for k, n in seen if k == "queued") == [1, 2]
    assert t.run(torch.get_num_threads) == 2
    torch.set_num_threads(before)  # in case the setting is process-wide in this torch build
