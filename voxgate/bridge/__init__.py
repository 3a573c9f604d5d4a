"""The bridge: call core, protocol cores and asyncio adapters.

The layers and where each decision lives: docs/ARCHITECTURE.md. The SIP/RTP
leg is planned, not built.
"""
