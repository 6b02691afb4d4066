"""Rule: find the identifiers of people a query names, and how it narrows the datasets
with identifying columns (``policy.subjects``); nothing is rewritten or refused here."""

from __future__ import annotations

from sqlglot import exp

from zhongshu.policy.context import Context
from zhongshu.policy.subjects import Slot, Subjects, slot_of


def _kinds(ctx: Context) -> dict[str, dict[str, str]]:
    """Dataset name → identifying column → kind, for the datasets the query reads."""
    out: dict[str, dict[str, str]] = {}
    for r in ctx.refs:
        cols = {c.name: str(c.identifies) for c in r.dataset.columns if c.identifies}
        if cols:
            out[r.dataset.name] = cols
    return out


def _conjuncts(e: exp.Expr) -> list[exp.Expr]:
    """The terms of a conjunction, parentheses removed (``(a AND (b)) AND c`` → a, b, c)."""
    e = e.unnest()
    if isinstance(e, exp.And):
        return [*_conjuncts(e.this), *_conjuncts(e.expression)]
    return [e]


def _narrowing(alias: str, select: exp.Select | None, cols: dict[str, str],
               ctx: Context) -> tuple[Slot, ...]:
    """The values ``select``'s own WHERE, as a conjunction, sets one of the reference's
    identifying columns equal to."""
    where = select.args.get("where") if select is not None else None
    if where is None:
        return ()
    out: list[Slot] = []
    for conj in _conjuncts(where.this):
        if not isinstance(conj, exp.EQ):
            continue
        sides = (conj.this, conj.expression)
        for col, other in (sides, sides[::-1]):
            if not isinstance(col, exp.Column) or col.name.lower() not in cols:
                continue
            ref = ctx.resolve(col)
            slot = slot_of(other, (cols[col.name.lower()],))
            if ref is not None and ref.alias == alias and slot is not None:
                out.append(slot)
    return tuple(out)


def subject_lookups(e: exp.Expr, ctx: Context) -> exp.Expr:
    """Find the identifiers a query may name (before pseudonyms replace its literals) and
    how each identifying dataset it reads is narrowed; kept on the context for the plan
    (:class:`Subjects`). Never rewrites or refuses: the wall for people is applied to each
    run's values (:func:`check_person`), since a plan serves every value of its shape."""
    kinds = _kinds(ctx)
    if not kinds:
        ctx.subjects = Subjects()
        return e
    wanted = tuple(sorted({k for cols in kinds.values() for k in cols.values()}))
    slots = [s for node in e.find_all(exp.Literal, exp.Placeholder)
             if (s := slot_of(node, wanted)) is not None]
    narrowings = []
    for table in e.find_all(exp.Table):
        ref = ctx.ref_of(table)
        if ref is not None and ref.dataset.name in kinds:
            narrowings.append((ref.dataset.name, _narrowing(
                ref.alias, table.find_ancestor(exp.Select), kinds[ref.dataset.name], ctx)))
    ctx.subjects = Subjects(tuple(slots), tuple(narrowings))
    return e
