"""The receptionist: a small phone menu that transfers callers or takes a message.

It greets the caller and offers a menu driven by keys: 1 sales, 2 support, 3 leave a
message, 0 operator, # the menu again. A key, or the caller starting to speak, stops a
prompt at once. 1, 2 and 0 transfer the call to the targets of --sales, --support and
--operator. 3 records a message after a beep until the caller falls silent
(--silence), hangs up, or reaches --max-message; it is saved as a WAV and a JSON
record in --voicemail-dir. Outside --hours the caller can only leave a message. With
no key for --no-input seconds the menu is offered once more, then the bot says goodbye.

The prompts are the WAV files in ``prompts/`` (their texts in ``prompts/prompts.toml``).
Modules: :mod:`.ivr` the call flow, :mod:`.hours` business hours, :mod:`.voicemail`
the message files, :mod:`.options` the command line.
"""

from voxgate.bots.receptionist.ivr import handle
from voxgate.bots.receptionist.options import add_arguments

__all__ = ["add_arguments", "handle"]
