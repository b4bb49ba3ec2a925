"""The expression language of `categorised_as` and `satisfying`: a small SQL
subset over earlier columns ("age >= 18 AND (asthma OR copd) AND sex = 'F'").

As in cohort-extractor, a column stands for its written value (missing values are
already 0, 0.0 or the empty string), and a column used alone, outside a comparison
or arithmetic, means "is not empty" (`asthma` is `asthma != 0`)."""

import re

_TOKENS = re.compile(
    r"""\s*(?:
        (?P<comment>--[^\n]*|\#\ [^\n]*|/\*[\s\S]*?\*/)
      | (?P<number>\d+\.\d*|\.\d+|\d+)
      | (?P<string>'[^']*'|"[^"]*")
      | (?P<comparison>>=|<=|!=|<>|=|<|>)
      | (?P<operator>[-+*/])
      | (?P<paren>[()])
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)
_SAFE_STRING = re.compile(r"^[a-zA-Z0-9_ <>=~]*$")
KEYWORDS = ("AND", "OR", "NOT")


class InvalidExpressionError(ValueError):
    pass


def tokenize(expression):
    tokens, pos = [], 0
    text = expression.rstrip()
    while pos < len(text):
        m = _TOKENS.match(text, pos)
        if not m or m.end() == pos:
            raise InvalidExpressionError(f"Invalid SQL expression: {expression}: cannot read {text[pos:].strip()[:20]!r}")
        pos = m.end()
        kind = m.lastgroup
        value = m.group(kind)
        if kind == "comment":
            continue
        if kind == "string":
            inner = value[1:-1]
            if len(inner) > 64:
                raise InvalidExpressionError(f"String literals must be 64 characters or less: {inner}")
            if not _SAFE_STRING.match(inner):
                raise InvalidExpressionError(f"String literals can only contain alphanumeric characters, underscore and the comparators '<', '>', '=', and '~': {inner}")
        if kind == "word":
            if value.upper() in KEYWORDS:
                if value not in KEYWORDS:
                    raise InvalidExpressionError(f"Invalid SQL expression: {expression}: write {value.upper()} in capitals")
                kind = "keyword"
            else:
                kind = "name"
        if kind == "comparison" and value == "<>":
            raise InvalidExpressionError(f"Disallowed token in {expression}: {value} (use !=)")
        tokens.append((kind, value))
    return tokens


def with_implicit_comparisons(tokens):
    """A name with no comparison or arithmetic operator beside it becomes
    (name != <empty>), exactly as cohort-extractor rewrites it."""
    out = []
    for i, (kind, value) in enumerate(tokens):
        before = tokens[i - 1][0] if i > 0 else None
        after = tokens[i + 1][0] if i + 1 < len(tokens) else None
        if kind == "name" and "comparison" not in (before, after) and "operator" not in (before, after):
            out += [("paren", "("), (kind, value), ("comparison", "!="), ("empty", value), ("paren", ")")]
        else:
            out.append((kind, value))
    return out


class Parser:
    """Recursive descent with SQL's precedence: OR < AND < NOT < comparison <
    + - < * /. `resolve(name)` gives a column's value; `empty(name)` its empty
    value; the other callbacks combine values."""

    def __init__(self, expression, ops):
        self.expression = expression
        self.tokens = with_implicit_comparisons(tokenize(expression))
        self.pos = 0
        self.ops = ops

    def fail(self, message):
        raise InvalidExpressionError(f"Invalid SQL expression: {self.expression}: {message}")

    def peek(self):
        return self.tokens[self.pos] if self.pos < len(self.tokens) else (None, None)

    def take(self, kind=None, value=None):
        tok = self.peek()
        if tok[0] is None or (kind and tok[0] != kind) or (value and tok[1] != value):
            self.fail(f"expected {value or kind}, found {tok[1] or 'the end'}")
        self.pos += 1
        return tok

    def parse(self):
        if not self.tokens:
            self.fail("it is empty")
        result = self.disjunction()
        if self.pos != len(self.tokens):
            self.fail(f"unexpected {self.peek()[1]!r}")
        return self.ops.as_condition(result)

    def disjunction(self):
        left = self.conjunction()
        while self.peek() == ("keyword", "OR"):
            self.take()
            left = self.ops.logical("OR", left, self.conjunction())
        return left

    def conjunction(self):
        left = self.negation()
        while self.peek() == ("keyword", "AND"):
            self.take()
            left = self.ops.logical("AND", left, self.negation())
        return left

    def negation(self):
        if self.peek() == ("keyword", "NOT"):
            self.take()
            return self.ops.negate(self.negation())
        return self.comparison()

    def comparison(self):
        left = self.additive()
        if self.peek()[0] == "comparison":
            op = self.take()[1]
            right = self.additive()
            return self.ops.compare(op, left, right)
        return left

    def additive(self):
        left = self.multiplicative()
        while self.peek()[0] == "operator" and self.peek()[1] in "+-":
            op = self.take()[1]
            left = self.ops.arithmetic(op, left, self.multiplicative())
        return left

    def multiplicative(self):
        left = self.unary()
        while self.peek()[0] == "operator" and self.peek()[1] in "*/":
            op = self.take()[1]
            left = self.ops.arithmetic(op, left, self.unary())
        return left

    def unary(self):
        if self.peek() == ("operator", "-"):
            self.take()
            return self.ops.arithmetic("-", self.ops.literal(0), self.unary())
        return self.atom()

    def atom(self):
        kind, value = self.peek()
        if kind == "paren" and value == "(":
            self.take()
            inner = self.disjunction()
            self.take("paren", ")")
            return inner
        if kind == "name":
            self.take()
            return self.ops.column(value)
        if kind == "empty":
            self.take()
            return self.ops.empty(value)
        if kind == "number":
            self.take()
            return self.ops.literal(float(value) if "." in value else int(value))
        if kind == "string":
            self.take()
            return self.ops.literal(value[1:-1])
        self.fail(f"unexpected {value or 'end'}")
