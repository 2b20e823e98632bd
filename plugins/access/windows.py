"""Pure parser for Windows event log records (``WindowsEvent``, from EVTX files).

Security channel (``Microsoft-Windows-Security-Auditing``):

======  ==================================================  ======================================
4625    an account failed to log on (on this machine)       failed_logins{source="windows"}
4771    Kerberos pre-authentication failed (a DC)           failed_logins{source="kerberos"}
4776    NTLM credential validation; Status 0x0 is success   failed_logins{source="ntlm"} if failed
4740    an account was locked out                           account_lockouts{source="windows"}
4723    an account's owner changed its password             password_resets{kind="change"}
4724    someone reset an account's password                 password_resets{kind="reset"}
4624    an account logged on                                rollup of successes per network
======  ==================================================  ======================================

The reason of 4625 and 4776 comes from the NTSTATUS in ``Status``, or in ``SubStatus`` when
``Status`` is one of the generic codes (0xC000006D, 0xC000006E); Kerberos codes come from RFC 4120.
Hex is compared as numbers, so ``0xc000006a`` and ``0xC000006A`` are the same. 4723/4724 logged
as Audit Failure (a rejected new password) change nothing and are not counted.

System and Application channels: every record of Level 1 (critical) or 2 (error) counts in
``eventlog_errors{log="system"|"application", origin}``, the origin being the provider with the
same bounded-label scheme as journald (journal.py).

Pure: no I/O, no state between calls. Imports only ``normagent`` and the plugin's own modules.
"""

from __future__ import annotations

from collections.abc import Mapping

from normagent import LogBlock, ParseContext, ParseResult, RecordBlock, WindowsEvent

from .journal import allowed_origins, origin_label
from .tally import Tally

AUDIT_FAILURE = 0x0010000000000000  # Keywords bit of a Security "Audit Failure" record

# NTSTATUS of failed logons (4625 Status/SubStatus, 4776 Status) -> reason.
NTSTATUS_REASONS: Mapping[int, str] = {
    0xC000006A: "bad_password",
    0xC0000064: "unknown_user",
    0xC000006F: "outside_hours",
    0xC0000070: "workstation_restricted",
    0xC0000071: "password_expired",
    0xC0000072: "disabled",
    0xC0000193: "expired",
    0xC0000224: "must_change_password",
    0xC0000234: "locked_out",
    0xC000015B: "not_allowed",  # the logon type is not granted to the account
    0xC0000413: "not_allowed",  # the authentication firewall refused the machine
    0xC0000133: "other",  # clocks out of sync
    0xC000005E: "other",  # no logon servers
    0xC000006D: "other",  # "unknown user name or bad password", not narrowed down
    0xC000006E: "other",  # an account restriction, not narrowed down
}
GENERIC_NTSTATUS = frozenset({0xC000006D, 0xC000006E})

# Kerberos error codes of 4771 (RFC 4120 7.5.9) -> reason.
KERBEROS_REASONS: Mapping[int, str] = {
    0x18: "bad_password",  # KDC_ERR_PREAUTH_FAILED
    0x6: "unknown_user",  # KDC_ERR_C_PRINCIPAL_UNKNOWN
    0x17: "password_expired",  # KDC_ERR_KEY_EXPIRED
    0x12: "other",  # KDC_ERR_CLIENT_REVOKED: disabled, expired or locked out - Kerberos does not say which
    0x25: "other",  # KRB_AP_ERR_SKEW
}

ERROR_LEVELS = frozenset({1, 2})
ERROR_CHANNELS = {"system": "system", "application": "application"}


def parse_windows(block: LogBlock, ctx: ParseContext) -> ParseResult:
    """Count logon failures, lockouts, password changes and System/Application errors."""
    result = ParseResult()
    if not isinstance(block, RecordBlock):
        result.ignored = block.line_count
        return result
    tally = Tally(ctx)
    labels = allowed_origins(getattr(ctx.settings, "origins", ()))
    count_validation = getattr(ctx.settings, "count_credential_validation", True)
    parsed = 0
    for event in block.records:
        if not isinstance(event, WindowsEvent):
            continue
        channel = event.channel.casefold()
        when = event.time.timestamp()
        if channel == "security":
            parsed += _security(tally, event, when, count_validation)
        else:
            log = ERROR_CHANNELS.get(channel)
            if log is not None and event.level in ERROR_LEVELS:
                origin = event.provider or "unknown"
                tally.error(log, origin, origin_label(origin, labels), when)
                parsed += 1
    result.observations = tally.observations()
    result.parsed = parsed
    result.ignored = len(block.records) - parsed
    return result


def _security(tally: Tally, event: WindowsEvent, when: float, count_validation: bool) -> int:
    """Count one Security record; 1 if it counted towards something, else 0."""
    eid = event.event_id
    data = event.data
    if eid == 4625:
        reason = logon_failure_reason(data.get("Status", ""), data.get("SubStatus", ""))
        tally.fail("windows", reason, 1, when, data.get("TargetUserName"), _address(data.get("IpAddress", "")))
        return 1
    if eid == 4776:
        status = hex_value(data.get("Status", ""))
        if status == 0 or not count_validation:
            return 0
        reason = NTSTATUS_REASONS.get(status, "other") if status is not None else "other"
        # Workstation is the client's NetBIOS name, not an address: no network rollup.
        tally.fail("ntlm", reason, 1, when, data.get("TargetUserName"), None)
        return 1
    if eid == 4771:
        if not count_validation:
            return 0
        code = hex_value(data.get("Status", ""))
        reason = KERBEROS_REASONS.get(code, "other") if code is not None else "other"
        tally.fail("kerberos", reason, 1, when, data.get("TargetUserName"), _address(data.get("IpAddress", "")))
        return 1
    if eid == 4740:
        tally.lockout("windows", when, data.get("TargetUserName"))
        return 1
    if eid in (4723, 4724):
        if event.keywords & AUDIT_FAILURE:
            return 0
        tally.reset("windows", "change" if eid == 4723 else "reset", when)
        return 1
    if eid == 4624:
        address = _address(data.get("IpAddress", ""))
        if address is None:
            return 0
        tally.success(when, address)
        return 1
    return 0


def logon_failure_reason(status: str, substatus: str) -> str:
    """The reason of a 4625 (or 4776) from its NTSTATUS codes, compared as numbers."""
    code = hex_value(status)
    if code is None:
        return "other"
    if code in GENERIC_NTSTATUS:
        sub = hex_value(substatus)
        if sub:
            return NTSTATUS_REASONS.get(sub, NTSTATUS_REASONS[code])
    return NTSTATUS_REASONS.get(code, "other")


def hex_value(text: str) -> int | None:
    """``"0xc000006a"`` -> 0xC000006A; ``"24"`` (decimal, as some renderers write) -> 24; else None."""
    text = text.strip()
    try:
        if text[:2].lower() == "0x":
            return int(text[2:], 16)
        return int(text, 10)
    except ValueError:
        return None


def _address(text: str) -> str | None:
    """The client address of a logon record: ``-`` and empty mean none; ``::ffff:`` is dropped."""
    text = text.strip()
    if text in ("", "-"):
        return None
    if text.lower().startswith("::ffff:") and "." in text:
        return text[7:]
    return text
