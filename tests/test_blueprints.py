"""Blueprint table, schema validation, embeddings, host detection and target resolution."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from chameleon.errors import ChameleonError, UsageError
from chameleon.hardware import host_cpu
from chameleon.hardware.blueprints import (
    DEFAULT_PATH,
    EMBEDDING_DIM,
    EMBEDDING_FEATURES,
    SCHEMA,
    blueprint_names,
    describe,
    embedding,
    get_blueprint,
    load_blueprints,
)
from chameleon.hardware.target_blueprint import blueprint_for_target

REQUIRED = {
    "jetson-nano",
    "jetson-tx2",
    "jetson-xavier-nx",
    "jetson-agx-xavier",
    "jetson-orin-nano",
    "jetson-orin-nx",
    "jetson-agx-orin-64gb",
    "jetson-agx-thor",
    "t4",
    "a100",
    "h100",
    "h200",
    "rtx-3080",
    "rtx-3090",
    "rtx-4090",
    "x86-avx2-desktop",
    "x86-avx512-server",
    "jetson-agx-orin-cpu",
}
# Published FP32 CUDA-core totals: SMs x cores per SM must reproduce them.
CUDA_CORES = {
    "jetson-nano": 128,
    "jetson-tx1": 256,
    "jetson-tx2": 256,
    "jetson-xavier-nx": 384,
    "jetson-agx-xavier": 512,
    "jetson-orin-nano": 1024,
    "jetson-orin-nx": 1024,
    "jetson-agx-orin-64gb": 2048,
    "jetson-agx-orin-32gb": 1792,
    "jetson-agx-thor": 2560,
    "t4": 2560,
    "a100": 6912,
    "h100": 16896,
    "h200": 16896,
    "rtx-3080": 8704,
    "rtx-3090": 10496,
    "rtx-4090": 16384,
}


def test_shipped_table_validates_and_has_every_device():
    table = load_blueprints()
    assert REQUIRED <= set(table)
    for name, bp in table.items():
        assert bp.name == name and bp.kind in ("gpu", "cpu")
        assert set(bp.fields) == set(SCHEMA[bp.kind]), name
        assert len(bp.source) > 20, name
    assert blueprint_names()[0] == "host" and set(blueprint_names()[1:]) == set(table)


def test_gpu_core_counts_match_datasheets():
    table = load_blueprints()
    for name, cores in CUDA_CORES.items():
        bp = table[name]
        assert bp.num("sm_count") * bp.num("cores_per_sm") == cores, name


def test_tvm_tags_exist_and_agree_with_the_table():
    import tvm

    tags = set(tvm.target.list_tags())
    for bp in load_blueprints().values():
        tag = bp.fields.get("tvm_tag")
        if not tag:
            continue
        assert tag in tags, tag
        exp = tvm.target.Target(tag).export()
        assert exp["arch"].startswith("sm_" + str(bp.fields["compute_capability"]).replace(".", ""))
        assert exp["max_threads_per_block"] == bp.fields["max_threads_per_block"]
        assert exp["thread_warp_size"] == bp.fields["warp_size"]
        assert exp["registers_per_block"] == bp.fields["registers_per_block"]
        shared = {
            bp.num(k) * 1024
            for k in ("max_shared_memory_per_block_kb", "max_shared_memory_per_block_optin_kb")
        }
        assert exp["max_shared_memory_per_block"] in shared, tag
        if "l2_cache_size_bytes" in exp:
            assert exp["l2_cache_size_bytes"] == bp.num("l2_cache_kb") * 1024, tag


def _broken(tmp_path: Path, edit) -> Path:
    doc = json.loads(DEFAULT_PATH.read_text())
    edit(doc["devices"])
    path = tmp_path / "bp.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (
            lambda d: d["jetson-orin-nano"]["fields"].pop("sm_count"),
            ["jetson-orin-nano", "missing", "sm_count"],
        ),
        (lambda d: d["t4"]["fields"].update(clock_mhz=99999.0), ["'t4'", "clock_mhz", "outside", "MHz"]),
        (lambda d: d["a100"]["fields"].update(sm_count=0), ["'a100'", "sm_count", "outside"]),
        (lambda d: d["h100"]["fields"].update(warp_size="32"), ["'h100'", "warp_size", "int"]),
        (lambda d: d["rtx-4090"]["fields"].update(sm_count=12.5), ["'rtx-4090'", "sm_count", "int"]),
        (
            lambda d: d["jetson-nano"]["fields"].update(l2_cache=256),
            ["jetson-nano", "unknown field", "l2_cache"],
        ),
        (lambda d: d["x86-avx2-desktop"]["fields"].update(isa="avx3"), ["x86-avx2-desktop", "isa"]),
        (lambda d: d["x86-avx2-desktop"].update(source=""), ["x86-avx2-desktop", "source"]),
        (lambda d: d["t4"].update(kind="tpu"), ["'t4'", "kind", "tpu"]),
        (
            lambda d: d["jetson-tx2"]["fields"].update(max_shared_memory_per_block_optin_kb=32),
            ["jetson-tx2", "max_shared_memory_per_block_kb", "exceeds"],
        ),
    ],
)
def test_broken_copy_is_refused_with_a_clear_message(tmp_path, edit, words):
    path = _broken(tmp_path, edit)
    with pytest.raises(ChameleonError) as info:
        load_blueprints(path)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_unreadable_file_is_refused(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ChameleonError, match="cannot read blueprint file"):
        load_blueprints(bad)
    with pytest.raises(ChameleonError, match="devices"):
        load_blueprints(_broken(tmp_path, lambda d: d.clear()))


def test_unknown_name_lists_valid_names():
    with pytest.raises(UsageError) as info:
        get_blueprint("jetson-orin-mega")
    assert "host" in str(info.value) and "jetson-orin-nano" in str(info.value)
    assert get_blueprint("t4").fields["tvm_tag"] == "nvidia/nvidia-t4"


def test_embeddings_fixed_length_deterministic_distinct():
    bps = [*load_blueprints().values(), get_blueprint("host")]
    assert len(EMBEDDING_FEATURES) == EMBEDDING_DIM
    vecs = np.stack([embedding(bp) for bp in bps])
    assert vecs.shape == (len(bps), EMBEDDING_DIM) and vecs.dtype == np.float32
    assert np.all(np.isfinite(vecs))
    again = np.stack([embedding(bp) for bp in load_blueprints(DEFAULT_PATH).values()])
    assert np.array_equal(vecs[:-1], again)
    dists = np.linalg.norm(vecs[:, None, :] - vecs[None, :, :], axis=-1)
    assert dists[~np.eye(len(bps), dtype=bool)].min() > 1e-3
    gpu = EMBEDDING_FEATURES.index("kind=gpu")
    sm = EMBEDDING_FEATURES.index("sm_count")
    for bp, vec in zip(bps, vecs, strict=True):
        assert vec[gpu] == (bp.kind == "gpu")
        if bp.kind == "cpu":
            assert vec[sm] == 0.0
    orin, agx = embedding(get_blueprint("jetson-orin-nano")), embedding(get_blueprint("jetson-agx-orin-64gb"))
    assert agx[sm] > orin[sm]  # more SMs -> larger entry


def test_describe_rows_carry_units():
    rows = dict(describe(get_blueprint("jetson-orin-nano")))
    assert rows["clock_mhz"] == "625 MHz"
    assert rows["max_shared_memory_per_block_kb"] == "48 KiB"
    assert rows["max_shared_memory_per_block_optin_kb"] == "163 KiB"
    assert rows["compute_capability"] == "8.7"
    assert rows["peak fp32 (derived)"] == "1,280 GFLOP/s"
    assert "Data Sheet" in rows["source"]


def test_host_detection_is_sane():
    bp = get_blueprint("host")
    assert bp is host_cpu.detect_host_blueprint()  # cached
    f = bp.fields
    assert f["cores"] == len(os.sched_getaffinity(0))
    assert f["simd_width_bits"] in (64, 128, 256, 512, 1024, 2048)
    assert 4 <= f["l1d_kb"] <= f["l2_kb"]
    assert 100 <= f["clock_mhz"] <= 6000
    from tvm.target import codegen

    assert f["llvm_mcpu"] == codegen.llvm_get_system_cpu()
    info = host_cpu.parse_cpuinfo(Path("/proc/cpuinfo").read_text())
    flags = set((info.get("flags") or info.get("Features") or "").split())
    assert ("avx512f" in flags) == (f["isa"] == "avx512")


def test_cpuinfo_and_sysfs_parsers(tmp_path):
    text = "processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu sse2 avx avx2\n\nprocessor\t: 1\n"
    info = host_cpu.parse_cpuinfo(text)
    assert info["model name"] == "Test CPU" and "processor" in info
    assert host_cpu.simd_from_flags(set(info["flags"].split())) == (256, "avx2")
    assert host_cpu.simd_from_flags({"avx512f", "avx2"}) == (512, "avx512")
    assert host_cpu.simd_from_flags({"fp", "asimd"}) == (128, "neon")
    assert host_cpu.simd_from_flags({"asimd", "sve"}, sve_bits=256) == (256, "sve")
    assert host_cpu.parse_size_kb("32K") == 32 and host_cpu.parse_size_kb("32M") == 32768
    assert host_cpu.parse_size_kb("garbage") == 0
    for i, (level, kind, size) in enumerate(
        [(1, "Data", "48K"), (1, "Instruction", "32K"), (2, "Unified", "2048K"), (3, "Unified", "36M")]
    ):
        d = tmp_path / f"index{i}"
        d.mkdir()
        (d / "level").write_text(f"{level}\n")
        (d / "type").write_text(f"{kind}\n")
        (d / "size").write_text(f"{size}\n")
    assert host_cpu.read_caches(tmp_path) == {"l1d_kb": 48, "l2_kb": 2048, "l3_kb": 36864}


@pytest.mark.parametrize(
    ("tag", "name"),
    [
        ("nvidia/jetson-orin-nano", "jetson-orin-nano"),
        ("nvidia/jetson-agx-orin-64gb", "jetson-agx-orin-64gb"),
        ("nvidia/jetson-agx-orin-32gb", "jetson-agx-orin-32gb"),
        ("nvidia/jetson-agx-xavier", "jetson-agx-xavier"),
        ("nvidia/jetson-nano", "jetson-nano"),
        ("nvidia/jetson-tx2", "jetson-tx2"),
        ("nvidia/jetson-agx-thor", "jetson-agx-thor"),
        ("nvidia/nvidia-a100", "a100"),
    ],
)
def test_jetson_and_gpu_tags_resolve(tag, name):
    import tvm

    assert blueprint_for_target(tvm.target.Target(tag).export()).name == name  # export drops the tag
    assert blueprint_for_target({"kind": "cuda", "tag": tag}).name == name


def test_tag_kept_in_the_dict_tells_identical_exports_apart():
    import tvm

    for tag, name in [("nvidia/jetson-tx1", "jetson-tx1"), ("nvidia/geforce-rtx-3090", "rtx-3090")]:
        exported = dict(tvm.target.Target(tag).export())
        assert blueprint_for_target({**exported, "tag": tag}).name == name
        # Without the tag the export equals that of the first entry of the same compute capability.
        assert blueprint_for_target(exported).name in ("jetson-nano", "rtx-3080")


def test_cuda_arch_resolves_by_compute_capability():
    assert blueprint_for_target({"kind": "cuda", "arch": "sm_87"}).name == "jetson-orin-nano"
    assert blueprint_for_target({"kind": "cuda", "arch": "sm_80"}).name == "a100"
    assert blueprint_for_target({"kind": "cuda", "arch": "sm_90a"}).name == "h100"
    # a local GPU's target carries its L2 size: that tells the H200 from the H100
    assert (
        blueprint_for_target({"kind": "cuda", "arch": "sm_90", "l2_cache_size_bytes": 60 << 20}).name
        == "h200"
    )
    assert (
        blueprint_for_target({"kind": "cuda", "arch": "sm_90", "l2_cache_size_bytes": 50 << 20}).name
        == "h100"
    )
    with pytest.raises(ChameleonError, match="compute capability 6.1"):
        blueprint_for_target({"kind": "cuda", "arch": "sm_61"})
    with pytest.raises(ChameleonError, match="arch"):
        blueprint_for_target({"kind": "cuda"})


def test_llvm_targets_resolve_to_host_or_isa_entry():
    import tvm

    host = get_blueprint("host")
    mcpu = host.fields["llvm_mcpu"]
    same = blueprint_for_target(tvm.target.Target({"kind": "llvm", "mcpu": mcpu, "num-cores": 1}).export())
    assert same.name == "host" and same.fields["cores"] == 1
    assert blueprint_for_target({"kind": "llvm"}) is host
    other = "haswell" if mcpu != "haswell" else "broadwell"
    avx2 = blueprint_for_target({"kind": "llvm", "mcpu": other, "num-cores": 4})
    assert avx2.name == "x86-avx2-desktop" and avx2.fields["cores"] == 4
    assert avx2.fields["simd_width_bits"] == 256
    arm = blueprint_for_target({"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": "cortex-a78ae"})
    assert arm.name == "jetson-agx-orin-cpu" and arm.fields["cores"] == 12
    with pytest.raises(ChameleonError, match="mcpu"):
        blueprint_for_target({"kind": "llvm", "mcpu": "no-such-cpu"})
    with pytest.raises(UsageError, match="cuda, llvm"):
        blueprint_for_target({"kind": "vulkan"})
