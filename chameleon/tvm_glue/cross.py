"""Deployable libraries for other machines: cross-compiled host code and pre-compiled CUDA kernels.

A Jetson target (``nvidia/jetson-orin-nano`` and friends) has two halves: host code for the
board's aarch64 CPU (``target.host``, mtriple ``aarch64-linux-gnu``) and device code for its GPU
(``target.attrs["arch"]``, e.g. ``sm_87``). :func:`check_toolchain` finds what exporting such a
target needs on this machine and says in one line what to install when something is missing;
:func:`export_library` writes the library.

How the CUDA kernels travel (TVM 0.27)
--------------------------------------
``tvm.compile`` hands the generated CUDA C++ to the CUDA runtime's module factory, which compiles
it through the Python callback ``tvm_callback_cuda_compile`` (NVRTC by default, nvcc with
``TVM_CUDA_COMPILE_MODE=nvcc``). On a machine without the CUDA driver (``libcuda.so.1``) that
factory is absent and TVM falls back to a module that keeps the *source* (format ``"cuda"``): the
board would then compile every kernel when it loads the library, which needs TVM's Python
callback plus nvcc or cuda-python NVRTC on the board. Setting the environment variable or
registering the callback before the build changes nothing here, because the callback is only
called by that factory.

So :func:`export_library` compiles the kernels itself by default (``cuda="binary"``): it packs
the imported modules as ``export_library`` would, compiles each CUDA module that still holds
source with this machine's nvcc (``tvm.support.nvcc.compile_cuda(..., target_format="fatbin")``
for the target's ``sm_XX``, TVM's own nvcc path), and stores the fatbin in its place. The
serialized CUDA module is ``[fmt][function table][code]``; the board's loader
(``ffi.Module.load_from_bytes.cuda``) JIT-compiles only when ``fmt == "cuda"`` and otherwise hands
the bytes to ``cuModuleLoadData`` (read from TVM's ``cuda_module.cc``; not yet run on a GPU). The
board then needs only the CUDA driver, no compiler. The packed blob becomes ``devc.o`` through
LLVM for the host triple, so a ``.tar`` export still needs no cross compiler. The fatbin holds
SASS for exactly that ``sm_XX`` (no PTX), as TVM's nvcc path makes it. A kernel built by CUDA 13
may not load on an older driver (JetPack 6 ships CUDA 12.x); if it does not, export with
``cuda="source"`` (or use the board's CUDA release here).

``cuda="source"`` keeps TVM's default: the board compiles at load time, with
``TVM_CUDA_COMPILE_MODE=nvcc`` and nvcc on its PATH, or with ``pip install cuda-python`` for the
default NVRTC mode. That is also the way for boards whose architecture this machine's CUDA no
longer supports (CUDA 13 dropped sm_72 and older: Xavier, TX2, Nano).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import platform
import re
import shutil
import struct
import subprocess
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import tvm
import tvm_ffi

from chameleon.errors import ChameleonError

logger = logging.getLogger(__name__)

CudaMode = Literal["binary", "source"]
LIBRARY_SUFFIXES: tuple[str, ...] = (".so", ".tar")

_ELF_MACHINES = {3: "x86", 40: "arm", 62: "x86_64", 183: "aarch64", 243: "riscv", 21: "ppc64"}
_MACHINE_ALIASES = {"amd64": "x86_64", "arm64": "aarch64", "i386": "x86", "i686": "x86"}
_SUGGESTED_CUDA_TARGET = "jetson-orin-nano"


@dataclass(frozen=True)
class Toolchain:
    """What exporting a deployable library for one target needs on this machine."""

    target_name: str
    """The target as users name it (a TVM tag such as ``nvidia/jetson-orin-nano`` when known)."""
    host_triple: str
    """LLVM triple of the host code, e.g. ``aarch64-linux-gnu``."""
    host_machine: str
    """ELF machine of the host code: ``aarch64``, ``x86_64``, ..."""
    cross: bool
    """The host code is for another CPU architecture than this machine's."""
    linker: str | None
    """The C++ compiler that links a ``.so`` (a cross compiler when ``cross``); None if not checked."""
    cuda: bool
    """The device code is CUDA."""
    arch: str | None
    """CUDA architecture of the device code, e.g. ``sm_87``; None for CPU targets."""
    nvcc: str | None
    """nvcc that compiles the kernels here; None for CPU targets or when not checked."""
    cuda_version: str | None
    """That nvcc's CUDA release, e.g. ``13.0``."""

    def fcompile(self):
        """The ``fcompile`` for ``export_library(... .so)``: the cross compiler, or None (host g++)."""
        if self.cross and self.linker:
            from tvm.support import cc

            return cc.cross_compiler(self.linker)
        return None


def as_target(target: tvm.target.Target | str | dict) -> tvm.target.Target:
    if isinstance(target, tvm.target.Target):
        return target
    try:
        return tvm.target.Target(target)
    except Exception as exc:  # noqa: BLE001 - TVM raises several types for bad targets
        raise ChameleonError(
            f"unknown TVM target {target!r}; use a tag such as nvidia/{_SUGGESTED_CUDA_TARGET}"
        ) from exc


def target_name(target: tvm.target.Target | str | dict) -> str:
    """A short name for messages: the string given, the matching TVM tag, or kind and arch."""
    if isinstance(target, str):
        return target
    tgt = as_target(target)
    exported = str(tgt.export())
    for tag, tagged in tvm.target.tag.list_tags().items():
        if tagged.kind.name == tgt.kind.name and str(tagged.export()) == exported:
            return str(tag)
    arch = tgt.attrs.get("arch")
    return f"{tgt.kind.name} {arch}" if arch else tgt.kind.name


def local_machine() -> str:
    machine = platform.machine().lower()
    return _MACHINE_ALIASES.get(machine, machine)


def triple_machine(triple: str) -> str:
    """ELF machine name of an LLVM triple's architecture (``aarch64-linux-gnu`` -> ``aarch64``)."""
    arch = triple.split("-", 1)[0].lower()
    if arch.startswith("armv") or arch == "arm":
        return "arm"
    return _MACHINE_ALIASES.get(arch, arch)


def host_triple(target: tvm.target.Target) -> str:
    """The triple host code is compiled for: ``target.host``'s mtriple, else this machine's."""
    host = target.host if target.host is not None else (target if target.kind.name == "llvm" else None)
    triple = host.attrs.get("mtriple") if host is not None else None
    return str(triple) if triple else str(tvm.target.codegen.llvm_get_system_triple())


def check_toolchain(
    target: tvm.target.Target | str | dict, *, link: bool = True, compile_cuda: bool = True
) -> Toolchain:
    """Check that this machine can export a library for ``target``; say what is missing.

    ``link``: a ``.so`` will be linked (needs the host's C++ compiler, a cross compiler for
    another CPU architecture). ``compile_cuda``: CUDA kernels will be compiled here (needs nvcc
    that supports the target's ``sm_XX``).

    Raises:
        ChameleonError: a missing compiler or an unsupported architecture, in one line.
    """
    tgt = as_target(target)
    name = target_name(target)
    cuda = tgt.kind.name == "cuda"
    if cuda and tgt.host is None and "jetson" in name:
        raise ChameleonError(
            f"TVM's tag {name} has no aarch64 host; add one: "
            f'Target("{name}", host={{"kind": "llvm", "mtriple": "aarch64-linux-gnu"}})'
        )
    triple = host_triple(tgt)
    machine = triple_machine(triple)
    cross = machine != local_machine()
    linker = _find_linker(triple, cross=cross, name=name) if link else None
    arch = str(tgt.attrs["arch"]) if cuda and tgt.attrs.get("arch") else None
    nvcc = cuda_version = None
    if cuda and compile_cuda:
        if arch is None:
            raise ChameleonError(f"target {name} names no CUDA arch; add one, e.g. {{'arch': 'sm_87'}}")
        nvcc = find_nvcc()
        if nvcc is None:
            raise ChameleonError(
                f"nvcc not found (PATH or CUDA_HOME) to compile the CUDA kernels for {arch} ({name}): "
                "install the CUDA toolkit or set CUDA_HOME; or export with cuda='source' so the board compiles them"
            )
        cuda_version = nvcc_version(nvcc)
        _check_arch(nvcc, arch, cuda_version, name)
    toolchain = Toolchain(
        target_name=name,
        host_triple=triple,
        host_machine=machine,
        cross=cross,
        linker=linker,
        cuda=cuda,
        arch=arch,
        nvcc=nvcc,
        cuda_version=cuda_version,
    )
    logger.debug("toolchain for %s: %s", name, toolchain)
    return toolchain


def _find_linker(triple: str, *, cross: bool, name: str) -> str:
    if not cross:
        cxx = os.environ.get("CXX", "g++")
        found = shutil.which(cxx)
        if found is None:
            raise ChameleonError(
                f"{cxx} not found to link a .so for {name}: install g++ (Debian/Ubuntu: build-essential); "
                "or export a .tar"
            )
        return found
    # Debian/Ubuntu name cross compilers after the GNU triple: aarch64-linux-gnu-g++.
    gnu = triple.replace("-unknown-", "-").replace("-conda-", "-")
    compiler = f"{gnu}-g++"
    found = shutil.which(compiler)
    if found is None:
        raise ChameleonError(
            f"{compiler} not found: install g++-{gnu} (Debian/Ubuntu) to cross-compile for {name}; "
            "or export a .tar and link on the board"
        )
    return found


def find_nvcc() -> str | None:
    """nvcc on PATH, else ``$CUDA_HOME/bin/nvcc`` (or ``$CUDA_PATH``, ``/usr/local/cuda``)."""
    found = shutil.which("nvcc")
    if found:
        return found
    for root in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if root and os.access(Path(root) / "bin" / "nvcc", os.X_OK):
            return str(Path(root) / "bin" / "nvcc")
    return None


@functools.lru_cache(maxsize=8)
def nvcc_version(nvcc: str) -> str:
    """The CUDA release of ``nvcc`` (``"13.0"``), or ``"unknown"``."""
    out = _run(nvcc, "--version")
    match = re.search(r"release (\d+\.\d+)", out)
    return match.group(1) if match else "unknown"


@functools.lru_cache(maxsize=8)
def nvcc_archs(nvcc: str) -> tuple[int, ...]:
    """Compute capabilities ``nvcc`` can compile for (from ``nvcc --list-gpu-arch``), e.g. 87."""
    out = _run(nvcc, "--list-gpu-arch")
    return tuple(sorted({int(m) for m in re.findall(r"compute_(\d+)", out)}))


def _run(*cmd: str) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    except OSError as exc:
        raise ChameleonError(f"cannot run {cmd[0]}: {exc}; check the CUDA toolkit installation") from exc
    return proc.stdout + proc.stderr


def arch_number(arch: str) -> int:
    """``sm_87`` -> 87, ``sm_110a`` -> 110."""
    match = re.fullmatch(r"(?:sm|compute)_(\d+)[a-z]?", arch)
    if match is None:
        raise ChameleonError(f"cannot read the CUDA arch {arch!r}; use the form sm_87")
    return int(match.group(1))


def _check_arch(nvcc: str, arch: str, version: str, name: str) -> None:
    supported = nvcc_archs(nvcc)
    wanted = arch_number(arch)
    if not supported or wanted in supported:
        return
    if wanted < min(supported):
        raise ChameleonError(
            f"{arch} ({name}) is not supported by this machine's CUDA {version} (its oldest is "
            f"compute_{min(supported)}): compile on the board with its own JetPack CUDA "
            f"(export with cuda='source'), or pick a newer target like {_SUGGESTED_CUDA_TARGET}"
        )
    raise ChameleonError(
        f"{arch} ({name}) is newer than this machine's CUDA {version} supports (up to "
        f"compute_{max(supported)}): install a newer CUDA toolkit, or export with cuda='source'"
    )


def export_library(
    executable: tvm.runtime.Executable | tvm.runtime.Module,
    path: str | Path,
    target: tvm.target.Target | str | dict,
    *,
    cuda: CudaMode = "binary",
) -> Path:
    """Export a compiled module as a library the target's machine loads.

    The suffix picks the form: ``.so`` is linked here (with the cross compiler when the target's
    host is another CPU architecture), ``.tar`` holds the object files and is linked on the
    machine that loads it (no cross compiler needed). CUDA kernels are compiled here to a fatbin
    (``cuda="binary"``) or left as source for the board to compile at load time
    (``cuda="source"``); see the module docstring.

    Returns:
        The library's path.

    Raises:
        ChameleonError: unsupported suffix, missing toolchain, failed compile or link.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in LIBRARY_SUFFIXES:
        raise ChameleonError(f"cannot export {path.name}: use a .so or .tar file name")
    if cuda not in ("binary", "source"):
        raise ChameleonError(f"unknown cuda mode {cuda!r}; use 'binary' or 'source'")
    tgt = as_target(target)
    toolchain = check_toolchain(target, link=suffix == ".so", compile_cuda=cuda == "binary")
    kwargs: dict = {}
    if suffix == ".so" and toolchain.cross:
        kwargs["fcompile"] = toolchain.fcompile()
    embed = toolchain.cuda and cuda == "binary"
    if embed:
        kwargs["fpack_imports"] = _binary_packer(tgt, toolchain)
    path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        executable.export_library(str(path), **kwargs)
    except ChameleonError:
        raise
    except Exception as exc:  # noqa: BLE001 - linker failures surface as RuntimeError/OSError
        raise ChameleonError(
            f"exporting {path.name} for {toolchain.target_name} failed: {_last_line(exc)}"
        ) from exc
    _sanity_check(path, toolchain, embedded=embed)
    logger.info(
        "exported %s for %s (%s host%s) in %.1f s, %.1f MB",
        path,
        toolchain.target_name,
        toolchain.host_machine,
        f", CUDA {toolchain.arch} {'fatbin' if embed else 'source'}" if toolchain.cuda else "",
        time.perf_counter() - start,
        path.stat().st_size / 1e6,
    )
    return path


def _last_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in reversed(lines):
        if any(word in line.lower() for word in ("error", "fatal", "not found")):
            return line[:300]
    return lines[-1][:300] if lines else type(exc).__name__


def _sanity_check(path: Path, toolchain: Toolchain, *, embedded: bool) -> None:
    machines = {elf_machine(path)} if path.suffix == ".so" else set(_tar_object_machines(path))
    if machines and machines != {toolchain.host_machine}:
        raise ChameleonError(
            f"{path.name} holds {', '.join(sorted(machines))} code, not {toolchain.host_machine} "
            f"for {toolchain.target_name}; report this as a bug"
        )
    if embedded:
        formats = device_code_formats(path)
        if not formats or "cuda" in formats:
            raise ChameleonError(
                f"{path.name} carries no compiled CUDA kernels ({formats}); report this as a bug, "
                "or export with cuda='source'"
            )


# ---------------------------------------------------------------------------------------------
# ELF and the packed-imports blob


def elf_machine(path: str | Path) -> str:
    """The ELF header's machine (``"aarch64"``, ``"x86_64"``, ...) of a library or object file."""
    with open(path, "rb") as f:
        header = f.read(20)
    return _elf_machine_of(header, str(path))


def _elf_machine_of(header: bytes, what: str) -> str:
    if len(header) < 20 or header[:4] != b"\x7fELF":
        raise ChameleonError(f"{what} is not an ELF file")
    order = "<" if header[5] == 1 else ">"
    (machine,) = struct.unpack_from(order + "H", header, 18)
    return _ELF_MACHINES.get(machine, f"unknown({machine})")


def _tar_object_machines(path: Path) -> list[str]:
    with tarfile.open(path) as tar:
        return [
            _elf_machine_of(tar.extractfile(m).read(20), f"{path.name}:{m.name}")
            for m in tar.getmembers()
            if m.isfile() and m.name.endswith(".o")
        ]


def _blob_symbol() -> str:
    return str(tvm_ffi.get_global_func("runtime.ModuleImportsBlobName")())


def _elf_symbol_bytes(data: bytes, symbol: str) -> bytes | None:
    """The bytes of a defined ``symbol`` in a little-endian ELF64 object or shared library."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ChameleonError("only little-endian 64-bit ELF files are supported")
    e_type, shoff, shentsize, shnum = (
        struct.unpack_from("<H", data, 16)[0],
        struct.unpack_from("<Q", data, 40)[0],
        struct.unpack_from("<H", data, 58)[0],
        struct.unpack_from("<H", data, 60)[0],
    )
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    wanted = symbol.encode()
    for _name, sh_type, _flags, _addr, offset, size, link, _info, _align, entsize in sections:
        if sh_type not in (2, 11):  # SHT_SYMTAB, SHT_DYNSYM
            continue
        strtab_offset = sections[link][4]
        for pos in range(offset, offset + size, entsize or 24):
            st_name, _st_info, _other, shndx, value, st_size = struct.unpack_from("<IBBHQQ", data, pos)
            end = data.index(b"\0", strtab_offset + st_name)
            if data[strtab_offset + st_name : end] != wanted or shndx == 0 or shndx >= len(sections):
                continue
            sec = sections[shndx]
            start = sec[4] + value if e_type == 1 else sec[4] + (value - sec[3])  # ET_REL: section offset
            return data[start : start + st_size]
    return None


def library_blob(path: str | Path) -> bytes:
    """The packed imports (``__tvm_ffi__library_bin``) of an exported ``.so`` or ``.tar``."""
    path = Path(path)
    symbol = _blob_symbol()
    if path.suffix == ".tar":
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                if member.isfile() and member.name.endswith(".o"):
                    found = _elf_symbol_bytes(tar.extractfile(member).read(), symbol)
                    if found is not None:
                        return found
        raise ChameleonError(f"{path.name} has no packed imports")
    found = _elf_symbol_bytes(path.read_bytes(), symbol)
    if found is None:
        raise ChameleonError(f"{path.name} has no packed imports")
    return found


def device_code_formats(path: str | Path) -> list[str]:
    """Formats of the CUDA modules an exported library carries: ``"cuda"`` (source) or binary."""
    header, entries = _split_blob(library_blob(path))
    return [_read_str(payload, 0)[0] for kind, payload in entries if kind == "cuda" and payload is not None]


# The blob (tvm-ffi's library module format): u64 size of the rest, the import tree (two u64
# vectors), then one entry per module: a kind string, and for modules other than the host DSO
# ("_lib") their SaveToBytes() as length-prefixed bytes. A CUDA module's bytes are
# [fmt string][function table][code bytes].


def _read_u64(buf: bytes, pos: int) -> tuple[int, int]:
    return struct.unpack_from("<Q", buf, pos)[0], pos + 8


def _read_bytes(buf: bytes, pos: int) -> tuple[bytes, int]:
    size, pos = _read_u64(buf, pos)
    if pos + size > len(buf):
        raise ChameleonError("the packed imports are truncated; this TVM version packs modules differently")
    return buf[pos : pos + size], pos + size


def _read_str(buf: bytes, pos: int) -> tuple[str, int]:
    raw, pos = _read_bytes(buf, pos)
    return raw.decode("utf-8", errors="replace"), pos


def _pack_bytes(raw: bytes) -> bytes:
    return struct.pack("<Q", len(raw)) + raw


def _split_blob(blob: bytes) -> tuple[bytes, list[tuple[str, bytes | None]]]:
    """(import-tree header, [(kind, payload or None for "_lib")]) of a packed-imports blob."""
    size, pos = _read_u64(blob, 0)
    if size + 8 != len(blob):
        raise ChameleonError("unexpected packed-imports size; this TVM version packs modules differently")
    for _ in range(2):  # import_tree_row_ptr, import_tree_child_indices
        count, pos = _read_u64(blob, pos)
        pos += 8 * count
    header = blob[8:pos]
    entries: list[tuple[str, bytes | None]] = []
    while pos < len(blob):
        kind, pos = _read_str(blob, pos)
        if kind == "_lib":
            entries.append((kind, None))
        else:
            payload, pos = _read_bytes(blob, pos)
            entries.append((kind, payload))
    return header, entries


def _join_blob(header: bytes, entries: list[tuple[str, bytes | None]]) -> bytes:
    body = header + b"".join(
        _pack_bytes(kind.encode()) + (b"" if payload is None else _pack_bytes(payload))
        for kind, payload in entries
    )
    return struct.pack("<Q", len(body)) + body


def _compile_cuda_payload(
    payload: bytes, sources: list[str], target: tvm.target.Target, toolchain: Toolchain
) -> bytes:
    """Replace a CUDA module's source with a fatbin compiled for the target's arch."""
    fmt, fmap_start = _read_str(payload, 0)
    if fmt != "cuda":
        logger.info("CUDA module already compiled (%s); kept as it is", fmt)
        return payload
    for source in sources:
        raw = source.encode()
        tail = _pack_bytes(raw)
        if payload.endswith(tail) and len(payload) - len(tail) >= fmap_start:
            break
    else:
        raise ChameleonError(
            "cannot find the CUDA source in the packed module; export with cuda='source' instead"
        )
    from tvm.support import nvcc

    start = time.perf_counter()
    try:
        with _nvcc_on_path(toolchain.nvcc), target:
            binary = bytes(nvcc.compile_cuda(source, target_format="fatbin", compiler="nvcc"))
    except Exception as exc:  # noqa: BLE001 - nvcc failures arrive as RuntimeError with the source
        raise ChameleonError(
            f"nvcc {toolchain.cuda_version} failed on the CUDA kernels for {toolchain.arch}: {_last_line(exc)}"
        ) from exc
    logger.info(
        "compiled %d kB of CUDA source for %s with nvcc %s: %d kB fatbin in %.1f s",
        len(raw) // 1024,
        toolchain.arch,
        toolchain.cuda_version,
        len(binary) // 1024,
        time.perf_counter() - start,
    )
    fmap = payload[fmap_start : len(payload) - len(tail)]
    return _pack_bytes(b"fatbin") + fmap + _pack_bytes(binary)


@contextmanager
def _nvcc_on_path(nvcc: str | None) -> Iterator[None]:
    """TVM's nvcc helper runs ``nvcc`` from PATH: put the one we found first while it runs."""
    if nvcc is None or shutil.which("nvcc") == nvcc:
        yield
        return
    old = os.environ.get("PATH", "")
    os.environ["PATH"] = os.pathsep.join([str(Path(nvcc).parent), old])
    try:
        yield
    finally:
        os.environ["PATH"] = old


def _binary_packer(target: tvm.target.Target, toolchain: Toolchain):
    """An ``fpack_imports`` for ``export_library`` that embeds fatbins instead of CUDA source."""

    def pack(mod: tvm.runtime.Module, is_system_lib: bool, prefix: str, workspace_dir: str) -> str:
        if is_system_lib:
            raise ChameleonError("system-lib builds cannot embed CUDA binaries; export with cuda='source'")
        blob = tvm_ffi.get_global_func("runtime.ModulePackImportsToTensor")(mod).numpy().tobytes()
        header, entries = _split_blob(blob)
        cuda_mods = mod._collect_from_import_tree(lambda m: m.kind == "cuda")
        sources = [m.inspect_source("cuda") or m.inspect_source("") for m in cuda_mods]
        entries = [
            (kind, _compile_cuda_payload(payload, sources, target, toolchain) if kind == "cuda" else payload)
            for kind, payload in entries
        ]
        triple = _llvm_triple(mod) or toolchain.host_triple
        return _blob_object(
            _join_blob(header, entries), prefix + _blob_symbol(), triple, workspace_dir, prefix
        )

    return pack


def _llvm_triple(mod: tvm.runtime.Module) -> str | None:
    """The triple ``export_library`` would pack the imports for: that of the host LLVM module."""
    for dso in mod._collect_dso_modules():
        if dso.kind == "llvm":
            triple = json.loads(dso.get_function("_get_target_string")()).get("mtriple")
            if triple:
                return str(triple)
    return None


def _blob_object(blob: bytes, symbol: str, triple: str, workspace_dir: str, prefix: str) -> str:
    """Write ``blob`` as a constant ``symbol`` into an object file for ``triple`` (through LLVM).

    Same layout as TVM's ``ModulePackImportsToLLVM`` (one constant byte array), so no C compiler
    is needed, also for ``.tar`` exports.
    """
    table = np.frombuffer(b"0123456789ABCDEF", np.uint8)
    raw = np.frombuffer(blob, np.uint8)
    escaped = np.empty((raw.size, 3), np.uint8)
    escaped[:, 0] = ord("\\")
    escaped[:, 1] = table[raw >> 4]
    escaped[:, 2] = table[raw & 15]
    ll_path = Path(workspace_dir) / f"{prefix}devc.ll"
    with open(ll_path, "wb") as f:
        f.write(f'target triple = "{triple}"\n\n@{symbol} = constant [{len(blob)} x i8] c"'.encode())
        f.write(escaped.tobytes())
        f.write(b'", align 1\n')
    obj_path = Path(workspace_dir) / f"{prefix}devc.o"
    tvm.runtime.load_module(str(ll_path)).write_to_file(str(obj_path))
    ll_path.unlink()
    return str(obj_path)
