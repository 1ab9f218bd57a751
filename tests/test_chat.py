"""Chat templates: rendering equals transformers' apply_chat_template; hostile templates fail cleanly."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from transformers import AutoTokenizer

import tokenizer_fixtures as fixtures
from slmcore.chat import render_chat_template
from slmcore.errors import ChatTemplateError, InvalidArgumentError
from slmcore.tokenizer import Tokenizer

# SmolLM2-Instruct's template (ChatML with a default system prompt).
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# The standard Gemma 3 instruction template.
GEMMA3_TEMPLATE = """{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'image' -%}
                {{ '<start_of_image>' }}
            {%- elif item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model\n'}}
{%- endif -%}
"""

# Llama 2 chat's template: BOS before every user turn, raise_exception on bad role order.
LLAMA2_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"
)

# tojson with non-ASCII text and transformers' extra arguments, tools, namespace, loop controls and generation.
TOOLS_TEMPLATE = """{%- set ns = namespace(count=0, names=[]) -%}
{%- if tools %}Tools: {{ tools | tojson }}
{{ tools | tojson(indent=2, sort_keys=True) }}
{% endif -%}
{%- for message in messages -%}
{%- if message.role == 'skip' %}{% continue %}{% endif -%}
{%- if message.role == 'stop' %}{% break %}{% endif -%}
{%- set ns.count = ns.count + 1 -%}
<{{ message.role }}>{{ message | tojson(separators=(',', ':')) }}
{%- if message.role == 'assistant' %}{% generation %}{{ message.content }}{% endgeneration %}{% endif %}
{% endfor -%}
count={{ ns.count }} unk={{ unk_token }} pad={{ pad_token }} custom={{ custom_flag | default('unset') }}
{{- dict(a=1, b='ü') | tojson }}{{ documents | tojson }}
{%- if add_generation_prompt %}<assistant>{% endif -%}
"""

# Indented block tags without `-`: the output depends on trim_blocks and lstrip_blocks.
WHITESPACE_TEMPLATE = """{% for message in messages %}
    {% if message['role'] == 'user' %}
    User: {{ message['content'] }}
    {% else %}
        {{ message['role'] | upper }}: {{ message['content'] }}
    {% endif %}
{% endfor %}
{% if add_generation_prompt %}
    Assistant:
{% endif %}
"""

CONVERSATIONS = {
    "system_user": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is 2+2?"},
    ],
    "user_only": [{"role": "user", "content": "Hello!"}],
    "multi_turn": [
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke."},
        {"role": "assistant", "content": "Why did the tokenizer split? It had too many merges."},
        {"role": "user", "content": "Another one"},
    ],
    "non_ascii": [
        {"role": "system", "content": "Réponds en français, s'il te plaît. 日本語も可。"},
        {"role": "user", "content": "  Ça va? 😀👨‍👩‍👧 مرحبا  "},
        {"role": "assistant", "content": "Très bien ✨\n\nEt toi?"},
        {"role": "user", "content": "\tindented\n    code\n"},
    ],
}
GEMMA_ONLY = {
    "content_parts": [
        {"role": "system", "content": [{"type": "text", "text": "Be kind."}]},
        {
            "role": "user",
            "content": [{"type": "text", "text": "  Describe  "}, {"type": "image"}, {"type": "text", "text": "this"}],
        },
    ],
}


def _with_template(source: Path, destination: Path, template) -> Path:
    shutil.copytree(source, destination)
    config_path = destination / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["chat_template"] = template
    config_path.write_text(json.dumps(config, ensure_ascii=False, indent=2), encoding="utf-8")
    return destination


@pytest.fixture(scope="session")
def chat_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("chat")
    smollm2 = fixtures.smollm2_like(root / "smollm2_plain")
    gemma = fixtures.gemma_like(root / "gemma_plain")
    tinyllama = fixtures.llama2_like(root / "tinyllama_plain")
    dirs = {
        "smollm2": _with_template(smollm2, root / "smollm2", SMOLLM2_TEMPLATE),
        "gemma3": _with_template(gemma, root / "gemma3", GEMMA3_TEMPLATE),
        "llama2": _with_template(tinyllama, root / "llama2", LLAMA2_TEMPLATE),
        "tools": _with_template(smollm2, root / "tools", TOOLS_TEMPLATE),
        "whitespace": _with_template(tinyllama, root / "whitespace", WHITESPACE_TEMPLATE),
        "no_template": smollm2,
    }
    named = [
        {"name": "default", "template": SMOLLM2_TEMPLATE},
        {"name": "tool_use", "template": TOOLS_TEMPLATE},
        {"name": "terse", "template": "{% for m in messages %}{{ m.role[0] }}:{{ m.content }};{% endfor %}"},
    ]
    dirs["named_list"] = _with_template(smollm2, root / "named_list", named)
    dirs["named_no_default"] = _with_template(smollm2, root / "named_no_default", named[1:])

    jinja_dir = _with_template(gemma, root / "jinja_file", "{{ 'from tokenizer_config' }}")
    (jinja_dir / "chat_template.jinja").write_text(GEMMA3_TEMPLATE, encoding="utf-8")
    dirs["jinja_file"] = jinja_dir
    extra_dir = _with_template(gemma, root / "jinja_extra", "{{ 'from tokenizer_config' }}")
    (extra_dir / "chat_template.jinja").write_text(GEMMA3_TEMPLATE, encoding="utf-8")
    (extra_dir / "additional_chat_templates").mkdir()
    (extra_dir / "additional_chat_templates" / "plain.jinja").write_text(
        "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}", encoding="utf-8"
    )
    dirs["jinja_extra"] = extra_dir
    return dirs


@pytest.fixture(scope="session")
def loaded(chat_dirs):
    cache = {}

    def get(name: str):
        if name not in cache:
            cache[name] = (AutoTokenizer.from_pretrained(chat_dirs[name]), Tokenizer.from_dir(chat_dirs[name]))
        return cache[name]

    return get


def _assert_same(hf, ours, messages, add_generation_prompt, **kwargs):
    expected = hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt, **kwargs)
    assert ours.apply_chat_template(messages, add_generation_prompt=add_generation_prompt, **kwargs) == expected
    expected_ids = hf.apply_chat_template(
        messages, tokenize=True, return_dict=False, add_generation_prompt=add_generation_prompt, **kwargs
    )
    assert ours.encode_chat(messages, add_generation_prompt=add_generation_prompt, **kwargs) == list(expected_ids)
    return expected


@pytest.mark.parametrize("add_generation_prompt", [True, False])
@pytest.mark.parametrize("conversation", list(CONVERSATIONS))
@pytest.mark.parametrize("name", ["smollm2", "gemma3", "tools", "whitespace"])
def test_matches_transformers(name, conversation, add_generation_prompt, loaded):
    hf, ours = loaded(name)
    _assert_same(hf, ours, CONVERSATIONS[conversation], add_generation_prompt)


@pytest.mark.parametrize("add_generation_prompt", [True, False])
def test_gemma3_content_parts(add_generation_prompt, loaded):
    hf, ours = loaded("gemma3")
    text = _assert_same(hf, ours, GEMMA_ONLY["content_parts"], add_generation_prompt)
    assert "Be kind.\n\nDescribe<start_of_image>this<end_of_turn>" in text


@pytest.mark.parametrize("conversation", ["system_user", "user_only", "multi_turn"])
def test_llama2_template(conversation, loaded):
    hf, ours = loaded("llama2")
    _assert_same(hf, ours, CONVERSATIONS[conversation], False)


def test_no_double_bos(loaded):
    """The template writes BOS; encode_chat adds no second one (transformers uses add_special_tokens=False)."""
    for name in ("gemma3", "llama2"):
        hf, ours = loaded(name)
        messages = CONVERSATIONS["user_only"]
        ids = ours.encode_chat(messages)
        assert ids[0] == ours.bos_token_id
        assert ids[1] != ours.bos_token_id
        assert ids.count(ours.bos_token_id) == 1
        assert ours.encode(ours.apply_chat_template(messages))[:2] == [ours.bos_token_id] * 2  # what encode would do


def test_roles_must_alternate(loaded):
    bad = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    for name in ("gemma3", "llama2"):
        hf, ours = loaded(name)
        with pytest.raises(Exception, match="Conversation roles must alternate"):
            hf.apply_chat_template(bad, tokenize=False)
        with pytest.raises(ChatTemplateError, match="Conversation roles must alternate"):
            ours.apply_chat_template(bad)


def test_tools_documents_and_extra_variables(loaded):
    hf, ours = loaded("tools")
    tools = [
        {
            "type": "function",
            "function": {
                "name": "météo",
                "description": "Température à Zürich — °C",
                "parameters": {"type": "object", "properties": {"ville": {"type": "string"}}},
            },
        }
    ]
    documents = [{"title": "Доклад", "text": "中文 text"}]
    messages = [
        {"role": "skip", "content": "hidden"},
        {"role": "user", "content": "Quel temps fait-il à Zürich? 🌦"},
        {"role": "assistant", "content": None, "tool_calls": [{"name": "météo", "arguments": {"ville": "Zürich"}}]},
        {"role": "tool", "content": "12 °C"},
        {"role": "stop", "content": "ends the loop"},
        {"role": "user", "content": "never shown"},
    ]
    text = _assert_same(hf, ours, messages, True, tools=tools, documents=documents, custom_flag="ja")
    assert "Zürich" in text and "\\u" not in text  # tojson keeps non-ASCII
    assert "count=3" in text and "custom=ja" in text and "never shown" not in text
    assert '{"role":"assistant","tool_calls":' in text  # content=None is dropped, as transformers does


def test_reasoning_fields_are_aliased(loaded):
    hf, ours = loaded("tools")
    messages = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "reasoning": "because"}]
    text = _assert_same(hf, ours, messages, False)
    assert '"reasoning_content":"because"' in text and '"thinking":"because"' in text


def test_named_templates_in_tokenizer_config(loaded):
    hf, ours = loaded("named_list")
    assert set(ours.chat_templates) == {"default", "tool_use", "terse"}
    assert ours.chat_template == SMOLLM2_TEMPLATE
    messages = CONVERSATIONS["multi_turn"]
    _assert_same(hf, ours, messages, True)
    _assert_same(hf, ours, messages, False, chat_template="terse")
    assert ours.apply_chat_template(messages, template="terse") == hf.apply_chat_template(
        messages, chat_template="terse", tokenize=False
    )
    tools = [{"type": "function", "function": {"name": "f"}}]
    _assert_same(hf, ours, messages, True, tools=tools)  # tools select the tool_use template
    with pytest.raises(ChatTemplateError, match="no chat template named 'missing'"):
        ours.apply_chat_template(messages, template="missing")


def test_named_templates_without_default(loaded):
    _, ours = loaded("named_no_default")
    assert ours.chat_template is None
    with pytest.raises(ChatTemplateError, match="several chat templates"):
        ours.apply_chat_template(CONVERSATIONS["user_only"])
    assert ours.apply_chat_template(CONVERSATIONS["user_only"], template="terse") == "u:Hello!;"


@pytest.mark.parametrize("name", ["jinja_file", "jinja_extra"])
def test_chat_template_jinja_files(name, loaded):
    hf, ours = loaded(name)
    assert ours.chat_template == GEMMA3_TEMPLATE  # the .jinja file wins over tokenizer_config.json
    for messages in (CONVERSATIONS["user_only"], CONVERSATIONS["multi_turn"]):
        _assert_same(hf, ours, messages, True)
    if name == "jinja_extra":
        assert set(ours.chat_templates) == {"default", "plain"}
        _assert_same(hf, ours, CONVERSATIONS["multi_turn"], False, chat_template="plain")


def test_chat_template_json_is_a_fallback(chat_dirs, tmp_path):
    directory = tmp_path / "processor_style"
    shutil.copytree(chat_dirs["no_template"], directory)
    (directory / "chat_template.json").write_text(json.dumps({"chat_template": SMOLLM2_TEMPLATE}), encoding="utf-8")
    assert Tokenizer.from_dir(directory).chat_template == SMOLLM2_TEMPLATE


def test_no_template(loaded):
    hf, ours = loaded("no_template")
    assert ours.chat_template is None and ours.chat_templates == {}
    with pytest.raises(ChatTemplateError, match="no chat template"):
        ours.apply_chat_template(CONVERSATIONS["user_only"])
    with pytest.raises(ChatTemplateError, match="no chat template"):
        ours.encode_chat(CONVERSATIONS["user_only"])
    # Supplying one works, the same way as in transformers.
    _assert_same(hf, ours, CONVERSATIONS["system_user"], True, chat_template=SMOLLM2_TEMPLATE)
    assert ours.apply_chat_template(CONVERSATIONS["system_user"], template=SMOLLM2_TEMPLATE).startswith("<|im_start|>")


def test_strftime_now(loaded):
    _, ours = loaded("no_template")
    year = time.strftime("%Y")
    assert ours.apply_chat_template(CONVERSATIONS["user_only"], template="{{ strftime_now('%Y') }}") == year


@pytest.mark.parametrize(
    "messages",
    [
        "hello",
        {"role": "user", "content": "hi"},
        [],
        ["hello"],
        [{"content": "no role"}],
        [{"role": 1, "content": "hi"}],
        [{"role": "user", "content": 42}],
        [{"role": "user", "content": b"bytes"}],
        [{"role": "user", "content": ["not a part"]}],
        [{"role": "user", "content": [{"text": "no type"}]}],
        [{"role": "user", "content": "hi", 3: "non-string key"}],
        None,
    ],
)
def test_bad_messages(messages, loaded):
    _, ours = loaded("smollm2")
    with pytest.raises(InvalidArgumentError):
        ours.apply_chat_template(messages)


def test_bad_arguments(loaded):
    _, ours = loaded("smollm2")
    messages = CONVERSATIONS["user_only"]
    with pytest.raises(InvalidArgumentError):
        ours.apply_chat_template(messages, add_generation_prompt="yes")
    with pytest.raises(InvalidArgumentError):
        ours.apply_chat_template(messages, tools=["not a dict"])
    with pytest.raises(InvalidArgumentError):
        ours.apply_chat_template(messages, documents="text")
    with pytest.raises(InvalidArgumentError):
        ours.apply_chat_template(messages, template=SMOLLM2_TEMPLATE, chat_template=SMOLLM2_TEMPLATE)
    with pytest.raises(InvalidArgumentError):
        ours.apply_chat_template(messages, template=42)


def test_content_none_and_tool_calls_pass_through(loaded):
    hf, ours = loaded("tools")
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": None, "tool_calls": []}]
    _assert_same(hf, ours, messages, False)


# --- hostile templates ------------------------------------------------------------------------------

USER = [{"role": "user", "content": "hi"}]
# A string that doubles 64 times (2**64 characters if nothing stops it).
_DOUBLING = "{{% set ns = namespace(s='x') %}}{{% for i in range(64) %}}{{% set ns.s = ns.s {op} ns.s %}}{{% endfor %}}"


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ messages.__class__ }}",
        "{{ raise_exception.__globals__ }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ namespace.__init__.__globals__ }}",
        "{% set ns = namespace() %}{% set ns.__class__ = 1 %}",
        "{{ messages.append({'role': 'x'}) }}",
        "{{ messages[0].update(role='x') }}",
        "{{ dict.__call__.__globals__ }}",
        "{{ self.__init__.__globals__ }}",
        "{{ lipsum.__globals__['os'] }}",
        "{{ (1).__class__.__base__.__subclasses__() }}",
        "{{ ''.format.__globals__ }}",
        "{{ '{0.__class__}'.format(messages) }}",
    ],
)
def test_sandbox_escapes_fail(template):
    with pytest.raises(ChatTemplateError):
        render_chat_template(template, USER)


@pytest.mark.parametrize(
    "template, match",
    [
        ("{% for i in range(10**9) %}x{% endfor %}", "overflowed"),
        ("{% for i in range(100000) %}{% for j in range(100000) %}xxxxxxxx{% endfor %}{% endfor %}", "more than"),
        ("{{ 'x' * 10**9 }}", "more than"),
        ("{{ ['x'] * 10**9 }}", "more than"),
        ("{{ 'x' * 1000 * 1000 * 1000 }}", "more than"),
        (_DOUBLING.format(op="~"), "more than"),
        (_DOUBLING.format(op="+"), "more than"),
        ("{% set ns = namespace(n=7) %}{% for i in range(64) %}{% set ns.n = ns.n * ns.n %}{% endfor %}", "integer"),
        ("{{ 10 ** (10 ** 9) }}", "integer"),
        ("{{ 'x' | center(10**9) }}", "more than"),
        ("{{ 'x\nx' | indent(10**9) }}", "more than"),
        ("{{ 'xx' | replace('', 'y' * 100000) }}", None),
        ("{{ 'xxxxxxxxxxxx' | replace('x', 'y' * 100000) }}", "more than"),
        ("{{ 'x'.ljust(10**9) }}", "more than"),
        ("{{ 'x'.center(10**9) }}", "more than"),
        ("{{ '%01000000000d' % 1 }}", "format width"),
        ("{{ '{:>1000000000}'.format(1) }}", "format width"),
        ("{{ 'x' | format }}{{ '%1000000000s' | format('x') }}", "format width"),
        ("{{ ('x' * 100000) | list | join('y' * 1000) }}", "more than"),
        ("{{ [1] | tojson(indent=10**9) }}", "indent"),
        ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "recursed"),
        ("{{ raise_exception('custom failure message') }}", "custom failure message"),
        ("{% for %}", "syntax error at line 1"),
        ("{{ messages[0]['content'] ", "syntax error"),
        ("{% if %}{% endif %}", "syntax error"),
        ("line one\n{% endfor %}", "syntax error at line 2"),
        ("{{ messages[0].no_such_key.deeper }}", "undefined value"),
        ("{{ 1 / 0 }}", "ZeroDivisionError"),
        ("{{ messages[5] + 1 }}", "undefined value"),
        ("{{ messages[0]['content'] + 1 }}", "TypeError"),
    ],
)
def test_hostile_templates_fail_quickly(template, match):
    start = time.monotonic()
    if match is None:  # within budget: renders
        render_chat_template(template, USER)
    else:
        with pytest.raises(ChatTemplateError, match=match):
            render_chat_template(template, USER)
    assert time.monotonic() - start < 5.0


def test_runaway_loops_without_output_hit_the_time_limit():
    silent_loops = [
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}",
        "{% for i in range(100000) %}{% for j in range(100000) %}{% if i == j %}{% endif %}{% endfor %}{% endfor %}",
    ]
    for template in silent_loops:
        start = time.monotonic()
        with pytest.raises(ChatTemplateError, match="time limit"):
            render_chat_template(template, USER, time_limit_s=0.5)
        assert time.monotonic() - start < 3.0


def test_output_cap_is_streamed():
    """Rendering stops at the cap instead of building the whole output first."""
    import tracemalloc

    template = "{% for i in range(100000) %}{% for j in range(100000) %}{{ 'y' * 1000 }}{% endfor %}{% endfor %}"
    tracemalloc.start()
    try:
        with pytest.raises(ChatTemplateError, match="more than 2000000"):
            render_chat_template(template, USER, max_chars=2_000_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024 * 1024


def test_cap_allows_long_conversations():
    long_text = "word " * 200_000  # 1 MB of input
    messages = [{"role": "user", "content": long_text}, {"role": "assistant", "content": long_text}]
    rendered = render_chat_template(SMOLLM2_TEMPLATE, messages)
    assert len(rendered) > 2 * len(long_text)


def test_template_errors_through_tokenizer(loaded):
    _, ours = loaded("smollm2")
    with pytest.raises(ChatTemplateError, match="sandbox"):
        ours.apply_chat_template(USER, template="{{ ''.__class__.__mro__ }}")
    with pytest.raises(ChatTemplateError, match="syntax error"):
        ours.encode_chat(USER, template="{% for x in %}")
