"""The IVR over AGI: what every caller meets (issue 5).

- :mod:`.protocol`: the FastAGI wire format, a pure incremental parser and a command encoder.
- :mod:`.channel`: the channel API of flows (play, collect digits, variables...) and
  :class:`~callcenter.agi.channel.CallerHungUp`.
- :mod:`.server`: our asyncio FastAGI server; :mod:`.stdio`: the same flows through pyst2.
- :mod:`.ivr` (definitions from ``[ivr.<name>]``), :mod:`.hours`, :mod:`.walk` (running one).
- :mod:`.flows`: the scripts and the dialplan contract (the variables each one sets).
- :mod:`.history` and :mod:`.screenpop`: caller history, channel variables, MQTT screen-pop.
- :mod:`.callback` and :mod:`.callback_store`: queue callback keeping the caller's place.
- :mod:`.survey`: the post-call survey; :mod:`.features`: agent feature codes over AMI.
- :mod:`callcenter.ami.link`: the one AMI connection of the service; :mod:`.options`: its
  settings.
- :mod:`.app`: the composition root (``callcenter agi``, ``callcenter agi-stdio``).
"""
