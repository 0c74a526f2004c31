"""Client addresses behind trusted proxies, networks of addresses, and allowlists."""

from __future__ import annotations

import ipaddress

import pytest

from kinema.netaddr import client_ip, ip_allowed, network_of, parse_address, parse_networks

PROXIES = parse_networks(["10.0.0.0/8", "192.0.2.10", "2001:db8:ffff::/48"])


def test_parse_networks() -> None:
    nets = parse_networks(["10.0.0.0/8", " 192.0.2.10 ", "2001:db8::1", "10.1.2.3/16", "::ffff:198.51.100.7"])
    want = ["10.0.0.0/8", "192.0.2.10/32", "2001:db8::1/128", "10.1.0.0/16", "198.51.100.7/32"]
    assert [str(n) for n in nets] == want
    assert all(isinstance(n, ipaddress.IPv4Network | ipaddress.IPv6Network) for n in nets)
    assert parse_networks([]) == ()
    for bad in ("10.0.0.0/33", "example.com", "", "1.2.3"):
        with pytest.raises(ValueError) as err:
            parse_networks(["10.0.0.1", bad])
        assert repr(bad) in str(err.value)


def test_untrusted_peer_ignores_forged_header() -> None:
    assert client_ip("203.0.113.7", "1.1.1.1", PROXIES) == "203.0.113.7"
    assert client_ip("203.0.113.7", "10.0.0.1, 1.1.1.1", PROXIES) == "203.0.113.7"
    assert client_ip("203.0.113.7", "1.1.1.1", ()) == "203.0.113.7"  # no proxies configured
    assert client_ip("10.0.0.5", "1.1.1.1", ()) == "10.0.0.5"


def test_trusted_proxy_chain_yields_real_client() -> None:
    # client 198.51.100.23 -> edge proxy 192.0.2.10 -> internal proxy 10.0.0.9 -> app (peer 10.0.0.9)
    assert client_ip("10.0.0.9", "198.51.100.23, 192.0.2.10", PROXIES) == "198.51.100.23"
    # whatever the client put in front of its own address is not believed
    assert client_ip("10.0.0.9", "6.6.6.6, 7.7.7.7, 198.51.100.23, 192.0.2.10", PROXIES) == "198.51.100.23"
    # several headers joined in order; odd spacing
    assert client_ip("10.0.0.9", "6.6.6.6,198.51.100.23 ,192.0.2.10,10.1.1.1", PROXIES) == "198.51.100.23"
    # a trusted peer without the header is the client itself
    assert client_ip("10.0.0.9", None, PROXIES) == "10.0.0.9"
    # a header with only trusted hops: the leftmost of them
    assert client_ip("10.0.0.9", "10.2.2.2, 192.0.2.10", PROXIES) == "10.2.2.2"


def test_garbage_in_header_stops_the_walk() -> None:
    assert client_ip("10.0.0.9", "unknown", PROXIES) == "10.0.0.9"
    assert client_ip("10.0.0.9", "", PROXIES) == "10.0.0.9"
    assert client_ip("10.0.0.9", "1.1.1.1, garbage, 192.0.2.10", PROXIES) == "192.0.2.10"
    assert client_ip("10.0.0.9", "1.1.1.1, , 10.3.3.3", PROXIES) == "10.3.3.3"
    assert client_ip("10.0.0.9", "1.1.1.1, 999.1.1.1", PROXIES) == "10.0.0.9"
    assert client_ip("10.0.0.9", "1.1.1.1, _hidden", PROXIES) == "10.0.0.9"
    assert client_ip("10.0.0.9", "1.1.1.1, 2.2.2.2:abc", PROXIES) == "10.0.0.9"
    # a peer that is not an address at all (a test client, a unix socket) is returned as is
    assert client_ip("testclient", "1.1.1.1", PROXIES) == "testclient"


def test_ports_and_mapped_addresses_are_normalised() -> None:
    assert client_ip("10.0.0.9", "198.51.100.23:5678", PROXIES) == "198.51.100.23"
    assert client_ip("10.0.0.9", "[2001:db8::7]:443", PROXIES) == "2001:db8::7"
    assert client_ip("10.0.0.9", "[2001:db8::7]", PROXIES) == "2001:db8::7"
    assert client_ip("::ffff:10.0.0.9", "::ffff:198.51.100.23", PROXIES) == "198.51.100.23"
    assert client_ip("::ffff:203.0.113.7", "1.1.1.1", PROXIES) == "203.0.113.7"
    assert parse_address("fe80::1%eth0") == ipaddress.ip_address("fe80::1")
    assert parse_address("[::1") is None
    assert parse_address("[::1]x") is None


def test_ipv6() -> None:
    assert client_ip("2001:db8:ffff::1", "2001:db8:1234::5, 2001:db8:ffff::2", PROXIES) == "2001:db8:1234::5"
    assert client_ip("2001:db8:1234::1", "1.1.1.1", PROXIES) == "2001:db8:1234::1"  # untrusted v6 peer
    assert client_ip("2001:DB8:ffff:0::1", "198.51.100.23", PROXIES) == "198.51.100.23"  # mixed versions
    assert network_of("2001:db8:1234:5678::1", 24, 48) == "2001:db8:1234::/48"
    assert network_of("2001:db8:1234:5678::1", 24, 64) == "2001:db8:1234:5678::/64"


def test_network_of() -> None:
    assert network_of("203.0.113.77", 24, 48) == "203.0.113.0/24"
    assert network_of("203.0.113.77", 16, 48) == "203.0.0.0/16"
    assert network_of("::ffff:203.0.113.77", 24, 48) == "203.0.113.0/24"
    assert network_of("203.0.113.77:8080", 24, 48) == "203.0.113.0/24"
    with pytest.raises(ValueError):
        network_of("testclient", 24, 48)


def test_allowlist() -> None:
    assert ip_allowed("203.0.113.7", [])
    allow = ["198.51.100.0/24", "203.0.113.7", "2001:db8:42::/48"]
    assert ip_allowed("198.51.100.1", allow)
    assert ip_allowed("198.51.100.254", allow)
    assert not ip_allowed("198.51.101.1", allow)
    assert ip_allowed("203.0.113.7", allow)
    assert not ip_allowed("203.0.113.8", allow)
    assert ip_allowed("2001:db8:42:ffff::1", allow)
    assert not ip_allowed("2001:db8:43::1", allow)
    assert ip_allowed("::ffff:198.51.100.9", allow)  # IPv4-mapped form of an allowed address
    assert not ip_allowed("testclient", allow)
    assert not ip_allowed("198.51.100.1", ["not-a-network"])  # a bad entry matches nothing
    assert ip_allowed("198.51.100.1", ["not-a-network", "198.51.100.0/24"])
