"""Mutations as data: a case is a seed's name and a few :class:`Mutation` values, applied in order.

A mutation's numbers are raw (any 32-bit values) and read modulo what the file has when it is
applied (its length, its units, its fields), so every mutation applies to every file: Hypothesis
draws and shrinks them as plain integers (towards the first unit, the first field, small sizes), the
long run draws them from a seeded ``random.Random``, and a finding is replayed from its recipe.
"""

from __future__ import annotations

import json
import random
import struct
import zlib
from dataclasses import asdict, dataclass
from enum import Enum

from . import bombs
from .structure import Field, Structure, Unit, parse


class Op(str, Enum):
    FLIP = "flip"  # one bit (a quarter of them in the first 256 bytes, where the headers are)
    BYTE = "byte"  # one byte set to a value parsers treat specially
    TRUNCATE = "truncate"
    LIE = "lie"  # a length, size or count field set to a value it should not have
    SWAP = "swap"  # two units of the same parent trade places
    DUPLICATE = "duplicate"  # a unit twice in a row
    DROP = "drop"  # a unit taken out
    REPEAT = "repeat"  # a unit many times (frames, chunks, IFD entries)
    SPLICE = "splice"  # a run of bytes copied elsewhere
    BOMB = "bomb"  # metadata bomb (bench.fuzz.bombs)
    IFD_LOOP = "ifd_loop"  # an IFD's next (or sub-IFD) pointer aimed back at an IFD already seen
    IFD_CHAIN = "ifd_chain"  # IFD0 followed by many copies of itself


@dataclass(frozen=True)
class Mutation:
    op: Op
    a: int = 0  # which: offset, unit, field, flavour
    b: int = 0  # what: bit, value, count, size, partner
    c: int = 0  # where to, and (bit 0) whether PNG CRCs are set right afterwards

    def __str__(self) -> str:
        return f"{self.op.value}({self.a},{self.b},{self.c})"


_BYTES = (0x00, 0x01, 0x7F, 0x80, 0xFF, 0xFE, 0x3B, 0x2C, 0x21)  # GIF's trailer and block introducers among them
_REPEATS = (2, 3, 16, 255, 4096, 65536)
SIZES = (4 << 10, 64 << 10, 1 << 20, 16 << 20)
"""Bomb sizes (bytes); each case's limit cuts them down (see :func:`apply`)."""


def apply(data: bytes, kind: str, mutations: list[Mutation], max_size: int) -> bytes:
    """``data`` with each mutation applied in turn; never longer than ``max_size`` bytes."""
    for mutation in mutations:
        if not data:
            break
        try:
            data = _apply(data, kind, mutation, max_size)[:max_size]
        except (struct.error, IndexError, ValueError, OverflowError):
            continue  # the structure read from an earlier mutation's damage does not hold this one: skipped
        if kind == "png" and mutation.c & 1:
            data = fix_png_crcs(data)
    return data


def _apply(data: bytes, kind: str, m: Mutation, max_size: int) -> bytes:
    n = len(data)
    if m.op is Op.FLIP:
        out = bytearray(data)
        out[m.a % (n if m.c % 4 else min(n, 256))] ^= 1 << (m.b % 8)
        return bytes(out)
    if m.op is Op.BYTE:
        out = bytearray(data)
        out[m.a % n] = _BYTES[m.b % len(_BYTES)]
        return bytes(out)
    if m.op is Op.TRUNCATE:
        return data[: m.a % n]
    if m.op is Op.SPLICE:
        start = m.a % n
        piece = data[start : start + 1 + m.b % 4096]
        at = m.c % (n + 1)
        return data[:at] + piece + data[at:]
    structure = parse(kind, data)
    if m.op is Op.LIE:
        return _lie(data, structure.fields, m) if structure.fields else data
    if m.op is Op.BOMB:
        return bombs.bomb(kind, data, structure, m.a, min(SIZES[m.b % len(SIZES)], max_size))
    if m.op in (Op.IFD_LOOP, Op.IFD_CHAIN):
        return _ifd(data, structure, m, max_size)
    if not structure.units:
        return data
    unit = structure.units[m.a % len(structure.units)]
    piece = data[unit.start : unit.end]
    if m.op is Op.SWAP:
        other = _sibling(structure.units, unit, m.b)
        first, second = sorted((unit, other), key=lambda u: u.start)
        if other is unit or first.end > second.start:
            return data
        return data[: first.start] + data[second.start : second.end] + data[first.end : second.start] + data[first.start : first.end] + data[second.end :]
    if m.op is Op.DUPLICATE:
        return data[: unit.end] + piece + data[unit.end :]
    if m.op is Op.DROP:
        return data[: unit.start] + data[unit.end :]
    times = min(_REPEATS[m.b % len(_REPEATS)], max(1, (max_size - n) // max(1, len(piece))))  # REPEAT
    return data[: unit.end] + piece * times + data[unit.end :]


def _lie(data: bytes, fields: list[Field], m: Mutation) -> bytes:
    spot = fields[m.a % len(fields)]
    if spot.at + spot.size > len(data):
        return data
    was, top = spot.read(data), 1 << 8 * spot.size
    values = (0, 1, was + 1, was - 1, was * 2, was // 2, was + 0x100, len(data), len(data) + 1, top // 2 - 1, top // 2, top - 1, 0xFFFF, 0x10000)
    out = bytearray(data)
    spot.write(out, values[m.b % len(values)])
    return bytes(out)


def _sibling(units: list[Unit], unit: Unit, pick: int) -> Unit:
    siblings = [u for u in units if u.parent == unit.parent]
    return siblings[pick % len(siblings)]


def _ifd(data: bytes, structure: Structure, m: Mutation, max_size: int) -> bytes:
    blocks = [b for b in structure.tiffs if b.ifds]
    if not blocks:
        return data
    block = blocks[m.a % len(blocks)]
    if m.op is Op.IFD_CHAIN:
        return bombs.chain_ifds(data, block, min(SIZES[m.b % len(SIZES)], max_size))
    ifd = block.ifds[(m.a // 7) % len(block.ifds)]
    target = block.ifds[m.b % len(block.ifds)]
    pointer = ifd.pointers[m.c % len(ifd.pointers)] if ifd.pointers and m.c % 3 else ifd.next_at
    out = bytearray(data)
    struct.pack_into(block.order + "I", out, pointer, target.at - block.start)
    return bytes(out)


def fix_png_crcs(data: bytes) -> bytes:
    """Every whole chunk's CRC set right, so a mutation inside a chunk reaches what reads it."""
    out = bytearray(data)
    for unit in parse("png", data).units:
        struct.pack_into(">I", out, unit.end - 4, zlib.crc32(out[unit.start + 4 : unit.end - 4]))
    return bytes(out)


def draw(rnd: random.Random, most: int = 3) -> list[Mutation]:
    """One to ``most`` mutations, as the long run draws them: raw ops most often, bombs least."""
    ops = list(Op)
    weights = [6, 3, 2, 6, 2, 2, 2, 1, 2, 1, 1, 1]
    return [Mutation(rnd.choices(ops, weights)[0], rnd.getrandbits(32), rnd.getrandbits(32), rnd.getrandbits(32))
            for _ in range(rnd.randint(1, most))]


def recipe(seed: str, mutations: list[Mutation]) -> str:
    """A case as JSON (what a finding's ``.json`` file holds, and what ``--replay`` reads)."""
    return json.dumps({"seed": seed, "mutations": [{**asdict(m), "op": m.op.value} for m in mutations]})


def from_recipe(text: str) -> tuple[str, list[Mutation]]:
    case = json.loads(text)
    return case["seed"], [Mutation(Op(m["op"]), m["a"], m["b"], m["c"]) for m in case["mutations"]]
