# -*- test-case-name: tests.plugins.kubernetes.test_watch -*-
"""
Metrics of the kubernetes plugin's API side, defined once at module level.

CoreDNS names where CoreDNS has the metric (reference section e):

  - C{coredns_kubernetes_dns_programming_duration_seconds{service_kind}}:
    from an EndpointSlice's C{endpoints.kubernetes.io/last-change-trigger-time}
    annotation to the moment the change is in the store, observed for watch
    events only (a LIST replays old changes), as CoreDNS does.
  - C{coredns_kubernetes_rest_client_requests_total{code,method,host}} and
    C{coredns_kubernetes_rest_client_request_duration_seconds{verb,host}}:
    our LIST pages and WATCH requests (durations only for LIST pages; a
    watch lasts as long as the server keeps it open).

Ours (C{kdns_}), for what the thread design adds:

  - C{kdns_kubernetes_watch_restarts_total{kind,reason}}: watches reopened
    (C{expired} = normal server-side end, C{dropped} = stream broke,
    C{error} = request failed).
  - C{kdns_kubernetes_relists_total{kind,reason}}: full LISTs
    (C{initial}, C{gone} = 410, C{error} = after a failure).
  - C{kdns_kubernetes_last_sync_timestamp_seconds{kind}}: end of the last
    complete LIST.
  - C{kdns_kubernetes_last_event_timestamp_seconds{kind}}: last watch event
    or bookmark received (a stale value means a silent watch).
  - C{kdns_kubernetes_watch_events_total{kind,type}}.
  - C{kdns_kubernetes_api_errors_total{kind,code}}: failed requests and
    ERROR events (C{code} is the HTTP status or C{connection}).
  - C{kdns_kubernetes_connected{kind}}: 1 while a watch stream is open.

prometheus_client metrics are thread-safe, so the watch threads update them
directly.
"""

from prometheus_client import Counter, Gauge, Histogram

PROGRAMMING_BUCKETS = tuple(0.001 * 2 ** i for i in range(20))

DNS_PROGRAMMING_DURATION = Histogram(
    "coredns_kubernetes_dns_programming_duration_seconds",
    "Histogram of the time (in seconds) it took to program a dns instance.",
    ["service_kind"], buckets=PROGRAMMING_BUCKETS)

REST_REQUESTS = Counter(
    "coredns_kubernetes_rest_client_requests",
    "Number of HTTP requests, partitioned by status code, method, and host.",
    ["code", "method", "host"])

REST_REQUEST_DURATION = Histogram(
    "coredns_kubernetes_rest_client_request_duration_seconds",
    "Request latency in seconds. Broken down by verb and host.",
    ["verb", "host"])

WATCH_RESTARTS = Counter(
    "kdns_kubernetes_watch_restarts",
    "Watches reopened, by kind and reason (expired, dropped, error).",
    ["kind", "reason"])

RELISTS = Counter(
    "kdns_kubernetes_relists",
    "Full LISTs of a kind, by reason (initial, gone, error).",
    ["kind", "reason"])

LAST_SYNC = Gauge(
    "kdns_kubernetes_last_sync_timestamp_seconds",
    "Unix time the last complete LIST of a kind was handed to the store.",
    ["kind"])

LAST_EVENT = Gauge(
    "kdns_kubernetes_last_event_timestamp_seconds",
    "Unix time the last watch event or bookmark of a kind was received.",
    ["kind"])

WATCH_EVENTS = Counter(
    "kdns_kubernetes_watch_events",
    "Watch events received, by kind and type (ADDED, MODIFIED, DELETED, BOOKMARK, ERROR).",
    ["kind", "type"])

API_ERRORS = Counter(
    "kdns_kubernetes_api_errors",
    "Failed API requests and ERROR watch events, by kind and HTTP status (or 'connection').",
    ["kind", "code"])

CONNECTED = Gauge(
    "kdns_kubernetes_connected",
    "1 while the watch stream of a kind is open, else 0.",
    ["kind"])
