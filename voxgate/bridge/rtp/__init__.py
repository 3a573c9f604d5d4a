"""RTP and RTCP, sans-I/O: packets, reports, statistics, DTMF events, jitter (RFC 3550, 4733)."""
