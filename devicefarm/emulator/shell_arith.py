"""``$((...))`` of the emulated phone's shell: mksh's integer arithmetic, 32-bit signed with wrap-around.

Operators by precedence, as mksh's ``expr.c`` orders them: ``( )``, unary ``+ - ! ~``; ``* / %``; ``+ -``;
``<< >>``; ``< <= > >=``; ``== !=``; ``&``; ``^``; ``|``; ``&&``; ``||``; ``?:``. Numbers are decimal,
``0x`` hexadecimal or ``BASE#DIGITS`` (base 2 to 36); a name is a shell variable (unset or empty: 0) whose
value must be such a number. Division truncates toward zero; shifts take the count modulo 32. Assignments
(``=``, ``+=``, ``++``, ``--``) and the comma are refused as unsupported. Errors are worded as mksh words
them after the expression: ``1/0: zero divisor``, ``1+: unexpected 'end of expression'``,
``08x: bad number '08x'``.
"""

from __future__ import annotations

import re
from typing import Callable

_TOKEN = re.compile(r"\s*(?:(?P<number>[0-9][0-9A-Za-z_#]*)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|"
                    r"(?P<op><<=|>>=|\+\+|--|\+=|-=|\*=|/=|%=|&=|\^=|\|=|<<|>>|<=|>=|==|!=|&&|\|\||"
                    r"[-+*/%<>=!~&^|?:(),]))")
_UNSUPPORTED = {"=", "+=", "-=", "*=", "/=", "%=", "<<=", ">>=", "&=", "^=", "|=", "++", "--", ","}
# binary operators: precedence (higher binds tighter)
_BINARY = {"*": 10, "/": 10, "%": 10, "+": 9, "-": 9, "<<": 8, ">>": 8, "<": 7, "<=": 7, ">": 7, ">=": 7,
           "==": 6, "!=": 6, "&": 5, "^": 4, "|": 3, "&&": 2, "||": 1}
_TERNARY_PRECEDENCE = 0


class ArithError(ValueError):
    """An expression mksh would refuse; the message is what it prints after the shell's name."""


def wrap32(value: int) -> int:
    """``value`` as a 32-bit signed integer (two's complement wrap-around)."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def parse_number(text: str) -> int | None:
    """A decimal, ``0x`` hexadecimal or ``BASE#DIGITS`` literal as a 32-bit value; None if it is not one."""
    base, digits = 10, text
    if re.fullmatch(r"0[xX][0-9A-Fa-f]+", text):
        base, digits = 16, text[2:]
    elif "#" in text:
        base_text, _, digits = text.partition("#")
        if not base_text.isdigit() or not 2 <= int(base_text) <= 36:
            return None
        base = int(base_text)
    try:
        return wrap32(int(digits, base)) if digits and "_" not in digits else None
    except ValueError:
        return None


def _divide(left: int, right: int) -> int:
    quotient = abs(left) // abs(right)
    return -quotient if (left < 0) != (right < 0) else quotient


def _apply(op: str, left: int, right: int) -> int:
    if op in ("/", "%") and right == 0:
        raise ZeroDivisionError
    results: dict[str, Callable[[], int]] = {
        "*": lambda: left * right, "/": lambda: _divide(left, right),
        "%": lambda: left - _divide(left, right) * right, "+": lambda: left + right, "-": lambda: left - right,
        "<<": lambda: left << (right & 31), ">>": lambda: left >> (right & 31), "<": lambda: int(left < right),
        "<=": lambda: int(left <= right), ">": lambda: int(left > right), ">=": lambda: int(left >= right),
        "==": lambda: int(left == right), "!=": lambda: int(left != right), "&": lambda: left & right,
        "^": lambda: left ^ right, "|": lambda: left | right, "&&": lambda: int(bool(left) and bool(right)),
        "||": lambda: int(bool(left) or bool(right))}
    return wrap32(results[op]())


class _Parser:
    def __init__(self, expression: str, variable: Callable[[str], str]):
        self.expression, self.variable = expression, variable
        self.tokens: list[tuple[str, str]] = []
        position = 0
        while expression[position:].strip():
            match = _TOKEN.match(expression, position)
            if match is None:
                raise self.error(f"unexpected '{expression[position:].strip()[0]}'")
            kind = match.lastgroup
            self.tokens.append((kind, match.group(kind)))
            position = match.end()
        self.index = 0

    def error(self, message: str) -> ArithError:
        return ArithError(f"{self.expression}: {message}")

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise self.error("unexpected 'end of expression'")
        if token[0] == "op" and token[1] in _UNSUPPORTED:
            raise self.error(f"'{token[1]}' is not supported by the emulated shell (no assignments or commas "
                             "in $((...)))")
        self.index += 1
        return token

    def value_of(self, kind: str, text: str) -> int:
        if kind == "number":
            value = parse_number(text)
            if value is None:
                raise self.error(f"bad number '{text}'")
            return value
        raw = self.variable(text).strip()
        if not raw:
            return 0
        value = parse_number(raw.lstrip("+-"))
        if value is None:
            raise self.error(f"bad number '{raw}'")
        return wrap32(-value) if raw.startswith("-") else value

    def primary(self) -> int:
        kind, text = self.take()
        if kind != "op":
            return self.value_of(kind, text)
        if text in ("+", "-", "!", "~"):
            operand = self.primary()
            return {"+": operand, "-": wrap32(-operand), "!": int(not operand), "~": wrap32(~operand)}[text]
        if text == "(":
            value = self.expression_at(_TERNARY_PRECEDENCE)
            if self.peek() != ("op", ")"):
                raise self.error("missing )")
            self.index += 1
            return value
        raise self.error(f"unexpected '{text}'")

    def expression_at(self, minimum: int) -> int:
        left = self.primary()
        while (token := self.peek()) is not None and token[0] == "op":
            op = token[1]
            if op == "?" and minimum <= _TERNARY_PRECEDENCE:
                self.index += 1
                chosen = self.expression_at(_TERNARY_PRECEDENCE)
                if self.peek() != ("op", ":"):
                    raise self.error("missing :")
                self.index += 1
                other = self.expression_at(_TERNARY_PRECEDENCE)
                left = chosen if left else other
                continue
            precedence = _BINARY.get(op)
            if precedence is None or precedence < minimum:
                if op in _UNSUPPORTED:
                    self.take()  # raises the refusal
                break
            self.index += 1
            right = self.expression_at(precedence + 1)
            try:
                left = _apply(op, left, right)
            except ZeroDivisionError:
                raise self.error("zero divisor") from None
        return left


def evaluate(expression: str, variable: Callable[[str], str]) -> int:
    """The value of ``expression`` (the text between ``$((`` and ``))``, already parameter-expanded);
    ``variable(name)`` is a shell variable's value ("" when unset). ArithError as mksh words it."""
    parser = _Parser(expression, variable)
    if not parser.tokens:
        return 0
    value = parser.expression_at(_TERNARY_PRECEDENCE)
    token = parser.peek()
    if token is not None:
        parser.take()  # an unsupported operator is refused as such
        raise parser.error(f"unexpected '{token[1]}'")
    return value
