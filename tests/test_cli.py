"""The `slmcore` command, run in-process on a tiny model with a test-built tokenizer."""

from __future__ import annotations

import io
import json
import shutil

import pytest

from slmcore.cli import main
from tiny_models import make_tiny_model
from tokenizer_fixtures import smollm2_like

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from transformers import AutoTokenizer

    root = tmp_path_factory.mktemp("cli")
    tok_dir = smollm2_like(root / "tok", chat_template=CHATML)
    model = make_tiny_model(root / "model", arch="llama", vocab_size=len(AutoTokenizer.from_pretrained(tok_dir)))
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (tok_dir / name).exists():
            shutil.copy(tok_dir / name, model / name)
    return model


def test_help_and_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert all(cmd in out for cmd in ("generate", "chat", "convert", "bench"))
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip()
    assert main([]) == 2


def test_generate_json_is_reproducible(model_dir, capsys):
    args = ["generate", "Hello there", "--model", str(model_dir), "--max-tokens", "8", "--seed", "4", "--json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(args) == 0
    second = json.loads(capsys.readouterr().out)
    assert first == {**second, "seconds": first["seconds"]}
    assert len(first["token_ids"]) <= 8 and first["finish_reason"] in ("stop", "length")


def test_generate_streams_text(model_dir, capsys):
    assert main(["generate", "Hi", "--model", str(model_dir), "--max-tokens", "6", "--temperature", "0", "--raw"]) == 0
    streamed = capsys.readouterr().out
    assert main(["generate", "Hi", "--model", str(model_dir), "--max-tokens", "6", "--temperature", "0", "--raw",
                 "--json"]) == 0
    assert streamed == json.loads(capsys.readouterr().out)["text"] + "\n"


def test_chat_reads_turns_until_exit(model_dir, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("hello\n\nhow are you?\n/exit\n"))
    assert main(["chat", "--model", str(model_dir), "--max-tokens", "5", "--system", "Be brief."]) == 0
    assert capsys.readouterr().out.count("\n") >= 2  # one line per answered turn


def test_bench_json(model_dir, capsys):
    assert main(["bench", "--model", str(model_dir), "--prompt-tokens", "16", "--gen-tokens", "4", "--repeats", "1",
                 "--json", "--threads", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["prefill_tokens_per_s"] > 0 and result["decode_tokens_per_s"] > 0 and result["threads"] == 1


def test_errors_are_one_line_and_exit_1(model_dir, tmp_path, capsys):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\xff" * 40)
    assert main(["convert", str(bad), str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err.startswith("error: ")
    assert main(["generate", "x", "--model", str(tmp_path / "missing")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["bench", "--model", str(model_dir), "--prompt-tokens", "0"]) == 1
    assert main(["generate", "x", "--model", str(model_dir), "--temperature", "-1"]) == 1
    assert "temperature" in capsys.readouterr().err
    assert main(["generate", "x", "--model", str(model_dir), "--device", "tpu"]) == 1
    assert "device" in capsys.readouterr().err
    from slmcore import _core

    if _core.cuda.device_count() == 0:
        assert main(["generate", "x", "--model", str(model_dir), "--device", "cuda", "--quant", "int4"]) == 1
        assert "device='cpu'" in capsys.readouterr().err


def test_perplexity(model_dir, tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text("The quick brown fox jumps over the lazy dog. " * 20, encoding="utf-8")
    assert main(["perplexity", "--model", str(model_dir), "--file", str(text), "--window", "32", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["perplexity"] > 1 and result["windows"] >= 2
    assert main(["perplexity", "--model", str(model_dir), "--file", str(tmp_path / "missing.txt")]) == 1


def test_perplexity_of_the_int4_model(model_dir, tmp_path, capsys):
    import slmcore
    from slmcore.perplexity import perplexity

    text = tmp_path / "text.txt"
    text.write_text("The quick brown fox jumps over the lazy dog. " * 20, encoding="utf-8")
    args = ["perplexity", "--model", str(model_dir), "--file", str(text), "--window", "32", "--json"]
    assert main(args + ["--quant", "int4", "--group-size", "64"]) == 0
    ours = json.loads(capsys.readouterr().out)["perplexity"]
    with slmcore.LLM(model_dir, quant="int4", group_size=64) as llm:
        assert ours == perplexity(llm, text.read_text(encoding="utf-8"), window=32).ppl
