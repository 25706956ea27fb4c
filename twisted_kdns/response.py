# -*- test-case-name: tests.test_server -*-
"""
L{Response}: what a resolver decided, before it becomes a wire message.

Twisted resolvers return C{(answers, authority, additional)}; that loses the
header bits an upstream chose (RA, AD, AA) and the rcode.  A L{Response}
unpacks like that tuple, so Twisted-style code keeps working, and carries the
bits too.  Responses are shared by the cache: never mutate one, build a new
one with L{Response.replace}.
"""


class Response(object):
    __slots__ = ("answers", "authority", "additional", "rcode", "aa", "ra", "ad", "plugin")

    def __init__(self, answers=(), authority=(), additional=(), rcode=0,
                 aa=True, ra=False, ad=False, plugin=""):
        self.answers = answers
        self.authority = authority
        self.additional = additional
        self.rcode = rcode
        self.aa = aa
        self.ra = ra
        self.ad = ad
        self.plugin = plugin

    def __iter__(self):
        return iter((self.answers, self.authority, self.additional))

    def replace(self, **kw):
        """A copy with some fields changed (copy before mutate)."""
        new = Response.__new__(Response)
        for slot in Response.__slots__:
            setattr(new, slot, kw[slot] if slot in kw else getattr(self, slot))
        return new

    def __repr__(self):
        return "<Response rcode=%d an=%d ns=%d ar=%d aa=%s ra=%s>" % (
            self.rcode, len(self.answers), len(self.authority),
            len(self.additional), self.aa, self.ra)


def as_response(result):
    """
    Normalise a resolver result: a L{Response} is returned as is; a Twisted
    3-tuple becomes a NOERROR response, authoritative when any record says so.
    """
    if isinstance(result, Response):
        return result
    answers, authority, additional = result
    aa = any(rr.auth for rr in answers) or any(rr.auth for rr in authority)
    return Response(answers, authority, additional, aa=aa)
