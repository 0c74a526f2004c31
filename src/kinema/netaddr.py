"""Client addresses: who the client is behind trusted reverse proxies, its network, and allowlists.

``X-Forwarded-For`` is a list every hop appends to, so only its right end is trustworthy: each entry
was written by the hop to its right. :func:`client_ip` believes the header only when the TCP peer is
a trusted proxy, then walks it from right to left past further trusted proxies; the first address
that is not a trusted proxy is the client. Anything to the left of that was written by the client
itself and is ignored.

Addresses are normalised before use: an IPv4-mapped IPv6 address (``::ffff:203.0.113.7``, what a
dual-stack socket reports for an IPv4 client) becomes the IPv4 address, an IPv6 zone (``%eth0``) is
dropped, and a port is stripped (``203.0.113.7:5678``, ``[2001:db8::1]:443``, ``[2001:db8::1]``), since
some proxies write one. Anything else that is not an address (``unknown``, RFC 7239 obfuscated
identifiers, garbage) is invalid.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

__all__ = ["IPAddress", "IPNetwork", "client_ip", "ip_allowed", "network_of", "parse_address", "parse_networks"]


def _normalise(addr: IPAddress) -> IPAddress:
    if isinstance(addr, IPv6Address):
        if addr.ipv4_mapped is not None:
            return addr.ipv4_mapped
        if addr.scope_id is not None:
            return IPv6Address(str(addr).split("%", 1)[0])
    return addr


def parse_address(text: str) -> IPAddress | None:
    """The normalised address in ``text``, or None if it is not one.

    Accepts an optional port (``1.2.3.4:80``, ``[::1]:80``), brackets (``[::1]``) and an IPv6 zone,
    all of which are dropped, and maps IPv4-mapped IPv6 addresses to IPv4.
    """
    s = text.strip()
    if not s:
        return None
    if s.startswith("["):
        end = s.find("]")
        if end < 0:
            return None
        rest = s[end + 1 :]
        if rest and not (rest.startswith(":") and rest[1:].isdigit()):
            return None
        s = s[1:end]
    elif s.count(":") == 1:  # IPv4 with a port; a bare IPv6 address has at least two colons
        s, port = s.split(":")
        if not port.isdigit():
            return None
    try:
        return _normalise(ipaddress.ip_address(s))
    except ValueError:
        return None


def parse_networks(entries: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Parse addresses and CIDR networks; a single address becomes a /32 (IPv4) or /128 (IPv6).

    Host bits are allowed and masked off (``10.1.2.3/8`` is ``10.0.0.0/8``); an IPv4-mapped IPv6
    address becomes its IPv4 /32. Raises ValueError naming the first entry that is neither.
    """
    out: list[IPNetwork] = []
    for entry in entries:
        text = entry.strip() if isinstance(entry, str) else ""
        if "/" not in text and (addr := parse_address(text)) is not None:
            out.append(ipaddress.ip_network(addr))
            continue
        try:
            out.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or CIDR network") from None
    return tuple(out)


def _trusted(addr: IPAddress, trusted: Iterable[IPNetwork]) -> bool:
    return any(addr in net for net in trusted)  # an address is never in a network of the other version


def client_ip(peer: str, forwarded_for: str | None, trusted: Iterable[IPNetwork]) -> str:
    """The client's address, given the TCP ``peer``, the ``X-Forwarded-For`` header and trusted proxies.

    - ``peer`` not a trusted proxy (or not an address at all): ``peer``, whatever the header says,
      since anyone can send one.
    - ``peer`` trusted: walk the header right to left, skipping trusted proxies; the first other
      valid address is the client. An invalid entry stops the walk: the last trusted hop seen
      (possibly ``peer``) is returned, as nothing left of garbage can be believed. No header, or
      only trusted hops in it: the leftmost trusted hop (``peer`` when there is no header).

    When a request carries several ``X-Forwarded-For`` headers, join them in order with ``,``.
    The result is normalised (see the module docstring); an unparseable ``peer`` is returned as is.
    """
    trusted = tuple(trusted)
    peer_addr = parse_address(peer)
    if peer_addr is None:
        return peer
    if not trusted or not _trusted(peer_addr, trusted) or forwarded_for is None:
        return str(peer_addr)
    last_trusted = peer_addr
    for entry in reversed(forwarded_for.split(",")):
        addr = parse_address(entry)
        if addr is None:
            break
        if not _trusted(addr, trusted):
            return str(addr)
        last_trusted = addr
    return str(last_trusted)


def network_of(ip: str, v4_prefix: int, v6_prefix: int) -> str:
    """The network ``ip`` lies in, as CIDR text: ``network_of("203.0.113.7", 24, 48) == "203.0.113.0/24"``.

    Raises ValueError if ``ip`` is not an address (ports and IPv4 mapping are handled as in
    :func:`parse_address`) or a prefix is out of range.
    """
    addr = parse_address(ip)
    if addr is None:
        raise ValueError(f"{ip!r} is not an IP address")
    prefix = v4_prefix if isinstance(addr, IPv4Address) else v6_prefix
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))


@functools.lru_cache(maxsize=4096)
def _allow_entry(entry: str) -> IPNetwork | None:
    try:
        return parse_networks([entry])[0]
    except ValueError:
        return None


def ip_allowed(ip: str, allowlist: Iterable[str]) -> bool:
    """Whether ``ip`` may use something restricted to ``allowlist`` (addresses or CIDR networks).

    An empty allowlist allows every address. Otherwise ``ip`` must be a valid address inside one of
    the entries; an entry that does not parse matches nothing (entries are validated when stored).
    """
    entries = list(allowlist)
    if not entries:
        return True
    addr = parse_address(ip)
    if addr is None:
        return False
    for entry in entries:
        net = _allow_entry(entry) if isinstance(entry, str) else None
        if net is not None and addr in net:
            return True
    return False
