"""SIP attack detection: failed logins counted per source address, alerts, and blocks.

SIP scanners try every public Asterisk for accounts with weak passwords (toll fraud). Asterisk
reports each failed attempt as an AMI event of the ``security`` class; the bridge hands those
to :class:`~callcenter.security.service.SecurityMonitor`, which feeds the pure
:class:`~callcenter.security.detector.Detector` and acts on what it decides: an MQTT alert
(the wallboard's banner), a row in ``sip_blocks``, and, with ``[security] block = true``, the
address in the private Asterisk's SIP ACL (acl.conf ``[sip-blocklist]``, reloaded at once).

- :mod:`.events`: the AMI security events as typed records (``RemoteAddress`` parsed);
- :mod:`.acl`: addresses and networks, the allow-list, the ACL's rules (pure);
- :mod:`.detector`: failures per address over a sliding window -> alerts and block decisions;
- :mod:`.alerts`: the MQTT payload of the active alerts and the board's banner text;
- :mod:`.store`: the ``sip_blocks`` table;
- :mod:`.blocklist`: acl.conf rendered from the table, written and reloaded;
- :mod:`.service`: the bridge's shell around all of it.

docs/security-sip.md is the operator's guide.
"""
