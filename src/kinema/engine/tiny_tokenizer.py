"""A small T5-style tokenizer built in code, so miniature models need nothing from the hub."""

from __future__ import annotations

import string

from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import Unigram
from transformers import PreTrainedTokenizerFast

PAD, EOS, UNK = "<pad>", "</s>", "<unk>"
SPACE = "\u2581"  # sentencepiece's word-boundary marker "▁"

# A few whole words so common prompts are not spelled out letter by letter; everything else falls back to
# single characters, and characters outside the alphabet become <unk>.
_WORDS = " ".join(
    [
        "a an the of in on at with and to from by over under into is are",
        "cat dog bird fish horse person man woman child car city street forest sea beach mountain sky sun",
        "moon night day rain snow light dark red green blue white black slow fast walking running flying",
    ]
).split()
_ALPHABET = string.ascii_lowercase + string.digits + ".,;:!?'\"-()"


def tiny_vocabulary() -> list[tuple[str, float]]:
    """(piece, log-probability) pairs in id order; T5's layout: <pad>=0, </s>=1, <unk>=2."""
    pieces: list[tuple[str, float]] = [(PAD, 0.0), (EOS, 0.0), (UNK, 0.0), (SPACE, -3.0)]
    pieces += [(SPACE + w, -4.0) for w in _WORDS]
    pieces += [(c, -6.0) for c in _ALPHABET]
    pieces += [(SPACE + c, -7.0) for c in _ALPHABET]
    return pieces


def build_tiny_tokenizer(model_max_length: int = 512) -> PreTrainedTokenizerFast:
    """A Unigram tokenizer shaped like UMT5's (Metaspace pre-tokenizer, ``</s>`` appended, ``<pad>`` = 0).

    It is wrapped in transformers' fast-tokenizer class, so a pipeline's ``save_pretrained`` writes it as
    ``tokenizer.json`` and ``from_pretrained`` loads it back like any other tokenizer. Lower-cases its input:
    the vocabulary is deliberately tiny.
    """
    vocab = tiny_vocabulary()
    tok = Tokenizer(Unigram(vocab, unk_id=2, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement=SPACE, prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS}", pair=f"$A {EOS} $B {EOS}", special_tokens=[(EOS, 1)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, eos_token=EOS, unk_token=UNK, model_max_length=model_max_length
    )
