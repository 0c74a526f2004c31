"""Channel coding for the video watermark: CRC-16 and a soft-decision convolutional code.

The watermark channel delivers *soft* bits (a signed correlation per coded bit, noisier the harder
the video was attacked), so a convolutional code decoded with soft-decision Viterbi gets several dB
more out of it than a hard-decision block code (BCH, Reed-Solomon) would. The code is the
constraint-length-7, rate-1/3 code of LTE (generators 133, 171, 165 octal), zero-terminated.
A CRC-16 inside the code tells a decoded payload from the best-fitting codeword of noise.

Pure numpy; everything here is deterministic and tiny (a few hundred bits).
"""

from __future__ import annotations

from typing import Final

import numpy as np

CONSTRAINT_LENGTH: Final = 7
GENERATORS: Final = (0o133, 0o171, 0o165)
RATE_INVERSE: Final = len(GENERATORS)
_MEMORY: Final = CONSTRAINT_LENGTH - 1
_STATES: Final = 1 << _MEMORY

CRC16_POLY: Final = 0x1021  # CRC-16/CCITT-FALSE
CRC16_INIT: Final = 0xFFFF


def crc16(bits: np.ndarray) -> np.ndarray:
    """CRC-16/CCITT-FALSE of a bit string (MSB first), as 16 bits (MSB first)."""
    register = CRC16_INIT
    for bit in np.asarray(bits, dtype=np.uint8):
        feedback = ((register >> 15) & 1) ^ int(bit)
        register = (register << 1) & 0xFFFF
        if feedback:
            register ^= CRC16_POLY
    return int_to_bits(register, 16)


def int_to_bits(value: int, width: int) -> np.ndarray:
    """``width`` bits of ``value``, most significant first."""
    return np.array([(value >> (width - 1 - i)) & 1 for i in range(width)], dtype=np.uint8)


def bits_to_int(bits: np.ndarray) -> int:
    value = 0
    for bit in np.asarray(bits, dtype=np.uint8):
        value = (value << 1) | int(bit)
    return value


def coded_length(info_bits: int) -> int:
    """Number of coded bits for ``info_bits`` information bits (including the zero tail)."""
    return (info_bits + _MEMORY) * RATE_INVERSE


def _output_table() -> tuple[np.ndarray, np.ndarray]:
    """For every (state, input bit): the next state and the ``RATE_INVERSE`` output bits.

    The state holds the last ``_MEMORY`` input bits, newest in the most significant position.
    """
    states = np.arange(_STATES)
    next_state = np.empty((_STATES, 2), dtype=np.int64)
    outputs = np.empty((_STATES, 2, RATE_INVERSE), dtype=np.uint8)
    for bit in (0, 1):
        register = (bit << _MEMORY) | states  # newest bit at the top, as the generators expect
        next_state[:, bit] = register >> 1
        for k, generator in enumerate(GENERATORS):
            taps = register & generator
            parity = np.zeros(_STATES, dtype=np.int64)
            for shift in range(CONSTRAINT_LENGTH):
                parity ^= (taps >> shift) & 1
            outputs[:, bit, k] = parity
    return next_state, outputs


_NEXT_STATE, _OUTPUTS = _output_table()
_OUTPUT_SIGNS = 2.0 * _OUTPUTS.astype(np.float64) - 1.0  # 0 -> -1, 1 -> +1
# Every state n is entered from exactly two states, (n << 1) mod 2**m and that + 1, on input n's top bit.
_INPUT_BIT = np.arange(_STATES) >> (_MEMORY - 1)
_PRED_LOW = (np.arange(_STATES) << 1) & (_STATES - 1)
_PRED_HIGH = _PRED_LOW | 1


def conv_encode(bits: np.ndarray) -> np.ndarray:
    """Encode ``bits`` followed by a zero tail; returns ``coded_length(len(bits))`` bits."""
    state = 0
    out = []
    for bit in list(np.asarray(bits, dtype=np.uint8)) + [0] * _MEMORY:
        out.append(_OUTPUTS[state, int(bit)])
        state = int(_NEXT_STATE[state, int(bit)])
    return np.concatenate(out).astype(np.uint8)


def viterbi_decode(soft: np.ndarray, info_bits: int) -> np.ndarray:
    """Maximum-likelihood information bits for soft values ``soft`` (> 0 means a 1 was sent).

    ``soft`` has ``coded_length(info_bits)`` entries; their common scale does not matter (the
    metric is a correlation). The zero tail forces the path to end in state 0.
    """
    soft = np.asarray(soft, dtype=np.float64).reshape(-1, RATE_INVERSE)
    steps = info_bits + _MEMORY
    if len(soft) != steps:
        raise ValueError(f"expected {coded_length(info_bits)} soft values, got {soft.size}")
    metric = np.full(_STATES, -np.inf)
    metric[0] = 0.0
    decisions = np.empty((steps, _STATES), dtype=np.int64)  # surviving predecessor per state
    for step in range(steps):
        branch = _OUTPUT_SIGNS @ soft[step]  # (states, 2): correlation of each branch's output
        from_low = metric[_PRED_LOW] + branch[_PRED_LOW, _INPUT_BIT]
        from_high = metric[_PRED_HIGH] + branch[_PRED_HIGH, _INPUT_BIT]
        take_high = from_high > from_low
        metric = np.where(take_high, from_high, from_low)
        if step >= info_bits:  # tail: only input 0 is allowed
            metric[_INPUT_BIT == 1] = -np.inf
        decisions[step] = np.where(take_high, _PRED_HIGH, _PRED_LOW)
    # Trace back from state 0.
    state = 0
    bits = np.empty(steps, dtype=np.uint8)
    for step in range(steps - 1, -1, -1):
        previous = decisions[step, state]
        bits[step] = state >> (_MEMORY - 1)  # the input bit is the newest bit of the new state
        state = previous
    return bits[:info_bits]
