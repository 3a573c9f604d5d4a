"""Audio codecs: pure numpy, synchronous, vectorised.

- :mod:`~voxgate.codecs.g711`: mu-law and A-law, bit-exact with ``audioop``.
- :mod:`~voxgate.codecs.pcm`: 16-bit linear PCM in both byte orders.
- :mod:`~voxgate.codecs.resample`: stateful polyphase resampler.
- :mod:`~voxgate.codecs.dtmf`: DTMF detector and tone generator.
- :mod:`~voxgate.codecs.formats`: :class:`AudioFormat` and :class:`Transcoder`.
"""

from voxgate.codecs.formats import (
    PCMA_8K,
    PCMU_8K,
    AudioFormat,
    Encoding,
    Transcoder,
    decode,
    encode,
    parse_encoding,
)
from voxgate.codecs.resample import SUPPORTED_RATES, Resampler

__all__ = [
    "PCMA_8K",
    "PCMU_8K",
    "SUPPORTED_RATES",
    "AudioFormat",
    "Encoding",
    "Resampler",
    "Transcoder",
    "decode",
    "encode",
    "parse_encoding",
]
