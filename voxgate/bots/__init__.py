"""Bot SDK and sample bots (echo, receptionist).

Nothing lives here yet; the echo bot arrives with the WebSocket media path.
"""
