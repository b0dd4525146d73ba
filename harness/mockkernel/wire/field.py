"""A network-order 16-bit field, read and written at an offset a view names
(NAT rewrites ports and checksums at TCP's or UDP's offsets with it)."""
from __future__ import annotations

import struct

BE16 = struct.Struct("!H")
