"""A CRM answer that is not the shape its API documents: a clear error, never a KeyError.

A proxy, a captive portal or a broken gateway can answer with well-formed JSON of the
wrong shape (`{"records": 5}`, `{"results": "ok"}`). The connectors check the parts
they read here and raise `MalformedAnswer`, naming the call and what was found, so the
run ends with exit 3 (the CRM could not really be reached) instead of a traceback.
Shapes: Salesforce REST query results (`records` list, `done` boolean, `totalSize`
number, `nextRecordsUrl` while not done), https://developer.salesforce.com/docs/
atlas.en-us.api_rest.meta/api_rest/resources_query.htm; HubSpot CRM v3 lists and
batches (`results` list, `paging.next.after`, `errors` list),
https://developers.hubspot.com/docs/api/crm/understanding-the-crm
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from icp_engine.connectors.errors import ConnectError


class MalformedAnswer(ConnectError):
    """The CRM (or something in front of it) answered in a shape its API never sends."""


def _found(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _type_name(kinds: type | tuple[type, ...]) -> str:
    names = {"list": "a list", "bool": "true/false", "int": "a number", "str": "text"}
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    return " or ".join(names.get(k.__name__, k.__name__) for k in kinds)


def expect(answer: Any, call: str, **fields: type | tuple[type, ...]) -> Mapping[str, Any]:
    """`answer` if it is an object whose `fields` have the given types; else `MalformedAnswer`."""
    if not isinstance(answer, Mapping):
        msg = f"{call}: the answer is {_found(answer)}, not a JSON object; is a proxy in the way?"
        raise MalformedAnswer(msg)
    for name, kinds in fields.items():
        value = answer.get(name)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in _tuple(kinds)):
            msg = (
                f"{call}: the answer's {name!r} is {_found(value)}, expected "
                f"{_type_name(kinds)}; is a proxy in the way?"
            )
            raise MalformedAnswer(msg)
    return answer


def _tuple(kinds: type | tuple[type, ...]) -> tuple[type, ...]:
    return kinds if isinstance(kinds, tuple) else (kinds,)


def salesforce_page(answer: Any, call: str, first: bool = False) -> Mapping[str, Any]:
    """A query page: `records` list, `done` flag, `nextRecordsUrl` when not done."""
    page = expect(answer, call, records=list, done=bool)
    if first:
        expect(page, call, totalSize=int)
    if not page["done"]:
        expect(page, call, nextRecordsUrl=str)
    return page


def hubspot_body(body: Mapping[str, Any], call: str) -> Mapping[str, Any]:
    """A HubSpot answer body: `results`/`errors` lists and `paging` objects where present."""
    for name in ("results", "errors"):
        if name in body and body[name] is not None:
            expect(body, call, **{name: list})
    paging = body.get("paging")
    if paging is not None:
        expect(body, call, paging=dict)
        following = paging.get("next")
        if following is not None:
            expect(following, f"{call} (paging.next)")
    return body
