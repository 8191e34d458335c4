"""The dask executor against real worker processes (a LocalCluster on this machine)."""

from __future__ import annotations

import sys

import dask
import distributed
import psutil
import pytest

import dask_plugin
from runpipe import hookimpl
from runpipe.plugins import dask_executor
from runpipe.serialize import document_to_dict
from runpipe.testing import make_engine, tone_wav

pytestmark = pytest.mark.slow

PIPELINE = {
    "name": "tones",
    "stages": {
        "analyze": {"backend": "tone", "tasks": [{"prompt": "transcript"}]},
        "export": {"formats": ["json", "srt", "txt"]},
    },
}
WORKERS = 3


@pytest.fixture(scope="module")
def cluster():
    # a task whose worker dies is not retried on another (the default retries it 3 times)
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), distributed.LocalCluster(n_workers=WORKERS, processes=True, threads_per_worker=1, dashboard_address=None,
                                  scheduler_kwargs={"dashboard_address": ":0"}) as local, \
            distributed.Client(local, set_as_default=False) as client:
        yield client


@pytest.fixture
def on_cluster(cluster, monkeypatch):
    """The module's cluster, named the way a user names a real one: RUNPIPE_DASK_ADDRESS."""
    monkeypatch.setenv(dask_executor.ADDRESS_ENV, cluster.scheduler.address)
    cluster.run(dask_plugin.reset_calls)
    return cluster


def tone_engine(*plugins):
    # the executor module is registered explicitly so these tests do not depend on DEFAULT_PLUGINS
    return make_engine([dask_executor, dask_plugin.plugin, *plugins])


def tones(folder, count):
    folder.mkdir(parents=True, exist_ok=True)
    return [tone_wav(folder / f"tone{i:02}.wav", seconds=1 + i / 10, freq=220 + 55 * i) for i in range(count)]


def comparable(result):
    """Each input's outcome without what differs by design between runs (timings, output folder)."""
    return {
        r.item.name: (
            r.status, r.error, r.failed_stage, r.failed_plugin,
            [document_to_dict(d) for d in r.documents],
            {a.path.name: a.path.read_bytes() for a in r.artifacts},
        )
        for r in result.inputs
    }


@pytest.mark.local_models  # the retime step re-times the answer with Whisper
def test_dask_gives_the_local_executors_results_and_contains_failures(tmp_path, on_cluster):
    inputs = [*tones(tmp_path / "in", 12), tone_wav(tmp_path / "in" / "bad.wav")]
    events = []
    with tone_engine() as engine:
        engine.subscribe(events.append)
        pipeline = engine.load_dict(PIPELINE)
        on_dask = engine.run(pipeline, inputs, output_dir=tmp_path / "dask", executor="dask", concurrency=6)
        assert dask_plugin.calls() == {}  # nothing was analysed in this process
        dask_events, events[:] = list(events), []
        on_threads = engine.run(pipeline, inputs, output_dir=tmp_path / "threads", force=True)
        recorded = {r["uri"]: r for r in engine.store.run_inputs(on_dask.run_id)}

    assert comparable(on_dask) == comparable(on_threads)
    assert [r.item.name for r in on_dask.inputs] == [r.item.name for r in on_threads.inputs]
    assert sorted(p.name for p in (tmp_path / "dask").iterdir()) == sorted(p.name for p in (tmp_path / "threads").iterdir())

    by_name = {r.item.name: r for r in on_dask.inputs}
    bad = by_name.pop("bad.wav")
    assert all(r.status == "done" for r in by_name.values())
    assert bad.status == "failed" and bad.failed_stage == "analyze" and bad.failed_plugin == "ToneBackendPlugin-1"
    assert bad.error == "bad.wav: analyze failed (plugin ToneBackendPlugin-1): ToneFailure: cannot hear bad.wav"
    assert recorded[bad.item.uri]["status"] == "failed" and recorded[bad.item.uri]["plugin"] == "ToneBackendPlugin-1"
    assert sum(r["status"] == "done" for r in recorded.values()) == 12

    per_worker = {worker: sum(calls.values()) for worker, calls in on_cluster.run(dask_plugin.calls).items()}
    assert sum(per_worker.values()) == 13 and sum(1 for n in per_worker.values() if n) >= 2, per_worker

    kinds = [e.kind for e in dask_events]
    assert kinds[0] == "run_start" and kinds[-1] == "run_done"
    assert kinds.count("input_done") == 13 and kinds.count("stage_done") == 12 * 4 + 1  # bad.wav: normalize only


def test_a_worker_that_dies_fails_its_input_only(tmp_path, on_cluster):
    inputs = [*tones(tmp_path / "in", 4), tone_wav(tmp_path / "in" / "crash.wav")]
    with tone_engine() as engine:
        result = engine.run(engine.load_dict(PIPELINE), inputs, output_dir=tmp_path / "out", executor="dask")
        recorded = {r["uri"]: r for r in engine.store.run_inputs(result.run_id)}
    *done, crashed = result.inputs
    assert [r.status for r in done] == ["done"] * 4
    assert crashed.status == "failed" and crashed.failed_stage == "executor"
    assert crashed.failed_plugin == "runpipe.plugins.dask_executor" and "KilledWorker" in crashed.error
    assert recorded[crashed.item.uri]["stage"] == "executor"
    on_cluster.wait_for_workers(WORKERS)  # the nanny replaces the dead worker; later tests get a whole cluster


@pytest.mark.local_models  # the retime step re-times the answer with Whisper
def test_without_an_address_a_local_cluster_lives_for_the_run(tmp_path, monkeypatch):
    monkeypatch.delenv(dask_executor.ADDRESS_ENV, raising=False)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with tone_engine() as engine:
        result = engine.run(engine.load_dict(PIPELINE), tones(tmp_path / "in", 3), output_dir=tmp_path / "out", executor="dask")
    assert [r.status for r in result.inputs] == ["done"] * 3
    started = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
    workers = [p for p in started if "resource_tracker" not in " ".join(p.cmdline())]  # the tracker lives on by design
    _, alive = psutil.wait_procs(workers, timeout=10)  # closing lets worker processes exit on their own
    assert not alive, [p.cmdline() for p in alive]


class NotImportable:
    @hookimpl
    def runpipe_input_finish(self, result):
        pass


def test_a_plugin_workers_cannot_import_is_refused_before_connecting(tmp_path, monkeypatch):
    monkeypatch.setenv(dask_executor.ADDRESS_ENV, "tcp://127.0.0.1:9")  # connecting would hang, then fail
    with tone_engine(NotImportable()) as engine, pytest.raises(Exception, match="NotImportable-2 cannot be sent to Dask workers"):
        engine.run(engine.load_dict(PIPELINE), tones(tmp_path / "in", 1), output_dir=tmp_path / "out", executor="dask")


def test_missing_dask_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` now raises ImportError
    with tone_engine() as engine, pytest.raises(dask_executor.ExecutorUnavailable, match=r"pip install 'runpipe\[distributed\]'"):
        engine.run(engine.load_dict(PIPELINE), tones(tmp_path / "in", 1), output_dir=tmp_path / "out", executor="dask")
