"""What the agent imports at start loads no OpenSSL, nor asyncio (issue 15 item 1; issue 12's 40 MB).

``hashlib`` (and ``hmac`` and ``secrets``, which import it) loads ``_hashlib``, CPython's binding
of OpenSSL's libcrypto: 3.7 MB of resident memory; the agent hashes through normagent.digests
instead. ``ssl`` loads libssl and libcrypto: only TLS needs it. asyncio imports ssl: structlog,
which imports asyncio for methods the agent never calls, gets it on first use
(normagent.lazy_structlog).

A fresh interpreter does what ``normagent run`` does before its first cycle (as
tests/unit/test_imports.py's probe: every builtin plugin, every forwarder, an SNMPv3 device, an
https:// webhook, an e-mail forwarder with STARTTLS) and names whoever first imports one of these
modules. The web server serving and an SNMP poll: tests/unit/test_imports.py and test_snmp.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.unit.test_imports import every_plugin_config

# module → what may import it, for the message
OPENSSL = {
    "_hashlib": "nothing at start: normagent.digests hashes without it",
    "hashlib": "nothing at start: normagent.digests (`normagent report` may)",
    "hmac": "nothing at start: normagent.digests.Hmac (pysnmp's SNMPv3 services get it as hmac)",
    "secrets": "nothing at start: os.urandom",
    "ssl": "https:// forwarders and probes, on first use; a TLS file to check (ca_file, client_cert_file)",
    "_ssl": "ssl",
    "asyncio": "nothing at start: structlog's a* methods, on first use (normagent.lazy_structlog)",
}

PROBE = textwrap.dedent(
    """
    import builtins, json, sys, traceback
    from pathlib import Path

    WATCHED = set(json.loads(sys.argv[2]))
    found = []

    class Watch:
        # a meta path finder sees each module's first import (by anyone: a statement, C code, importlib)
        def find_spec(self, name, path=None, target=None):
            if name in WATCHED:
                stack = [f for f in traceback.extract_stack() if "importlib" not in f.filename]
                found.append([name, [f"{Path(f.filename).name}:{f.lineno}" for f in stack[-5:-1]]])
            return None

    def statement(name, globals=None, locals=None, fromlist=(), level=0, _import=builtins.__import__):
        # and every import statement of a module that is no part of the standard library, when the
        # module is imported already (by another such module), unless what it gets is structlog's stand-in
        already = name in sys.modules
        module = _import(name, globals, locals, fromlist, level)
        importer = (globals or {}).get("__name__") or ""
        if level == 0 and name in WATCHED and already \
                and importer.partition(".")[0] not in sys.stdlib_module_names and type(module).__name__ != "StandIn":
            frame = sys._getframe(1)
            found.append([name, [f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno}"]])
        return module

    builtins.__import__ = statement
    sys.meta_path.insert(0, Watch())
    import normagent.cli, normagent.web
    from normagent.agent import read_config

    normagent.cli.build_parser().parse_args(["run", "--config", sys.argv[1]])
    config, plugins = read_config(Path(sys.argv[1]))
    assert not plugins.failed(), plugins.failed()
    assert len(config.forwarders) == 4, config.forwarders
    for offer in (plugins.collectors, plugins.metrics, plugins.rules, plugins.forwarders):
        offer()
    print(json.dumps(found))
    """
)


def test_no_module_loads_openssl_or_asyncio_at_start(tmp_path: Path) -> None:
    config = every_plugin_config(tmp_path, starttls=True)
    done = subprocess.run([sys.executable, "-c", PROBE, str(config), json.dumps(sorted(OPENSSL))],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found == [], "\n".join(f"{name} (belongs to {OPENSSL[name]}) imported at {' < '.join(reversed(where))}" for name, where in found)
