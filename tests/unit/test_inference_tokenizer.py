"""The tokenizer wrapper: special tokens as found in tokenizer.json, text stays text."""

from __future__ import annotations

from pathlib import Path

from inference.tokenizer import Tokenizer

MODELS = Path(__file__).resolve().parents[1] / "fixtures" / "models"


def test_qwen_style_special_tokens() -> None:
    tokenizer = Tokenizer.from_model_dir(MODELS / "qwen2-int4")
    ids = tokenizer.special_tokens
    assert tokenizer.fim_token_ids == (
        ids["<|fim_prefix|>"],
        ids["<|fim_suffix|>"],
        ids["<|fim_middle|>"],
    )
    assert tokenizer.file_sep_token_id == ids["<|file_sep|>"]
    assert tokenizer.eos_token_ids == frozenset({ids["<|endoftext|>"]})
    assert tokenizer.token_id("<|fim_middle|>") == ids["<|fim_middle|>"]
    assert tokenizer.token_id("<|no_such_token|>") is None
    assert tokenizer.vocab_size == 512
    assert tokenizer.chat_template is None


def test_codellama_style_special_tokens() -> None:
    tokenizer = Tokenizer.from_model_dir(MODELS / "llama-int4")
    ids = tokenizer.special_tokens
    assert tokenizer.fim_token_ids == (ids["<PRE>"], ids["<SUF>"], ids["<MID>"])
    assert tokenizer.file_sep_token_id is None
    # </s> from tokenizer_config.json and the configs; <EOT> ends an infilling
    assert tokenizer.eos_token_ids == frozenset({ids["</s>"], ids["<EOT>"]})


def test_special_token_text_in_a_document_stays_text() -> None:
    tokenizer = Tokenizer.from_model_dir(MODELS / "qwen2-int4")
    text = 'marker = "<|fim_prefix|>"  # and <|endoftext|>\n'
    ids = tokenizer.encode(text)
    assert not set(ids) & set(tokenizer.special_tokens.values())
    assert tokenizer.decode(ids) == text


def test_decode_skips_special_tokens() -> None:
    tokenizer = Tokenizer.from_model_dir(MODELS / "qwen2-int4")
    prefix, suffix, middle = tokenizer.fim_token_ids or (0, 0, 0)
    ids = [prefix, *tokenizer.encode("def f():"), suffix, middle]
    assert tokenizer.decode(ids) == "def f():"


def test_batch_encoding_gives_the_ids_of_one_by_one_encoding_and_decodes_back() -> None:
    tokenizer = Tokenizer.from_model_dir(MODELS / "qwen2-int4")
    texts = ["def f(x):\n    return x\n", 'marker = "<|fim_prefix|>"\n', "", "naïve = 1\n"]
    batch = tokenizer.encode_batch(texts)
    assert batch == [tokenizer.encode(text) for text in texts]
    assert tokenizer.decode_batch(batch) == texts
