"""Addresses and networks: what may be blocked, the allow-list, and the ACL's rules. Pure.

A block is an address or a network, kept as text in ``sip_blocks.address`` in one canonical
form (:func:`block_key`): a single address as itself (``203.0.113.5``, ``2001:db8::5``), a
network in CIDR (``203.0.113.0/24``). The rendered ACL (acl.conf ``[sip-blocklist]``) is, in
this order, since Asterisk applies every rule and the last match wins (``ast_apply_ha``):

1. ``permit`` everyone (an IPv4 and an IPv6 rule);
2. ``deny`` each block;
3. ``permit`` each allow-list network: the operator's own networks are never refused, not
   even when a block is a wider network around them.

IPv4 rules use a dotted netmask, IPv6 ones a prefix length (both are what ``ast_append_ha``
reads; manager.conf's AMI rules are written the same way by the renderer). An IPv4 rule does
not apply to an IPv6 address nor the reverse, except that IPv4 rules apply to IPv4-mapped
IPv6 addresses.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from callcenter.security.events import IPAddress, parse_ip

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: The widest block accepted, by IP version: anything wider is almost surely a typo that
#: would cut off real phones (and 0.0.0.0/0 all of them).
MIN_PREFIX = {4: 8, 6: 32}

#: Never blocked unless the settings say otherwise: this machine.
DEFAULT_ALLOW = ("127.0.0.1/32", "::1/128")


class AddressError(ValueError):
    """Not an address or network that may be blocked; the message is for operators."""


def parse_network(text: str) -> Network:
    """``203.0.113.5``, ``203.0.113.0/24``, ``[2001:db8::1]``, ``2001:db8::/48`` -> a network
    (host bits masked off: ``203.0.113.5/24`` is ``203.0.113.0/24``). :class:`AddressError`
    otherwise."""
    raw = text.strip()
    host, slash, length = raw.partition("/")
    try:
        ip = parse_ip(host)
        if not slash:
            return ipaddress.ip_network(ip)
        return ipaddress.ip_network(f"{ip}/{length}", strict=False)
    except ValueError:
        raise AddressError(
            f"{text!r} is not an IP address or network (e.g. 203.0.113.5, 203.0.113.0/24, "
            "2001:db8::1)"
        ) from None


def block_key(network: Network) -> str:
    """The canonical text of a block: a lone address as itself, a network in CIDR."""
    if network.num_addresses == 1:
        return str(network.network_address)
    return str(network)


def checked_block(text: str) -> str:
    """``text`` as a block's key; :class:`AddressError` when it is not an address or network,
    or wider than :data:`MIN_PREFIX` allows."""
    network = parse_network(text)
    least = MIN_PREFIX[network.version]
    if network.prefixlen < least:
        raise AddressError(
            f"{text!r} is wider than /{least}: a block that wide would refuse real phones; "
            "block the addresses or smaller networks the attack comes from"
        )
    return block_key(network)


def acl_rule(network: Network) -> str:
    """A network as an acl.conf ``permit``/``deny`` value."""
    if isinstance(network, ipaddress.IPv4Network):
        return f"{network.network_address}/{network.netmask}"
    return str(network)


@dataclass(frozen=True, slots=True)
class AllowList:
    """Networks whose addresses are never blocked."""

    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        """From the settings' strings; :class:`AddressError` naming a bad one."""
        return cls(tuple(parse_network(e) for e in entries))

    def __contains__(self, ip: object) -> bool:
        if not isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address):
            return False
        return any(ip.version == n.version and ip in n for n in self.networks)

    def overlaps(self, network: Network) -> Network | None:
        """The first allowed network that ``network`` covers or lies in, or None."""
        for allowed in self.networks:
            if allowed.version == network.version and allowed.overlaps(network):
                return allowed
        return None


def acl_context(blocked: Iterable[str], allow: AllowList) -> dict[str, list[str]]:
    """What acl.conf.j2 renders: ``blocked`` and ``allowed`` rules, each sorted and once.
    :class:`AddressError` for a block that is not an address or network."""
    denies = {parse_network(b) for b in blocked}
    return {
        "blocked": [acl_rule(n) for n in _sorted(denies)],
        "allowed": [acl_rule(n) for n in _sorted(set(allow.networks))],
    }


def _sorted(networks: set[Network]) -> list[Network]:
    return sorted(networks, key=lambda n: (n.version, int(n.network_address), n.prefixlen))


def covered(ip: IPAddress, blocks: Iterable[Network]) -> bool:
    """Whether ``ip`` lies in one of ``blocks``."""
    return any(ip.version == n.version and ip in n for n in blocks)
