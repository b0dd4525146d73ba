"""TCP's states (include/net/tcp_states.h): the enum is harness.target's
TcpState, so a socket's state and TcpInfo.state are one type; here by the
kernel's names for the modules that compare with them."""
from __future__ import annotations

from harness.target import TcpState

(TCP_ESTABLISHED, TCP_SYN_SENT, TCP_SYN_RECV, TCP_FIN_WAIT1, TCP_FIN_WAIT2, TCP_TIME_WAIT, TCP_CLOSE,
 TCP_CLOSE_WAIT, TCP_LAST_ACK, TCP_LISTEN, TCP_CLOSING, TCP_NEW_SYN_RECV) = TcpState
