"""Read an EVTX file in a child process (``normagent.sources.evtx_worker``): ``read_evtx`` for the agent.

``read_evtx_in_child`` takes ``read_evtx``'s arguments and returns an ``EvtxProcessReader``, which
behaves as an ``EvtxReader`` does (iterate it for ``(RecordBlock, last_record_id)``; ``position``
and ``stats`` are current after each block; ``EvtxFileError`` and ``OSError`` as there). The pass
itself runs in a child started with this interpreter, which sends its blocks back as JSON lines
(see the worker's docstring). Why: the native parser's crash on a hostile file ends the child,
not the agent, and the allocator fragmentation a pass leaves behind leaves with the child.

What the agent does when the child fails, and why:

* Killed by a signal or ended without its last line (a segfault, a Rust panic, the OOM killer):
  ``EvtxCrash`` (an ``EvtxFileError``) "the evtx parser crashed (…) in chunk at offset … (records
  a..b)" naming the file, the signal or exit status, and the chunk the parser held (``chunk``;
  None if it held none: no chunk is to blame, none is skipped). The blocks received before stay
  committed. The
  first crash in a chunk: the agent counts the file unreadable until it changes, as any damaged
  file, and the position remembers the chunk; the second crash in the same chunk: the chunk is
  skipped (``normagent.sources.evtx``) and reading goes on after it, so one damaged or hostile
  chunk cannot silence a live log for good. ``normagent parse``, which keeps no state, skips at
  the first crash. SIGKILL counts as a crash too: this module's own kills (the deadline, the
  silence, a consumer that stops) never get here, so it came from outside — the OOM killer (bad
  luck, or a chunk that makes the parser allocate without end) or an administrator — and it
  takes two in the same chunk to skip it, as for any crash.
* Stopped by SIGTERM, SIGINT or SIGHUP (someone stopping the agent's whole process group): not the
  file's fault, so ``ChildProcessError`` (an ``OSError``): the run fails and the file is read
  again next time. The worker ignores these signals; this is for the moment before it can.
* A line that is not one the worker writes (garbage, cut short): ``EvtxFileError`` saying so.
* Silent for ``silence`` seconds, or for ``chunk_silence`` seconds while the parser holds a
  chunk (one 64 KiB chunk takes milliseconds: a parser stuck in a loop): killed, ``EvtxCrash``
  naming the chunk it was stuck in, which counts as a crash in that chunk (a loop in the parser
  is the file's doing as much as a segfault; and the run's deadline, which would otherwise come
  first on every run, says nothing about the file). Past the
  run's deadline (``deadline``, on ``time.monotonic()``): killed, ``TimeoutError``; the scheduler
  has abandoned that run anyway.
* The consumer stops early (closes the iteration, leaves a ``with`` block): the child is killed
  and reaped, its pipes closed. ``close()`` does it too.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Generator, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from normagent.model import RecordBlock, WindowsEvent
from normagent.sources.evtx_state import ChunkSpan, EvtxFileError, EvtxPosition, EvtxStats

# The worker, started with this interpreter and environment (PYTHONOPTIMIZE and the rest carry
# over; -P: the working directory is no place to import from). Tests set another command to play
# a child that crashes or hangs.
WORKER_COMMAND: tuple[str, ...] = (sys.executable, "-P", "-m", "normagent.sources.evtx_worker")
# How long a child may stay silent (no block, no last line) before it is taken for stuck. A block
# is sent at least every block_records * SCAN_FACTOR records; even a 1 GB file's first block
# (chunk headers scanned, then up to a million records read) comes well within this.
SILENCE_SECONDS = 600.0
# How long the parser may hold one chunk before it is taken for stuck in it: a 64 KiB chunk parses
# in milliseconds; this is far above that and well below a collector's run timeout (2 minutes),
# so that a chunk that hangs the parser is found before the deadline ends the run, every run.
CHUNK_SILENCE_SECONDS = 30.0
STDERR_TAIL = 2000  # bytes of the child's stderr kept for the crash message (a traceback's end, a panic)
# Read from the child's pipes into one buffer kept for the pass: a pipe holds 64 KiB at most,
# and os.read(fd, n) allocates n bytes for every read however little came (the chunk lines come
# two per 64 KiB chunk, a few dozen bytes each), then shrinks them.
READ_BYTES = 1 << 16
EXIT_SECONDS = 5.0  # how long a child that closed its output may take to exit before it is killed
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP})


class EvtxCrash(EvtxFileError):
    """The worker died (a signal, an exit without its answer) or hung while it read a file.

    Attributes:
        chunk: The chunk the worker announced last: the one the native parser held. None if it
            died before it announced one (then no chunk is to blame, and none is skipped).
    """

    def __init__(self, message: str, *, chunk: ChunkSpan | None) -> None:
        super().__init__(message)
        self.chunk = chunk


def read_evtx_in_child(
    path: str | os.PathLike[str],
    *,
    channels: Iterable[str] | None = None,
    event_ids: Iterable[int] | None = None,
    block_records: int = 1000,
    position: EvtxPosition | None = None,
    deadline: float | None = None,
    silence: float = SILENCE_SECONDS,
    chunk_silence: float | None = None,
    command: Sequence[str] | None = None,
) -> EvtxProcessReader:
    """``read_evtx`` in a child process; see the module docstring.

    Args:
        path, channels, event_ids, block_records, position: As for ``read_evtx``.
        deadline: ``time.monotonic()`` value at which the child is killed (the run's deadline).
        silence: Seconds the child may go without sending a line before it is killed.
        chunk_silence: The same while the parser holds a chunk. None: ``CHUNK_SILENCE_SECONDS``,
            looked up at the call (a test sets it for a reader the agent creates).
        command: The worker command; tests only. None: ``WORKER_COMMAND``, looked up at the call,
            so a test can set it for a reader the agent creates deep inside a collector.
    """
    if block_records < 1:
        raise ValueError(f"block_records must be at least 1, got {block_records}")
    return EvtxProcessReader(
        Path(path),
        position if position is not None else EvtxPosition(),
        channels=tuple(channels or ()),
        event_ids=tuple(int(i) for i in event_ids or ()),
        block_records=block_records,
        deadline=deadline,
        silence=silence,
        chunk_silence=chunk_silence if chunk_silence is not None else CHUNK_SILENCE_SECONDS,
        command=tuple(command if command is not None else WORKER_COMMAND),
    )


class EvtxProcessReader:
    """One pass over an EVTX file in a child process; see ``read_evtx_in_child``. Iterate it once."""

    def __init__(
        self,
        path: Path,
        start: EvtxPosition,
        *,
        channels: tuple[str, ...],
        event_ids: tuple[int, ...],
        block_records: int,
        deadline: float | None,
        silence: float,
        chunk_silence: float,
        command: tuple[str, ...],
    ) -> None:
        self.path = path
        self.start = start
        self.position = start
        self.stats = EvtxStats()
        self._request = {
            "path": str(path),
            "position": start.to_json(),
            "channels": list(channels),
            "event_ids": list(event_ids),
            "block_records": block_records,
        }
        self._deadline = deadline
        self._silence = silence
        self._chunk_silence = chunk_silence
        self._command = command
        self._child: subprocess.Popen[bytes] | None = None
        self._started = False
        self._stderr = b""
        self.chunk: ChunkSpan | None = None  # the chunk the parser holds, as the worker announced it

    def __enter__(self) -> EvtxProcessReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Kill the child if it still runs, reap it and close its pipes (safe to call again)."""
        child, self._child = self._child, None
        if child is None:
            return
        if child.returncode is None:
            child.kill()
        child.wait()  # SIGKILL cannot be ignored: this returns at once
        for pipe in (child.stdin, child.stdout, child.stderr):
            if pipe is not None:
                pipe.close()

    def __iter__(self) -> Iterator[tuple[RecordBlock, int]]:
        if self._started:
            raise RuntimeError(f"{self.path}: an EVTX pass is iterated once")
        self._started = True
        lines: Generator[bytes, None, None] | None = None
        try:
            child = self._child = subprocess.Popen(
                self._command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                close_fds=True,
                start_new_session=True,  # the terminal's Ctrl-C is for the agent, which ends the child
            )
            assert child.stdin is not None
            try:
                child.stdin.write(json.dumps(self._request).encode("utf-8"))
                child.stdin.close()
            except BrokenPipeError:
                pass  # the child is gone already: what it said (or did not) tells why, below
            lines = self._lines(child)
            for line in lines:
                answer = self._decode(line)
                if "chunk" in answer:
                    self._chunk(answer)
                elif "block" in answer:
                    yield self._block(answer)
                elif "end" in answer:
                    self._end(answer)
                    return
                else:
                    raise self._error(answer)
            raise self._crash(child)
        finally:
            if lines is not None:
                lines.close()
            self.close()

    def _lines(self, child: subprocess.Popen[bytes]) -> Generator[bytes, None, None]:
        """The child's stdout, line by line, until it closes; its stderr's tail kept on the side."""
        out, err = child.stdout, child.stderr
        assert out is not None and err is not None
        pending = bytearray()
        searched = 0  # pending[:searched] holds no newline: a long line is not scanned again and again
        buffer = bytearray(READ_BYTES)
        view = memoryview(buffer)
        with selectors.DefaultSelector() as selector:
            selector.register(out, selectors.EVENT_READ)
            selector.register(err, selectors.EVENT_READ)
            heard = time.monotonic()
            while selector.get_map().get(out) is not None:
                for key, _ in selector.select(self._wait(heard)):  # none: the wait is checked again
                    n = os.readv(key.fd, [buffer])
                    if not n:
                        selector.unregister(key.fileobj)
                    elif key.fileobj is err:
                        self._stderr = (self._stderr + bytes(view[:n]))[-STDERR_TAIL:]
                    else:
                        pending += view[:n]
                        while (newline := pending.find(b"\n", searched)) >= 0:
                            line = bytes(pending[:newline])
                            del pending[: newline + 1]
                            searched = 0
                            yield line
                            heard = time.monotonic()  # the consumer's time with a block is not the child's silence
                        searched = len(pending)
            if pending:
                raise self._crash(child, f"its last line is cut short after {len(pending):,} bytes")
            # stdout is closed: the child is ending. Collect the rest of stderr for the message.
            while selector.get_map():
                for key, _ in selector.select(self._wait(heard)):
                    n = os.readv(key.fd, [buffer])
                    if n:
                        self._stderr = (self._stderr + bytes(view[:n]))[-STDERR_TAIL:]
                    else:
                        selector.unregister(key.fileobj)

    def _wait(self, heard: float) -> float:
        """Seconds left to wait for the child's next line; kills it and raises when none are left."""
        now = time.monotonic()
        silence = self._silence if self.chunk is None else min(self._silence, self._chunk_silence)
        left = heard + silence - now
        if self._deadline is not None and self._deadline - now < left:
            if self._deadline <= now:
                self.close()
                raise TimeoutError(f"{self.path}: the evtx parser was stopped at the run's deadline")
            return self._deadline - now
        if left <= 0:
            self.close()
            raise EvtxCrash(f"{self.path}: the evtx parser hung (nothing from it in {silence:g} s){self._where()}; it was stopped", chunk=self.chunk)
        return left

    def _where(self) -> str:
        return f" in {self.chunk.describe()}" if self.chunk is not None else ""

    def _decode(self, line: bytes) -> dict[str, Any]:
        try:
            answer = json.loads(line)
        except (ValueError, RecursionError):
            answer = None
        if not isinstance(answer, dict):
            raise EvtxFileError(f"{self.path}: the evtx parser sent an unreadable line: {line[:120]!r}")
        return answer

    def _chunk(self, answer: dict[str, Any]) -> None:
        try:
            self.chunk = None if answer["chunk"] is None else ChunkSpan.from_json(answer["chunk"])
        except ValueError as exc:
            raise EvtxFileError(f"{self.path}: the evtx parser sent an unreadable line: {exc}") from exc

    def _block(self, answer: dict[str, Any]) -> tuple[RecordBlock, int]:
        try:
            # Taken out of the answer, which the caller holds while the consumer has the block.
            records = answer.pop("block")
            if not isinstance(records, list):
                raise ValueError("its records are not a list")
            events = tuple(WindowsEvent.from_json(record) for record in records)
            origin, last = answer["origin"], answer["last"]
            if not isinstance(origin, str) or type(last) is not int:
                raise ValueError("origin or last record id missing")
            self._progress(answer)
        except (ValueError, KeyError) as exc:
            raise EvtxFileError(f"{self.path}: the evtx parser sent a block that is not one: {exc}") from exc
        return RecordBlock(records=events, origin=origin), last

    def _end(self, answer: dict[str, Any]) -> None:
        try:
            self._progress(answer)
        except (ValueError, KeyError) as exc:
            raise EvtxFileError(f"{self.path}: the evtx parser sent a last line that is not one: {exc}") from exc

    def _progress(self, answer: dict[str, Any]) -> None:
        """Take the position and stats a line carries (``ValueError`` if they are not that)."""
        position, stats = EvtxPosition.from_json(answer["position"]), EvtxStats.from_json(answer["stats"])
        self.position, self.stats = position, stats

    def _error(self, answer: dict[str, Any]) -> Exception:
        """The exception a last line with an error stands for, as the reader in this process would raise it."""
        kind, message = answer.get("error"), answer.get("message")
        if not isinstance(message, str):
            return EvtxFileError(f"{self.path}: the evtx parser sent an unreadable line: {str(answer)[:120]}")
        if kind == "evtx":
            if "position" in answer:
                try:
                    self._progress(answer)
                except (ValueError, KeyError) as exc:
                    return EvtxFileError(f"{self.path}: the evtx parser sent an unreadable line: {exc}")
            return EvtxFileError(message, incomplete=answer.get("incomplete") is True)
        if kind == "os":
            errno = answer.get("errno")
            return OSError(errno if isinstance(errno, int) else 0, message, str(answer.get("filename") or self.path))
        return EvtxFileError(f"{self.path}: the evtx parser failed: {message}")

    def _crash(self, child: subprocess.Popen[bytes], what: str = "") -> Exception:
        """Why the child ended without its last line, as the exception to raise (the child reaped)."""
        try:
            status = child.wait(timeout=EXIT_SECONDS)
        except subprocess.TimeoutExpired:
            status = None  # stdout closed yet still running: killed by close()
        said = self._stderr.decode("utf-8", "replace").strip().splitlines()
        tail = f": {said[-1][:300]}" if said else ""
        if status is not None and status < 0 and -status in STOP_SIGNALS:
            return ChildProcessError(f"{self.path}: the evtx parser was stopped by {signal.Signals(-status).name} before it finished")
        if status is None:
            how = "it closed its output but did not end"
        elif status < 0:
            how = f"killed by {_signal_name(-status)}"
        else:
            how = f"exit status {status}"
        if what:
            how = f"{what}; {how}"
        elif status == 0:
            how = f"it ended without finishing its answer; {how}"
        return EvtxCrash(f"{self.path}: the evtx parser crashed ({how}){self._where()}{tail}", chunk=self.chunk)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"

