"""Flash and RAM use of an ELF, with the Berkeley rules of GNU ``size`` (read with pyelftools).

GNU size (binutils ``size.c``, berkeley_sum) adds every allocated section to ``text`` when it is
code or read-only, to ``data`` when it is writable with contents and to ``bss`` when writable
without contents (NOBITS). Flash holds text + data (the .data initialisers); RAM holds
data + bss, not counting the heap or the stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile


@dataclass(frozen=True)
class ElfMemory:
    """Berkeley section sums of an ELF and the flash/RAM they imply."""

    text: int
    data: int
    bss: int

    @property
    def flash_bytes(self) -> int:
        """Code, constants and .data initialisers: what is programmed into flash."""
        return self.text + self.data

    @property
    def ram_bytes(self) -> int:
        """Static RAM: .data + .bss (heap and stack come on top)."""
        return self.data + self.bss


def elf_memory(elf: Path) -> ElfMemory:
    """Text, data and bss of ``elf`` exactly as ``size`` (Berkeley format) prints them."""
    text = data = bss = 0
    with elf.open("rb") as stream:
        for section in ELFFile(stream).iter_sections():
            flags = section["sh_flags"]
            if not flags & SH_FLAGS.SHF_ALLOC:
                continue
            size = section["sh_size"]
            if flags & SH_FLAGS.SHF_EXECINSTR or not flags & SH_FLAGS.SHF_WRITE:
                text += size
            elif section["sh_type"] != "SHT_NOBITS":
                data += size
            else:
                bss += size
    return ElfMemory(text=text, data=data, bss=bss)
