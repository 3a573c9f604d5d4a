"""The bridge: call core, protocol cores and asyncio adapters.

Nothing lives here yet; the WebSocket media path and the SIP/RTP stack arrive
with their own issues (see ../shared/DESIGN.md for the planned layout).
"""
