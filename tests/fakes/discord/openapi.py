"""Requests checked against Discord's own OpenAPI description (`spec/openapi.json`).

`OpenApi.load()` reads and indexes the description once per process (it is 1.2 MB); each
operation's body and query validators are built on first use and cached, so a request costs one
route match plus one `jsonschema` pass over its (small) body. `check()` returns `Violation`s naming
the route, the JSON path and the schema rule; the fake answers them with Discord's 400 50035 and
the e2e fixture fails the test that sent them.

Where the description and Discord disagree:
- Snowflakes are strings in the description, but Discord accepts JSON integers for them in requests
  and discord.py sends some that way (attachment ids, allowed_mentions users), so an integer >= 0
  is accepted wherever a `SnowflakeType` is expected.
- The description is looser than the docs on a few limits (message `content` up to 4000, the docs
  and bots: 2000); `validate.py` keeps enforcing the stricter documented limits on top of this.
- The docs describe INTEGER options as "between -2^53 and 2^53"; the description's `Int53Type`
  (min_value, max_value, choices) is stricter, +-(2^53 - 1), and is what we follow.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from .state import Json
from .validate import ApiError, error_leaf, invalid_form_body

SPEC_PATH = Path(__file__).with_name("spec") / "openapi.json"
_SPEC_URI = "urn:discord:openapi"
# Discord accepts both spellings for boolean query parameters (discord.py sends with_counts=1).
_BOOL_STRINGS = {"true": True, "True": True, "1": True, "false": False, "False": False, "0": False}
# jsonschema keyword -> the error code Discord puts in a 50035 body for the same kind of problem.
_DISCORD_CODES = {
    "maxLength": "BASE_TYPE_MAX_LENGTH",
    "minLength": "BASE_TYPE_MIN_LENGTH",
    "maxItems": "BASE_TYPE_MAX_LENGTH",
    "minItems": "BASE_TYPE_MIN_LENGTH",
    "maximum": "NUMBER_TYPE_MAX",
    "minimum": "NUMBER_TYPE_MIN",
    "required": "BASE_TYPE_REQUIRED",
    "enum": "BASE_TYPE_CHOICES",
    "const": "BASE_TYPE_CHOICES",
    "type": "BASE_TYPE_INVALID_TYPE",
    "pattern": "BASE_TYPE_BAD_FORMAT",
}


@dataclass(frozen=True)
class Violation:
    """One way a request breaks the description."""

    route: str  # "POST /channels/{channel_id}/messages", the description's template
    where: str  # "body", "query" or "route"
    path: tuple[str | int, ...]  # JSON path inside the body (or the query parameter's name)
    rule: str  # the schema keyword and its value, e.g. "maximum: 9007199254740991"
    message: str

    @property
    def json_path(self) -> str:
        """`$.data.components[0].custom_id`."""
        return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in self.path)

    def __str__(self) -> str:
        return f"{self.route}: {self.where} {self.json_path}: {self.message} [{self.rule}]"


@dataclass
class Operation:
    """One `METHOD /template` of the description and its lazily built validators."""

    method: str
    template: str
    pattern: re.Pattern[str]
    literals: int  # fixed segments; "/messages/@original" beats "/messages/{message_id}"
    pointer: str  # JSON pointer to the operation object
    spec: Json
    params: list[Json]
    _bodies: dict[str, Any] = field(default_factory=dict)
    _queries: dict[str, Any] | None = None

    @property
    def route(self) -> str:
        """`METHOD /template`."""
        return f"{self.method} {self.template}"


class OpenApi:
    """The indexed description; `check()` validates one request."""

    def __init__(self, spec: Json) -> None:
        _accept_integer_snowflakes(spec)
        _dispatch_unions(spec, spec["components"]["schemas"])
        self.spec = spec
        resource = Resource.from_contents(spec, default_specification=DRAFT202012)
        self.registry: Registry[Any] = Registry().with_resource(_SPEC_URI, resource)
        self.base = spec["servers"][0]["url"].removeprefix("https://discord.com")
        # (method, number of segments) -> operations, most literal segments first
        self._ops: dict[tuple[str, int], list[Operation]] = {}
        for template, item in spec["paths"].items():
            shared = item.get("parameters", [])
            for method, op in item.items():
                if method == "parameters" or not isinstance(op, dict):
                    continue
                segments = template.strip("/").split("/")
                regex = "/".join("[^/]+" if s.startswith("{") else re.escape(s) for s in segments)
                pointer = f"#/paths/{_escape(template)}/{method}"
                operation = Operation(
                    method=method.upper(),
                    template=template,
                    pattern=re.compile(f"^/{regex}$"),
                    literals=sum(not s.startswith("{") for s in segments),
                    pointer=pointer,
                    spec=op,
                    params=[*shared, *op.get("parameters", [])],
                )
                self._ops.setdefault((operation.method, len(segments)), []).append(operation)
        for ops in self._ops.values():
            ops.sort(key=lambda o: -o.literals)

    @classmethod
    @functools.cache
    def load(cls, path: Path = SPEC_PATH) -> OpenApi:
        """The description at `path`, read and indexed once per process."""
        return cls(json.loads(path.read_text()))

    def match(self, method: str, path: str) -> Operation | None:
        """The operation for `GET /api/v10/channels/123/messages` (or the path without the base)."""
        sub = path.removeprefix(self.base)
        for op in self._ops.get((method.upper(), len(sub.strip("/").split("/"))), []):
            if op.pattern.match(sub):
                return op
        return None

    def check(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        body: Any,
        content_type: str | None,
    ) -> list[Violation]:
        """Every way this request breaks the description (empty if Discord would accept it)."""
        op = self.match(method, path)
        if op is None:
            route = f"{method} {path}"
            return [Violation(route, "route", (), "paths", "no such operation in the description")]
        return [*self._check_query(op, query), *self._check_body(op, body, content_type)]

    # ------------------------------------------------------------ internals
    def _validator(self, pointer: str) -> Any:
        # A wrapper `$ref` makes refs inside the subschema resolve against the whole description.
        schema = {"$ref": f"{_SPEC_URI}{pointer}"}
        return _Validator(schema, registry=self.registry)

    def _check_body(self, op: Operation, body: Any, content_type: str | None) -> list[Violation]:
        request_body = op.spec.get("requestBody")
        if request_body is None:
            return []  # Discord ignores a body on routes that take none
        if body is None:
            if request_body.get("required") and content_type is None:
                return [Violation(op.route, "body", (), "required", "a request body is required")]
            return []
        ctype = (content_type or "application/json").split(";")[0].strip()
        if ctype not in op._bodies:
            if ctype in request_body["content"]:
                ptr = f"{op.pointer}/requestBody/content/{_escape(ctype)}/schema"
                op._bodies[ctype] = self._validator(ptr)
            else:
                op._bodies[ctype] = None
        validator = op._bodies[ctype]
        if validator is None:
            accepted = ", ".join(request_body["content"])
            msg = f"content type {ctype} is not accepted (accepted: {accepted})"
            return [Violation(op.route, "body", (), "requestBody.content", msg)]
        return [_violation(op.route, "body", e, body) for e in _errors(validator, body)]

    def _check_query(self, op: Operation, query: Mapping[str, str]) -> list[Violation]:
        if op._queries is None:
            op._queries = {}
            for i, param in enumerate(op.spec.get("parameters", [])):
                if param.get("in") == "query":
                    ptr = f"{op.pointer}/parameters/{i}/schema"
                    op._queries[param["name"]] = self._validator(ptr)
        out: list[Violation] = []
        for name, raw in query.items():
            validator = op._queries.get(name)
            if validator is None:
                continue  # Discord ignores query parameters an operation does not declare
            candidates: list[Any] = [raw]
            if re.fullmatch(r"-?\d+", raw):
                candidates.insert(0, int(raw))
            if raw in _BOOL_STRINGS:
                candidates.insert(0, _BOOL_STRINGS[raw])
            found = [list(_errors(validator, c)) for c in candidates]
            if all(found):
                err = found[0][0]
                out.append(_violation(op.route, "query", err, None, prefix=(name,)))
        return out


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _accept_integer_snowflakes(spec: Json) -> None:
    schemas = spec["components"]["schemas"]
    as_string = schemas["SnowflakeType"]
    if "anyOf" in as_string:
        return
    schemas["SnowflakeType"] = {
        "anyOf": [as_string, {"type": "integer", "minimum": 0, "maximum": 2**64 - 1}]
    }


_UNION = "x-flexbot-union"


def _dispatch_unions(node: Any, schemas: Json) -> None:
    """Rewrite unions to validate one branch only: same verdicts, much faster, clearer errors.

    The description spells enums as `oneOf` of `const`s (-> `enum`) and component/option unions as
    `oneOf` of objects told apart by their `type` tag (-> our `x-flexbot-union` keyword, which
    checks the tag and then only the branch it names). A oneOf tries every branch and reports them
    all; with disjoint tags only one branch can match, so checking just that one is equivalent.
    """
    if isinstance(node, list):
        for item in node:
            _dispatch_unions(item, schemas)
        return
    if not isinstance(node, dict):
        return
    for value in node.values():
        _dispatch_unions(value, schemas)
    for keyword in ("oneOf", "anyOf"):
        branches = node.get(keyword)
        if not isinstance(branches, list) or not branches:
            continue
        consts = [b.get("const") for b in branches if isinstance(b, dict) and "const" in b]
        if len(consts) == len(branches) and len(set(map(repr, consts))) == len(consts):
            del node[keyword]
            node["enum"] = consts
            continue
        tags = [_type_tags(b, schemas) for b in branches]
        flat = [t for ts in tags if ts is not None for t in ts]
        if None in tags or len(set(flat)) != len(flat):
            continue  # not a tagged union (or tags overlap): leave it to jsonschema
        del node[keyword]
        node[_UNION] = [[ts, branch] for ts, branch in zip(tags, branches, strict=True)]


def _union(
    validator: Any, union: list[list[Any]], instance: Any, schema: Json
) -> Iterator[ValidationError]:
    """The `x-flexbot-union` keyword: check the `type` tag, then the one branch it selects."""
    if not validator.is_type(instance, "object"):
        yield ValidationError(
            f"{instance!r} is not of type 'object'", validator="type", validator_value="object"
        )
        return
    if "type" not in instance:
        yield ValidationError(
            "'type' is a required property", validator="required", validator_value=["type"]
        )
        return
    tag = instance["type"]
    for index, (tags, branch) in enumerate(union):
        if any(t == tag and type(t) is type(tag) for t in tags):
            yield from validator.descend(instance, branch, schema_path=index)
            return
    allowed = sorted(t for tags, _ in union for t in tags)
    yield ValidationError(
        f"{tag!r} is not one of {allowed}",
        validator="enum",
        validator_value=allowed,
        instance=tag,
        path=["type"],
    )


_Validator = validators.extend(Draft202012Validator, {_UNION: _union})


def _type_tags(branch: Any, schemas: Json) -> list[Any] | None:
    """The `type` values an object branch accepts (`{"type": {"enum": [4]}}`), if it has any."""
    if not isinstance(branch, dict):
        return None
    ref = branch.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        branch = schemas.get(ref.rsplit("/", 1)[-1], {})
    if branch.get("type") != "object" or "type" not in branch.get("required", []):
        return None
    tag = branch.get("properties", {}).get("type", {})
    if "enum" in tag:
        return list(tag["enum"])
    if "const" in tag:
        return [tag["const"]]
    return None


def _errors(validator: Any, instance: Any) -> Iterable[ValidationError]:
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.path)))
    return [_explain(e) for e in errors]


def _dead(errors: Sequence[ValidationError]) -> bool:
    """A union branch the instance is plainly not: wrong JSON type, or a mismatched `type` tag."""
    for e in errors:
        rel = list(e.relative_path)
        if e.validator == "type" and not rel:
            return True
        if e.validator in ("enum", "const") and rel == ["type"]:
            return True
    return False


def _explain(err: ValidationError) -> ValidationError:
    """Descend through oneOf/anyOf into the one branch the instance was meant to be."""
    while err.context:
        branches: dict[Any, list[ValidationError]] = {}
        for sub in err.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        live = [errs for errs in branches.values() if not _dead(errs)]
        if len(live) != 1:
            break
        err = best_match(live[0])
    return err


def _violation(
    route: str, where: str, err: ValidationError, root: Any, prefix: tuple[str | int, ...] = ()
) -> Violation:
    path: tuple[str | int, ...] = (*prefix, *err.absolute_path)
    value = err.validator_value
    if err.validator in ("oneOf", "anyOf"):
        names = [str(b.get("$ref", b.get("type", "?"))).rsplit("/", 1)[-1] for b in value]
        rule = f"{err.validator}: {', '.join(names)}"
        message = f"{_short(err.instance)} matches none of the allowed forms"
    else:
        rule = err.validator if isinstance(value, dict) else f"{err.validator}: {json.dumps(value)}"
        message = err.message
        shown = repr(err.instance)
        if message.startswith(shown) and len(shown) > 80:
            message = _short(err.instance) + message[len(shown) :]
    names = _names_along(root, list(err.absolute_path))
    if names:
        message += f" (in {' > '.join(names)})"
    return Violation(route, where, path, str(rule), message)


def _names_along(root: Any, path: list[str | int]) -> list[str]:
    """The `name`s (commands, options) or `custom_id`s (components) of objects the path crosses."""
    out: list[str] = []
    node = root
    for key in path:
        if isinstance(node, dict):
            label = node.get("name", node.get("custom_id"))
            if isinstance(label, str) and node is not root:
                out.append(repr(label))
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            break
    return out


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


def refusal(violations: Sequence[Violation]) -> ApiError:
    """Discord's 400 50035 Invalid Form Body, errors nested at each violation's path."""
    errors: Json = {}
    for v in violations:
        node = errors
        for key in v.path:
            node = node.setdefault(str(key), {})
        leaf = error_leaf(_DISCORD_CODES.get(v.rule.split(":")[0], "BASE_TYPE_INVALID"), str(v))
        node.setdefault("_errors", []).extend(leaf["_errors"])
    return invalid_form_body(errors)
