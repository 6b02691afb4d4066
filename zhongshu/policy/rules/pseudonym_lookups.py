"""Rule: a pseudonymised column is compared only for equality, and then as a pseudonym."""

from __future__ import annotations

from sqlglot import exp

from zhongshu.errors import ColumnNotGranted
from zhongshu.policy.context import Context, DatasetRef, LookupSite
from zhongshu.policy.lookups import normalise
from zhongshu.policy.masking import PSEUDONYM_FN, key_id

_RANGE = (exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Like, exp.ILike, exp.Between, exp.RegexpLike,
          exp.SimilarTo, exp.Glob)


def _pseudonymized(col: exp.Column, ctx: Context) -> tuple[DatasetRef, str, str] | None:
    """The reference, pseudonym key id and normalisation of ``col``, if the caller reads it
    as a pseudonym."""
    ref = ctx.resolve(col)
    if ref is None or ref.access is None:
        return None
    mask = ref.access.masking.get(col.name.lower())
    if mask is None or mask.kind != "pseudonym":
        return None
    return ref, key_id(ctx.caller.name, ctx.purpose, mask.rotate), mask.normalise


def pseudonym_lookups(e: exp.Expr, ctx: Context) -> exp.Expr:
    """Rewrite ``plate = '浙A12345'`` (``=``, ``<>``, ``IN``) on a pseudonymised column so
    that it compares pseudonyms: the literal (or lifted parameter) becomes its pseudonym under
    the caller's key. A holder of a value can look it up; no one can scan identifiers.

    Each value so looked up is recorded in ``ctx.lookups`` (``policy.lookups``): a literal
    is replaced by its normalised text, a lifted parameter is normalised at each run, and
    every run spends the caller's lookup budget for them. This rewrite is the only place a
    caller's value is pseudonymised: any other comparison with such a column compares its
    pseudonym with the caller's raw text, and never matches.

    Returns ``e``, rewritten in place.

    Raises:
        ColumnNotGranted: a range, pattern or regular-expression comparison on such a column.
    """
    for node in list(e.find_all(exp.EQ, exp.NEQ, exp.In, *_RANGE)):
        cols = [c for c in (node.this, node.args.get("expression")) if isinstance(c, exp.Column)]
        for col in cols:
            found = _pseudonymized(col, ctx)
            if found is None:
                continue
            ref, kid, kind = found
            grant = ref.access.grant if ref.access else None
            if isinstance(node, _RANGE):
                raise ColumnNotGranted(
                    f"column `{col.name}` of `{ref.dataset.name}` is granted to "
                    f"`{ctx.caller.name}` as a pseudonym: compare it only for equality with a "
                    "value you already hold")
            others = node.expressions if isinstance(node, exp.In) else [
                node.expression if node.this is col else node.this]
            for other in others:
                if not isinstance(other, (exp.Literal, exp.Placeholder)):
                    continue
                value = other.copy()
                if isinstance(other, exp.Literal):
                    value = exp.Literal.string(normalise(kind, other.this))
                if grant is not None:  # an owner's own data is never pseudonymised for it
                    ctx.lookups.append(LookupSite(
                        grant=grant, normalise=kind, caller=ctx.caller.name,
                        parameter=other.name if isinstance(other, exp.Placeholder) else None,
                        value=value.this if isinstance(value, exp.Literal) else None))
                other.replace(exp.func(PSEUDONYM_FN, exp.Literal.string(kid),
                                       exp.cast(value, "VARCHAR")))
    return e
