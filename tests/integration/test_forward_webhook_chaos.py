"""The whole pipeline under bad luck: ``normagent run`` raises candidates from its own collector,
and a webhook receiver (its own process) answers 500, then too late, then not at all (its port
refuses), and recovers; the agent is SIGKILLed and restarted twice in between. The receiver gets
every change, each idempotency key accepted exactly once, and each fingerprint's changes in
order."""

from __future__ import annotations

import json
import signal
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.integration.conftest import Process, agent_env, free_port, normagent_command, server_env, toml_value, wait_until
from tests.support.tools import REPO

pytestmark = pytest.mark.integration

UNITS = [f"u{i}" for i in range(1, 6)]


class Setup:
    def __init__(self, tmp_path: Path, start_process: Callable[..., Process]) -> None:
        self.tmp, self.start_process = tmp_path, start_process
        self.switches = tmp_path / "switches.json"
        self.mode = tmp_path / "receiver.mode"
        self.log = tmp_path / "receiver.jsonl"
        self.receiver_port = free_port()
        self.agent_port = free_port()
        self.config = tmp_path / "normagent.toml"
        self.receiver: Process | None = None
        self.agent: Process | None = None
        self.starts = 0
        self.config.write_text("\n".join([
            "[agent]", f"state_dir = {toml_value(tmp_path / 'state')}", "",
            "[web]", f'listen = "127.0.0.1:{self.agent_port}"', "",
            "[plugins]", 'extra = ["tests.support.switch_plugin"]', 'disable = ["system", "access", "edi"]', "entry_points = false", "",
            "[deviations]", 'evaluate_every = "1s"', "",
            '[collectors."switch.units"]', "enabled = true", f"path = {toml_value(self.switches)}", "",
            '[rules."site.unit_on"]', 'watch = "normagent_switch_on"', 'comparison = ">"', "threshold = 0",
            'group_by = ["unit"]', 'hold = "0s"', 'section = "Driftsstatus"', 'summary = "Enheten {unit} er på."', "",
            "[forwarders.avvik]", 'kind = "webhook"', f'url = "http://127.0.0.1:{self.receiver_port}/avvik"',
            'timeout = "1s"', 'retry_min = "100ms"', 'retry_max = "1s"', "",
        ]))

    def switch(self, on: bool) -> None:
        self.switches.write_text(json.dumps({unit: 1 if on else 0 for unit in UNITS}))

    def set_mode(self, mode: str) -> None:
        self.mode.write_text(mode)

    def start_receiver(self) -> None:
        argv = [sys.executable, "-m", "tests.support.receivers", str(self.receiver_port), str(self.mode), str(self.log)]
        self.receiver = self.start_process("receiver", argv, env=server_env({"PYTHONPATH": str(REPO)}), cwd=REPO)
        wait_until("the receiver to listen", self._receiver_listens, process=self.receiver)

    def _receiver_listens(self) -> bool:
        import socket

        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.receiver_port)) == 0

    def start_agent(self) -> None:
        self.starts += 1
        self.agent = self.start_process(f"normagent-{self.starts}", [*normagent_command(), "run", "--config", str(self.config)],
                                        env=agent_env({"PYTHONPATH": str(REPO)}))
        wait_until("normagent to answer", lambda: requests.get(f"http://127.0.0.1:{self.agent_port}/healthz", timeout=5).ok,
                   process=self.agent)

    def kill_agent(self) -> None:
        assert self.agent is not None
        self.agent.signal(signal.SIGKILL)
        self.agent.popen.wait(10)

    def posts(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def metric(self, name: str, **labels: str) -> float:
        text = requests.get(f"http://127.0.0.1:{self.agent_port}/metrics", timeout=5).text
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            if line.startswith(f"{name}{{{want}}} ") or (not labels and line.startswith(f"{name} ")):
                return float(line.rsplit(" ", 1)[1])
        return 0.0


@pytest.mark.slow
def test_every_change_arrives_once_and_in_order_through_failures_and_kills(tmp_path: Path, start_process: Callable[..., Process]) -> None:
    s = Setup(tmp_path, start_process)
    s.set_mode("ok")
    s.start_receiver()
    s.switch(True)
    s.start_agent()
    wait_until("5 firing changes accepted", lambda: len({p["key"] for p in s.posts() if p["status"] == 200}) == 5, process=s.agent)

    # The receiver breaks (HTTP 500): the resolutions wait in the outbox …
    s.set_mode("fail")
    s.switch(False)
    wait_until("resolutions refused with 500", lambda: sum(p["status"] == 500 and "-resolved-" in p["key"] for p in s.posts()) >= 3,
               process=s.agent)
    # … and the agent dies without warning, twice over the next phases.
    s.kill_agent()
    s.set_mode("slow")  # answers after 3 s, the forwarder's timeout is 1 s
    s.start_agent()
    s.switch(True)  # new firing changes, queued behind the resolutions of their fingerprints
    wait_until("a timed-out attempt", lambda: s.metric("normagent_forward_attempts_total", forwarder="avvik", result="timeout") >= 1,
               process=s.agent)
    assert s.receiver is not None
    s.receiver.stop()  # nothing listens: connections are refused
    wait_until("a refused attempt", lambda: s.metric("normagent_forward_attempts_total", forwarder="avvik", result="unreachable") >= 1,
               process=s.agent)
    assert s.metric("normagent_outbox_pending", forwarder="avvik") >= 5
    s.kill_agent()
    s.start_agent()
    s.set_mode("ok")
    s.start_receiver()

    expected = {f"{unit}-{change}" for unit in UNITS for change in ("firing-1", "resolved-2", "firing-3")}
    by_unit = {}

    def all_accepted() -> bool:
        for p in s.posts():
            if p["status"] == 200:
                doc = json.loads(p["body"])
                by_unit[doc["labels"]["unit"]] = doc["fingerprint"]
        accepted = {p["key"] for p in s.posts() if p["status"] == 200}
        return len(accepted) == 15

    wait_until("all 15 changes accepted", all_accepted, timeout=60, process=s.agent)
    wait_until("the outbox to empty", lambda: s.metric("normagent_outbox_pending", forwarder="avvik") == 0, process=s.agent)

    accepted = [p for p in s.posts() if p["status"] == 200]
    keys = {p["key"] for p in accepted}
    named = {f"{unit}-{key.split('-', 1)[1]}" for unit, fp in by_unit.items() for key in keys if key.startswith(fp)}
    assert named == expected, "every change of every unit, and nothing else"
    for p in accepted:
        assert json.loads(p["body"])["idempotency_key"] == p["key"]
    sequences: dict[str, list[int]] = defaultdict(list)
    for p in accepted:
        fp, _, seq = p["key"].split("-")
        sequences[fp].append(int(seq))
    for fp, seqs in sequences.items():
        assert seqs == sorted(seqs), f"fingerprint {fp} received out of order: {seqs}"
    duplicates = len(accepted) - len(keys)
    print(f"accepted {len(accepted)} POSTs for {len(keys)} changes ({duplicates} repeated after a kill)")
