"""Simulated traffic through a running Asterisk of ours (``callcenter simulate``).

:mod:`.model` draws every random quantity (pure, seeded); :mod:`.runner` turns the draws into AMI
actions against the ``[sim-caller]`` / ``[sim-agent]`` contexts of ``dialplans/simulate.conf.j2``.
"""
