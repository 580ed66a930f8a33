"""The program image a folded engine loads from SPI flash into SPRAM at power-up (SPRAM is not initialised by the
bitstream). Plain Python, no Amaranth: `warpc.hdl.boot.FlashLoader` reads and checks it in hardware.

Where: IMAGE_OFFSET (1 MiB) into the iCEBreaker's 16 MiB flash; the UP5K bitstream (~104 KB) sits at offset 0.
Write it with e.g. `iceprog -o 1M image.bin`.

Layout (all multi-byte header fields little-endian):

    offset  size            field
    0       4               MAGIC b"WFLD"
    4       4               design_id (u32): ties the image to the bitstream it was built for (design_id_of)
    8       2               n_words (u16), 1..65535
    10      1               word_bytes (u8) = word_bits / 8, 1..8
    11      1               VERSION (u8)
    12      n_words * wb    the words, each word_bytes bytes little-endian (byte 0 = bits 0..7 of the word)
    12+n*wb 2               CRC-16/CCITT-FALSE over everything before it, stored BIG-endian

CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, not reflected, no final xor (check value of b"123456789" is
0x29B1). Because the CRC is stored big-endian (MSB first, as the register shifts), running the same CRC over the
whole image including the trailer leaves residue 0; that is all the hardware checks, bit-serially, MSB first.
"""
from __future__ import annotations

import hashlib

from ..errors import ConfigError, NetlistError

IMAGE_OFFSET = 0x100000
MAGIC = b"WFLD"
VERSION = 1
HEADER_BYTES = 12
CRC_BYTES = 2
CRC16_POLY = 0x1021
CRC16_INIT = 0xFFFF
MAX_WORDS = 0xFFFF
MAX_WORD_BITS = 64


def crc16(data: bytes, crc: int = CRC16_INIT) -> int:
    """CRC-16/CCITT-FALSE of `data`, continuing from `crc`."""
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ CRC16_POLY) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def check_word_bits(word_bits: int) -> int:
    """word_bits / 8, or a ConfigError (whole bytes, at most MAX_WORD_BITS)."""
    if (isinstance(word_bits, bool) or not isinstance(word_bits, int) or word_bits < 8 or word_bits % 8
            or word_bits > MAX_WORD_BITS):
        raise ConfigError(f"program word size must be a multiple of 8 bits from 8 to {MAX_WORD_BITS}, "
                          f"got {word_bits!r}")
    return word_bits // 8


def header(design_id: int, n_words: int, word_bits: int) -> bytes:
    """The 12 header bytes (the loader compares the flash's bytes against exactly these)."""
    wb = check_word_bits(word_bits)
    if isinstance(design_id, bool) or not isinstance(design_id, int) or not 0 <= design_id < 1 << 32:
        raise ConfigError(f"design_id must be an unsigned 32-bit integer, got {design_id!r}")
    if isinstance(n_words, bool) or not isinstance(n_words, int) or not 1 <= n_words <= MAX_WORDS:
        raise NetlistError(f"a program image holds 1 to {MAX_WORDS} words, got {n_words!r}")
    return MAGIC + design_id.to_bytes(4, "little") + n_words.to_bytes(2, "little") + bytes([wb, VERSION])


def image_bytes(n_words: int, word_bits: int) -> int:
    """Total length of an image: header + words + CRC."""
    return HEADER_BYTES + n_words * check_word_bits(word_bits) + CRC_BYTES


def _pack_words(words: list[int], word_bits: int) -> bytes:
    wb = check_word_bits(word_bits)
    out = bytearray()
    for i, w in enumerate(words):
        if isinstance(w, bool) or not isinstance(w, int) or not 0 <= w < 1 << word_bits:
            raise NetlistError(f"program word {i} ({w!r}) does not fit in {word_bits} unsigned bits")
        out += w.to_bytes(wb, "little")
    return bytes(out)


def design_id_of(words: list[int], word_bits: int) -> int:
    """First 4 bytes of sha256 over the packed words, as a little-endian u32."""
    return int.from_bytes(hashlib.sha256(_pack_words(list(words), word_bits)).digest()[:4], "little")


def pack_image(words: list[int], word_bits: int, design_id: int | None = None) -> bytes:
    """The flash image of `words` (design_id defaults to design_id_of(words, word_bits))."""
    words = list(words)
    payload = _pack_words(words, word_bits)
    if design_id is None:
        design_id = int.from_bytes(hashlib.sha256(payload).digest()[:4], "little")
    body = header(design_id, len(words), word_bits) + payload
    return body + crc16(body).to_bytes(2, "big")


def unpack_image(data: bytes, word_bits: int) -> tuple[int, list[int]]:
    """(design_id, words) of an image, or a NetlistError saying in one line what is wrong with it."""
    wb = check_word_bits(word_bits)
    data = bytes(data)
    if len(data) < HEADER_BYTES + CRC_BYTES:
        raise NetlistError(f"program image too short: {len(data)} bytes, a header and CRC alone take "
                           f"{HEADER_BYTES + CRC_BYTES}")
    if data[:4] != MAGIC:
        raise NetlistError(f"not a warpc program image: magic {data[:4]!r}, expected {MAGIC!r}")
    if data[11] != VERSION:
        raise NetlistError(f"program image version {data[11]}, this warpc reads version {VERSION}")
    if data[10] != wb:
        raise NetlistError(f"program image has {data[10] * 8}-bit words, expected {word_bits}-bit")
    n_words = int.from_bytes(data[8:10], "little")
    want = HEADER_BYTES + n_words * wb + CRC_BYTES
    if n_words == 0 or len(data) != want:
        raise NetlistError(f"program image length {len(data)} bytes does not match its header "
                           f"({n_words} words of {wb} bytes: {want} bytes)")
    if crc16(data) != 0:
        stored = int.from_bytes(data[-2:], "big")
        raise NetlistError(f"program image CRC mismatch: stored 0x{stored:04X}, computed "
                           f"0x{crc16(data[:-2]):04X} (corrupt image or flash read)")
    design_id = int.from_bytes(data[4:8], "little")
    words = [int.from_bytes(data[HEADER_BYTES + i * wb: HEADER_BYTES + (i + 1) * wb], "little")
             for i in range(n_words)]
    return design_id, words
