# -*- test-case-name: tests.test_chain -*-
"""
The fallthrough chain of terminal resolvers, and the chain builder.

Twisted's C{ResolverChain} rebuilds the query (losing its context) and treats
every C{DomainError} - upstream SERVFAIL and REFUSED included - as "try the
next one".  L{FallthroughChain} passes the same L{KdnsQuery} along and moves
on only on L{PassToNext} (a C{DomainError}): a resolver that does not own the
name, or whose C{fallthrough} covers a miss.  Anything else is final.
"""

from twisted.internet import defer
from twisted.names.error import DomainError
from twisted.python.failure import Failure

from twisted_kdns.errors import ServFail


class FallthroughChain(object):
    """Terminal resolvers tried in plugin order."""

    name = "chain"

    def __init__(self, resolvers):
        self.resolvers = list(resolvers)

    def query(self, query, timeout=None):
        return self._try(query, 0)

    def _try(self, query, index):
        resolvers = self.resolvers
        while index < len(resolvers):
            resolver = resolvers[index]
            index += 1
            try:
                d = resolver.query(query)
            except DomainError:
                continue
            except Exception:
                return defer.fail(Failure())
            if d.called and not d.paused:
                # Fast path: resolved synchronously, no callback plumbing needed.
                if not isinstance(d.result, Failure):
                    return d  # an answer: passed on as is, no second Deferred
                result = []
                d.addBoth(result.append)
                outcome = result[0]
                if isinstance(outcome, Failure):
                    if outcome.check(DomainError):
                        continue
                    return defer.fail(outcome)
                return defer.succeed(outcome)
            return d.addErrback(self._next, query, index)
        return defer.fail(ServFail("no next plugin found"))

    def _next(self, failure, query, index):
        failure.trap(DomainError)
        return self._try(query, index)

    def __repr__(self):
        return "FallthroughChain(%r)" % (self.resolvers,)


def link(terminal_or_wrapper_kind, instance, rest):
    """
    One step of the build: a terminal joins the chain in front of C{rest};
    a wrapper already wraps C{rest} (its setup got it as C{next}).
    """
    if terminal_or_wrapper_kind == "terminal":
        members = rest.resolvers if isinstance(rest, FallthroughChain) else ([rest] if rest else [])
        return FallthroughChain([instance] + members)
    return instance
