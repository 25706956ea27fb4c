"""The configuration used when no Corefile is given (CoreDNS: whoami + log)."""

DEFAULT_COREFILE = """\
. {
    whoami
    log
}
"""
