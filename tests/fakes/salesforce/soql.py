"""The SOQL subset the fake Salesforce org answers: `parse_soql` checks a query against
the describe and builds a `Soql` (salesforce_soql_query.py) from the tokens of
salesforce_soql_lexer.py. Shared by the REST query endpoints and Bulk API 2.0 query jobs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.fakes.salesforce.describe import SObject
from tests.fakes.salesforce.soql_lexer import Token, like_regex, soql_error, tokenize, unescape
from tests.fakes.salesforce.soql_query import Column, Soql, compare, normalizer
from tests.fakes.salesforce.values import normalize_id, parse_datetime
from tests.fakes.salesforce.wire import ApiError

_KINDS = {
    "datetime": ("datetime", "dateTime"),
    "date": ("date", "date"),
    "int": ("number", "integer"),
    "double": ("number", "double"),
    "currency": ("number", "currency"),
    "percent": ("number", "percent"),
    "boolean": ("boolean", "boolean"),
}


def parse_soql(text: str, objects: dict[str, SObject]) -> Soql:
    """Parse (and check against the describe) the SOQL subset the fake answers."""
    return _Parser(text, objects).query()


class _Parser:
    def __init__(self, text: str, objects: dict[str, SObject]):
        self.text, self.objects = text, objects
        self.toks = tokenize(text)
        self.i = 0

    def peek(self, ahead: int = 0) -> Token:
        return self.toks[min(self.i + ahead, len(self.toks) - 1)]

    def take(self) -> Token:
        tok = self.peek()
        self.i += 1
        return tok

    def at(self, *words: str) -> bool:
        tok = self.peek()
        return tok.kind == "name" and tok.text.upper() in words

    def malformed(self, tok: Token) -> ApiError:
        shown = "<EOF>" if tok.kind == "eof" else f"'{tok.text}'"
        return soql_error("MALFORMED_QUERY", self.text, tok.pos, f"unexpected token: {shown}")

    def expect(self, word: str) -> Token:
        if not self.at(word):
            raise self.malformed(self.peek())
        return self.take()

    def name(self) -> Token:
        tok = self.take()
        if tok.kind != "name":
            raise self.malformed(tok)
        return tok

    def query(self) -> Soql:
        self.expect("SELECT")
        count_only, items = False, []
        if self.at("COUNT") and self.peek(1).text == "(" and self.peek(2).text == ")":
            self.i += 3
            count_only = True
        else:
            items.append(self.name())
            while self.peek().text == ",":
                self.take()
                items.append(self.name())
        self.expect("FROM")
        obj_tok = self.name()
        sobject = next(
            (o for k, o in self.objects.items() if k.lower() == obj_tok.text.lower()), None
        )
        if sobject is None:
            raise soql_error(
                "INVALID_TYPE",
                self.text,
                obj_tok.pos,
                f"sObject type '{obj_tok.text}' is not supported. If you are attempting"
                " to use a custom object, be sure to append the '__c' after the entity"
                " name. Please reference your WSDL or the describe call for the "
                "appropriate names.",
            )
        self.sobject = sobject
        soql = Soql(self.text, sobject, [self.column(t) for t in items], count_only)
        if self.at("WHERE"):
            self.take()
            soql.where = self.disjunction()
        if self.at("ORDER"):
            self.take()
            self.expect("BY")
            soql.order.append(self.order_item())
            while self.peek().text == ",":
                self.take()
                soql.order.append(self.order_item())
        for word in ("LIMIT", "OFFSET"):
            if self.at(word):
                self.take()
                tok = self.take()
                if tok.kind != "num" or not tok.text.isdigit():
                    raise self.malformed(tok)
                setattr(soql, word.lower(), int(tok.text))
        if self.peek().kind != "eof":
            raise self.malformed(self.peek())
        return soql

    def column(self, tok: Token) -> Column:
        parts = tok.text.split(".")
        if len(parts) == 1:
            f = self.field(self.sobject, parts[0], tok.pos)
            return Column(f["name"], f["name"], f)
        if len(parts) > 2:
            raise self.malformed(tok)
        ref = next(
            (
                f
                for f in self.sobject.fields.values()
                if f["type"] == "reference"
                and (f["relationshipName"] or "").lower() == parts[0].lower()
            ),
            None,
        )
        target = self.objects.get(ref["referenceTo"][0]) if ref and ref["referenceTo"] else None
        if ref is None or target is None:
            raise soql_error(
                "INVALID_FIELD",
                self.text,
                tok.pos,
                f"Didn't understand relationship '{parts[0]}' in field path. If you are "
                "attempting to use a custom relationship, be sure to append the '__r' "
                "after the custom relationship name. Please reference your WSDL or the "
                "describe call for the appropriate names.",
            )
        f = self.field(target, parts[1], tok.pos)
        ref_name, records = ref["name"], target.records

        def parent(rec: dict[str, Any]) -> dict[str, Any] | None:
            found = records.get(rec.get(ref_name) or "")
            return None if found is None or found.get("IsDeleted") else found

        return Column(
            f"{ref['relationshipName']}.{f['name']}",
            f["name"],
            f,
            ref["relationshipName"],
            target.name,
            parent,
        )

    def field(self, sobject: SObject, name: str, pos: int) -> dict[str, Any]:
        f = sobject.field(name)
        if f is None:
            raise soql_error(
                "INVALID_FIELD",
                self.text,
                pos,
                f"No such column '{name}' on entity '{sobject.name}'. If you are "
                "attempting to use a custom field, be sure to append the '__c' after "
                "the custom field name. Please reference your WSDL or the describe call"
                " for the appropriate names.",
            )
        return f

    def order_item(self) -> tuple[Callable[[dict[str, Any]], Any], bool]:
        tok = self.name()
        col = self.column(tok)
        desc = False
        if self.at("ASC", "DESC"):
            desc = self.take().text.upper() == "DESC"
        nulls_first = not desc
        if self.at("NULLS"):
            self.take()
            if not self.at("FIRST", "LAST"):
                raise self.malformed(self.peek())
            nulls_first = self.take().text.upper() == "FIRST"
        norm = normalizer(col.field["type"])
        null_key = (2 if nulls_first == desc else 0, 0)
        get = col.get

        def key(rec: dict[str, Any]) -> Any:
            value = get(rec)
            return null_key if value is None else (1, norm(value))

        return key, desc

    def disjunction(self) -> Callable[[dict[str, Any]], bool]:
        terms = [self.conjunction()]
        while self.at("OR"):
            self.take()
            terms.append(self.conjunction())
        return terms[0] if len(terms) == 1 else (lambda r: any(t(r) for t in terms))

    def conjunction(self) -> Callable[[dict[str, Any]], bool]:
        factors = [self.factor()]
        while self.at("AND"):
            self.take()
            factors.append(self.factor())
        return factors[0] if len(factors) == 1 else (lambda r: all(f(r) for f in factors))

    def factor(self) -> Callable[[dict[str, Any]], bool]:
        if self.at("NOT"):
            self.take()
            inner = self.factor()
            return lambda r: not inner(r)
        if self.peek().text == "(":
            self.take()
            inner = self.disjunction()
            if self.take().text != ")":
                raise self.malformed(self.toks[self.i - 1])
            return inner
        return self.condition()

    def literal(self, f: dict[str, Any], like: bool = False) -> Any:
        tok = self.take()
        upper = tok.text.upper()
        value: Any
        if tok.kind == "str":
            kind, value = "string", unescape(tok.text[1:-1], like)
        elif tok.kind == "dt":
            kind, value = "datetime", parse_datetime(tok.text)
        elif tok.kind == "date":
            kind, value = "date", tok.text
        elif tok.kind == "num":
            kind, value = "number", float(tok.text) if "." in tok.text else int(tok.text)
        elif tok.kind == "name" and upper in ("TRUE", "FALSE"):
            kind, value = "boolean", upper == "TRUE"
        elif tok.kind == "name" and upper == "NULL":
            return None
        else:
            raise self.malformed(tok)
        want, word = _KINDS.get(f["type"], ("string", "string"))
        if kind != want:
            quotes = "be" if want == "string" else "not be"
            raise soql_error(
                "INVALID_FIELD",
                self.text,
                tok.pos,
                f"value of filter criterion for field '{f['name']}' must be of type "
                f"{word} and should {quotes} enclosed in quotes",
            )
        if f["type"] in ("id", "reference"):
            value = normalize_id(value) or value
        return value

    def condition(self) -> Callable[[dict[str, Any]], bool]:
        col = self.column(self.name())
        f = col.field
        norm = normalizer(f["type"])
        get = col.get
        tok = self.take()
        if tok.kind == "op":
            value = self.literal(f)
            return compare(get, norm, "!=" if tok.text == "<>" else tok.text, value)
        negate = tok.kind == "name" and tok.text.upper() == "NOT"
        if negate:
            tok = self.take()
        word = tok.text.upper() if tok.kind == "name" else ""
        if word == "IN":
            if self.take().text != "(":
                raise self.malformed(self.toks[self.i - 1])
            values = [self.literal(f)]
            while self.peek().text == ",":
                self.take()
                values.append(self.literal(f))
            if self.take().text != ")":
                raise self.malformed(self.toks[self.i - 1])
            wanted = {None if v is None else norm(v) for v in values}

            def within(r: dict[str, Any]) -> bool:
                value = get(r)
                return (None if value is None else norm(value)) in wanted

            return (lambda r: not within(r)) if negate else within
        if word == "LIKE" and not negate:
            pattern = self.literal({"type": "string", "name": f["name"]}, like=True)
            regex = like_regex(str(pattern))
            return lambda r: (v := get(r)) is not None and regex.fullmatch(str(v)) is not None
        raise self.malformed(tok)
