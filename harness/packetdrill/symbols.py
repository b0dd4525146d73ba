"""The names a script's system calls may use, with Linux's values.

Constants come from the kernel's uapi headers (include/uapi/linux/{socket,in,tcp}.h,
asm-generic/socket.h, asm-generic/fcntl.h) rather than the host's Python, so that a
script means the same on every target; errno names from the errno module (Linux's).
"""
from __future__ import annotations

import errno

CONSTANTS = {
    # socket(2)
    "AF_INET": 2, "PF_INET": 2, "SOCK_STREAM": 1, "SOCK_NONBLOCK": 0o4000, "IPPROTO_TCP": 6,
    # levels and options: asm-generic/socket.h, uapi/linux/tcp.h
    "SOL_SOCKET": 1, "SOL_TCP": 6,
    "SO_REUSEADDR": 2, "SO_ERROR": 4, "SO_KEEPALIVE": 9, "SO_SNDBUF": 7, "SO_RCVBUF": 8,
    "SO_LINGER": 13, "SO_REUSEPORT": 15,
    "TCP_NODELAY": 1, "TCP_MAXSEG": 2, "TCP_CORK": 3, "TCP_KEEPIDLE": 4, "TCP_KEEPINTVL": 5,
    "TCP_KEEPCNT": 6, "TCP_SYNCNT": 7, "TCP_LINGER2": 8, "TCP_DEFER_ACCEPT": 9,
    "TCP_WINDOW_CLAMP": 10, "TCP_QUICKACK": 12, "TCP_CONGESTION": 13, "TCP_USER_TIMEOUT": 18,
    # shutdown(2)
    "SHUT_RD": 0, "SHUT_WR": 1, "SHUT_RDWR": 2,
    # fcntl(2): asm-generic/fcntl.h
    "F_GETFL": 3, "F_SETFL": 4, "O_RDONLY": 0, "O_WRONLY": 1, "O_RDWR": 2, "O_NONBLOCK": 0o4000,
    # send(2)/recv(2) flags
    "MSG_PEEK": 2, "MSG_DONTWAIT": 0x40,
}

ERRNOS = {name: getattr(errno, name) for name in dir(errno) if name.startswith("E") and name.isupper()}

# The system calls the runner knows, with their argument counts.
SYSCALLS = {
    "socket": 3, "bind": 3, "listen": 2, "accept": 3, "connect": 3,
    "write": 3, "read": 3, "send": 4, "recv": 4, "shutdown": 2, "close": 1,
    "setsockopt": 5, "getsockopt": 5, "fcntl": (2, 3),
}
