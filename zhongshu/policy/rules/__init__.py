"""The firewall's rules, one module each, every one ``rule(expression, ctx) -> expression``.

They run in the order of ``zhongshu.policy.firewall.RULES``; each may rely on the ones before
it (``authorize_columns`` on the references ``resolve_datasets`` found, for instance). Their
data fixtures are in ``tests/policy/rules/<rule>/``.
"""
