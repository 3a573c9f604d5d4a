"""asyncio adapters: the only code that touches sockets and the event loop.

They feed the sans-I/O cores (dialects, the call) and carry out what the
cores ask for; no protocol decision is made here.
"""
