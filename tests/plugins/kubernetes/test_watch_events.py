"""
The event reader of one watch read (L{KindLoop._events}): the events read
before a failure are applied, and a malformed object is skipped alone.
"""

import json
import threading

from twisted.trial import unittest

from twisted_kdns.plugins.kubernetes.objects import convert
from twisted_kdns.plugins.kubernetes.watch import Gone, KindLoop


class Recorder(object):
    """The source and reactor sides of a KindLoop: calls run at once and are recorded."""

    def __init__(self):
        self.config = type("Config", (), {"namespaces": None, "labels": None})()
        self.reactor = self
        self.applied = []
        self.logged = []

    def callFromThread(self, fn, *args, **kw):
        fn(*args, **kw)

    def _apply(self, kind, stop, batch):
        self.applied.extend((event_type, record.key) for event_type, record, _ in batch)


def event(event_type, name, rv, spec=None):
    return json.dumps({"type": event_type, "object": {
        "kind": "Service", "metadata": {"name": name, "namespace": "default", "resourceVersion": rv},
        "spec": spec if spec is not None else {"clusterIP": "10.0.0.%s" % rv, "type": "ClusterIP"}}})


class EventsTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.source = Recorder()
        self.loop = KindLoop(self.source, "services", threading.Event())

    def test_eventsBeforeABrokenLineAreApplied(self):
        """A stream that breaks mid-read still applies the events read before the break."""
        lines = [event("ADDED", "a", "11"), event("ADDED", "b", "12"), "{not json"]
        self.assertRaises(ValueError, self.loop._events, lines, convert)
        self.assertEqual(self.source.applied, [("ADDED", "default/a"), ("ADDED", "default/b")])
        self.assertEqual(self.loop.rv, "12")

    def test_eventsBeforeGoneAreApplied(self):
        """An ERROR 410 event ends the read after applying what came before it."""
        gone = json.dumps({"type": "ERROR", "object": {"code": 410, "message": "too old"}})
        self.assertRaises(Gone, self.loop._events, [event("MODIFIED", "a", "20"), gone], convert)
        self.assertEqual(self.source.applied, [("MODIFIED", "default/a")])

    def test_malformedObjectSkippedAlone(self):
        """An object whose spec cannot be read is skipped; its neighbours apply and the version moves on."""
        lines = [event("ADDED", "a", "31"), event("ADDED", "bad", "32", spec=["not", "a", "map"]),
                 event("ADDED", "c", "33")]
        self.loop._events(lines, convert)
        keys = [key for _, key in self.source.applied]
        self.assertEqual([k for k in keys if k != "default/bad"], ["default/a", "default/c"])
        self.assertEqual(self.loop.rv, "33")
