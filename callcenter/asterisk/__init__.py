"""The private Asterisk: its configuration rendered from ours, started, and reloaded.

- :mod:`callcenter.asterisk.render`: settings, agents, queues and trunks in, a dict of file name
  to bytes out. Pure and deterministic: no clock, no randomness, everything sorted.
- :mod:`callcenter.asterisk.conffile`: a small reader of Asterisk's configuration syntax, for the
  tests and for checking a rendered set.
- :mod:`callcenter.asterisk.files`: writing a set to disk (secrets 0640) and comparing with what is
  there.
- :mod:`callcenter.asterisk.run`: finding the binary, the directories of a private instance, and
  the command line that starts it in the foreground.
- :mod:`callcenter.asterisk.reload`: which modules to reload for which changed file.
- :mod:`callcenter.asterisk.inputs`: agents and queues from the database, as render inputs.
- :mod:`callcenter.asterisk.sample`: inputs that need no database (dialplan lint, tests).
"""
