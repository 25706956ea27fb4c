# -*- test-case-name: tests.test_config -*-
"""
From a parsed Corefile to a running configuration (a "generation").

Two steps, so that C{kdns check} and reload can stop after the first:

  1. L{check}: every directive known and available, once-only plugins used
     once, each plugin's C{parse} run, zones not served twice.  Pure; all
     errors are collected, not just the first.
  2. L{build}: each block's plugins set up innermost first (reverse
     plugin.cfg order) and linked into one resolver; listeners grouped by
     address and port.  Background work is only attached, not started.
"""

from twisted_kdns import registry
from twisted_kdns.chain import FallthroughChain, link
from twisted_kdns.corefile import parse_file, parse_text
from twisted_kdns.errors import ConfigError, ConfigErrors
from twisted_kdns.plugin import BlockContext, ServerOptions


class BlockPlan(object):
    """A server block with each plugin's parsed configuration."""

    def __init__(self, block, configs):
        self.block = block
        self.configs = configs  # {name: config}, plugin.cfg order


class Plan(object):
    def __init__(self, corefile, blocks):
        self.corefile = corefile
        self.blocks = blocks


def _plan_block(block, errors):
    configs = {}
    for name, directives in block.by_name().items():
        first = directives[0]
        try:
            module = registry.load(name)
        except registry.UnknownPlugin:
            errors.append(first.error("Unknown directive '%s'" % (name,)))
            continue
        except registry.UnavailablePlugin:
            errors.append(first.error("plugin %s is not available in this version of kdns" % (name,)))
            continue
        if getattr(module, "ONCE", False) and len(directives) > 1:
            errors.append(directives[1].error("this plugin can only be used once per Server Block", plugin=name))
            continue
        try:
            configs[name] = module.parse(directives)
        except ConfigError as e:
            if e.plugin is None:
                e.plugin = name
            errors.append(e)
        except (ValueError, TypeError) as e:  # a parser's unforeseen bad input: still file:line
            errors.append(first.error("invalid argument: %s" % (e,), plugin=name))
    ordered = {n: configs[n] for n in registry.ordered(configs)}
    return BlockPlan(block, ordered)


def bind_addresses(plan):
    """The block's listen addresses as declared by C{bind} (empty = all)."""
    cfg = plan.configs.get("bind")
    return list(getattr(cfg, "addresses", ())) if cfg is not None else []


def _check_duplicates(plans, errors):
    """A zone+port served twice on overlapping addresses (the wildcard overlaps all)."""
    served = {}
    for plan in plans:
        addrs = bind_addresses(plan) or ["*"]
        for key in plan.block.keys:
            prior = served.setdefault((key.zone, key.port), [])
            if any(a == b or "*" in (a, b) for a in addrs for b in prior):
                errors.append(ConfigError("cannot serve %r - it is already defined" % (key,),
                                          key.token.file, key.token.line))
            prior.extend(addrs)


def check(corefile):
    """
    Validate a parsed Corefile without side effects.

    @return: a L{Plan}.
    @raise ConfigErrors: every problem found.
    """
    errors = []
    plans = [_plan_block(block, errors) for block in corefile.blocks]
    if not plans and not errors:
        errors.append(ConfigError("no server blocks", corefile.path, 1))
    _check_duplicates(plans, errors)
    if errors:
        raise ConfigErrors(errors)
    return Plan(corefile, plans)


def load(path=None, text=None, dns_port=53, environ=None):
    """Parse and check a Corefile from a file or a string."""
    if text is not None:
        corefile = parse_text(text, path or "Corefile", dns_port, environ)
    else:
        corefile = parse_file(path, dns_port, environ)
    return check(corefile)


class BlockRuntime(object):
    """One built server block: its zones, its root resolver and labels."""

    def __init__(self, plan, root, ctx):
        self.plan = plan
        self.root = root
        self.ctx = ctx
        self.zones = plan.block.zones
        self.plugins = ctx.plugins
        self.any_class = "forward" in plan.configs


class Generation(object):
    """
    One configuration, built: routes per listener plus process-wide options.

    @ivar routes: C{{(address, port): {zone: BlockRuntime}}}.
    """

    def __init__(self, plan, blocks, options):
        self.plan = plan
        self.blocks = blocks
        self.options = options
        self.routes = {}
        for runtime in blocks:
            addresses = runtime.ctx.bind or [""]
            for key in runtime.plan.block.keys:
                for addr in addresses:
                    self.routes.setdefault((addr, key.port), {})[key.zone] = runtime

    @property
    def listeners(self):
        return sorted(self.routes)


def build(plan, reactor, dns_port=53):
    """
    Set up every block's plugins and link the chains.

    @raise ConfigError: a plugin's setup refused its configuration.
    """
    options = ServerOptions()
    runtimes = []
    for bplan in plan.blocks:
        ctx = BlockContext(reactor, bplan.block, options, dns_port, plan.corefile)
        rest = None
        for name in reversed(list(bplan.configs)):
            module = registry.load(name)
            nxt = rest
            if nxt is None and module.KIND == "wrapper":
                # Nothing answers after this wrapper: like CoreDNS, the end of
                # the chain is SERVFAIL "no next plugin found".
                nxt = FallthroughChain([])
            instance = module.setup(bplan.configs[name], ctx, nxt)
            ctx.plugins[name] = instance
            if module.KIND in ("terminal", "wrapper") and instance is not None:
                rest = link(module.KIND, instance, rest)
        runtimes.append(BlockRuntime(bplan, rest, ctx))
    return Generation(plan, runtimes, options)
