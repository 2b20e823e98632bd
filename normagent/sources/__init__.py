"""Sources: generic, checkpointed readers (files, journald, EVTX, syslog) and host seams.

This package knows kinds of source, never a particular one: no auth.log, no AppRec in here.
Modules import only the standard library and normagent.errors, normagent.model, normagent.clock.
"""
