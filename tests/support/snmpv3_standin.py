"""A stand-in SNMPv3 agent on 127.0.0.1 with the real key material of one USM user, for answers a
real snmpd never sends: forged, garbage, a wrong digest, replayed, outside the time window.

It answers a discovery with a Report of usmStatsUnknownEngineIDs, and a request with a Response
carrying ``VALUE`` for every variable asked, authenticated and encrypted with the user's keys
localised to its engine id by the services ``normagent.sources.snmp_usm`` uses (pysnmp's for
authentication, ``snmp_privacy`` for privacy), so a test can tell a dropped answer from one the
stand-in got wrong: its ``"right"`` answers read.
``mode`` spoils the answers to requests (not to the discovery), one way per test.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from pyasn1.codec.ber import decoder
from pyasn1.type import univ
from pysnmp.proto import rfc1905
from pysnmp.proto.api import v2c as api
from pysnmp.proto.mpmod.rfc3412 import ScopedPDU, SNMPv3Message

from normagent.model import SnmpAuth
from normagent.sources.snmp_privacy import Privacy
from normagent.sources.snmp_usm import UsmSecurity, UsmSecurityParameters, auth_service, encode_message

VALUE = b"stand-in rack 9"
ENGINE_ID = bytes.fromhex("80001f8880") + b"standin!"
UNKNOWN_ENGINE_IDS = (1, 3, 6, 1, 6, 3, 15, 1, 1, 4, 0)
NOT_IN_TIME_WINDOWS = (1, 3, 6, 1, 6, 3, 15, 1, 1, 2, 0)
MODES = ("silent", "right", "garbage", "wrong-digest", "other-key", "replayed", "stale-time", "other-msgid", "unencrypted", "resync")


def flags_of(datagram: bytes) -> int:
    """msgFlags of an SNMPv3 message."""
    message, _ = decoder.decode(datagram, asn1Spec=SNMPv3Message())
    return int(message["msgGlobalData"]["msgFlags"].asNumbers()[0])


@dataclass
class V3StandIn:
    auth: SnmpAuth
    mode: str = "right"
    boots: int = 5
    started: float = field(default_factory=time.monotonic)
    requests: list[int] = field(default_factory=list)  # msgFlags of each request received
    _last_answer: bytes | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._auth, _ = auth_service(self.auth.auth_protocol)
        self._priv = Privacy(self.auth.priv_protocol, self.auth.auth_protocol, self.auth.priv_key)
        self.auth_key = self._auth.localize_key(self._auth.hash_passphrase(self.auth.auth_key), univ.OctetString(ENGINE_ID))
        self.priv_key = self._priv.localize(ENGINE_ID)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(30)
        self.target = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def engine_time(self) -> int:
        return 1000 + int(time.monotonic() - self.started)

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the thread's recvfrom
        except OSError:
            pass
        self.sock.close()
        self._thread.join(timeout=30)

    def __enter__(self) -> V3StandIn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------

    def _serve(self) -> None:
        try:
            while True:
                datagram, peer = self.sock.recvfrom(65535)
                self.requests.append(flags_of(datagram))
                answer = self._answer(datagram)
                if answer is not None:
                    self.sock.sendto(answer, peer)
        except OSError:
            return

    def _answer(self, datagram: bytes) -> bytes | None:
        message, _ = decoder.decode(datagram, asn1Spec=SNMPv3Message())
        msg_id = int(message["msgGlobalData"]["msgID"])
        level = flags_of(datagram) & 3
        params, _ = decoder.decode(message["msgSecurityParameters"].asOctets(), asn1Spec=UsmSecurityParameters())
        if level == 0:  # discovery
            scoped = message["msgData"]["plaintext"]
            report = rfc1905.ReportPDU().clone()
            api.apiPDU.set_defaults(report)
            api.apiPDU.set_request_id(report, int(api.apiPDU.get_request_id(scoped["data"].getComponent())))
            api.apiPDU.set_varbinds(report, [(UNKNOWN_ENGINE_IDS, api.Counter32(1))])
            return self._message(msg_id, report, 1, self.boots, self.engine_time())
        if level == 3:
            plain = self._priv.decrypt(
                self.priv_key, int(params["msgAuthoritativeEngineBoots"]), int(params["msgAuthoritativeEngineTime"]),
                params["msgPrivacyParameters"].asOctets(), message["msgData"]["encryptedPDU"].asOctets(),
            )
            scoped, _ = decoder.decode(plain, asn1Spec=ScopedPDU())
        else:
            scoped = message["msgData"]["plaintext"]
        if self.mode == "silent":
            return None
        asked = scoped["data"].getComponent()
        response = api.apiPDU.get_response(asked)
        api.apiPDU.set_varbinds(response, [(name, api.OctetString(VALUE)) for name, _ in api.apiPDU.get_varbinds(asked)])
        now, mode = self.engine_time(), self.mode
        if mode == "resync":  # the request's time is taken as wrong once: an authenticated Report with ours
            self.mode = "right"
            self.boots += 1
            report = rfc1905.ReportPDU().clone()
            api.apiPDU.set_defaults(report)
            api.apiPDU.set_request_id(report, int(api.apiPDU.get_request_id(asked)))
            api.apiPDU.set_varbinds(report, [(NOT_IN_TIME_WINDOWS, api.Counter32(1))])
            return self._message(msg_id, report, 2, self.boots, now)
        if mode == "garbage":
            return b"\x30\x82\x01\x00" + bytes(range(256))
        if mode == "replayed":  # the answer to the last request answered right, sent again
            return self._last_answer
        answer = self._message(
            msg_id + (1 if mode == "other-msgid" else 0), response, 2 if mode == "unencrypted" else level, self.boots,
            now - 1000 if mode == "stale-time" else now, other_key=mode == "other-key",
        )
        if mode == "right":
            self._last_answer = answer
        if mode == "wrong-digest":
            spoiled = bytearray(answer)
            at = answer.find(self._digest_of(answer))
            spoiled[at] ^= 0x01
            return bytes(spoiled)
        return answer

    def _digest_of(self, answer: bytes) -> bytes:
        message, _ = decoder.decode(answer, asn1Spec=SNMPv3Message())
        params, _ = decoder.decode(message["msgSecurityParameters"].asOctets(), asn1Spec=UsmSecurityParameters())
        return bytes(params["msgAuthenticationParameters"].asOctets())

    def _message(self, msg_id: int, pdu: Any, level: int, boots: int, engine_time: int, *, other_key: bool = False) -> bytes:
        key = self.auth_key
        if other_key:
            key = self._auth.localize_key(self._auth.hash_passphrase("someone-else's-key"), univ.OctetString(ENGINE_ID))
        user = self.auth.user.encode() if level > 1 else b""
        security = UsmSecurity(ENGINE_ID, user, boots, engine_time, self._auth, key, self._priv, self.priv_key)
        return encode_message(msg_id, pdu, {1: 0, 2: 1, 3: 3}[level], security, context=ENGINE_ID)
