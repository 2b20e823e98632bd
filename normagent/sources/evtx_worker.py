"""The EVTX worker: one pass of ``EvtxReader`` over one file, in a short-lived child process.

Run as ``python -m normagent.sources.evtx_worker`` by ``normagent.sources.evtx_process``; the
agent never imports it. Why a child process at all:

* The native ``evtx`` parser reads damaged and possibly hostile binary files. A segfault or a
  Rust panic there would otherwise end the long-running agent; in a child it ends one pass, which
  the agent reports as a damaged file.
* A pass decodes every record's JSON (tens of thousands of short-lived objects per block), which
  fragments the allocator's arenas: an agent that read EVTX kept ~8 MB more resident memory
  for good, although it kept no more objects. The child hands that memory back by exiting.

Protocol: the request is one JSON object on stdin::

    {"path": "...", "position": EvtxPosition.to_json(), "channels": [...], "event_ids": [...],
     "block_records": 1000}

The answer is JSON lines on stdout: two per chunk (right before the native parser gets it, and
once the parser is done with it and has been freed), one per block, then exactly one last line:

    {"chunk": {"offset": 4096, "first": 1, "last": 91}}
    {"chunk": null}
    {"block": [WindowsEvent.to_json(), ...], "origin": "...", "last": 123, "position": {...}, "stats": {...}}
    {"end": true, "position": {...}, "stats": {...}}
    {"error": "evtx", "message": "...", "incomplete": false, "position": {...}, "stats": {...}}
    {"error": "os", "errno": 13, "message": "Permission denied", "filename": "..."}
    {"error": "request", "message": "..."}

Anything else (no last line, a signal, a traceback on stderr) is a crash, which the parent
reports, naming the chunk the parser held (``ChunkSpan``: its offset and record range), if it
held one: a crash in the parser is that chunk's doing, as is a parser that stays in one chunk far
longer than a 64 KiB chunk takes (the parent's ``chunk_silence``). The agent keeps the crash in the
file's position, and the reader skips a chunk the parser crashed in twice (see
``normagent.sources.evtx``). Imports only what ``normagent.sources.evtx`` needs: a child starts for every changed
file, and its start-up is part of what each pass costs.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Callable
from typing import Any

from normagent.model import JSONValue
from normagent.sources.evtx import EvtxFileError, EvtxPosition, EvtxReader, read_evtx

Emit = Callable[[dict[str, JSONValue]], None]


def serve(request: Any, emit: Emit) -> int:
    """Answer one request through ``emit``; returns the exit status (0 once a last line is sent)."""
    try:
        path, position, channels, event_ids, block_records = _request(request)
    except (ValueError, TypeError, KeyError) as exc:
        emit({"error": "request", "message": f"not an EVTX worker request: {exc}"})
        return 2
    reader: EvtxReader | None = None
    try:
        reader = read_evtx(path, position=position, channels=channels, event_ids=event_ids, block_records=block_records)
        reader.on_chunk = lambda chunk: emit({"chunk": chunk.to_json() if chunk is not None else None})
        for block, last in reader:
            emit({
                "block": [event.to_json() for event in block.records],  # type: ignore[union-attr]
                "origin": block.origin,
                "last": last,
                "position": reader.position.to_json(),
                "stats": reader.stats.to_json(),
            })
        emit({"end": True, "position": reader.position.to_json(), "stats": reader.stats.to_json()})
    except EvtxFileError as exc:
        answer: dict[str, JSONValue] = {"error": "evtx", "message": str(exc), "incomplete": exc.incomplete}
        if reader is not None:
            answer |= {"position": reader.position.to_json(), "stats": reader.stats.to_json()}
        emit(answer)
    except OSError as exc:
        emit({"error": "os", "errno": exc.errno, "message": exc.strerror or str(exc), "filename": str(exc.filename or path)})
    return 0


def _request(request: Any) -> tuple[str, EvtxPosition, tuple[str, ...], tuple[int, ...], int]:
    path, channels, event_ids, block_records = request["path"], request["channels"], request["event_ids"], request["block_records"]
    if not isinstance(path, str) or not path:
        raise ValueError(f"path is not a file name: {path!r}")
    if not (isinstance(channels, list) and all(isinstance(c, str) for c in channels)):
        raise ValueError(f"channels is not a list of names: {channels!r}")
    if not (isinstance(event_ids, list) and all(type(i) is int for i in event_ids)):
        raise ValueError(f"event_ids is not a list of numbers: {event_ids!r}")
    if type(block_records) is not int or block_records < 1:
        raise ValueError(f"block_records is not a positive number: {block_records!r}")
    return path, EvtxPosition.from_json(request["position"]), tuple(channels), tuple(event_ids), block_records


def main() -> int:
    # The agent ends this process itself (SIGKILL when it stops reading). A stop signal sent to
    # the agent's whole process group or cgroup (Ctrl-C, systemctl stop) must not end a pass the
    # agent is about to close cleanly: the agent would take that for a crash of the parser.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    out = sys.stdout.buffer

    def emit(answer: dict[str, JSONValue]) -> None:
        out.write(json.dumps(answer, separators=(",", ":")).encode("ascii") + b"\n")
        out.flush()  # a block reaches the agent (and its commit) as soon as it is read

    try:
        try:
            request = json.loads(sys.stdin.buffer.read())
        except ValueError as exc:
            emit({"error": "request", "message": f"not an EVTX worker request: {exc}"})
            return 2
        return serve(request, emit)
    except BrokenPipeError:
        return 1  # the agent stopped listening (it closed the pass, or it is gone): nothing to say


if __name__ == "__main__":
    sys.exit(main())
