"""``bsp check`` of ``record NAME { field = .. }`` (E130, W017).

Any field name is taken (the route's own values); here: the step needs a name and a field (E130), and a
classified value would be kept in clear in the deal's ``recorded`` event (W017)
(docs/language.md#record-values-of-the-route-kept-with-the-deal).
"""
from __future__ import annotations

from typing import Any

from dsl import ast as A


def check_record(chk: Any, s: A.PluginStep, scope: Any) -> None:
    name = s.name.name if s.name is not None else None
    if name is None or not s.assigns:
        chk.error("E130", "`record` needs a name and at least one field: the deal's event names the record, the "
                  "fields are what it keeps", s.kind.pos,
                  "write `record commission { policy = trim(msg.policy_no)  commission = commission }`")
        return
    for a in s.assigns:
        for src in chk._sources(a.value, scope):
            chk.warn("W017", f"`record {name}`: {chk._src_text(src)} is kept in field `{a.path}` of the deal's "
                     f"`recorded` event, which the ledger stores as it is: the value is kept in clear",
                     src.pos or a.value.pos,
                     "record a value that is not classified (a reference, an amount), or its mask or digest")
