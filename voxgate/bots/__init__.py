"""Sample bots that speak voxgate's bot protocol (voxgate.v1).

- :mod:`voxgate.bots.echo`: a self-contained WebSocket server that echoes the
  caller's audio back, with marks, DTMF-driven hangup/transfer/clear. It
  imports nothing from voxgate, so it can be copied as the start of a new bot.
"""
