"""Prometheus metrics of one gateway process.

Exposed on their own listener (`NOWGATE_METRICS_PORT`, bound to `NOWGATE_METRICS_HOST`,
loopback by default), never on the public port.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.connections = Gauge("nowgate_connections", "Open WebSocket sessions", registry=r)
        self.messages_in = Counter(
            "nowgate_messages_in_total", "Client calls received, by function", ["function"],
            registry=r,
        )
        self.messages_out = Counter(
            "nowgate_messages_out_total", "Frames queued to clients", registry=r
        )
        self.validation_failures = Counter(
            "nowgate_validation_failures_total", "Calls refused with -32602", ["function"],
            registry=r,
        )
        self.rate_limited = Counter(
            "nowgate_rate_limited_total", "Rate-limit hits, by what was limited", ["scope"],
            registry=r,
        )
        self.closes = Counter(
            "nowgate_closes_total", "Connections closed by the gateway, by close code", ["code"],
            registry=r,
        )
        self.send_queue_drops = Counter(
            "nowgate_send_queue_drops_total", "Clients dropped because their queue was full",
            registry=r,
        )
        self.handler_seconds = Histogram(
            "nowgate_handler_seconds", "Handler run time", ["function"], registry=r,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 2.5, 10),
        )
        self.cluster_redis_errors = Counter(
            "nowgate_cluster_redis_errors_total",
            "Redis operations of the cluster that failed (Redis unreachable), by part",
            ["part"], registry=r,
        )
        self.security_events = Counter(
            "nowgate_security_events_total", "Audit events, by kind", ["event"], registry=r
        )

        self.rate_limit_local = Gauge(
            "nowgate_rate_limit_local",
            "1 while rate limits count in this process only (shared storage unreachable)",
            registry=r,
        )
        self.backplane_connected = Gauge(
            "nowgate_backplane_connected", "1 while subscribed to the Redis backplane", registry=r
        )
        self.backplane_buffered = Gauge(
            "nowgate_backplane_buffered_bytes", "Bytes waiting to be published to other nodes",
            registry=r,
        )
        self.backplane_dropped = Counter(
            "nowgate_backplane_dropped_total",
            "Backplane messages not delivered, by reason (buffer_full, expired: published "
            "here during an outage; undecodable, rejected: received)",
            ["reason"], registry=r,
        )
        self.backplane_reconnects = Counter(
            "nowgate_backplane_reconnects_total", "Subscriptions to Redis re-established",
            registry=r,
        )

    def serve(self, host: str, port: int) -> None:
        start_http_server(port, addr=host, registry=self.registry)


METRICS = Metrics()
