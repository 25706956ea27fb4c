"""
One module (or package) per Corefile directive; see L{twisted_kdns.registry}
for the contract (C{KIND}, C{ONCE}, C{parse}, C{setup}).
"""
