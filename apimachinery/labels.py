"""Label selectors: the `?labelSelector=` string syntax and the API type `LabelSelector`.

List and watch requests filter by a selector string (`app=web,tier!=db,env in (a,b),!legacy`),
and PVCs, Services and the like carry a structured `LabelSelector` (matchLabels and
matchExpressions). Both become the same `Selector`, a conjunction of requirements, with the
semantics of k8s.io/apimachinery/pkg/labels: the parser, its error messages, the validation
of keys and values, and the matching rules (a missing key satisfies `!=` and `notin`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from apimachinery import names
from apimachinery.errors import Cause


class SelectorError(ValueError):
    """A selector string or LabelSelector that Kubernetes would refuse; message as Kubernetes'."""


class Operator(str, Enum):
    """selection.Operator values."""

    IN = "in"
    NOT_IN = "notin"
    EQUALS = "="
    DOUBLE_EQUALS = "=="
    NOT_EQUALS = "!="
    EXISTS = "exists"
    DOES_NOT_EXIST = "!"
    GREATER_THAN = "gt"
    LESS_THAN = "lt"


_BINARY_OPERATORS = "in, notin, =, ==, !=, gt, lt"
_SET_OPERATORS = (Operator.IN, Operator.NOT_IN)
_EXACT_OPERATORS = (Operator.EQUALS, Operator.DOUBLE_EQUALS, Operator.NOT_EQUALS)
_ORDER_OPERATORS = (Operator.GREATER_THAN, Operator.LESS_THAN)


@dataclass(frozen=True)
class Requirement:
    """One `key op values` term; values are kept sorted and unique, as Kubernetes does."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator in (Operator.IN, Operator.EQUALS, Operator.DOUBLE_EQUALS):
            return present and labels[self.key] in self.values
        if self.operator in (Operator.NOT_IN, Operator.NOT_EQUALS):
            return not present or labels[self.key] not in self.values
        if self.operator is Operator.EXISTS:
            return present
        if self.operator is Operator.DOES_NOT_EXIST:
            return not present
        return present and self._compare(labels[self.key])

    def _compare(self, label_value: str) -> bool:
        wanted, actual = _go_int(self.values[0]) if len(self.values) == 1 else None, \
            _go_int(label_value)
        if wanted is None or actual is None:
            return False
        return actual > wanted if self.operator is Operator.GREATER_THAN else actual < wanted

    def __str__(self) -> str:
        if self.operator is Operator.DOES_NOT_EXIST:
            return f"!{self.key}"
        if self.operator is Operator.EXISTS:
            return self.key
        if self.operator in _SET_OPERATORS:
            return f"{self.key} {self.operator.value} ({','.join(self.values)})"
        symbol = {Operator.GREATER_THAN: ">", Operator.LESS_THAN: "<"}.get(
            self.operator, self.operator.value)
        return f"{self.key}{symbol}{self.values[0] if self.values else ''}"


@dataclass(frozen=True)
class Selector:
    """A conjunction of requirements; `nothing` marks the selector that matches no object."""

    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.nothing:
            return False
        present = labels or {}
        return all(r.matches(present) for r in self.requirements)

    def empty(self) -> bool:
        return not self.requirements and not self.nothing

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


EVERYTHING = Selector()
NOTHING = Selector(nothing=True)


def _go_int(text: str) -> int | None:
    """strconv.ParseInt(text, 10, 64): optional sign and ASCII digits, within int64."""
    body = text[1:] if text[:1] in ("+", "-") else text
    if not body or not body.isascii() or not body.isdigit():
        return None
    value = int(text)
    return value if -(2**63) <= value < 2**63 else None


# --- requirement construction (labels.NewRequirement) ---------------------------------------

def _key_error(key: str, path: str) -> Cause | None:
    errs = names.is_qualified_name(key)
    return names.invalid(path, key, "; ".join(errs)) if errs else None


def new_requirement(key: str, operator: Operator, values: Iterable[str],
                    path: str = "") -> Requirement:
    """Build a requirement, raising SelectorError with Kubernetes' aggregated message."""
    vals = sorted(set(values))
    causes = _requirement_causes(key, operator, vals, path)
    if causes:
        raise SelectorError(_aggregate(causes))
    return Requirement(key, operator, tuple(vals))


def _requirement_causes(key: str, operator: Operator, vals: list[str], path: str) -> list[Cause]:
    causes = [c for c in [_key_error(key, _child(path, "key"))] if c]
    values_path = _child(path, "values")
    shown = "[]string{" + ", ".join(names.go_quote(v) for v in vals) + "}"
    if operator in _SET_OPERATORS and not vals:
        causes.append(Cause(values_path, f"Invalid value: {shown}: for 'in', 'notin' "
                                  "operators, values set can't be empty", names.INVALID))
    elif operator in _EXACT_OPERATORS and len(vals) != 1:
        causes.append(Cause(values_path, f"Invalid value: {shown}: exact-match "
                                  "compatibility requires one single value", names.INVALID))
    elif operator in (Operator.EXISTS, Operator.DOES_NOT_EXIST) and vals:
        causes.append(Cause(values_path, f"Invalid value: {shown}: values set must be "
                                  "empty for exists and does not exist", names.INVALID))
    elif operator in _ORDER_OPERATORS:
        causes += _order_causes(vals, values_path, shown)
    for i, value in enumerate(vals):
        errs = names.is_valid_label_value(value)
        if errs:
            causes.append(names.invalid(f"{values_path}[{i}][{key}]", value, "; ".join(errs)))
    return causes


def _order_causes(vals: list[str], values_path: str, shown: str) -> list[Cause]:
    causes = []
    if len(vals) != 1:
        causes.append(Cause(values_path, f"Invalid value: {shown}: for 'Gt', 'Lt' "
                                  "operators, exactly one value is required", names.INVALID))
    for i, value in enumerate(vals):
        if _go_int(value) is None:
            causes.append(names.invalid(f"{values_path}[{i}]", value,
                                        "for 'Gt', 'Lt' operators, the value must be an integer"))
    return causes


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _aggregate(causes: list[Cause]) -> str:
    """utilerrors.Aggregate text: one error alone, several in brackets, duplicates dropped."""
    texts = list(dict.fromkeys(f"{c.field or '<nil>'}: {c.message}" for c in causes))
    return texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"


# --- the selector string parser (labels.Parse) ----------------------------------------------

_SPECIAL = "=!(),><"
_WHITESPACE = " \t\r\n"
_SYMBOLS = {")": ")", ",": ",", "!": "!", "==": "==", "=": "=", ">": ">", "<": "<", "!=": "!=",
            "(": "("}
_KEYWORDS = ("in", "notin")
_IDENT = "identifier"
_END = "end"
_ERROR = "error"


@dataclass(frozen=True)
class _Token:
    kind: str  # a symbol, a keyword, _IDENT, _END or _ERROR
    text: str


def _lex(s: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while True:
        while pos < len(s) and s[pos] in _WHITESPACE:
            pos += 1
        if pos >= len(s):
            tokens.append(_Token(_END, ""))
            return tokens
        if s[pos] in _SPECIAL:
            token, pos = _lex_symbol(s, pos)
        else:
            end = pos
            while end < len(s) and s[end] not in _SPECIAL and s[end] not in _WHITESPACE:
                end += 1
            word = s[pos:end]
            token, pos = _Token(word if word in _KEYWORDS else _IDENT, word), end
        tokens.append(token)


def _lex_symbol(s: str, pos: int) -> tuple[_Token, int]:
    """Longest known symbol starting at pos, as Kubernetes' scanSpecialSymbol reads it."""
    buffer, best, best_end = "", None, pos
    end = pos
    while end < len(s) and s[end] in _SPECIAL:
        buffer += s[end]
        end += 1
        if buffer in _SYMBOLS:
            best, best_end = buffer, end
        elif best is not None:
            break
    if best is None:
        return _Token(_ERROR, f"error expected: keyword found '{buffer}'"), end
    return _Token(best, best), best_end


class _Parser:
    """Recursive-descent parser over the token list, mirroring labels.Parser."""

    def __init__(self, text: str) -> None:
        self.tokens = _lex(text)
        self.pos = 0

    def peek(self, values: bool = True) -> _Token:
        return self._as_value(self.tokens[self.pos], values)

    def take(self, values: bool = True) -> _Token:
        token = self.tokens[self.pos]
        self.pos = min(self.pos + 1, len(self.tokens) - 1)
        return self._as_value(token, values)

    @staticmethod
    def _as_value(token: _Token, values: bool) -> _Token:
        # in a value position "in" and "notin" are ordinary identifiers
        if values and token.kind in _KEYWORDS:
            return _Token(_IDENT, token.text)
        return token

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            token = self.peek()
            if token.kind == _END:
                return requirements
            if token.kind not in (_IDENT, "!"):
                raise SelectorError(
                    f"found '{token.text}', expected: !, identifier, or 'end of string'")
            requirements.append(self._requirement_or_raise())
            after = self.take()
            if after.kind == _END:
                return requirements
            if after.kind != ",":
                raise SelectorError(f"found '{after.text}', expected: ',' or 'end of string'")
            following = self.peek()
            if following.kind not in (_IDENT, "!"):
                raise SelectorError(f"found '{following.text}', expected: identifier after ','")

    def _requirement_or_raise(self) -> Requirement:
        try:
            return self._requirement()
        except SelectorError as err:
            raise SelectorError(f"unable to parse requirement: {err}") from None

    def _requirement(self) -> Requirement:
        key, operator = self._key_and_inferred_operator()
        if operator is not None:
            return new_requirement(key, operator, [])
        operator = self._operator()
        if operator in _SET_OPERATORS:
            return new_requirement(key, operator, self._set_values())
        return new_requirement(key, operator, self._exact_value())

    def _key_and_inferred_operator(self) -> tuple[str, Operator | None]:
        token = self.take()
        negated = token.kind == "!"
        if negated:
            token = self.take()
        if token.kind != _IDENT:
            raise SelectorError(f"found '{token.text}', expected: identifier")
        error = _key_error(token.text, "")
        if error:
            raise SelectorError(f"<nil>: {error.message}")
        if negated:
            return token.text, Operator.DOES_NOT_EXIST
        if self.peek().kind in (_END, ","):
            return token.text, Operator.EXISTS
        return token.text, None

    def _operator(self) -> Operator:
        token = self.take(values=False)
        operators = {"in": Operator.IN, "notin": Operator.NOT_IN, "=": Operator.EQUALS,
                     "==": Operator.DOUBLE_EQUALS, "!=": Operator.NOT_EQUALS,
                     ">": Operator.GREATER_THAN, "<": Operator.LESS_THAN}
        if token.kind not in operators:
            raise SelectorError(f"found '{token.text}', expected: {_BINARY_OPERATORS}")
        return operators[token.kind]

    def _set_values(self) -> set[str]:
        token = self.take()
        if token.kind != "(":
            raise SelectorError(f"found '{token.text}' expected: '('")
        token = self.peek()
        if token.kind == ")":
            self.take()
            return {""}
        if token.kind not in (_IDENT, ","):
            raise SelectorError(f"found '{token.text}', expected: ',', ')' or identifier")
        values = self._identifier_list()
        if self.take().kind != ")":
            raise SelectorError(f"found '{token.text}', expected: ')'")
        return values

    def _identifier_list(self) -> set[str]:
        values: set[str] = set()
        while True:
            token = self.take()
            if token.kind == _IDENT:
                values.add(token.text)
                following = self.peek()
                if following.kind == ")":
                    return values
                if following.kind != ",":
                    raise SelectorError(f"found '{following.text}', expected: ',' or ')'")
            elif token.kind == ",":
                # "(,", ",," and ",)" each stand for an empty value
                following = self.peek()
                if not values or following.kind in (")", ","):
                    values.add("")
                if following.kind == ")":
                    return values
                if following.kind == ",":
                    self.take()
            else:
                raise SelectorError(f"found '{token.text}', expected: ',', or identifier")

    def _exact_value(self) -> list[str]:
        if self.peek().kind in (_END, ","):
            return [""]
        token = self.take()
        if token.kind == _IDENT:
            return [token.text]
        raise SelectorError(f"found '{token.text}', expected: identifier")


def parse(selector: str) -> Selector:
    """Parse a `labelSelector` query string; raises SelectorError as labels.Parse fails."""
    requirements = _Parser(selector).parse()
    return Selector(tuple(sorted(requirements, key=lambda r: r.key)))


# --- metav1.LabelSelector ---------------------------------------------------------------------

_API_OPERATORS = {"In": Operator.IN, "NotIn": Operator.NOT_IN, "Exists": Operator.EXISTS,
                  "DoesNotExist": Operator.DOES_NOT_EXIST}


def from_label_selector(selector: Mapping[str, Any] | None) -> Selector:
    """metav1.LabelSelectorAsSelector: None matches nothing, an empty selector everything."""
    if selector is None:
        return NOTHING
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    if not match_labels and not expressions:
        return EVERYTHING
    requirements = [new_requirement(k, Operator.EQUALS, [v]) for k, v in match_labels.items()]
    for expr in expressions:
        operator = _API_OPERATORS.get(expr.get("operator", ""))
        if operator is None:
            raise SelectorError(f"{names.go_quote(str(expr.get('operator', '')))} is not a valid "
                                "label selector operator")
        requirements.append(new_requirement(expr.get("key", ""), operator,
                                            expr.get("values") or []))
    return Selector(tuple(sorted(requirements, key=lambda r: r.key)))


def validate_label_selector(selector: Mapping[str, Any] | None, path: str) -> list[Cause]:
    """metav1 validation's ValidateLabelSelector for a LabelSelector in an object."""
    if selector is None:
        return []
    causes = names.validate_labels(selector.get("matchLabels"), f"{path}.matchLabels")
    for i, expr in enumerate(selector.get("matchExpressions") or []):
        causes += _validate_expression(expr, f"{path}.matchExpressions[{i}]")
    return causes


def _validate_expression(expr: Mapping[str, Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    operator, values = expr.get("operator", ""), expr.get("values") or []
    if operator in ("In", "NotIn"):
        if not values:
            causes.append(names.required(f"{path}.values",
                                         "must be specified when `operator` is 'In' or 'NotIn'"))
    elif operator in ("Exists", "DoesNotExist"):
        if values:
            causes.append(names.forbidden(f"{path}.values", "may not be specified when "
                                          "`operator` is 'Exists' or 'DoesNotExist'"))
    else:
        causes.append(names.invalid(f"{path}.operator", operator, "not a valid selector operator"))
    key = expr.get("key", "")
    causes += [names.invalid(f"{path}.key", key, m) for m in names.is_qualified_name(key)]
    for i, value in enumerate(values):
        causes += [names.invalid(f"{path}.values[{i}]", value, m)
                   for m in names.is_valid_label_value(value)]
    return causes


__all__ = ["EVERYTHING", "NOTHING", "Operator", "Requirement", "Selector", "SelectorError",
           "from_label_selector", "new_requirement", "parse", "validate_label_selector"]
