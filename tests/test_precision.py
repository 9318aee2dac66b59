"""Precision: what ``auto`` resolves to, how a CPU's native bf16 is detected (from the kernel's CPU flags,
faked here), bf16 autocast in training (weights, optimizer state and loss stay fp32) and in eval/generate
against fp32, and the warning for bf16 on a CPU that would emulate it."""

import json

import pytest
import torch

from helpers import tiny_config, tiny_prosqa
from latentcot import runtime
from latentcot.runtime import native_bf16, uses_bf16

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_auto_is_bf16_only_on_a_gpu_that_has_it(monkeypatch):
    for native in (True, False):
        monkeypatch.setattr(runtime, "native_bf16", lambda device, native=native: native)
        assert uses_bf16("auto", CUDA) is native
        # not on a native-bf16 CPU either: the demo's accuracy moved past its seed-to-seed spread in bf16
        assert uses_bf16("auto", CPU) is False
        assert uses_bf16("fp32", CUDA) is False and uses_bf16("fp32", CPU) is False
        assert uses_bf16("bf16", CUDA) is True
    with pytest.raises(ValueError, match="train.precision: expected auto, fp32 or bf16, got 'fp16'"):
        uses_bf16("fp16", CPU)


def test_bf16_on_a_cpu_that_emulates_it_is_done_with_a_warning(monkeypatch, capsys):
    monkeypatch.setattr(runtime, "native_bf16", lambda device: False)
    assert uses_bf16("bf16", CPU, "--precision") is True
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--precision=bf16 on a CPU without native bf16" in err
    monkeypatch.setattr(runtime, "native_bf16", lambda device: True)
    assert uses_bf16("bf16", CPU) is True and capsys.readouterr().err == ""


def fake_cpuinfo(path, flags: str, model: str = "AMD Ryzen 9 7950X 16-Core Processor"):
    """Two processors in /proc/cpuinfo's layout (tab before the colon, an empty line between)."""
    one = (f"processor\t: {{n}}\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel name\t: {model}\n"
           f"flags\t\t: {flags}\nbugs\t\t: sysret_ss_attrs spectre_v1\n\n")
    path.write_text(one.format(n=0) + one.format(n=1))
    return path


ZEN3 = "fpu vme de pse tsc msr sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2 sha_ni"
ZEN4 = ZEN3 + " avx512f avx512dq avx512bw avx512vl avx512_bf16 avx512_vnni"
SAPPHIRE_RAPIDS_WITHOUT_AVX512_BF16 = ZEN3 + " avx512f avx512bw amx_bf16 amx_tile amx_int8"


def test_native_bf16_on_a_cpu_reads_the_kernels_cpu_flags(tmp_path, monkeypatch):
    # Probes that would say the opposite show the flags, not the machine running the suite, decide.
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    for name, flags, native in [("avx2", ZEN3, False), ("avx512_bf16", ZEN4, True),
                                ("amx_bf16", SAPPHIRE_RAPIDS_WITHOUT_AVX512_BF16, True)]:
        cpuinfo = fake_cpuinfo(tmp_path / name, flags)
        assert runtime.cpu_has_native_bf16(cpuinfo) is native, name
        monkeypatch.setattr(runtime, "CPUINFO", cpuinfo)
        assert native_bf16(CPU) is native and uses_bf16("auto", CPU) is False, name
    # a flag only contains the name: avx512_bf16 must not match in avx512_bf16_extra or the model name
    cpuinfo = fake_cpuinfo(tmp_path / "lookalike", ZEN3 + " avx512_bf16x", model="avx512_bf16 amx_bf16")
    assert runtime.cpu_has_native_bf16(cpuinfo) is False


def test_without_cpu_flags_to_read_torchs_probes_answer(tmp_path, monkeypatch):
    arm = tmp_path / "arm"  # an aarch64 kernel lists "Features", not "flags"
    arm.write_text("processor\t: 0\nBogoMIPS\t: 243.75\nFeatures\t: fp asimd bf16 i8mm\n\n")
    for cpuinfo in (tmp_path / "missing", arm):
        assert runtime.cpu_flags(cpuinfo) is None
        for avx512_bf16, amx, native in [(False, False, False), (True, False, True), (False, True, True)]:
            monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v)
            monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v)
            assert runtime.cpu_has_native_bf16(cpuinfo) is native, (cpuinfo.name, avx512_bf16, amx)

    def broken():
        raise RuntimeError("no cpuinfo")

    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", broken)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    assert runtime.cpu_has_native_bf16(arm) is False  # a probe that fails counts as no native bf16
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    assert runtime.cpu_has_native_bf16(arm) is False  # so does a torch without the probes


def test_native_bf16_on_a_gpu_is_torchs_answer(monkeypatch):
    for available, supported in [(False, True), (True, False), (True, True)]:
        monkeypatch.setattr(torch.cuda, "is_available", lambda v=available: v)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda v=supported: v)
        assert native_bf16(CUDA) is (available and supported)
    assert native_bf16(torch.device("meta")) is False


# Largest difference between the per-epoch training losses (about 4.1, 3.7, 3.6) of the bf16 and fp32 runs
# below, measured under 1 and 2 threads on a native-bf16 CPU (AMX): 2e-5, 7e-4 and 3.2e-3, growing as the
# runs drift apart step by step. The bound leaves 10x for other CPUs' bf16 kernels; a thought not fed back
# moves the stage-2 loss by far more.
BF16_TRAIN_LOSS_ATOL = 0.03


def test_bf16_training_computes_in_bf16_keeps_fp32_state_and_follows_fp32(tmp_path):
    from latentcot.training import train

    # Weights and loss stay fp32 either way, so only a tensor inside the forward shows that autocast ran.
    bf16_outputs = []

    def record(module, args, output):
        if torch.is_tensor(output) and output.dtype == torch.bfloat16:
            bf16_outputs.append(type(module).__name__)

    losses = {}
    for precision in ("fp32", "bf16"):
        cfg = tiny_config(tmp_path, "train.epochs=3", f"train.precision={precision}", "method.max_latent_stage=2",
                          name=precision)
        handle = torch.nn.modules.module.register_module_forward_hook(record)
        try:
            trainer = train(cfg, train_records=tiny_prosqa(16, seed=3))
        finally:
            handle.remove()
        losses[precision] = [h["train_loss"] for h in trainer.state.history]
        if precision == "fp32":
            assert not bf16_outputs, "fp32 training computed in bf16"
    assert {"Linear", "Conv1D"} & set(bf16_outputs), "no matmul computed in bf16"
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    states = [v for s in trainer.optimizer.state.values() for v in s.values() if torch.is_tensor(v) and v.dim()]
    assert states and all(v.dtype == torch.float32 for v in states)
    assert len(losses["bf16"]) == len(losses["fp32"]) == 3  # through stages 0, 1 and 2
    assert all(loss == loss and loss < 10 for loss in losses["bf16"])
    differences = [abs(b - f) for b, f in zip(losses["bf16"], losses["fp32"])]
    assert max(differences) <= BF16_TRAIN_LOSS_ATOL, differences


# Largest differences between bf16 and fp32 in the tiny run below: the prompt pass's final hidden states
# (size up to 2.7) and the first answer token's logits (up to 1.06). Measured under 1, 2 and 4 threads on an
# AVX2 CPU (bf16 emulated): 0.0098-0.0100 and 0.0031 (the logits mostly by their own rounding to bf16); under
# 1 and 2 threads on a native-bf16 CPU (AMX): 0.0094 and 0.0044. The bounds leave 7-10x for other CPUs' bf16
# kernels; feeding zeros for the thoughts moves the thought columns' states by 1.5.
BF16_HIDDEN_ATOL = 0.1
BF16_LOGIT_ATOL = 0.03


def test_eval_in_bf16_computes_in_bf16_and_matches_fp32(tmp_path, capsys, monkeypatch):
    from latentcot.cli import main
    from latentcot.data.io import save_records
    from latentcot.evaluation import cli as eval_cli
    from latentcot.inference.loading import load_run
    from latentcot.training import train

    cfg = tiny_config(tmp_path, "train.epochs=2", "method.max_new_tokens=12")
    train(cfg, train_records=tiny_prosqa(16, seed=1))
    save_records(tiny_prosqa(4, seed=8), tmp_path / "valid.json")
    capsys.readouterr()
    summaries, rows, prompt_hidden, first_logits = {}, {}, {}, {}
    for precision in ("fp32", "bf16"):
        calls = []

        def load_and_watch(run, calls=calls):
            loaded = load_run(run)
            model = loaded[1]
            model.base_model.register_forward_hook(lambda m, a, out: calls.append(("base", out.last_hidden_state)))
            model.get_output_embeddings().register_forward_hook(lambda m, a, out: calls.append(("head", out)))
            return loaded

        monkeypatch.setattr(eval_cli, "load_run", load_and_watch)
        out = tmp_path / f"{precision}.jsonl"
        assert main(["eval", str(cfg.output_dir), "--data", str(tmp_path / "valid.json"), "--precision", precision,
                     "--out", str(out), "--device", "cpu"]) == 0
        summaries[precision] = json.loads(capsys.readouterr().out)
        rows[precision] = [json.loads(line) for line in out.read_text().splitlines()]
        # Up to the first head call both runs see the same prompts (question, then each thought in turn);
        # after it each follows what it wrote.
        first_head = [kind for kind, _ in calls].index("head")
        prompt_hidden[precision] = torch.cat([states for _, states in calls[:first_head]], dim=1)
        first_logits[precision] = calls[first_head][1]
    assert first_logits["fp32"].dtype == torch.float32 and first_logits["bf16"].dtype == torch.bfloat16
    hidden_difference = float((prompt_hidden["bf16"].float() - prompt_hidden["fp32"]).abs().max())
    logit_difference = float((first_logits["bf16"].float() - first_logits["fp32"]).abs().max())
    assert hidden_difference <= BF16_HIDDEN_ATOL, hidden_difference
    assert 0 < logit_difference <= BF16_LOGIT_ATOL, logit_difference
    assert summaries["bf16"]["n_problems"] == summaries["fp32"]["n_problems"] == 4
    assert summaries["bf16"]["n_thoughts"] == summaries["fp32"]["n_thoughts"] == 2
    assert [(r["question"], r["n_thoughts"]) for r in rows["bf16"]] == [(r["question"], r["n_thoughts"])
                                                                        for r in rows["fp32"]]
