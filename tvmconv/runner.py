"""Measuring candidate schedules: builds in parallel worker processes, timed runs one at a time in
an isolated process (locally, or on a board through TVM RPC).

A candidate that fails to build, crashes, hangs or computes a wrong result becomes an error string;
nothing a candidate does can stop the tuning run.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing as mp
import os
import signal
import socket
import struct
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import TvmconvError
from .hostinfo import keep_torch_out

BUILD_TIMEOUT = 60.0
RUN_TIMEOUT = 30.0


@dataclass
class Result:
    latencies: list[float] | None = None
    error: str | None = None


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[-1] if text else ''}"[:300]


def build(wl, target, template_name: str | None, cfg, out_dir: str) -> str:
    """Compile one candidate (or, with no template, the unscheduled reference) to a .so path."""
    import tvm
    from tvm import te

    from . import kernels, templates

    if template_name is None:
        func = te.create_prim_func(kernels.COMPUTES[wl.kind](wl))
    else:
        func = kernels.prim_func(wl, target, templates.by_name(template_name, target.family), cfg)
    lib = tvm.compile(tvm.IRModule({"main": func}), target=target.tvm_target())
    fd, path = tempfile.mkstemp(suffix=".so", dir=out_dir)
    os.close(fd)
    lib.export_library(path, **target.export_kwargs())
    return path


def _start_builder() -> None:
    """A build worker: one thread, and no TVM pool threads left spinning after a compile - they
    would steal the cores from the candidate being timed (ResNet-18's max pool measured 4 ms, 60x
    its real time, right after a batch of builds)."""
    os.environ["TVM_NUM_THREADS"] = "1"
    os.environ["TVM_THREAD_POOL_SPIN_COUNT"] = "0"
    keep_torch_out()
    import tvm  # noqa: F401


def _ready() -> None:
    """Nothing: waiting for one of these per worker waits until every worker has started."""


@contextlib.contextmanager
def _sigint_ignored():
    """Processes started inside ignore SIGINT from their first instruction (they inherit it): a
    Ctrl-C reaches the whole process group, and each worker printed a traceback of wherever it
    was. The parent handles it and shuts them down."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _build_job(args):
    try:
        return build(*args), None
    except Exception as e:  # a template bug or an invalid config: recorded, never raised
        return None, _short(e)


class Builder:
    """A pool of worker processes compiling candidates in parallel."""

    def __init__(self, workers: int):
        self.workers = max(1, workers)
        self.pool = self._new_pool()

    def _new_pool(self):
        """Workers that have all finished importing TVM (seconds of CPU each): a worker still
        starting while a candidate is timed made ResNet-18's first measurements 2x too slow."""
        with _sigint_ignored():  # each submit starts a worker
            pool = cf.ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"),
                                          initializer=_start_builder)
            started = [pool.submit(_ready) for _ in range(self.workers)]
        cf.wait(started)
        return pool

    def build_all(self, jobs: list[tuple]) -> list[tuple[str | None, str | None]]:
        futures = [self.pool.submit(_build_job, job) for job in jobs]
        out = []
        for f in futures:
            try:
                out.append(f.result(timeout=BUILD_TIMEOUT))
            except cf.TimeoutError:
                out.append((None, f"build timed out after {BUILD_TIMEOUT:.0f} s"))
                self.restart()
            except Exception as e:  # a worker died (killed, out of memory)
                out.append((None, _short(e)))
                self.restart()
        return out

    def restart(self) -> None:
        self.close()
        self.pool = self._new_pool()

    def close(self) -> None:
        """Kill the workers: one still compiling would keep the interrupted parent waiting. Closing
        twice is harmless (a shut-down pool has no process table)."""
        for p in list((getattr(self.pool, "_processes", None) or {}).values()):
            p.kill()
        self.pool.shutdown(wait=False, cancel_futures=True)


def rpc_session(rpc_addr):
    """A session on the board: (host, port, None) is its RPC server, (host, port, key) a tracker
    that hands out a device of that key."""
    from tvm import rpc

    host, port, key = rpc_addr
    return rpc.connect_tracker(host, port).request(key) if key else rpc.connect(host, port)


def tracker_keys(sock: socket.socket) -> list[str]:
    """The device keys of the tracker at the other end of ``sock``, by its own protocol; TVM's
    client has no timeout, and an RPC server (no tracker) left it waiting for ever."""
    from tvm.rpc import base

    sock.sendall(struct.pack("<i", base.RPC_TRACKER_MAGIC))
    if struct.unpack("<i", base.recvall(sock, 4))[0] != base.RPC_TRACKER_MAGIC:
        raise ConnectionError("it answered, but not as a tracker")
    base.sendjson(sock, [base.TrackerCode.SUMMARY])
    code, summary = base.recvjson(sock)
    if code != base.TrackerCode.SUCCESS:
        raise ConnectionError(f"its summary failed: {summary}")
    return sorted(summary.get("queue_info", {}))


def check_rpc(rpc_addr, timeout: float = 10.0) -> None:
    """Reach the board's server (or tracker) once before any work: a wrong address failed in the
    measuring process, with its traceback, after the model's kernels were extracted. A tracker
    must have a device of the key: asked for another, it made every request wait 30 s and fail."""
    host, port, key = rpc_addr
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as e:
        raise TvmconvError(f"--rpc {host}:{port}: cannot connect "
                           f"({e.strerror or str(e) or type(e).__name__})") from None
    with sock:
        if key is None:
            return
        try:
            keys = tracker_keys(sock)
        except Exception as e:  # a server that speaks no tracker protocol, hangs up or stays silent
            raise TvmconvError(f"--rpc {host}:{port} with --rpc-key: no RPC tracker answers "
                               f"there ({_short(e)})") from None
    if key not in keys:
        raise TvmconvError(f"--rpc-key {key}: the tracker at {host}:{port} has no device of that "
                           f"key (it has: {', '.join(keys) or 'none'})")


def _serve(conn, rpc_addr, gpu: bool) -> None:
    """The measuring process: load a .so, run it, check it, time it; one request at a time.

    Requests: ("reference", path, inputs, out_shape) -> output array or Result(error); ("time",
    path, inputs, out_shape, reference, repeat, flush) -> Result. None ends the process.
    """
    keep_torch_out()
    import tvm

    from .measure import time_kernel
    from .runtime import relative_error

    try:
        session = rpc_session(rpc_addr) if rpc_addr else None
    except Exception as e:  # the board went away: the waiting request gets why, the next retries
        if conn.recv() is not None:
            conn.send(Result(error=f"no RPC session on {rpc_addr[0]}:{rpc_addr[1]} "
                                   f"({_short(e)})"))
        return
    if gpu and session is None:  # on a board, its own runtime compiles the kernels it loads
        from .nvcc import enable_runtime_compiler

        enable_runtime_compiler()
    dev = (session or tvm).cuda(0) if gpu else (session or tvm).cpu()
    while True:
        msg = conn.recv()
        if msg is None:
            return
        kind, path, inputs, out_shape = msg[:4]
        try:
            if session:
                session.upload(path)
                mod = session.load_module(os.path.basename(path))
            else:
                mod = tvm.runtime.load_module(path)
            arrays = [tvm.runtime.tensor(a, dev) for a in inputs]
            arrays.append(tvm.runtime.tensor(np.zeros(out_shape, "float32"), dev))
            mod["main"](*arrays)
            out = arrays[-1].numpy()
            if kind == "reference":
                conn.send(out)
                continue
            reference, repeat, flush = msg[4:]
            err = relative_error(out, reference)
            if not np.isfinite(err) or err > 1e-4:
                conn.send(Result(error=f"wrong result (relative error {err:.2e})"))
                continue
            conn.send(Result(latencies=time_kernel(mod, arrays, dev, repeat, flush=flush)))
        except Exception as e:  # a kernel that fails to load or run is a result, not a crash
            conn.send(Result(error=_short(e)))


class Runner:
    """Times built candidates one at a time in a separate process, restarted after a crash/hang."""

    def __init__(self, rpc_addr=None, repeat: int = 5, gpu: bool = False):
        self.rpc_addr = rpc_addr
        self.repeat = repeat
        self.gpu = gpu
        self.proc = None

    def _start(self):
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, self.rpc_addr, self.gpu),
                                daemon=True)
        with _sigint_ignored():
            self.proc.start()

    def _ask(self, msg):
        if self.proc is None or not self.proc.is_alive():
            self._start()
        try:
            self.conn.send(msg)
            if not self.conn.poll(RUN_TIMEOUT):
                self.stop(kill=True)
                return Result(error=f"run timed out after {RUN_TIMEOUT:.0f} s")
            return self.conn.recv()
        except (EOFError, OSError):  # the process died before or while answering
            self.stop(kill=True)
            return Result(error="the kernel crashed the measuring process")

    def reference(self, path: str, inputs, out_shape) -> tuple[np.ndarray | None, str | None]:
        """The output of the unscheduled kernel, what every candidate must reproduce; or None and
        why not."""
        out = self._ask(("reference", path, inputs, out_shape))
        return (out, None) if isinstance(out, np.ndarray) else (None, out.error)

    def run(self, path: str, inputs, out_shape, reference, flush: bool = False) -> Result:
        """Check and time a built kernel (``measure.time_kernel``, flushed with ``flush``)."""
        return self._ask(("time", path, inputs, out_shape, reference, self.repeat, flush))

    def stop(self, kill: bool = False) -> None:
        if self.proc is not None:
            if kill:
                self.proc.kill()
            else:
                try:
                    self.conn.send(None)
                except OSError:
                    pass
                self.proc.join(5)
            self.proc = None


def kernel_inputs(wl, template=None, cfg=None, seed: int = 0) -> tuple[list, tuple]:
    """Seeded inputs for a kernel (as the layer computes them) and its output shape. Positive values
    keep log/sqrt/div epilogues finite; a resize or take reads real index tables; a template with
    its own weight form gets them transformed."""
    from . import kernels
    from .layers import transform

    shapes = [tuple(int(d) for d in t.shape) for t in kernels.COMPUTES[wl.kind](wl)]
    rng = np.random.default_rng(seed)
    inputs = [rng.uniform(0.5, 1.5, s).astype("float32") for s in shapes[:-1]]
    if wl.kind == "resize":  # index tables
        inputs[1:3] = transform.resize_tables(wl, rng)
    if wl.kind == "take":
        inputs[1] = transform.take_table(wl, rng)
    if hasattr(template, "transform_weights"):
        inputs[1] = template.transform_weights(inputs[1], wl, cfg)
    return inputs, shapes[-1]


def scratch_dir() -> Path:
    """Where candidates' libraries are written while a tuning run lasts."""
    return Path(tempfile.mkdtemp(prefix="tvmconv-tune-"))
