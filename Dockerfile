# voxgate: the bridge, listening on 8080 (REST, carrier WebSocket ingress, /healthz, /metrics).
#   docker build -t voxgate .
#   docker run -p 8080:8080 -e VOXGATE_TOKEN=change-me voxgate
# Inside a container voxgate listens on 0.0.0.0, which it refuses to do without a
# token (VOXGATE_TOKEN, or VOXGATE_TWILIO_AUTH_TOKEN for Twilio signatures).
# SIP (5060/udp) and RTP (20000-29998/udp) arrive with the SIP leg.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/voxgate
COPY pyproject.toml README.md ./
COPY voxgate ./voxgate
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /var/lib/voxgate --create-home voxgate

USER voxgate
WORKDIR /var/lib/voxgate
ENV VOXGATE_HOST=0.0.0.0 \
    VOXGATE_PORT=8080
EXPOSE 8080

HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]

CMD ["voxgate", "serve"]
