"""``replyguard worker``: long-lived RQ workers forked once from a parent that loaded the models.

The parent loads every brand's policy, templates and models, builds the shared text pass
(one classification of a short text per brand), freezes the garbage collector's view of
those objects (``gc.freeze``: collections in the children then never write to the pages
that hold them) and forks ``processes`` children. Each child is an ordinary RQ worker
that runs jobs in its own process (:class:`~worker.queues.ReplyguardSimpleWorker`: RQ's
registries, retries, ``rq info`` and the recovery sweep all work as for any RQ worker),
so no job pays for a fork and a cold process (RQ's forking worker: ~19 ms and ~600 µs of
CPU a message). The models' pages stay shared copy-on-write between the parent and the
children (``bench/throughput.py`` reports each process's PSS and USS).

The parent only supervises: a child that dies (kill -9, out of memory) is forked again
from the loaded parent at once (with a growing pause if it keeps dying young); SIGTERM
or SIGINT is passed on to the children (RQ's warm shutdown: the running batch finishes),
and the parent exits when they have. A child whose parent disappears stops itself.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from worker import defaults
from worker.settings import Settings

log = logging.getLogger("replyguard.prefork")


def warm(pipeline: Any) -> None:
    """Build what the first batch would build lazily (the shared text pass of each brand's models,
    the sentence table), so that it is done once in the parent and shared by the children."""
    from worker.pipeline import classify

    text = ["warm-up: where is my order? 注文はいつ届きますか"]
    trios = [(b.spam, b.abuse, b.intent) for b in pipeline.brands.values()]
    for spam, abuse, intent in trios:
        classify({"spam": [(0, spam)], "abuse": [(0, abuse)], "intent": [(0, intent)]}, text)
    if len(trios) > 1:  # a batch mixing brands uses the union of their models
        classify({task: [(0, trio[k]) for trio in trios] for k, task in enumerate(("spam", "abuse", "intent"))}, text)


class Supervisor:
    """Forks ``processes`` children running ``child()`` and keeps that many alive until stopped."""

    def __init__(self, child: Callable[[int], int], processes: int, *, respawn: bool = True):
        self.child = child
        self.processes = processes
        self.respawn = respawn
        self.children: dict[int, tuple[int, float]] = {}  # pid -> (slot, started at)
        self.stopping = False
        self.failures = 0
        self.exit_codes: list[int] = []

    def _fork(self, slot: int) -> None:
        pid = os.fork()
        if pid == 0:  # the child: never return into the parent's code
            code = 1
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                gc.enable()
                code = self.child(slot)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:  # noqa: BLE001 - report and exit the child, never unwind into the parent
                log.exception("worker process %d failed", os.getpid())
            finally:
                logging.shutdown()
                os._exit(code)
        self.children[pid] = (slot, time.monotonic())
        log.info("worker process %d started (slot %d)", pid, slot)

    def _forward(self, signum: int, _frame: Any) -> None:
        self.stopping = True
        for pid in list(self.children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._forward)
        signal.signal(signal.SIGINT, self._forward)
        for slot in range(self.processes):
            self._fork(slot)
        while self.children:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            except InterruptedError:  # pragma: no cover - PEP 475 retries; kept for safety
                continue
            if pid not in self.children:
                continue  # not one of ours (cannot happen: children are only forked here)
            slot, started = self.children.pop(pid)
            code = os.waitstatus_to_exitcode(status)
            self.exit_codes.append(code)
            if self.stopping or not self.respawn or code == 0:
                log.info("worker process %d ended (exit %d)", pid, code)
                continue
            young = time.monotonic() - started < defaults.WORKER_RESPAWN_HEALTHY_SECONDS
            self.failures = self.failures + 1 if young else 0
            pause = min(defaults.WORKER_RESPAWN_MAX_PAUSE_SECONDS, 0.5 * (2 ** (self.failures - 1))) if young else 0.0
            log.warning(
                "worker process %d ended unexpectedly (exit %d); forking another%s",
                pid,
                code,
                f" in {pause:.1f} s" if pause else "",
            )
            if pause:
                self._sleep(pause)
            if not self.stopping:
                self._fork(slot)
        return 0 if all(c == 0 for c in self.exit_codes) or self.stopping else 1

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(min(0.2, deadline - time.monotonic()))


def _watch_parent(parent: int) -> None:
    """In a child: stop (warm shutdown) when the parent is gone, so no orphan keeps serving."""

    def watch() -> None:
        while True:
            time.sleep(defaults.WORKER_PARENT_CHECK_SECONDS)
            if os.getppid() != parent:
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=watch, name="replyguard-parent-watch", daemon=True).start()


def release_free_heap() -> bool:
    """Give the pages of the C heap that hold only freed memory back to the system (glibc's
    ``malloc_trim(0)``); False where there is no glibc (nothing done).

    Loading the models (skops' unpacking, the vocabularies' construction, the network's weights
    read and dropped) leaves ~10-20 MB of freed chunks inside the parent's heap. Left resident, they
    are inherited by every worker process, and a child that allocates into them copies the page first:
    trimmed, they are not resident at all and a child's allocation there takes a fresh page (measured:
    whole worker ~15 MB smaller, README "Worker memory"). Once, before the fork: never per message."""
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the C library this process runs on
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    trim(0)
    return True


def _one_blas_thread() -> None:
    """Each worker process is one core's worth of work: BLAS threads of its own (the sentence
    representation's matrix products) would only compete with the other processes. The results do
    not depend on it (classifiers compute those products in float64 and round)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn depends on it; without it, nothing to limit
        return
    threadpool_limits(1)


def _connect_child(settings: Settings, connect: Callable[..., Any]) -> Any:
    """The child's own connection (never the parent's sockets); waits for Redis if it is away."""
    from worker.connection import Backoff
    from worker.exceptions import StoreError

    backoff = Backoff()
    while True:
        try:
            return connect(settings, start_embedded=False)
        except StoreError as exc:
            delay = backoff.next_delay()
            log.warning("worker process %d: %s; retrying in %.1f s", os.getpid(), exc, delay)
            time.sleep(delay)


def serve(
    settings: Settings, *, processes: int, queues: str, burst: bool, max_jobs: int | None, fork_per_job: bool = False
) -> int:
    """Load everything, then run ``processes`` long-lived worker processes forked from this one.

    ``processes`` 0 runs one RQ worker in this process instead (``--simple``); ``fork_per_job``
    runs RQ's forking worker in this process (a work-horse forked per job, the old model)."""
    from rq.exceptions import StopRequested

    from worker.brands import load_brands
    from worker.connection import connect, keep_serving
    from worker.jobs import install, sla_tracker
    from worker.pipeline import Pipeline
    from worker.queues import make_worker

    brands = load_brands(settings)  # a broken policy/template/model stops here, before any fork
    pipeline = Pipeline(brands)
    install(pipeline, settings)
    warm(pipeline)
    client = connect(settings)
    log.info(
        "serving brands %s from queue %r on %s with %d process(es)",
        sorted(brands),
        settings.queue,
        settings.redacted_redis_url(),
        processes,
    )
    if queues != "llm":  # SLA steps missed while no worker ran are recorded now, and scheduled again
        sla_tracker(client, pipeline, settings).fire_due()
    client.connection_pool.disconnect()  # the children open their own connections
    parent = os.getpid()
    gc.collect()
    release_free_heap()  # before the fork: freed loading memory is not shared resident by every process
    gc.freeze()  # what is loaded now stays out of every later collection: its pages stay shared

    def child(slot: int) -> int:
        if os.getpid() != parent:
            _watch_parent(parent)
            _one_blas_thread()
        gc.set_threshold(defaults.WORKER_GC_THRESHOLD, *gc.get_threshold()[1:])
        connection = _connect_child(settings, connect)
        stopped = False

        def one_worker() -> bool:
            # a fresh RQ worker each time: one that lost Redis mid-job has quit its loop
            nonlocal stopped
            worker = make_worker(connection, settings, simple=not fork_per_job, queues=queues)
            worker.work(burst=burst, with_scheduler=slot == 0, logging_level=settings.log_level, max_jobs=max_jobs)
            # a SIGTERM while idle ends work() without setting _stop_requested, only the shutdown date
            stopped = bool(worker._stop_requested or worker._shutdown_requested_date)
            return stopped or burst or max_jobs is not None

        try:
            keep_serving(connection, one_worker, what=f"worker process {os.getpid()}", stop=lambda: stopped)
        except StopRequested:  # SIGTERM while waiting for Redis
            pass
        return 0

    if fork_per_job or processes < 1:  # one process, as before: RQ's worker runs in this process
        return child(0)
    return Supervisor(child, processes, respawn=not burst and max_jobs is None).run()
