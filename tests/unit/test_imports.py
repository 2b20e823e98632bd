"""What the agent imports at start: no heavy library before it is used (issue 15, item 1).

Every module in memory costs each of the hundreds of agents of a site its resident size for as long
as it runs. Heavy libraries are imported where they are used: on the first poll, delivery, probe,
report or EVTX read. A fresh interpreter does what ``normagent run`` does before its first cycle
(import the agent, load every builtin plugin and gather all it offers, read and validate a
configuration with every forwarder and the heavy collectors configured) and lists what it has imported.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

# module (or package) → where it belongs, for the message
DENIED = {
    "requests": "the availability plugin's HTTP probes, on the first probe",
    "urllib3": "requests",
    "http.client": "requests (the forwarders POST through normagent.forward.client)",
    "email": "the e-mail forwarder, on its first delivery (smtplib)",
    "smtplib": "the e-mail forwarder, on its first delivery",
    "importlib.metadata": "third-party plugins' entry points, only where a distribution declares them",
    "zipfile": "importlib.metadata",
    "prometheus_client": "nowhere: the exposition is encoded by normagent.exposition",
    "pysnmp": "network.snmp, on the first poll",
    "pyasn1": "pysnmp",
    "cryptography": "nowhere: SNMPv3 privacy is pycryptodomex's (normagent.sources.snmp_privacy)",
    "Cryptodome": "an SNMPv3 device with privacy, on its first poll",
    "evtx": "the first EVTX read",
    "normagent.sources.evtx": "the EVTX worker process only (the agent's side: normagent.sources.evtx_state, evtx_settings)",
    "icalendar": "[maintenance] calendar, when a file is configured",
    "recurring_ical_events": "[maintenance] calendar",
    "bcrypt": "[web] basic auth, on the first password check",
    "re2": "availability.probes, where a service has a body_match",
    "jinja2": "nowhere",
    "pygal": "nowhere",
    "babel": "nowhere",
    "rich": "structlog's optional pretty tracebacks: never",
    "better_exceptions": "structlog's optional pretty tracebacks: never",
    "colorama": "structlog's optional colours: never",
    "tracemalloc": "nowhere",
    "psutil": "nowhere: the host's facts are read from /proc (normagent.sources.host)",
    "pickle": "structlog's loggers when pickled: never (normagent.lazy_structlog)",
    "random": "pysnmp's request ids (an SNMP device's first poll), the demo (normagent.randomness draws the rest)",
    "argparse": "a command line other than the service's (normagent.cli.run_arguments reads that one)",
    "uuid": "structlog.threadlocal's deprecated tmp_bind: never (normagent.lazy_structlog)",
    "platform": "uuid; pycryptodomex asks platform.architecture(), told by normagent.sources.snmp_privacy",
    # the standard library's lighter modules that only some paths need
    "difflib": "a wrong configuration key's suggestion",
    "gzip": "the first compressed rotated log (/metrics is gzipped through zlib)",
    "calendar": "nowhere",
    "quopri": "the first quoted-printable EDI part",
    "tempfile": "the demo",
    "shutil": "the demo and the report's Chromium (argparse's help width: normagent.cli.help_width)",
    "bz2": "shutil, and a rotated log compressed with bzip2",
    "lzma": "shutil, and a rotated log compressed with xz",
    # what only `normagent report` needs
    "normagent.report.build": "normagent report",
    "normagent.report.command": "normagent report (its options: normagent.cli_options)",
    "normagent.demo": "normagent demo (its options: normagent.cli_options)",
    **{f"normagent.plugins.{plugin}.report": "normagent report" for plugin in (
        "access", "availability", "changes", "edi", "firewall", "malware", "network", "system", "updates")},
}

PROBE = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import normagent.cli
    from normagent.agent import read_config

    args = normagent.cli.run_arguments(["run", "--config", sys.argv[1]])  # what ``main`` does first
    assert args is not None and str(args.config) == sys.argv[1], args
    config, plugins = read_config(Path(sys.argv[1]))  # what ``run`` does first: the config with its plugins
    assert not plugins.failed(), plugins.failed()
    assert len(config.forwarders) == 4, config.forwarders
    for offer in (plugins.collectors, plugins.metrics, plugins.rules, plugins.forwarders):
        offer()
    print(json.dumps({"modules": sorted(sys.modules)}))
    """
)


def every_plugin_config(tmp_path: Path, *, starttls: bool = False) -> Path:
    """A configuration with every heavy collector and all four forwarders (an https:// webhook,
    an e-mail forwarder), as ``normagent run`` would be given."""
    fixtures = Path(__file__).parents[1] / "fixtures"
    config = tmp_path / "normagent.toml"
    config.write_text(
        f"""
[agent]
state_dir = "{tmp_path / 'state'}"

[collectors."access.windows"]
enabled = true
paths = ["{fixtures / 'evtx' / 'security.evtx'}"]

[collectors."network.snmp"]
devices = [{{ name = "router", target = "127.0.0.1:1161", version = "3", user = "u", auth_key = "auth-passphrase-1", priv_key = "priv-passphrase-2" }}]

[forwarders.webhook]
kind = "webhook"
url = "https://127.0.0.1:9/avvik"
secret = "s"

[forwarders.alertmanager]
kind = "alertmanager"
url = "http://127.0.0.1:9"

[forwarders.epost]
kind = "email"
host = "127.0.0.1"
port = 9
starttls = {"true" if starttls else "false"}
from_address = "normagent@example.invalid"
to = ["avvik@example.invalid"]

[forwarders.fil]
kind = "file"
path = "{tmp_path / 'avvik.jsonl'}"
"""
    )
    return config


def test_no_heavy_module_is_imported_at_start(tmp_path: Path) -> None:
    config = every_plugin_config(tmp_path)
    done = subprocess.run([sys.executable, "-c", PROBE, str(config)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    modules = set(result["modules"])
    assert "normagent.plugins.network.collectors" in modules and "normagent.forward.smtp" in modules  # the probe saw them
    pulled = {
        name: where
        for name, where in DENIED.items()
        if name in modules or any(m.startswith(name + ".") for m in modules)
    }
    assert pulled == {}, f"imported at start, but belongs to {pulled}"


def test_listening_imports_no_idna_codec(tmp_path: Path) -> None:
    """The web server and the syslog receiver, on an address and on a name, give the socket module
    ASCII hosts as bytes: a ``str`` would have it import the ``idna`` codec with ``stringprep`` and
    ``unicodedata`` (0.37 MB) for good. A name beyond ASCII still resolves through the codec
    (``normagent.hostnames.for_socket``; the forwarders' deliveries: test_forward_client.py)."""
    probe = textwrap.dedent(
        """
        import json, sys
        from pathlib import Path
        from normagent.clock import SystemClock
        from normagent.hostnames import for_socket
        from normagent.sources.syslog import SyslogReceiver, SyslogSettings
        from normagent.web import WebSettings, start_server

        seen = {}
        for host in ("127.0.0.1", "localhost"):
            server = start_server(WebSettings(listen=f"{host}:0"), lambda environ, start: [], lambda: True)
            server.stop()
            receiver = SyslogReceiver(SyslogSettings(udp_listen=f"{host}:0", tcp_listen=f"{host}:0"),
                                      Path(sys.argv[1]) / host, SystemClock())
            receiver.start()
            receiver.stop()
            seen[host] = "encodings.idna" in sys.modules
        print(json.dumps({"seen": seen, "ascii": repr(for_socket("localhost")), "beyond": repr(for_socket("bücher.example"))}))
        """
    )
    done = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"seen": {"127.0.0.1": False, "localhost": False}, "ascii": "b'localhost'", "beyond": "'bücher.example'"}


def test_serving_without_tls_and_polling_snmpv2c_load_no_openssl(tmp_path: Path) -> None:
    """asyncio imports ``ssl``, and ``ssl`` and ``hashlib`` load OpenSSL's libcrypto: about 6 MB
    of every idle agent's resident memory (bench/README.md). The web server without TLS (scrapes,
    refusals, a HEAD) and an SNMPv2c poll load none of them."""
    probe = textwrap.dedent(
        """
        import json, socket, sys
        from normagent.model import SnmpAuth
        from normagent.sources.snmp import PysnmpClient
        from normagent.web import WebSettings, start_server

        def app(environ, start):
            start("200 OK", [("Content-Type", "text/plain")])
            return [b"x 1\\n"]

        server = start_server(WebSettings(listen="127.0.0.1:0"), app, lambda: True)
        for request in (b"GET /metrics HTTP/1.1\\r\\n\\r\\n", b"HEAD /healthz HTTP/1.0\\r\\n\\r\\n",
                        b"GET /nothing HTTP/1.0\\r\\n\\r\\n", b"GET / HTTP/2.0\\r\\n\\r\\n"):
            with socket.create_connection((server.host, server.port), timeout=5) as conn:
                conn.sendall(request)
                while conn.recv(65536):
                    pass
        server.stop()
        client = PysnmpClient()
        try:
            client.get(sys.argv[1], ["1.3.6.1.2.1.1.3.0"], auth=SnmpAuth(version="2c", community="public"), timeout=0.2)
        except Exception as exc:
            assert type(exc).__name__ == "SnmpTimeout", exc
        client.close()
        loaded = sorted(m for m in ("asyncio", "ssl", "_ssl", "hashlib", "_hashlib", "hmac", "secrets") if m in sys.modules)
        print(json.dumps({"loaded": loaded, "requests": server.stats().requests}))
        """
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # a device that never answers
        silent.bind(("127.0.0.1", 0))
        target = f"127.0.0.1:{silent.getsockname()[1]}"
        done = subprocess.run([sys.executable, "-c", probe, target], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"loaded": [], "requests": 4}


def test_zones_come_from_the_bundled_files_without_zipfile_where_the_host_has_none(tmp_path: Path) -> None:
    # A host without /usr/share/zoneinfo (a minimal Debian root, a container): no path of zoneinfo's holds zones.
    probe = textwrap.dedent(
        """
        import json, sys, zoneinfo
        import normagent
        zone = zoneinfo.ZoneInfo("Europe/Oslo")
        print(json.dumps({"zone": str(zone), "zipfile": "zipfile" in sys.modules, "path": list(zoneinfo.TZPATH)}))
        """
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONTZPATH": str(tmp_path / "no-zones")}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["zone"] == "Europe/Oslo"
    assert result["path"][0] == str(tmp_path / "no-zones")  # the host's paths keep their precedence
    assert result["zipfile"] is False
