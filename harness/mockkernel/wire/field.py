"""Network-order integer fields, read and written at an offset a view names
(the same Structs every view uses for its 16- and 32-bit fields)."""
from __future__ import annotations

import struct

BE16 = struct.Struct("!H")
BE32 = struct.Struct("!I")
