"""The bot's sockets of one call: attempts, backoff, when to give up.

Theory of operation
-------------------
Every bot socket the call opens is one *attempt*, numbered from 1. At most one
is current: *connecting* (until its deadline) or *up*; a report about any other
attempt (an old socket closing late, a connect that was abandoned) is stale,
and :meth:`BotAttempts.is_connecting` / :meth:`BotAttempts.is_up` say so.

- At call start, attempts are made until ``connect_timeout`` after the start;
  each may take what is left of that time.
- A failed attempt is retried after a backoff (0.1 s doubling, at most 2 s),
  unless the retry would come after the give-up instant: then the caller must
  fall back (:meth:`BotAttempts.retry_later` answers False).
- After a drop, ``reconnect_for`` is a *budget*: it runs from the drop until a
  socket has proved itself (stayed up :data:`PROVEN_AFTER` seconds and carried
  audio either way). A socket that drops sooner gives nothing back, so a bot
  that accepts and closes at once is given up when the budget is spent, and the
  backoff keeps growing across such sockets. A socket that proved itself
  refills the budget for its own drop.

Sans-I/O: time is passed in; the call turns the answers into outputs.
"""

from __future__ import annotations

from typing import Final

PROVEN_AFTER: Final = 5.0
"""Seconds a bot socket must stay up, carrying audio, to refill the reconnection budget."""
BACKOFF_FIRST: Final = 0.1
BACKOFF_MAX: Final = 2.0


class BotAttempts:
    """The attempts at the bot of one call; see the module docstring."""

    def __init__(self, *, connect_timeout: float, reconnect_for: float, now: float) -> None:
        self._connect_timeout = connect_timeout
        self._reconnect_for = reconnect_for
        self.attempt = 0  # the current attempt's number (0: none made yet)
        self.connecting_until: float | None = None  # the attempt under way is abandoned then
        self.retry_at: float | None = None  # the next attempt is made then
        self.up = False
        self._up_since = 0.0
        self._carried_audio = False  # the socket that is up carried audio, either way
        self._retries = 0  # failures since the start or since a socket proved itself
        self._give_up_at = now + connect_timeout
        self._outage_since: float | None = None  # the budget runs from here

    def begin(self, now: float) -> float | None:
        """Start the next attempt; how long it may take, or None: time is spent, give up."""
        self.retry_at = None
        if now >= self._give_up_at:  # a late wake-up
            return None
        self.attempt += 1
        timeout = min(self._connect_timeout, self._give_up_at - now)
        self.connecting_until = now + timeout
        return timeout

    def is_connecting(self, attempt: int) -> bool:
        return attempt == self.attempt and self.connecting_until is not None

    def is_up(self, attempt: int) -> bool:
        return attempt == self.attempt and self.up

    def connected(self, now: float) -> None:
        self.connecting_until = None
        self.up = True
        self._up_since = now
        self._carried_audio = False

    def failed(self) -> None:
        """The attempt under way failed (its socket is gone)."""
        self.connecting_until = None

    def disconnected(self) -> None:
        """The socket that was up closed."""
        self.up = False

    def carried_audio(self) -> None:
        self._carried_audio = True

    def close(self) -> bool:
        """Forget the current socket; True if one was up or connecting (it must be closed)."""
        current = self.up or self.connecting_until is not None
        self.up = False
        self.connecting_until = None
        return current

    def dropped(self, now: float) -> None:
        """The socket that was up dropped: the budget runs, or starts again if it proved itself."""
        proven = self._carried_audio and now - self._up_since >= PROVEN_AFTER
        if self._outage_since is None or proven:
            self._outage_since = now
            self._retries = 0
        self._give_up_at = self._outage_since + self._reconnect_for
        self.up = False

    def retry_later(self, now: float) -> bool:
        """Schedule the next attempt after the backoff; False: it would come too late."""
        delay = min(BACKOFF_FIRST * 2 ** min(self._retries, 16), BACKOFF_MAX)
        self._retries += 1
        if now + delay >= self._give_up_at:
            return False
        self.retry_at = now + delay
        return True

    def restart(self, now: float) -> None:
        """A new bot for the same call: a fresh start, with the start's time to connect."""
        self.close()
        self.retry_at = None
        self._retries = 0
        self._outage_since = None
        self._give_up_at = now + self._connect_timeout

    def stop_retrying(self) -> None:
        self.retry_at = None
