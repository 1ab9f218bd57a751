"""Chat templates: render a model's Jinja template in a sandbox, as transformers' apply_chat_template does.

The environment matches transformers 5 (utils/chat_template_utils.py): jinja2's
ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks and the loopcontrols extension, a
`tojson` filter that keeps non-ASCII text, the globals `raise_exception`, `strftime_now`, `dict` and
`namespace`, and a `{% generation %}` block that renders its body unchanged. Templates come from
the internet, so on top of the sandbox every render is bounded: the output is produced as a stream
and stops past `max_chars`, operations that would build a string, list or integer past that size
are refused before they allocate, and loops, calls and attribute lookups check a time limit.
Every failure of a template surfaces as ChatTemplateError.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import json
import re
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Callable, Iterator, Sequence

import jinja2
import jinja2.exceptions
import jinja2.ext
import jinja2.nodes
import jinja2.runtime
import jinja2.sandbox
import jinja2.utils
import numpy as np
from jinja2.compiler import CodeGenerator, Frame

from slmcore.errors import ChatTemplateError, InvalidArgumentError

# 1 MiB of text, plus room proportional to the conversation (a template may echo each message a few times).
MAX_RENDERED_CHARS = 1 << 20
INPUT_ECHO_FACTOR = 4
# A template renders in milliseconds; this bounds loops that produce nothing.
RENDER_TIME_LIMIT_S = 10.0
# Integers a template may build (bits); 2**65536 is already far beyond any legitimate use.
MAX_INT_BITS = 1 << 16
# tojson indentation: templates use 2 or 4; a huge indent multiplies the output before we can count it.
MAX_JSON_INDENT = 64

# Names of a message's reasoning text; transformers copies the first one found under all of them.
_REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")
# A run of 7+ digits in a format string is a width or precision of a million characters or more.
_HUGE_FORMAT_FIELD = re.compile(r"\d{7,}")


@dataclasses.dataclass
class _RenderBudget:
    max_chars: int
    time_limit_s: float
    deadline: float = 0.0

    def __post_init__(self) -> None:
        self.deadline = time.monotonic() + self.time_limit_s

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise ChatTemplateError(
                f"the chat template ran longer than the time limit ({self.time_limit_s:g} s) and was stopped; "
                "check it for a runaway loop"
            )

    def check_size(self, value: Any) -> Any:
        if isinstance(value, (str, list, tuple, dict)) and len(value) > self.max_chars:
            raise _too_big(self.max_chars)
        if type(value) is int and value.bit_length() > MAX_INT_BITS:
            raise ChatTemplateError("the chat template built an integer too large to render; it was stopped")
        return value

    def check_planned(self, size: int) -> None:
        if size > self.max_chars:
            raise _too_big(self.max_chars)


def _too_big(max_chars: int) -> ChatTemplateError:
    return ChatTemplateError(
        f"the chat template produced more than {max_chars} characters and was stopped; "
        "check it for a runaway loop, or shorten the conversation"
    )


_budget: contextvars.ContextVar[_RenderBudget | None] = contextvars.ContextVar("slmcore_chat_budget", default=None)


def _current_budget() -> _RenderBudget:
    budget = _budget.get()
    if budget is None:  # a compiled template used outside render_chat_template
        raise ChatTemplateError("chat templates can only be rendered through slmcore.chat.render_chat_template")
    return budget


def _sized(value: Any) -> int:
    try:
        return len(value)
    except TypeError:
        return 0


def _check_str_method(method: Any, args: tuple, kwargs: dict) -> None:
    """Refuse str methods whose result would exceed the budget, before they allocate it."""
    owner = getattr(method, "__self__", None)
    if not isinstance(owner, str):
        return
    budget = _current_budget()
    name = getattr(method, "__name__", "")
    if name in ("ljust", "rjust", "center", "zfill") and args and isinstance(args[0], int):
        budget.check_planned(args[0])
    elif name == "expandtabs":
        tabsize = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(tabsize, int):
            budget.check_planned(len(owner) + owner.count("\t") * max(tabsize, 0))
    elif name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        count = owner.count(args[0]) if args[0] else len(owner) + 1
        budget.check_planned(len(owner) + count * max(len(args[1]) - len(args[0]), 0))
    elif name == "join" and args and isinstance(args[0], (list, tuple)):
        budget.check_planned(sum(_sized(item) for item in args[0]) + len(owner) * len(args[0]))
    # str.format and str.format_map are checked in _BoundedSandbox.getattr: jinja2 wraps them before the call.


def _checked_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse `*`, `**`, `+` and `%` whose result would exceed the budget."""
    budget = _current_budget()
    if operator == "*":
        for sequence, count in ((left, right), (right, left)):
            if isinstance(sequence, (str, list, tuple)) and isinstance(count, int):
                budget.check_planned(len(sequence) * max(count, 0))
        if type(left) is int and type(right) is int and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise ChatTemplateError("the chat template built an integer too large to render; it was stopped")
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0:
            if max(abs(left).bit_length() - 1, 0) * right > MAX_INT_BITS:
                raise ChatTemplateError("the chat template built an integer too large to render; it was stopped")
    elif operator == "+":
        if isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
            budget.check_planned(len(left) + len(right))
    elif operator == "%":
        if isinstance(left, str) and _HUGE_FORMAT_FIELD.search(left):
            raise ChatTemplateError("the chat template used a format width of a million characters or more")


class _BoundedRange:
    """range() for templates: the sandbox's limit of 100000 items, and a time check while iterating."""

    def __init__(self, *args: int):
        self._range = jinja2.sandbox.safe_range(*args)

    def __iter__(self) -> Iterator[int]:
        budget = _current_budget()
        for index, value in enumerate(self._range):
            if index & 1023 == 0:
                budget.check_time()
            yield value

    def __len__(self) -> int:
        return len(self._range)

    def __getitem__(self, index: Any) -> Any:
        return self._range[index]

    def __contains__(self, value: Any) -> bool:
        return value in self._range

    def __reversed__(self) -> Iterator[int]:
        return reversed(self._range)

    def __repr__(self) -> str:
        return repr(self._range)


def _raise_exception(message: Any) -> None:
    raise ChatTemplateError(f"the chat template rejected the conversation: {message}")


def _tojson(
    value: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None, sort_keys: bool = False
) -> str:
    # Unlike jinja2's own tojson this does not HTML-escape, and it exposes json.dumps' layout options.
    indent_chars = indent if isinstance(indent, int) else len(indent) if isinstance(indent, str) else 0
    if indent_chars > MAX_JSON_INDENT:
        raise ChatTemplateError(f"the chat template asked tojson for an indent above {MAX_JSON_INDENT}")
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(format: str) -> str:
    return datetime.now().strftime(format)


class _TemplateDict:
    """`dict` in templates: builds dicts, without exposing the dict type itself."""

    def __call__(self, *args: Any, **kwargs: Any) -> dict:
        return dict(*args, **kwargs)

    def fromkeys(self, *args: Any, **kwargs: Any) -> dict:
        return dict.fromkeys(*args, **kwargs)


class _TemplateNamespace(jinja2.utils.Namespace):
    """`namespace` in templates: no underscore-prefixed attributes, and values within the size budget."""

    def __init__(*args: Any, **kwargs: Any) -> None:  # same signature trick as jinja2's Namespace
        self, args = args[0], args[1:]
        attrs = dict(*args, **kwargs)
        for name, value in attrs.items():
            _TemplateNamespace._check(name, value)
        jinja2.utils.Namespace.__init__(self, attrs)

    def __setitem__(self, name: str, value: Any) -> None:
        _TemplateNamespace._check(name, value)
        jinja2.utils.Namespace.__setitem__(self, name, value)

    @staticmethod
    def _check(name: Any, value: Any) -> None:
        if isinstance(name, str) and name.startswith("_"):
            raise jinja2.exceptions.SecurityError(
                f"chat templates cannot store underscore-prefixed attributes on a namespace (got {name!r})"
            )
        _current_budget().check_size(value)


class _GenerationBlock(jinja2.ext.Extension):
    """`{% generation %}...{% endgeneration %}`: marks assistant text for training masks; renders its body as is."""

    tags = {"generation"}

    def parse(self, parser: Any) -> jinja2.nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.Scope(body).set_lineno(lineno)


class _BoundedCodeGenerator(CodeGenerator):
    """Compiles `a ~ b` through the environment, so string concatenation is size-checked too."""

    def visit_Concat(self, node: jinja2.nodes.Concat, frame: Frame) -> None:
        self.write("environment.bounded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class _BoundedSandbox(jinja2.sandbox.ImmutableSandboxedEnvironment):
    """transformers' sandbox plus size and time checks on calls, operators, concatenation and lookups."""

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _current_budget().check_time()
        _checked_binop(operator, left, right)
        return _current_budget().check_size(super().call_binop(context, operator, left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 (jinja2's signature)
        budget = _current_budget()
        budget.check_time()
        _check_str_method(__obj, args, kwargs)
        return budget.check_size(super().call(__context, __obj, *args, **kwargs))

    def getattr(self, obj: Any, attribute: str) -> Any:
        _current_budget().check_time()
        if isinstance(obj, str) and attribute in ("format", "format_map") and _HUGE_FORMAT_FIELD.search(obj):
            raise ChatTemplateError("the chat template used a format width of a million characters or more")
        return super().getattr(obj, attribute)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        # jinja2 returns an Undefined that only fails when used; a template reaching for internals is hostile,
        # so fail at once (transformers renders such an access as an empty string).
        raise jinja2.exceptions.SecurityError(
            f"access to attribute {attribute!r} of a {type(obj).__name__!r} object is not allowed"
        )

    def getitem(self, obj: Any, argument: Any) -> Any:
        _current_budget().check_time()
        return super().getitem(obj, argument)

    @staticmethod
    def bounded_concat(parts: Sequence[Any]) -> str:
        budget = _current_budget()
        strings = [str(part) for part in parts]
        budget.check_planned(sum(len(s) for s in strings))
        return "".join(strings)


# What jinja2 passes to filters marked pass_context / pass_eval_context / pass_environment.
_PASSED_STATE = (jinja2.runtime.Context, jinja2.nodes.EvalContext, jinja2.Environment)


def _bounded_filter(name: str, function: Callable) -> Callable:
    """Wrap a jinja2 filter with the time check and a size check of its result (and of its arguments where cheap)."""

    @functools.wraps(function)  # keeps jinja2's pass_context/pass_eval_context marker
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        budget = _current_budget()
        budget.check_time()
        values = [a for a in args if not isinstance(a, _PASSED_STATE)]
        if name == "center" and len(values) >= 2 and isinstance(values[1], int):
            budget.check_planned(values[1])
        elif name == "indent" and values and isinstance(values[0], str):
            width = values[1] if len(values) >= 2 else kwargs.get("width", 4)
            width_chars = width if isinstance(width, int) else len(str(width))
            budget.check_planned(len(values[0]) + (values[0].count("\n") + 1) * max(width_chars, 0))
        elif name == "join" and values and isinstance(values[0], (list, tuple)):
            separator = values[1] if len(values) >= 2 else kwargs.get("d", "")
            budget.check_planned(sum(_sized(v) for v in values[0]) + _sized(separator) * len(values[0]))
        elif name == "replace" and len(values) >= 3 and all(isinstance(v, str) for v in values[:3]):
            text, old, new = values[:3]
            count = text.count(old) if old else len(text) + 1
            budget.check_planned(len(text) + count * max(len(new) - len(old), 0))
        elif name == "format" and values and isinstance(values[0], str) and _HUGE_FORMAT_FIELD.search(values[0]):
            raise ChatTemplateError("the chat template used a format width of a million characters or more")
        return budget.check_size(function(*args, **kwargs))

    return wrapper


def _make_environment() -> jinja2.Environment:
    environment = _BoundedSandbox(
        trim_blocks=True, lstrip_blocks=True, extensions=[_GenerationBlock, jinja2.ext.loopcontrols]
    )
    environment.filters["tojson"] = _tojson
    for name, function in list(environment.filters.items()):
        environment.filters[name] = _bounded_filter(name, function)
    environment.globals["raise_exception"] = _raise_exception
    environment.globals["strftime_now"] = _strftime_now
    environment.globals["dict"] = _TemplateDict()
    environment.globals["namespace"] = _TemplateNamespace
    environment.globals["range"] = _BoundedRange
    return environment


_ENVIRONMENT = _make_environment()


@functools.lru_cache(maxsize=32)
def _compile(template: str) -> jinja2.Template:
    try:
        return _ENVIRONMENT.from_string(template)
    except jinja2.exceptions.TemplateSyntaxError as error:
        raise ChatTemplateError(
            f"the chat template has a syntax error at line {error.lineno}: {error.message}"
        ) from None
    except jinja2.exceptions.TemplateError as error:
        raise ChatTemplateError(f"the chat template cannot be compiled: {error}") from None


# --- template data -------------------------------------------------------------------------------


def _plain_data(value: Any) -> Any:
    """Rebuild a value from JSON types only (as transformers does), so templates never see rich objects."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, Mapping):
        return {_plain_data(key): _plain_data(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain_data(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_plain_data(item) for item in value)
    if isinstance(value, np.generic):  # np.bool_(False) must not become a truthy placeholder
        return _plain_data(value.item())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: _plain_data(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if callable(getattr(value, "model_dump", None)):  # pydantic models, e.g. the OpenAI SDK's messages
        return _plain_data(value.model_dump())
    return f"<{type(value).__name__}>"


def _input_chars(value: Any, depth: int = 0) -> int:
    """Characters of text in the template's inputs (sizes the output budget)."""
    if isinstance(value, str):
        return len(value)
    if depth > 32:
        return 0
    if isinstance(value, Mapping):
        return sum(_input_chars(k, depth + 1) + _input_chars(v, depth + 1) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return sum(_input_chars(v, depth + 1) for v in value)
    return 0


def validate_messages(messages: Any) -> list[dict]:
    """Check OpenAI-style messages and return them as transformers passes them to templates (None values dropped).

    Each message is a dict with a str `role` and a `content` that is a str, a list of content parts
    (dicts such as {"type": "text", "text": ...}), or absent/None (an assistant turn with tool_calls).
    Other keys (name, tool_calls, tool_call_id, reasoning_content, ...) pass through unchanged.
    """
    if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Sequence):
        raise InvalidArgumentError(
            f"messages must be a list of dicts like {{'role': 'user', 'content': 'hi'}}, got {type(messages).__name__}"
        )
    if len(messages) == 0:
        raise InvalidArgumentError("messages is empty: give at least one message")
    normalized = []
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise InvalidArgumentError(
                f"messages[{index}] must be a dict with 'role' and 'content', got {type(message).__name__}"
            )
        for key in message:
            if not isinstance(key, str):
                raise InvalidArgumentError(f"messages[{index}] has a non-string key {key!r}")
        role = message.get("role")
        if not isinstance(role, str):
            raise InvalidArgumentError(f"messages[{index}]['role'] must be a string such as 'user', got {role!r}")
        content = message.get("content")
        if isinstance(content, (list, tuple)):
            for part_index, part in enumerate(content):
                if not isinstance(part, Mapping) or not isinstance(part.get("type"), str):
                    raise InvalidArgumentError(
                        f"messages[{index}]['content'][{part_index}] must be a content part like "
                        f"{{'type': 'text', 'text': '...'}}, got {part!r}"
                    )
        elif content is not None and not isinstance(content, str):
            raise InvalidArgumentError(
                f"messages[{index}]['content'] must be a string or a list of content parts, "
                f"got {type(content).__name__}"
            )
        normalized.append({key: value for key, value in message.items() if value is not None})
    return normalized


def _alias_reasoning(messages: list[dict]) -> list[dict]:
    # transformers fills `reasoning_content` (and `thinking`, which gpt-oss templates read) from whichever is set.
    aliased = []
    for message in messages:
        reasoning = next((message[key] for key in _REASONING_FIELDS if message.get(key) is not None), None)
        if reasoning is not None:
            message = {"thinking": reasoning, **message, "reasoning_content": reasoning}
        aliased.append(message)
    return aliased


def _template_line(error: BaseException) -> str:
    traceback = error.__traceback__
    line = None
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename == "<template>":
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    return f" (template line {line})" if line is not None else ""


def render_chat_template(
    template: str,
    messages: Any,
    *,
    add_generation_prompt: bool = False,
    tools: list[dict] | None = None,
    documents: list[dict] | None = None,
    max_chars: int | None = None,
    time_limit_s: float | None = None,
    **variables: Any,
) -> str:
    """Render `template` for `messages` exactly as transformers' apply_chat_template(tokenize=False) does.

    `variables` (bos_token, eos_token, and any template-specific switches) are visible to the template.
    Raises InvalidArgumentError for malformed inputs and ChatTemplateError for anything the template does wrong.
    """
    if not isinstance(template, str):
        raise InvalidArgumentError(f"a chat template must be a string, got {type(template).__name__}")
    if not isinstance(add_generation_prompt, bool):
        raise InvalidArgumentError(f"add_generation_prompt must be True or False, got {add_generation_prompt!r}")
    chat = _alias_reasoning(validate_messages(messages))
    if tools is not None:
        if not isinstance(tools, (list, tuple)) or not all(isinstance(tool, Mapping) for tool in tools):
            raise InvalidArgumentError("tools must be a list of JSON-schema dicts")
    if documents is not None:
        if not isinstance(documents, (list, tuple)) or not all(isinstance(doc, Mapping) for doc in documents):
            raise InvalidArgumentError("documents must be a list of dicts (e.g. with 'title' and 'text')")

    context = {
        "messages": _plain_data(chat),
        "tools": _plain_data(tools),
        "documents": _plain_data(documents),
        "add_generation_prompt": add_generation_prompt,
        **_plain_data(variables),
    }
    if max_chars is None:
        max_chars = MAX_RENDERED_CHARS + INPUT_ECHO_FACTOR * _input_chars(context)
    budget = _RenderBudget(max_chars, RENDER_TIME_LIMIT_S if time_limit_s is None else time_limit_s)

    compiled = _compile(template)
    token = _budget.set(budget)
    pieces: list[str] = []
    total = 0
    stream = compiled.generate(**context)
    try:
        for piece in stream:
            total += len(piece)
            if total > budget.max_chars:
                raise _too_big(budget.max_chars)
            pieces.append(piece)
    except ChatTemplateError:
        raise
    except jinja2.exceptions.SecurityError as error:
        raise ChatTemplateError(
            f"the chat template tried something the sandbox forbids{_template_line(error)}: {error}"
        ) from None
    except jinja2.exceptions.UndefinedError as error:
        raise ChatTemplateError(f"the chat template used an undefined value{_template_line(error)}: {error}") from None
    except jinja2.exceptions.TemplateError as error:
        raise ChatTemplateError(f"the chat template failed{_template_line(error)}: {error}") from None
    except OverflowError as error:  # the sandbox's range() limit, or arithmetic overflow
        raise ChatTemplateError(f"the chat template overflowed{_template_line(error)}: {error}") from None
    except RecursionError:
        raise ChatTemplateError("the chat template recursed too deeply and was stopped") from None
    except MemoryError:
        raise ChatTemplateError("the chat template ran out of memory and was stopped") from None
    except Exception as error:  # any other error raised inside the template's code (TypeError, KeyError, ...)
        raise ChatTemplateError(
            f"the chat template failed{_template_line(error)}: {type(error).__name__}: {error}"
        ) from None
    finally:
        stream.close()
        _budget.reset(token)
    return "".join(pieces)


__all__ = ["MAX_RENDERED_CHARS", "RENDER_TIME_LIMIT_S", "render_chat_template", "validate_messages"]
