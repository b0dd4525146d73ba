"""IPsec and IP compression headers: AH (struct ip_auth_hdr), ESP (struct
ip_esp_hdr) and IPComp (struct ip_comp_hdr), include/linux/ip.h."""
from __future__ import annotations

import struct

from harness.mockkernel.wire.errors import Truncated
from harness.mockkernel.wire.view import HeaderView

IPPROTO_ESP, IPPROTO_AH, IPPROTO_COMP = 50, 51, 108
AH_HLEN, ESP_HLEN, COMP_HLEN = 12, 8, 4
# field offsets: struct ip_auth_hdr, struct ip_esp_hdr, struct ip_comp_hdr
AH_NEXTHDR, AH_HDRLEN, AH_RESERVED, AH_SPI, AH_SEQ = 0, 1, 2, 4, 8
ESP_SPI, ESP_SEQ = 0, 4
COMP_NEXTHDR, COMP_FLAGS, COMP_CPI = 0, 1, 2
AH = struct.Struct("!BBHII")
ESP = struct.Struct("!II")
COMP = struct.Struct("!BBH")


def _checker(name: str, hlen: int):
    def check_len(buf: bytearray, off: int, end: int) -> None:
        if end - off < hlen:
            raise Truncated(None, f"{name} header needs {hlen} bytes, have {end - off}")
    return check_len


class AuthHeader(HeaderView):
    __slots__ = ()
    _check = staticmethod(_checker("AH", AH_HLEN))

    @property
    def nexthdr(self) -> int:
        return self.buf[self.off + AH_NEXTHDR]

    @property
    def hdrlen(self) -> int:
        """In 4-byte words, minus 2 (RFC 4302)."""
        return self.buf[self.off + AH_HDRLEN]

    @property
    def spi(self) -> int:
        return AH.unpack_from(self.buf, self.off)[3]

    @property
    def seq_no(self) -> int:
        return AH.unpack_from(self.buf, self.off)[4]


class EspHeader(HeaderView):
    __slots__ = ()
    _check = staticmethod(_checker("ESP", ESP_HLEN))

    @property
    def spi(self) -> int:
        return ESP.unpack_from(self.buf, self.off)[0]

    @property
    def seq_no(self) -> int:
        return ESP.unpack_from(self.buf, self.off)[1]


class CompHeader(HeaderView):
    __slots__ = ()
    _check = staticmethod(_checker("IPComp", COMP_HLEN))

    @property
    def nexthdr(self) -> int:
        return self.buf[self.off + COMP_NEXTHDR]

    @property
    def flags(self) -> int:
        return self.buf[self.off + COMP_FLAGS]

    @property
    def cpi(self) -> int:
        return COMP.unpack_from(self.buf, self.off)[2]
