"""The control plane: the REST API under /v1, API keys, rate limits, live events (SSE) and
signed webhooks, over the store (:mod:`voxgate.bridge.store`)."""
