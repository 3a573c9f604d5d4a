"""SIP, sans-I/O: messages, SDP, transactions, dialogs, digest auth (RFC 3261, 3264, 4566, 7616)."""
