"""Collect formatted twisted.logger events of one namespace during a test."""

from twisted.logger import formatEvent, globalLogPublisher


def capture(testcase, namespace):
    """A list that receives C{(level_name, text)} for each event in C{namespace}."""
    lines = []

    def observer(event):
        if event.get("log_namespace") == namespace:
            lines.append((event["log_level"].name, formatEvent(event)))
    globalLogPublisher.addObserver(observer)
    testcase.addCleanup(globalLogPublisher.removeObserver, observer)
    return lines
