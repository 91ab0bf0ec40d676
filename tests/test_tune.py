"""The tuner end to end on a tiny model: records, resume, bad lines, broken configs, RPC."""

from __future__ import annotations

import collections
import contextlib
import json
import math
import re
import shutil
import signal
import socket
import struct
import threading
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import single
from onnx import TensorProto, helper, numpy_helper

import tvmconv
from tvmconv import records
from tvmconv.config import Config
from tvmconv.errors import TvmconvError
from tvmconv.measure import workloads
from tvmconv.runner import Builder, Runner, build, check_rpc, kernel_inputs
from tvmconv.target import resolve
from tvmconv.tune import main as tune_main
from tvmconv.tune import parse_budget
from tvmconv.tuner import FINALISTS, Tuner, make_tasks, verdict


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    """A conv -> relu -> global pool -> dense model small enough to tune in seconds."""
    rng = np.random.default_rng(0)
    t = lambda n, a: numpy_helper.from_array(a.astype("float32"), n)  # noqa: E731
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "fw"], ["y"], transB=1)]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 12, 12])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        [t("w", rng.standard_normal((16, 8, 3, 3))), t("fw", rng.standard_normal((10, 16)))])
    path = tmp_path_factory.mktemp("tiny") / "tiny.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return str(path)


@pytest.fixture(scope="module")
def tiny_tuned(tiny, tmp_path_factory) -> Path:
    """A log of six measurements of ``tiny``, made once for the tests that start from a tuned
    model (each copies it before appending)."""
    log = tmp_path_factory.mktemp("tiny_tuned") / "tiny.jsonl"
    assert tune_main([tiny, "--trials", "6", "--log", str(log), "-q", "--batch", "3"]) == 0
    return log


def test_budget_parsing():
    assert parse_budget("90") == 90 and parse_budget("10m") == 600 and parse_budget("1h") == 3600
    with pytest.raises(TvmconvError):
        parse_budget("ten minutes")


def test_tune_resume_and_compile(tiny, tmp_path, capsys):
    log = tmp_path / "tiny.jsonl"
    assert tune_main([tiny, "--trials", "6", "--log", str(log), "-q", "--batch", "3"]) == 0
    first = list(records.read(log))
    assert len(first) == 6
    assert all(r["target"] == resolve("x86").key for r in first)
    assert any(math.isfinite(records.cost(r)) for r in first)
    # a crash mid-write leaves half a line: it is skipped with a warning and the run resumes
    with open(log, "a") as f:
        f.write('{"target": "x86-av')
    with pytest.warns(UserWarning, match="bad log line"):
        assert tune_main([tiny, "--trials", "3", "--log", str(log), "-q", "--batch", "3"]) == 0
    out = capsys.readouterr().out
    assert "(6 resumed from the log)" in out
    assert re.search(r" \d+\.\d{3} ms ", out), "times in milliseconds, said so (not '0.006m')"
    recs = list(records.read(log, warn=False))
    assert len(recs) == 9
    measured = [(r["workload"], r["template"], json.dumps(r["config"], sort_keys=True))
                for r in recs]
    assert len(set(measured)) == len(measured), "a resumed run measured a config again"
    # the tuned log compiles, and the result still matches the untuned compile
    x = np.random.default_rng(1).standard_normal((1, 8, 12, 12)).astype("float32")
    with pytest.warns(UserWarning):
        tuned = tvmconv.compile(tiny, log=str(log))(x)
    np.testing.assert_allclose(tuned, tvmconv.compile(tiny)(x), rtol=1e-4, atol=1e-4)


def test_broken_config_is_recorded_not_fatal(tiny, tmp_path):
    target = resolve("x86")
    tasks = make_tasks(workloads(tiny, target), target)
    task = next(t for t in tasks if t.wl.kind == "conv2d")
    tmpl = task.templates[-1]
    broken = Config.of({"tile_w": 5})  # a knob value that does not divide, and knobs missing
    tuner = Tuner(tasks, target, tmp_path / "log.jsonl", batch=2)
    try:
        recs = tuner.measure(task, [(tmpl, broken), (tmpl, tmpl.default(task.wl, target))])
    finally:
        tuner.close()
    assert recs[0]["error"] and recs[0]["latencies"] is None
    assert recs[1]["error"] is None and recs[1]["latencies"]
    assert len(list(records.read(tmp_path / "log.jsonl"))) == 2


def test_first_batch_all_failing_stops_with_the_error(tiny, tmp_path, monkeypatch):
    target = resolve("x86")
    tasks = make_tasks(workloads(tiny, target), target)
    tuner = Tuner(tasks, target, tmp_path / "log.jsonl", batch=2)
    monkeypatch.setattr(tuner, "propose", lambda task: [(task.templates[-1],
                                                         Config.of({"bogus": 1}))] * 2)
    with pytest.raises(TvmconvError, match="first batch failed"):
        tuner.run(trials=4, deadline=None)


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_resize_is_measured_with_tables_inside_its_input(mode):
    """A resize kernel gathers through index tables it takes as inputs; measured with random
    ones it read past a one-column input, and a candidate could differ from the reference by
    what lay there (a fuzz of template configs found one)."""
    model = single("Resize", (1, 3, 2, 1), {"s": np.array([1, 1, 2, 3], np.float32)}, ["", "s"],
                   mode=mode)
    (wl,) = [w for w, _ in workloads(model, resolve("x86")) if w.kind == "resize"]
    x, rows, cols = kernel_inputs(wl)[0]
    for table, size in ((rows, x.shape[2]), (cols, x.shape[3])):
        index = table[:2] if mode == "linear" else table[:1]
        assert index.min() >= 0 and index.max() <= size - 1 and (index == index.round()).all()


def test_rpc_runner_against_local_server(tiny, tmp_path):
    """Measure one kernel through TVM's RPC server on loopback, as on a board."""
    from tvm import rpc

    server = rpc.Server(host="127.0.0.1", port=9190, port_end=9290, silent=True)
    target = resolve("x86")
    wl = next(w for w, _ in workloads(tiny, target) if w.kind == "conv2d")
    ref_path = build(wl, target, None, None, str(tmp_path))
    cand = build(wl, target, "conv2d_direct", None, str(tmp_path))
    runner = Runner(rpc_addr=("127.0.0.1", server.port, None))
    try:
        inputs, out_shape = kernel_inputs(wl)
        reference, err = runner.reference(ref_path, inputs, out_shape)
        assert err is None and np.abs(reference).max() > 0
        res = runner.run(cand, inputs, out_shape, reference)
        assert res.error is None and min(res.latencies) > 0
    finally:
        runner.stop()
        server.terminate()


def test_unreachable_board(tmp_path):
    """An address nobody answers on fails at once by name; a server that is no RPC server (or
    goes away) gives the measuring process's reason as the request's answer, not a traceback."""
    with pytest.raises(TvmconvError, match=r"--rpc 127\.0\.0\.1:1: cannot connect"):
        check_rpc(("127.0.0.1", 1, None))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def hang_up():
        while True:
            try:
                listener.accept()[0].close()
            except OSError:  # the listener closed: the test is over
                return

    threading.Thread(target=hang_up, daemon=True).start()
    runner = Runner(rpc_addr=("127.0.0.1", port, None))
    try:
        check_rpc(runner.rpc_addr)  # it does answer
        out, err = runner.reference(str(tmp_path / "k.so"), [], (1,))
    finally:
        runner.stop()
        listener.close()
    assert out is None and err.startswith(f"no RPC session on 127.0.0.1:{port} ("), err


def _serve_as_tracker(listener, keys: list[str]) -> None:
    """TVM's RPC tracker protocol, as much as a client's summary needs (the real tracker needs
    tornado): the magic number back, then one JSON answer per request."""
    from tvm.rpc import base

    while True:
        try:
            conn = listener.accept()[0]
        except OSError:  # the listener closed: the test is over
            return
        with conn, contextlib.suppress(OSError):  # a plain --rpc check only connects
            base.recvall(conn, 4)
            conn.sendall(struct.pack("<i", base.RPC_TRACKER_MAGIC))
            if base.recvjson(conn) == [base.TrackerCode.SUMMARY]:
                base.sendjson(conn, [base.TrackerCode.SUCCESS, {"queue_info": {
                    k: {"free": 1, "pending": 0} for k in keys}, "server_info": []}])


def test_tracker_without_the_key_fails_at_once():
    """--rpc-key names a device key the tracker must have: another key fails before any work,
    naming the keys it has (a request for it waited 30 s per measurement); the key it has
    passes; a server that is no tracker is named as such."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    threading.Thread(target=_serve_as_tracker, args=(listener, ["rk3399", "pi4"]),
                     daemon=True).start()
    try:
        check_rpc(("127.0.0.1", port, "rk3399"))
        t0 = time.monotonic()
        with pytest.raises(TvmconvError, match=rf"--rpc-key jetson: the tracker at 127\.0\.0\.1:"
                                               rf"{port} has no device of that key \(it has: pi4, "
                                               rf"rk3399\)"):
            check_rpc(("127.0.0.1", port, "jetson"))
        assert time.monotonic() - t0 < 5
    finally:
        listener.close()
    from tvm import rpc

    server = rpc.Server(host="127.0.0.1", port=9190, port_end=9290, silent=True)
    try:
        with pytest.raises(TvmconvError, match="with --rpc-key: no RPC tracker answers there"):
            check_rpc(("127.0.0.1", server.port, "rk3399"), timeout=1)
    finally:
        server.terminate()


def _ignores_sigint(pid: int) -> bool:
    with open(f"/proc/{pid}/status") as f:
        mask = next(int(ln.split()[1], 16) for ln in f if ln.startswith("SigIgn:"))
    return bool(mask >> (signal.SIGINT - 1) & 1)


def test_worker_processes_ignore_ctrl_c():
    """Ctrl-C reaches the whole process group: the workers ignore it from their start (each
    printed a traceback), and the parent, which handles it, keeps its handler."""
    handler = signal.getsignal(signal.SIGINT)
    builder, runner = Builder(1), Runner()
    try:
        runner._start()
        pids = [p.pid for p in builder.pool._processes.values()] + [runner.proc.pid]
        assert len(pids) == 2 and all(_ignores_sigint(pid) for pid in pids)
    finally:
        builder.close()
        runner.stop(kill=True)
    assert signal.getsignal(signal.SIGINT) is handler


def test_cuda_candidates_build_here_and_references_run_on_the_cpu(tiny, tmp_path):
    """Tuning for a GPU: every task's candidates compile for CUDA on this machine, and the
    reference each must reproduce is computed on this CPU (an unscheduled kernel cannot run on a
    GPU)."""
    cuda = resolve("cuda")
    tasks = make_tasks(workloads(tiny, cuda), cuda)
    assert {t.wl.kind for t in tasks} >= {"conv2d", "dense"}
    tuner = Tuner(tasks, cuda, tmp_path / "cuda.jsonl", workers=1)
    try:
        for task in tasks:
            tuner._reference(task)
            assert np.isfinite(task.reference).all() and np.abs(task.reference).max() > 0
            jobs = [(task.wl, cuda, t.NAME, t.default(task.wl, cuda), str(tmp_path))
                    for t in task.templates]
            for path, err in tuner.builder.build_all(jobs):
                assert err is None and path.endswith(".so")
    finally:
        tuner.close()


def test_best_ranks_configs_by_median(tmp_path):
    """One lucky timing must not decide: a config re-timed three times is ranked by its median."""
    log = tmp_path / "log.jsonl"
    key = resolve("x86").key
    rec = lambda cfg, ms: records.make(key, "wl", "t", {"k": cfg}, latencies=[ms * 1e-3])  # noqa: E731
    records.append(log, [rec(1, 1.0), rec(2, 0.5), rec(2, 2.0), rec(2, 2.1), rec(3, 0.9)])
    best = records.best([log], key)["wl"]
    assert best["config"] == {"k": 3}
    records.append(log, [rec(3, 3.0), rec(3, 3.0)])
    assert records.best([log], key)["wl"]["config"] == {"k": 1}


def test_the_last_verdict_outranks_medians(tmp_path):
    """A verdict (side-by-side re-timings) decides over medians of timings from other moments;
    of two verdicts the later one; it is no measurement, so the other configs keep their ranks."""
    log = tmp_path / "log.jsonl"
    key = resolve("x86").key
    rec = lambda cfg, ms, **kw: records.make(key, "wl", "t", {"k": cfg},  # noqa: E731
                                             latencies=[ms * 1e-3], **kw)
    records.append(log, [rec(1, 1.0), rec(2, 0.5), rec(3, 0.7), rec(3, 2.0, verdict=True)])
    assert [r["config"]["k"] for r in records.ranked([log], key)["wl"]] == [3, 2, 1]
    records.append(log, [rec(1, 1.0, verdict=True)])
    assert [r["config"]["k"] for r in records.ranked([log], key)["wl"]] == [1, 2, 3]
    older = tmp_path / "older.jsonl"  # read last, written earlier: the later verdict stands
    records.append(older, [dict(rec(2, 1.0, verdict=True), time="2000-01-01T00:00:00")])
    assert records.best([log, older], key)["wl"]["config"] == {"k": 1}


def test_flushed_timings_outrank_warm_ones(tmp_path):
    """Once a workload has records timed with its weights flushed (``measure.flushed``), its
    records timed warm (a log from before) and their verdicts no longer rank it."""
    log = tmp_path / "log.jsonl"
    key = resolve("x86").key
    rec = lambda cfg, ms, **kw: records.make(key, "wl", "t", {"k": cfg},  # noqa: E731
                                             latencies=[ms * 1e-3], **kw)
    records.append(log, [rec(1, 0.5), rec(2, 0.9), rec(1, 0.6, verdict=True)])
    assert records.best([log], key)["wl"]["config"] == {"k": 1}
    records.append(log, [rec(1, 1.2, flushed=True), rec(2, 1.0, flushed=True)])
    assert [r["config"]["k"] for r in records.ranked([log], key)["wl"]] == [2, 1]
    records.append(log, [rec(1, 1.1, verdict=True, flushed=True)])
    assert records.best([log], key)["wl"]["config"] == {"k": 1}


def test_streamed_weights_are_tuned_flushed(tmp_path):
    """A conv whose weights stream from memory in a network is timed with them flushed from
    the caches (slower than warm), recorded so, and a warm record in the log is timed again."""
    model = single("Conv", (1, 256, 4, 4), {"w": np.random.default_rng(0).standard_normal(
        (256, 256, 3, 3)).astype("float32") * 0.05}, ["w"], pads=[1, 1, 1, 1])
    target = resolve("x86")
    task = next(t for t in make_tasks(workloads(model, target), target) if t.wl.kind == "conv2d")
    assert task.flushed
    tmpl = task.templates[0]
    default = tmpl.default(task.wl, target)
    log = tmp_path / "log.jsonl"
    records.append(log, [records.make(target.key, task.wl.key, tmpl.NAME, default.to_json(),
                                      latencies=[1e-9])])
    tuner = Tuner([task], target, log, batch=2, patience=4)
    tuner.run(2, None)
    tuner.close()  # run closed it already: harmless
    new = list(records.read(log))[1:]
    assert len(new) == 2 and all(r["flushed"] is True and r["error"] is None for r in new)
    assert (new[0]["template"], Config.of(new[0]["config"])) == (tmpl.NAME, default)
    assert len(new[0]["latencies"]) > 5 and records.cost(new[0]) > 1e-6
    assert records.best([log], target.key)[task.wl.key]["flushed"] is True


def test_verdict_pairs_each_round_with_the_default():
    """Rounds timed side by side at different machine speeds: the finalist faster than the default
    in most rounds wins, not the one with the luckiest fast moment; one within the noise margin
    leaves the default; no successful default timing, no verdict."""
    d, a, b = "default", "a", "b"
    slow_moment, fast_moment = {d: 2.0, a: 1.8, b: 2.1}, {d: 1.0, a: 0.9, b: 0.85}
    assert verdict([slow_moment, fast_moment, slow_moment], d) == a
    assert verdict([{d: 1.0, a: 0.99}, {d: 2.0, a: 1.98}], d) == d
    assert verdict([{d: 1.0, a: 0.5}, {d: 1.0}], d) == d  # a missed a round
    assert verdict([{d: math.inf, a: 1.0}], d) is None


def test_a_stale_best_record_falls_back_to_the_next(tiny, tmp_path):
    """A log written before a template change: its fastest record for a layer no longer fits the
    template's space, so compile uses that layer's fastest record that still fits, quietly."""
    import warnings

    from tvmconv.build import choose, tuned_records
    from tvmconv.templates.x86 import conv2d

    target = resolve("x86")
    wl = next(w for w, _ in workloads(tiny, target) if w.kind == "conv2d")
    valid = conv2d.default(wl, target).to_json()
    stale = {**valid, "tile_w": 5}  # 12 columns: not a tile width the space offers
    assert not conv2d.space(wl, target).contains(Config.of(stale))
    log = tmp_path / "old.jsonl"
    records.append(log, [records.make(target.key, wl.key, conv2d.NAME, stale, latencies=[1e-5]),
                         records.make(target.key, wl.key, conv2d.NAME, valid, latencies=[2e-5])])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, cfg = choose(wl, target, tuned_records(target.key, [log], book=False))
        tvmconv.compile(tiny, target="x86", log=log)
    assert cfg.to_json() == valid


def test_finalists_are_retimed(tiny, tmp_path):
    """With a time budget the tuner ends by timing each task's best configs and its default again,
    and the log then holds several timings of each finalist, and the verdict: one of them."""
    target = resolve("x86")
    tasks = [t for t in make_tasks(workloads(tiny, target), target) if t.wl.kind == "conv2d"]
    log = tmp_path / "log.jsonl"
    tuner = Tuner(tasks, target, log, batch=4, patience=4)
    tuner.run(None, time.time() + 60)
    assert tuner.confirmed > 0
    recs = list(records.read(log))
    config = lambda r: (r["template"], json.dumps(r["config"], sort_keys=True))  # noqa: E731
    counts = collections.Counter(config(r) for r in recs if not records.is_verdict(r))
    retimed = [k for k, n in counts.items() if n > 1]
    assert 2 <= len(retimed) <= FINALISTS + 1
    default = tasks[0].templates[0]
    assert (default.NAME, json.dumps(default.default(tasks[0].wl, target).to_json(),
                                     sort_keys=True)) in retimed
    verdicts = [r for r in recs if records.is_verdict(r)]
    assert len(verdicts) == 1 and config(verdicts[0]) in retimed
    assert (tasks[0].kept[0], tasks[0].kept[1].to_json()) == (verdicts[0]["template"],
                                                               verdicts[0]["config"])
    assert records.best([log], target.key)[tasks[0].wl.key] == verdicts[0]


def test_a_verdict_records_only_successful_timings(tiny, tmp_path, monkeypatch):
    """A finalist that failed in one of the rounds can still win on the others; its verdict holds
    the timings it has (an infinite latency would make the verdict an unreadable log line)."""
    target = resolve("x86")
    tasks = [t for t in make_tasks(workloads(tiny, target), target) if t.wl.kind == "conv2d"]
    task, log = tasks[0], tmp_path / "log.jsonl"
    tmpl = task.templates[0]
    default = tmpl.default(task.wl, target)
    other = next(c for c in tmpl.space(task.wl, target) if c != default)
    timings = iter([(5e-4, 1e-3), (None, 1e-3), (5e-4, 1e-3)])  # (other, default) per round

    def measure(task, batch):
        return [records.make(target.key, task.wl.key, t.NAME, c.to_json(), [s] if s else None,
                             None if s else "crashed") for (t, c), s in zip(batch, next(timings))]

    tuner = Tuner(tasks, target, log)
    try:
        monkeypatch.setattr(tuner, "finalists", lambda t: [(tmpl, other), (tmpl, default)])
        monkeypatch.setattr(tuner, "measure", measure)
        tuner.confirm(None)
    finally:
        tuner.close()
    (rec,) = [r for r in records.read(log) if records.is_verdict(r)]
    assert rec["config"] == other.to_json() and rec["latencies"] == [5e-4, 5e-4]


def test_a_short_confirm_keeps_verdicts_for_the_heaviest_tasks(tiny, tmp_path, monkeypatch):
    """When the budget ends during the confirm phase, the tasks that weigh most already have their
    verdicts: they are confirmed first, all their rounds before the lighter tasks'."""
    import tvmconv.tuner as tuner_module

    target = resolve("x86")
    tasks = make_tasks(workloads(tiny, target), target)
    assert len(tasks) >= 2
    log = tmp_path / "log.jsonl"
    clock = [0.0]  # one second per re-timed batch
    monkeypatch.setattr(tuner_module, "CONFIRM_GROUP", 1)
    monkeypatch.setattr(tuner_module.time, "time", lambda: clock[0])

    def measure(task, batch):
        clock[0] += 1
        return [records.make(target.key, task.wl.key, t.NAME, c.to_json(), [1e-3 * (k + 1)])
                for k, (t, c) in enumerate(batch)]

    def finalists(task):
        tmpl = task.templates[0]
        default = tmpl.default(task.wl, target)
        return [(tmpl, next(c for c in tmpl.space(task.wl, target) if c != default)),
                (tmpl, default)]

    tuner = Tuner(list(reversed(tasks)), target, log)  # lightest first: confirm must reorder
    try:
        monkeypatch.setattr(tuner, "measure", measure)
        monkeypatch.setattr(tuner, "finalists", finalists)
        tuner.confirm(deadline=tuner_module.CONFIRM_ROUNDS + 0.5)
    finally:
        tuner.close()
    verdicts = [r for r in records.read(log) if records.is_verdict(r)]
    heaviest = max(tasks, key=lambda t: t.weight)
    assert [r["workload"] for r in verdicts] == [heaviest.wl.key]
    assert heaviest.kept is not None and all(t.kept is None for t in tasks if t is not heaviest)


def test_resume_times_a_changed_default(tiny, tmp_path):
    """A log whose task ran out of patience before its template's default changed: the resumed
    run times the new default, which the old records were never compared with."""
    target = resolve("x86")
    tasks = [t for t in make_tasks(workloads(tiny, target), target) if t.wl.kind == "conv2d"]
    task = tasks[0]
    tmpl = task.templates[0]
    default = tmpl.default(task.wl, target)
    others = [c for c in tmpl.space(task.wl, target) if c != default][:6]
    log = tmp_path / "log.jsonl"
    records.append(log, [records.make(target.key, task.wl.key, tmpl.NAME, c.to_json(),
                                      latencies=[1e-4 * (1 + k)]) for k, c in enumerate(others)])
    tuner = Tuner(tasks, target, log, batch=2, patience=4)
    tuner.run(2, None)
    timed = [Config.of(r["config"]) for r in list(records.read(log))[len(others):]]
    assert default in timed


def test_fused_pair_tuned_and_compiled(tmp_path, capsys):
    """A 1x1 conv fused into its depthwise conv is one task: tuned, summarised, and compiled from
    its best record, matching the untuned compile."""
    rng = np.random.default_rng(2)
    t = lambda n, a: numpy_helper.from_array(a.astype("float32"), n)  # noqa: E731
    nodes = [helper.make_node("Conv", ["x", "w1"], ["e"]), helper.make_node("Relu", ["e"], ["r"]),
             helper.make_node("Conv", ["r", "w2"], ["y"], group=24, pads=[1, 1, 1, 1])]
    graph = helper.make_graph(
        nodes, "pair", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 24, 20])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 24, 24, 20])],
        [t("w1", rng.standard_normal((24, 8, 1, 1))), t("w2", rng.standard_normal((24, 1, 3, 3)))])
    path, log = tmp_path / "pair.onnx", tmp_path / "pair.jsonl"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    assert tune_main([str(path), "--trials", "8", "--log", str(log), "-q", "--batch", "4"]) == 0
    assert "pointwise_depthwise[float32] 1x" in capsys.readouterr().out
    fused = [r for r in records.read(log) if r["template"] == "pointwise_depthwise"]
    assert fused and any(math.isfinite(records.cost(r)) for r in fused)
    x = rng.standard_normal((1, 8, 24, 20)).astype("float32")
    np.testing.assert_allclose(tvmconv.compile(str(path), log=str(log))(x),
                               tvmconv.compile(str(path))(x), rtol=1e-4, atol=1e-4)


def test_in_network_confirmation_records_the_finalist_fastest_inside(tiny, tmp_path, capsys,
                                                                   monkeypatch):
    """``tune --in-network``: after the search, the network is built once per rank of finalist and
    profiled, and each layer whose finalist ran fastest inside the network gets a verdict for it,
    which ``compile`` then uses. The profiles run for real; their timings are then replaced by
    ones where later ranks run faster (speed is for benchmarks, not tests)."""
    from tvmconv import netconfirm
    from tvmconv.build import choose, tuned_records

    real_candidates, real_rounds = netconfirm.candidates, netconfirm.profile_rounds
    finalists, profiled = {}, []

    def candidates(wl, target, recs):
        finalists[wl.key] = real_candidates(wl, target, recs)
        return finalists[wl.key]

    def later_ranks_faster(models, feeds, rounds=netconfirm.ROUNDS):
        real = real_rounds(models, feeds, rounds=1)
        profiled.append(real)
        return [[{key: 1.0 / (rank + 1) for key in row[rank]} for rank in range(len(row))]
                for row in real * 2]

    monkeypatch.setattr(netconfirm, "candidates", candidates)
    monkeypatch.setattr(netconfirm, "profile_rounds", later_ranks_faster)
    target, log = resolve("x86"), tmp_path / "tiny.jsonl"
    assert tune_main([tiny, "--trials", "6", "--log", str(log), "-q", "--batch", "3",
                      "--in-network"]) == 0
    assert "layers changed their pick" in capsys.readouterr().out
    (real,) = profiled
    assert len(real[0]) == max(map(len, finalists.values())) > 1
    assert all(set(variant) == set(finalists) for variant in real[0])
    tuned = tuned_records(target.key, [log], book=False)
    for wl, _ in workloads(tiny, target):
        pick = choose(wl, target, tuned)
        expected = finalists[wl.key][-1]  # the last rank it has: the fastest here
        assert (pick[0].NAME, pick[1]) == (expected[0].NAME, expected[1]), wl.key
    with pytest.raises(TvmconvError, match="does not go with --rpc"):
        tune_main([tiny, "--in-network", "--rpc", "127.0.0.1:9190", "--log", str(log)])


def test_in_network_confirmation_compares_the_ranks_built_before_the_deadline(
        tiny, tiny_tuned, tmp_path, monkeypatch):
    """A budget that runs out while the variants build (each a whole network: seconds to a minute)
    still confirms among the ranks already built, rather than dropping what it built."""
    import types

    from tvmconv import netconfirm

    target, log = resolve("x86"), Path(shutil.copy(tiny_tuned, tmp_path / "tiny.jsonl"))
    clock, real_compile, finalists = [0.0], netconfirm.compile_model, {}

    def compile_model(*args, **kwargs):  # each build takes a second of the fake clock
        clock[0] += 1.0
        return real_compile(*args, **kwargs)

    def candidates(wl, target, recs):
        finalists[wl.key] = real_candidates(wl, target, recs)
        return finalists[wl.key]

    real_candidates = netconfirm.candidates
    monkeypatch.setattr(netconfirm, "time", types.SimpleNamespace(
        time=lambda: clock[0], perf_counter=time.perf_counter))
    monkeypatch.setattr(netconfirm, "compile_model", compile_model)
    monkeypatch.setattr(netconfirm, "candidates", candidates)
    monkeypatch.setattr(netconfirm, "profile_rounds", lambda models, feeds: [  # rank 1 fastest
        [{key: 1.0 if rank != 1 else 0.5 for key in finalists} for rank in range(len(models))]
    ] * 3)
    said = []
    changed = netconfirm.confirm(tiny, target, log, deadline=1.5, say=said.append)
    assert clock[0] == 2.0 and max(map(len, finalists.values())) > 2, (clock, finalists)
    assert "allowed 2 of" in said[0]
    two = [key for key, c in finalists.items() if len(c) >= 2]
    assert changed == len(two) > 0
    best = records.best_by_target([log])[target.key]
    for key in two:
        tmpl, cfg = finalists[key][1]
        assert (best[key]["template"], best[key]["config"]) == (tmpl.NAME, cfg.to_json()), key


def test_in_network_confirmation_records_a_pick_where_the_fastest_record_no_longer_fits(
        tiny, tiny_tuned, tmp_path, monkeypatch):
    """A log whose fastest record of a layer no longer fits the templates (they changed since)
    gets a verdict for that layer even when the current pick stays: the book built from the log
    takes each layer's first record, and must not take one that compile cannot use."""
    from tvmconv import netconfirm, templates

    target, log = resolve("x86"), Path(shutil.copy(tiny_tuned, tmp_path / "tiny.jsonl"))
    wls = [wl for wl, _ in workloads(tiny, target)]
    conv = next(wl for wl in wls if wl.kind == "conv2d")
    fitting = records.ranked([log], target.key)[conv.key][0]
    records.append(log, [records.make(target.key, conv.key, fitting["template"],
                                      dict(fitting["config"], tile_w=10**6), [1e-9])])
    assert templates.from_record(records.ranked([log], target.key)[conv.key][0], conv,
                                 target) is None
    monkeypatch.setattr(netconfirm, "profile_rounds",  # the current picks run fastest
                        lambda models, feeds: [[{wl.key: rank + 1.0 for wl in wls}
                                                for rank in range(len(models))]] * 3)
    assert netconfirm.confirm(tiny, target, log, say=lambda _: None) >= 1
    first = records.best_by_target([log])[target.key][conv.key]
    assert first.get("verdict") and first["config"] == fitting["config"]
