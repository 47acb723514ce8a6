"""Run ffmpeg/ffprobe safely: argument lists only, resource limits, a deadline, a kill switch."""

from __future__ import annotations

import contextlib
import fcntl
import os
import resource
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ipr.media.errors import IngestCancelled, ProcessingError

FFMPEG = "ffmpeg"
FFPROBE = "ffprobe"
GIB = 1024**3


@dataclass(frozen=True)
class RunLimits:
    """Per-process ceilings; a runaway ffmpeg is stopped by the kernel or by our deadline."""

    timeout_s: float = 600.0
    cpu_s: int = 3600
    address_space_bytes: int = 16 * GIB
    file_size_bytes: int = 64 * GIB


def _preexec(limits: RunLimits) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s))
        resource.setrlimit(
            resource.RLIMIT_AS, (limits.address_space_bytes, limits.address_space_bytes)
        )
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_size_bytes, limits.file_size_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def kill_group(proc: subprocess.Popen) -> None:
    """Kill ffmpeg and anything it started; it runs in its own session."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


PIPE_BYTES = 1 << 20


def widen_pipe(fd: int) -> None:
    """Give a pipe 1 MiB of buffer instead of 64 KiB (Linux; ignored where not allowed).

    ffmpeg writes every output from one thread: when an analysis pipe is full, the encoder and
    the other outputs wait too. With the default 64 KiB (four small grey frames) that happened
    every few frames whenever our reader thread was not scheduled at once, and a transcode
    took a fifth longer than the same command writing to /dev/null.
    """
    with contextlib.suppress(AttributeError, OSError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)


@dataclass
class Completed:
    returncode: int
    stdout: bytes
    stderr: str


def run(args: Sequence[str], limits: RunLimits) -> Completed:
    """Run to completion and capture output; a hung process is killed at the deadline."""
    proc = subprocess.Popen(
        list(args),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_preexec(limits),
        start_new_session=True,
        close_fds=True,
    )
    try:
        out, err = proc.communicate(timeout=limits.timeout_s)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        proc.communicate()
        raise ProcessingError(
            f"Media processing took longer than {limits.timeout_s:.0f} s and was stopped. "
            "The file may be damaged; try re-exporting it from the camera software.",
            code="timeout",
        ) from None
    return Completed(proc.returncode, out, err.decode("utf-8", "replace"))


class StreamingRun:
    """An ffmpeg process whose outputs are pipes read by threads (stdout plus extra fds).

    Each extra output gets a child-side fd number to put in the command as `pipe:N`; the
    consumer callbacks run on their own threads and see the bytes in chunks.
    """

    def __init__(self, limits: RunLimits) -> None:
        self.limits = limits
        self._pipes: list[tuple[int, int]] = []  # (read end, write end)
        self.stderr_tail: deque[str] = deque(maxlen=40)
        self.timed_out = False

    def extra_pipe(self) -> tuple[int, str]:
        """Reserve a pipe; returns (read fd for us, 'pipe:N' for the ffmpeg command)."""
        r, w = os.pipe()
        widen_pipe(r)
        os.set_inheritable(w, True)
        self._pipes.append((r, w))
        return r, f"pipe:{w}"

    def start(self, args: Sequence[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        proc = subprocess.Popen(
            list(args),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=_preexec(self.limits),
            start_new_session=True,
            close_fds=True,
            pass_fds=tuple(w for _, w in self._pipes),
        )
        for _, w in self._pipes:
            os.close(w)
        if proc.stdout is not None:
            widen_pipe(proc.stdout.fileno())
        self.proc = proc
        self._err_thread = threading.Thread(target=self._read_stderr, daemon=True)
        self._err_thread.start()
        self._timer = threading.Timer(self.limits.timeout_s, self._on_timeout)
        self._timer.daemon = True
        self._timer.start()
        return proc

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_tail.append(line.decode("utf-8", "replace").rstrip())

    def _on_timeout(self) -> None:
        self.timed_out = True
        kill_group(self.proc)

    def finish(self, cancelled: bool = False) -> int:
        """Wait for the process, close our pipe ends and turn a deadline into an error."""
        if cancelled:
            kill_group(self.proc)
        rc = self.proc.wait()
        self._timer.cancel()
        self._err_thread.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        if cancelled:
            raise IngestCancelled("Processing was cancelled; nothing was kept.")
        if self.timed_out:
            raise ProcessingError(
                f"Media processing took longer than {self.limits.timeout_s:.0f} s and was "
                "stopped. The file may be damaged; try re-exporting it from the camera software.",
                code="timeout",
            )
        return rc

    def abort(self) -> None:
        """Kill the process and release everything; used on error paths."""
        kill_group(self.proc)
        self.proc.wait()
        self._timer.cancel()


def stream_reader(
    fd: int, consume: Callable[[bytes], None], chunk: int = 1 << 20
) -> threading.Thread:
    """Read a pipe to EOF on a thread, handing chunks to `consume`; closes the fd afterwards."""

    def loop() -> None:
        with os.fdopen(fd, "rb", buffering=0) as f:
            while True:
                data = f.read(chunk)
                if not data:
                    break
                consume(data)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return t
