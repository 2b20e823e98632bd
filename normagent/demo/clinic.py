"""The demo clinic: a month of a small clinic's logs and message folders, as timed writes.

``build_clinic(month, seed)`` decides everything up front (seeded, so two demos are the same) and
returns a ``Clinic``: per source file the lines it gets and when, the EDI files and when they
appear, the journal entries, the EVTX files copied in, and the hours the EPJ server is down.
``Clinic.write_until(now)`` then appends to the files only what has "happened" by ``now`` of the
simulated clock, and dates each EDI file by its modification time, so the collectors meet the
month the way they would on a real server: a little more every hour.

What the month holds, and the deviation candidate each element is there to raise:

============================  ==============================================  ==================================
source                        scenario                                         rule
============================  ==============================================  ==================================
``log/auth.log``              logins of the staff all month; a password-       access.failed_logins_burst,
                              spraying night from one address; a lockout;      access.failed_from_network,
                              a password changed late in the evening           access.account_locked,
                                                                               access.reset_outside_hours
journal (``journal/``)        a few errors a day; a database that fails 150    access.eventlog_errors_burst
                              times in one morning
``windows/dc01/*.evtx``       a Windows server's Security and System logs      site.windows_system_errors (a
                              copied to the share                              rule of the demo's configuration)
``edi/``                      the message traffic of the working day; receipts edi.rejected_messages,
                              rejecting a few; messages never answered; a      edi.receipt_alarm, edi.stop
                              three-hour stop of the message server
``log/clamav/clamav.log``     clamd's self checks; one trojan found            malware.detection
``log/kern.log``              the firewall's blocks every hour; a scan of the  firewall.port_burst
                              remote-desktop port
``log/apt/``, ``dpkg.log``,   a security update that succeeds, one that fails  updates.security_update_failed
unattended-upgrades
``epj-server`` (process)      down 2½ hours one afternoon (unplanned), and     availability.service_down,
                              during an announced evening window (planned)     availability.unplanned_downtime
============================  ==============================================  ==================================

Every name in it is invented: staff, patients and partners do not exist, addresses are from the
documentation ranges (RFC 5737) and a private network. The report must show none of them
(``tests/integration/test_demo.py`` checks).

Imports only the standard library (with normagent's ``dataclass``) and normagent.errors.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from normagent.errors import Unavailable
from normagent.records import dataclass

OSLO = ZoneInfo("Europe/Oslo")
UTC = timezone.utc
HOST = "legekontor-srv1"
STAFF = ("astrid.fjellheim", "bjorn.saetervik", "ingrid.solberg", "kasper.nyhagen", "liv.tornes", "magnus.vedal",
         "sigrun.aasland", "tore.myrvang")
# What a sprayer tries: common names and service accounts, and a few real accounts.
SPRAYED = ("admin", "administrator", "root", "test", "user", "oracle", "postgres", "backup", "guest", "support", "ubuntu",
           "pi", "ftp", "www-data", "nagios", "git", "resepsjon", "lege", "sykepleier", "kontor")
PATIENTS = (("Fjordheim", "Solveig"), ("Brattlien", "Oddvar"), ("Kvernmo", "Eldbjørg"), ("Skarvatn", "Henrik"))
PATIENT_MARKER = "DEMOPASIENT"  # in every patient field: a test proves the report never holds it
LAN = "10.20.0."
SPRAYER = "203.0.113.66"
SCANNER = "198.51.100.23"
INTERNET = ("192.0.2.14", "192.0.2.77", "198.51.100.5", "203.0.113.201", "203.0.113.9")
OWN_HER = "8141234"
PARTNERS = ("8142001", "8142002", "8142003")
SECURITY_PACKAGES = ("libssl3", "openssl", "openssh-client", "openssh-server")
EPJ_PROCESS = "epj-server"
JOURNAL_REMOTE = ("systemd-journal-remote", "/lib/systemd/systemd-journal-remote", "/usr/lib/systemd/systemd-journal-remote")
EVTX_FILES = ("Security_short_selected.evtx", "system.evtx")


@dataclass(frozen=True, slots=True)
class Outage:
    """The EPJ server's process is gone from ``start`` to ``end`` (UTC)."""

    start: datetime
    end: datetime
    planned: bool


@dataclass
class Clinic:
    """A month of a clinic, decided; written out bit by bit by ``write_until``."""

    root: Path
    start: datetime  # the month's first instant (UTC)
    end: datetime  # the next month's first instant (UTC)
    lines: dict[str, list[tuple[datetime, str]]] = field(default_factory=dict)  # file (relative) → timed lines
    edi: list[tuple[datetime, str, bytes]] = field(default_factory=list)  # (appears, relative path, content)
    journal: list[tuple[datetime, dict[str, str]]] = field(default_factory=list)
    evtx: list[tuple[datetime, str]] = field(default_factory=list)  # (copied at, file name)
    outages: list[Outage] = field(default_factory=list)
    maintenance: list[tuple[datetime, datetime, str]] = field(default_factory=list)
    journal_remote: str | None = None  # systemd-journal-remote, when this host has it
    expected: set[str] = field(default_factory=set)  # the rules the month should raise
    evtx_source: Path = Path()  # where the EVTX files are copied from (the package's data)
    _written: dict[str, int] = field(default_factory=dict)
    _edi_done: int = 0
    _journal_done: int = 0
    _evtx_done: int = 0

    # -------------------------------------------------------------------------------------------

    def prepare(self, evtx_source: Path) -> None:
        """Create the folders and empty files the configuration names (a server has them)."""
        for name in self.lines:
            path = self.root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        for folder in ("ut", "inn", "arkiv"):
            (self.root / "edi" / folder).mkdir(parents=True, exist_ok=True)
        (self.root / "windows" / "dc01").mkdir(parents=True, exist_ok=True)
        (self.root / "journal").mkdir(parents=True, exist_ok=True)
        self.evtx_source = evtx_source

    def write_until(self, now: datetime) -> None:
        """Append every line, file and copy whose time has come by ``now`` (the journal: ``flush_journal``)."""
        for name, timed in self.lines.items():
            done = self._written.get(name, 0)
            upto = done
            while upto < len(timed) and timed[upto][0] <= now:
                upto += 1
            if upto > done:
                with open(self.root / name, "a", encoding="utf-8") as file:
                    file.writelines(line + "\n" for _, line in timed[done:upto])
                self._written[name] = upto
        while self._edi_done < len(self.edi) and self.edi[self._edi_done][0] <= now:
            at, name, content = self.edi[self._edi_done]
            path = self.root / name
            path.write_bytes(content)
            stamp = at.timestamp()
            os.utime(path, (stamp, stamp))  # the EDI collector dates traffic by modification time
            self._edi_done += 1
        while self._evtx_done < len(self.evtx) and self.evtx[self._evtx_done][0] <= now:
            _, name = self.evtx[self._evtx_done]
            shutil.copyfile(self.evtx_source / name, self.root / "windows" / "dc01" / name)
            self._evtx_done += 1

    def flush_journal(self, now: datetime) -> None:
        """Write the journal entries due by ``now`` into ``journal/demo.journal`` (systemd-journal-remote
        converts the export format; the demo's own file, never the system journal)."""
        done = self._journal_done
        upto = done
        while upto < len(self.journal) and self.journal[upto][0] <= now:
            upto += 1
        if upto == done or self.journal_remote is None:
            return
        chunks = []
        for at, fields in self.journal[done:upto]:
            micros = int(at.timestamp() * 1_000_000)
            entry = {"__REALTIME_TIMESTAMP": str(micros), "__MONOTONIC_TIMESTAMP": str(micros - int(self.start.timestamp() * 1e6) + 1),
                     "_BOOT_ID": "d3e0c0de5eed4a1b9c0d1e2f3a4b5c6d", "_HOSTNAME": HOST, "_TRANSPORT": "syslog", **fields}
            chunks.append("".join(f"{k}={v}\n" for k, v in entry.items()) + "\n")
        target = self.root / "journal" / "demo.journal"
        try:
            written = subprocess.run(  # noqa: S603 - a fixed program, arguments of our own
                [self.journal_remote, f"--output={target}", "-"],
                input="".join(chunks).encode("utf-8"), capture_output=True, timeout=60, check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise Unavailable(f"{self.journal_remote}: cannot write the demo's journal file {target}: {exc}") from None
        if written.returncode != 0:
            said = written.stderr.decode("utf-8", "replace").strip().splitlines()
            raise Unavailable(f"{self.journal_remote} exited {written.returncode} writing the demo's journal file {target}"
                              + (f": {said[-1]}" if said else ""))
        self._journal_done = upto


# ------------------------------------------------------------------------------------------------


def month_span(year: int, month: int) -> tuple[datetime, datetime]:
    """The month's first instant and the next month's, in Oslo time, as UTC."""
    start = datetime(year, month, 1, tzinfo=OSLO)
    after = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=OSLO)
    return start.astimezone(UTC), after.astimezone(UTC)


def find_journal_remote() -> str | None:
    for name in JOURNAL_REMOTE:
        found = shutil.which(name)
        if found:
            return found
    return None


def build_clinic(root: Path, year: int, month: int, seed: int = 14) -> Clinic:
    """Decide the month. Deterministic for (year, month, seed)."""
    start, end = month_span(year, month)
    clinic = Clinic(root=root, start=start, end=end, journal_remote=find_journal_remote())
    rng = random.Random(f"{seed}:{year}-{month:02d}")
    days = [start.astimezone(OSLO).date() + timedelta(days=i) for i in range((end - start).days + 1)]
    days = [d for d in days if start <= _at(d, 12) < end]
    weekdays = [d for d in days if d.weekday() < 5]

    def pick(n: int) -> date:
        """The n-th working day (or the last one)."""
        return weekdays[min(n, len(weekdays) - 1)]

    _auth(clinic, rng, days, weekdays, pick)
    _journal(clinic, rng, days, pick)
    clinic.evtx = [(_at(pick(3), 9, 5), name) for name in EVTX_FILES]
    clinic.expected |= {"site.windows_system_errors"}
    _edi(clinic, rng, weekdays, pick)
    _clamav(clinic, rng, days, pick)
    _firewall(clinic, rng, start, end, pick)
    _updates(clinic, pick)
    _outages(clinic, pick)
    for timed in clinic.lines.values():
        timed.sort(key=lambda item: item[0])
    clinic.edi.sort(key=lambda item: (item[0], item[1]))
    clinic.journal.sort(key=lambda item: item[0])
    return clinic


def _at(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=OSLO).astimezone(UTC)


def _stamp(at: datetime) -> str:
    """rsyslog's default on Debian 12: RFC 3339 with microseconds and the offset."""
    return at.astimezone(OSLO).isoformat(timespec="microseconds")


def _local(at: datetime, sep: str = " ") -> str:
    return at.astimezone(OSLO).strftime(f"%Y-%m-%d{sep}%H:%M:%S")


# ------------------------------------------------------------------------------------------------
# the elements


def _auth(clinic: Clinic, rng: random.Random, days: list[date], weekdays: list[date], pick: Callable[[int], date]) -> None:
    lines: list[tuple[datetime, str]] = []
    pid = 2000

    def sshd(at: datetime, text: str) -> None:
        nonlocal pid
        pid += 1
        lines.append((at, f"{_stamp(at)} {HOST} sshd[{pid}]: {text}"))

    for day in weekdays:
        for i, who in enumerate(STAFF):
            at = _at(day, 7, 30 + i * 3, rng.randrange(60))
            addr = f"{LAN}{21 + i}"
            if rng.random() < 0.15:  # a typo first
                sshd(at - timedelta(seconds=20), f"Failed password for {who} from {addr} port {rng.randrange(40000, 60000)} ssh2")
            sshd(at, f"Accepted password for {who} from {addr} port {rng.randrange(40000, 60000)} ssh2")
    # The password-spraying night: three hours from one address, every name on the list, many times.
    night = _at(days[min(11, len(days) - 1)], 1, 12)
    names = [*SPRAYED, *STAFF[:3]]
    for k in range(420):
        at = night + timedelta(seconds=k * 25 + rng.randrange(20))
        who = names[k % len(names)]
        invalid = "" if who in STAFF else "invalid user "
        sshd(at, f"Failed password for {invalid}{who} from {SPRAYER} port {rng.randrange(30000, 65000)} ssh2")
    # A lockout: one member of staff mistypes five times at the start of the day.
    day = pick(12)
    at = _at(day, 8, 2)
    for k in range(5):
        sshd(at + timedelta(seconds=15 * k), f"Failed password for ingrid.solberg from {LAN}23 port {41000 + k} ssh2")
    pid += 1
    lines.append((at + timedelta(seconds=80), f"{_stamp(at + timedelta(seconds=80))} {HOST} sshd[{pid}]: pam_faillock(sshd:auth): "
                  "Consecutive login failures for user ingrid.solberg account temporarily locked"))
    # A password changed at 22:40 on a weekday.
    late = _at(pick(15), 22, 40)
    lines.append((late, f"{_stamp(late)} {HOST} chpasswd[{pid + 1}]: pam_unix(chpasswd:chauthtok): password changed for magnus.vedal"))
    clinic.lines["log/auth.log"] = lines
    clinic.expected |= {"access.failed_logins_burst", "access.failed_from_network", "access.account_locked",
                        "access.reset_outside_hours"}


def _journal(clinic: Clinic, rng: random.Random, days: list[date], pick: Callable[[int], date]) -> None:
    units = (("cups", "cups.service", "Unable to open /etc/cups/ppd/kontor.ppd"),
             ("smbd", "smbd.service", "tdb_transaction_start: failed to open"),
             ("backup-nas", "backup-nas.service", "rsync error: some files could not be transferred (code 23)"))
    for day in days:  # the nightly jobs and the morning's printing: a few errors a day
        for _ in range(rng.randrange(1, 5)):
            ident, unit, text = units[rng.randrange(len(units))]
            at = _at(day, 8 if ident == "cups" else 2, rng.randrange(60), rng.randrange(60))
            clinic.journal.append((at, {"SYSLOG_IDENTIFIER": ident, "_SYSTEMD_UNIT": unit, "PRIORITY": "3", "MESSAGE": text}))
    burst = _at(pick(14), 10, 3)
    for k in range(150):
        clinic.journal.append((burst + timedelta(seconds=11 * k), {
            "SYSLOG_IDENTIFIER": "postgres", "_SYSTEMD_UNIT": "postgresql@15-epj.service", "PRIORITY": "3",
            "MESSAGE": "ERROR:  could not extend file \"base/16384/2619\": No space left on device"}))
    if clinic.journal_remote:
        clinic.expected.add("access.eventlog_errors_burst")


def _msghead(msg_id: str, msg_type: str, at: datetime, sender: str, receiver: str, patient: tuple[str, str]) -> bytes:
    family, given = patient
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<MsgHead xmlns="http://www.kith.no/xmlstds/msghead/2006-05-24"><MsgInfo>'
        f'<Type V="{msg_type}" DN="Melding"/><MIGversion>v1.2 2006-05-24</MIGversion>'
        f"<GenDate>{at.astimezone(OSLO).isoformat(timespec='seconds')}</GenDate><MsgId>{msg_id}</MsgId><Ack V=\"J\" DN=\"Ja\"/>"
        f'<Sender><Organisation><OrganisationName>Demo legekontor</OrganisationName><Ident><Id>{sender}</Id>'
        '<TypeId V="HER" DN="HER-id" S="2.16.578.1.12.4.1.1.9051"/></Ident></Organisation></Sender>'
        f'<Receiver><Organisation><OrganisationName>Demo HF</OrganisationName><Ident><Id>{receiver}</Id>'
        '<TypeId V="HER" DN="HER-id" S="2.16.578.1.12.4.1.1.9051"/></Ident></Organisation></Receiver>'
        f"<Patient><FamilyName>{PATIENT_MARKER}-{family}</FamilyName><GivenName>{given}</GivenName>"
        f'<Ident><Id>{PATIENT_MARKER}01017099999</Id><TypeId V="FNR" DN="Fødselsnummer"/></Ident></Patient>'
        "</MsgInfo><Document><RefDoc><MsgType V=\"XML\" DN=\"XML-instans\"/><Content>"
        '<Dialogmelding xmlns="http://www.kith.no/xmlstds/dialog/2013-01-23"><Notat><TekstNotatInnhold>'
        f"{PATIENT_MARKER}: kontroll om to uker.</TekstNotatInnhold></Notat></Dialogmelding></Content></RefDoc></Document>"
        "</MsgHead>\n"
    ).encode("utf-8")


def _apprec(rec_id: str, original: str, msg_type: str, status: str, at: datetime, sender: str, error: str = "") -> bytes:
    error_xml = f'<Error V="{error}" S="2.16.578.1.12.4.1.1.8221" DN="Feil" OT="{PATIENT_MARKER} fritekst"/>' if error else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<AppRec xmlns="http://www.kith.no/xmlstds/apprec/2004-11-21">'
        '<MsgType V="APPREC" DN="Applikasjonskvittering"/><MIGversion>1.0 2004-11-21</MIGversion>'
        f"<GenDate>{at.astimezone(OSLO).isoformat(timespec='seconds')}</GenDate><Id>{rec_id}</Id>"
        f'<Sender><HCP><Inst><Name>Demo HF</Name><Id>{sender}</Id><TypeId V="HER" DN="HER-id"/></Inst></HCP></Sender>'
        f'<Receiver><HCP><Inst><Name>Demo legekontor</Name><Id>{OWN_HER}</Id><TypeId V="HER" DN="HER-id"/></Inst></HCP></Receiver>'
        f'<Status V="{status}" DN="Status"/>{error_xml}'
        f'<OriginalMsgId><MsgType V="{msg_type}" DN="Melding"/><IssueDate>{at.astimezone(OSLO).isoformat(timespec="seconds")}</IssueDate>'
        f"<Id>{original}</Id></OriginalMsgId></AppRec>\n"
    ).encode("utf-8")


def _edi(clinic: Clinic, rng: random.Random, weekdays: list[date], pick: Callable[[int], date]) -> None:
    stop_day = pick(9)
    stop = (_at(stop_day, 9, 50), _at(stop_day, 13, 0))
    unanswered_days = {pick(2), pick(13)}
    rejected_days = {pick(5), pick(17)}
    counter = 0

    def ident(prefix: str) -> str:
        nonlocal counter
        counter += 1
        return f"{prefix}-{rng.getrandbits(48):012x}-{counter:05d}"

    def later(at: datetime, minutes: int) -> datetime:
        moved = at + timedelta(minutes=minutes)
        return stop[1] + timedelta(minutes=minutes) if stop[0] <= moved < stop[1] else moved

    types = ("DIALOG_HELSEFAGLIG", "HENVISNING", "EPIKRISE", "SYKMELD")
    for day in weekdays:
        minute, sent_today = 8 * 60 + 5, 0
        while minute < 15 * 60 + 50:
            at = _at(day, 0) + timedelta(minutes=minute + rng.randrange(-4, 5))
            minute += 25
            if stop[0] <= at < stop[1]:
                continue  # the message server is stopped: nothing goes out or comes in
            msg_id, msg_type = ident("ut"), types[rng.randrange(len(types))]
            partner = PARTNERS[rng.randrange(len(PARTNERS))]
            patient = PATIENTS[rng.randrange(len(PATIENTS))]
            clinic.edi.append((at, f"edi/ut/{msg_id}.xml", _msghead(msg_id, msg_type, at, OWN_HER, partner, patient)))
            sent_today += 1
            if day in unanswered_days and sent_today in (3, 4):
                continue  # never answered: the receipt alarm after three days
            status, error = ("2", "E10") if day in rejected_days and sent_today in (2, 5, 6) else ("1", "")
            answered = later(at, rng.randrange(6, 40))
            rec_id = ident("kv")
            clinic.edi.append((answered, f"edi/inn/{rec_id}.xml", _apprec(rec_id, msg_id, msg_type, status, answered, partner, error)))
        minute = 8 * 60 + 15
        while minute < 15 * 60 + 45:  # lab answers and letters coming in
            at = later(_at(day, 0) + timedelta(minutes=minute + rng.randrange(-5, 6)), 0)
            minute += 35
            msg_id = ident("inn")
            partner = PARTNERS[rng.randrange(len(PARTNERS))]
            clinic.edi.append((at, f"edi/inn/{msg_id}.xml",
                               _msghead(msg_id, "SVAR_LAB", at, partner, OWN_HER, PATIENTS[rng.randrange(len(PATIENTS))])))
    clinic.expected |= {"edi.rejected_messages", "edi.receipt_alarm", "edi.stop"}


def _clamav(clinic: Clinic, rng: random.Random, days: list[date], pick: Callable[[int], date]) -> None:
    lines: list[tuple[datetime, str]] = []

    def clam(at: datetime, text: str) -> None:
        lines.append((at, f"{at.astimezone(OSLO).strftime('%a %b %d %H:%M:%S %Y').replace(' 0', '  ', 1)} -> {text}"))

    for day in days:
        for hour in (3, 15):
            clam(_at(day, hour, 10, rng.randrange(60)), "SelfCheck: Database status OK.")
    found = _at(pick(7), 10, 47, 12)
    clam(found, "/srv/share/resepsjon/faktura-2291.pdf.exe: Win.Trojan.Agent-1094837 FOUND")
    clinic.lines["log/clamav/clamav.log"] = lines
    clinic.expected.add("malware.detection")


def _block(at: datetime, src: str, dport: int, rng: random.Random) -> tuple[datetime, str]:
    return at, (f"{_stamp(at)} {HOST} kernel: [{rng.randrange(100000, 999999)}.{rng.randrange(10**6):06d}] [UFW BLOCK] IN=eth0 OUT= "
                "MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 "
                f"SRC={src} DST=192.0.2.200 LEN=44 TOS=0x00 PREC=0x00 TTL=242 ID={rng.randrange(65536)} PROTO=TCP "
                f"SPT={rng.randrange(1024, 65536)} DPT={dport} WINDOW=1024 RES=0x00 SYN URGP=0")


def _firewall(clinic: Clinic, rng: random.Random, start: datetime, end: datetime, pick: Callable[[int], date]) -> None:
    lines: list[tuple[datetime, str]] = []
    hour = start
    while hour < end:  # the internet's background noise: a few blocks every hour
        for _ in range(rng.randrange(2, 8)):
            at = hour + timedelta(seconds=rng.randrange(3600))
            lines.append(_block(at, INTERNET[rng.randrange(len(INTERNET))], (22, 23, 445, 3389, 5900)[rng.randrange(5)], rng))
        hour += timedelta(hours=1)
    scan = _at(pick(10), 2, 5)
    for k in range(1500):  # a scan of the remote-desktop port
        lines.append(_block(scan + timedelta(seconds=k * 2), SCANNER, 3389, rng))
    clinic.lines["log/kern.log"] = lines
    clinic.expected.add("firewall.port_burst")


def _updates(clinic: Clinic, pick: Callable[[int], date]) -> None:
    history: list[tuple[datetime, str]] = []
    term: list[tuple[datetime, str]] = []
    dpkg: list[tuple[datetime, str]] = []
    unattended: list[tuple[datetime, str]] = []
    runs = ((pick(4), [("libssl3:amd64", "3.0.15-1~deb12u1", "3.0.17-1~deb12u1"), ("openssl:amd64", "3.0.15-1~deb12u1", "3.0.17-1~deb12u1")], True),
            (pick(6), [("openssh-client:amd64", "1:9.2p1-2+deb12u5", "1:9.2p1-2+deb12u6"),
                       ("openssh-server:amd64", "1:9.2p1-2+deb12u5", "1:9.2p1-2+deb12u6")], False))
    for day, packages, ok in runs:
        begin = _at(day, 6, 25, 12)
        done = begin + timedelta(seconds=40)
        upgrade = ", ".join(f"{p} ({old}, {new})" for p, old, new in packages)
        stanza = ["", f"Start-Date: {_local(begin, '  ')}", "Commandline: /usr/bin/unattended-upgrade", f"Upgrade: {upgrade}"]
        if not ok:
            stanza.append("Error: Sub-process /usr/bin/dpkg returned an error code (1)")
        stanza.append(f"End-Date: {_local(done, '  ')}")
        history += [(done, line) for line in stanza]
        term += [(done, f"Log started: {_local(begin, '  ')}")]
        for package, old, new in packages:
            name = package.split(":")[0]
            dpkg += [(begin + timedelta(seconds=5), f"{_local(begin + timedelta(seconds=5))} upgrade {package} {old} {new}"),
                     (begin + timedelta(seconds=5), f"{_local(begin + timedelta(seconds=5))} status half-configured {package} {old}")]
            if ok:
                dpkg.append((done, f"{_local(done)} status installed {package} {new}"))
            else:
                term.append((done, f"dpkg: error processing package {name} (--configure):"))
                term.append((done, " installed openssh-server package post-installation script subprocess returned error exit status 1"))
        term.append((done, f"Log ended: {_local(done, '  ')}"))
        unattended += [(begin, f"{_local(begin)},101 INFO Starting unattended upgrades script"),
                       (begin, f"{_local(begin)},102 INFO Allowed origins are: origin=Debian,codename=bookworm-security"),
                       (done, f"{_local(done)},550 INFO All upgrades installed" if ok else f"{_local(done)},550 ERROR Installing the upgrades failed!")]
    clinic.lines["log/apt/history.log"] = history
    clinic.lines["log/apt/term.log"] = term
    clinic.lines["log/dpkg.log"] = dpkg
    clinic.lines["log/unattended-upgrades/unattended-upgrades.log"] = unattended
    clinic.expected.add("updates.security_update_failed")


def _outages(clinic: Clinic, pick: Callable[[int], date]) -> None:
    day = pick(16)
    clinic.outages.append(Outage(_at(day, 13, 10), _at(day, 15, 40), planned=False))
    window = pick(18)
    start, end = _at(window, 21, 0), _at(window, 23, 0)
    clinic.maintenance.append((start, end, "EPJ oppgraderes"))
    clinic.outages.append(Outage(start + timedelta(minutes=20), start + timedelta(minutes=70), planned=True))
    clinic.expected |= {"availability.service_down", "availability.unplanned_downtime"}
