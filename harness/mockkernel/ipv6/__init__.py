"""IPv6 (net/ipv6/): receive, extension headers, routing, forwarding, output, ICMPv6, UDP."""
