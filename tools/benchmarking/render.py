"""The markdown report of ``tools/benchmark.py`` (BENCHMARKS.md), one function per section.

Each ``render_<section>`` takes that section's result (as the measuring modules return it)
and returns its lines; :func:`render_markdown` joins the header, the method and the sections
present in the results, in a fixed order.
"""
from typing import Callable, Dict, List, Optional

TARGET_AKDP_LOSS_FRACTION = 0.03
TARGET_STEP_RATIO = 1.10


def fmt(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}f}"


def pct(part: float, whole: float, digits: int = 1) -> str:
    return f"{100 * part / whole:.{digits}f}%"


def render_header(res: dict) -> List[str]:
    mi = res["machine"]
    return [
        "# ZoomInNet performance benchmark", "",
        f"- Date: {mi['date']}",
        f"- Machine: {mi['nproc']} CPU cores (`nproc`), {mi['cpu']}; no accelerator",
        f"- torch {mi['torch']}, {mi['threads']} intra-op thread(s) for every table except 'Threads'; "
        f"Python {mi['python']}",
        f"- Load average (1/5/15 min) at start: {mi['load_start']}; at end: {res.get('load_end', '?')} "
        "(the machine is shared with other jobs: absolute times are noisy, the ratios measured "
        "in one process in interleaved rounds much less)",
        f"- Total run time: {res['elapsed_s'] / 60:.1f} min",
        "", "Command:", "", "```", res["command"], "```", "",
        "## Method", "",
        "- Every time is the **median** of the timed repeats, after warm-up rounds, all in one "
        "process. The models of a table run in interleaved rounds (A, B, C, A, B, C, ...), so a "
        "change of the machine's load affects all of them and their ratios alike.",
        "- Models are built from the repository's configs with random weights (no checkpoint "
        "can be downloaded here); dense convolution cost does not depend on the weights. The "
        "optimizer is SGD (momentum 0.9, weight decay 1e-4) with lr 0, i.e. the same arithmetic "
        "as training while the weights stay fixed, so every repeat runs the same model.",
        "- Inputs are uint8 noise images; the teacher's view is the 2x nearest upsampling; ground "
        "truth is VisDrone-like: box sides log-uniform in [4, 48] px at 512 (scaled with the size), "
        "random classes.",
    ]


def render_threads(th: dict, threads: int) -> List[str]:
    out = ["", "## Threads", "",
           f"Why the tables run on {threads} thread(s): the same work at 1 thread and at "
           f"`nproc` threads, interleaved, in this process ({th['warmup']} warm-up + {th['repeats']} "
           f"timed rounds, {th['size']}x{th['size']}). On a shared machine whose load average exceeds "
           "its cores, an OpenMP thread of ours is often descheduled and every parallel op waits "
           "for it at its barrier; short ops (AKDP, losses) suffer most.", "",
           "| work | median (s) |", "|---|---|"]
    return out + [f"| {r['task']} | {fmt(r['median_s'])} |" for r in th["rows"]]


def inference_table(inf: dict) -> List[str]:
    out = ["| model | config | input | time / image (s) | time ratio to SNet | GFLOPs | GFLOPs ratio to SNet |",
           "|---|---|---|---|---|---|---|"]
    for r in inf["rows"]:
        g = f"{r['gflops']:.2f}" if "gflops" in r else "-"
        gr = f"{r['gflops_ratio']:.2f}" if "gflops_ratio" in r else "-"
        out.append(f"| {r['model']} | `{r['config']}` | {r['input']}x{r['input']} | {fmt(r['median_s'])} "
                   f"| {r['time_ratio']:.2f} | {g} | {gr} |")
    return out


def render_inference(inf: dict) -> List[str]:
    return ["", "## Inference per image", "",
            f"Batch 1, `model.eval()` under `torch.no_grad()`, the student alone as at test time "
            f"(preprocessing, backbone, head, decoding, NMS; with random weights few boxes pass the "
            f"0.05 score threshold, so NMS is cheap). {inf['warmup']} warm-up + {inf['repeats']} "
            f"timed rounds. GFLOPs: `tools/count_flops.py` (fvcore, one multiply-add = one flop, "
            "backbone + FPN + head).", ""] + inference_table(inf)


BREAKDOWN_METHOD = (
    "How the breakdown is measured: the CSKD step is the real `ZoomInNet.forward` + backward + "
    "`optimizer.step()`, run under `torch.profiler`; the teacher forward, AKDP and the "
    "distillation loss's forward are the `record_function` regions `zoominnet.teacher`, "
    "`zoominnet.akdp` and `zoominnet.distill_loss` of `ZoomInNet.distillation_pairs` / "
    "`distillation_loss` in that very step (CPU wall time; on CUDA the time of the kernels "
    "launched inside), and \"student forward\" is the forward time minus those three. The "
    "SNet + LA student step is `build_model` of the same config without the teacher (same "
    "weights, anchors, GT). The loss's backward runs inside the step's backward; it is timed on "
    "its own (forward + backward of `distillation_loss` on the pairs of "
    "`ZoomInNet.inspect_distillation` for the batch) and that figure is used for the target.")


def step_rows(tr: dict) -> List[str]:
    """The rows of the training-step table (without its header)."""
    m, lf = tr["medians"], tr["loss_fwd_bwd"]
    c = m["cskd"]
    return [
        f"| SNet step (`snet.yaml`) | {fmt(m['snet']['step'])} | - |",
        f"| SNet + LA student step (`la` without teacher) | {fmt(m['la']['step'])} | - |",
        f"| **SNet + LA + CSKD step** (`cskd_la.yaml`) | **{fmt(c['step'])}** | 100% |",
        f"| - student forward (backbone, head, anchors, matching, focal/box losses, 2x maps) "
        f"| {fmt(c['student_forward'])} | {pct(c['student_forward'], c['step'])} |",
        f"| - teacher forward (`zoominnet.teacher`, R50 at {2 * tr['size']}, no_grad) "
        f"| {fmt(c['teacher'])} | {pct(c['teacher'], c['step'])} |",
        f"| - AKDP (`zoominnet.akdp`, {tr['batch']} images, {sum(tr['num_anchors'])} anchors) "
        f"| {fmt(c['akdp'])} | {pct(c['akdp'], c['step'])} |",
        f"| - distillation loss forward (`zoominnet.distill_loss`, {len(tr['num_anchors'])} levels) "
        f"| {fmt(c['loss'], 4)} | {pct(c['loss'], c['step'], 2)} |",
        f"| - backward (student, incl. the distillation loss) | {fmt(c['backward'])} "
        f"| {pct(c['backward'], c['step'])} |",
        f"| - optimizer step | {fmt(c['optimizer'])} | {pct(c['optimizer'], c['step'])} |",
        f"| distillation loss forward + backward, on its own | {fmt(lf['total'], 4)} "
        f"| {pct(lf['total'], c['step'], 2)} |",
    ]


def render_train(tr: dict) -> List[str]:
    m = tr["medians"]
    return ["", "## Training step", "",
            f"Batch {tr['batch']} at {tr['size']}x{tr['size']} (teacher {2 * tr['size']}x{2 * tr['size']}), "
            f"{', '.join(map(str, tr['num_boxes']))} GT boxes in the two images "
            f"(drawn from {tr['boxes_range'][0]}-{tr['boxes_range'][1]} per image). A step is "
            "`zero_grad` + forward (losses) + backward + `optimizer.step()`. The teacher is a "
            "random R50 built from `tnet.yaml`, saved as `{\"model\": state_dict}` and loaded "
            "strictly through `MODEL.ZOOMIN.TEACHER.CONFIG_FILE/WEIGHTS`, as in training. "
            f"{tr['warmup']} warm-up + {tr['repeats']} timed rounds of (SNet step, SNet + LA step, "
            "SNet + LA + CSKD step).", "", BREAKDOWN_METHOD, "",
            "| step / component | median (s) | share of the CSKD step |",
            "|---|---|---|"] + step_rows(tr) + [
            "",
            f"SNet + LA student step breakdown: forward {fmt(m['la']['forward'])} s, backward "
            f"{fmt(m['la']['backward'])} s, optimizer {fmt(m['la']['optimizer'])} s. SNet: forward "
            f"{fmt(m['snet']['forward'])} s, backward {fmt(m['snet']['backward'])} s. Key positions "
            f"(last batch, per level): {', '.join(f'{100 * k:.0f}%' for k in tr['key_fraction'])}."]


def render_akdp(ak: dict) -> List[str]:
    out = ["", "## AKDP against boxes and anchors", "",
           f"`akdp_mask` for one image (scope `{ak['scope']}`, lambda "
           f"{'adaptive (mean + std)' if ak['lam'] is None else ak['lam']}), on the anchors of the "
           "model's own anchor generator (LA: the 2x grid), VisDrone-like boxes (sides 4-48 px at 512). "
           f"Time: median of {ak['repeats']} after {ak['warmup']} warm-up. Peak memory: the rise "
           "of the resident set size above its value just before the call, in a fresh "
           "subprocess per point (the kernel's peak-RSS mark `VmHWM` is reset through "
           "`/proc/self/clear_refs` just before the call and read after it). Why RSS: "
           "`tracemalloc` does not see torch's allocations and psutil is not installed; a "
           "fresh process keeps memory cached by the allocator from earlier points out of the "
           "figure. It includes the outputs and every temporary of `pairwise_iou`.", "",
           "| anchors | input | grids | #anchors | #boxes | IoU entries | time (s) | peak memory (MB) | key positions |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in ak["rows"]:
        mem = f"{r['peak_mb']:.1f}" if "peak_mb" in r else "-"
        grids = f"{r['grids'][0][0]}x{r['grids'][0][1]}..{r['grids'][-1][0]}x{r['grids'][-1][1]}"
        out.append(f"| {r['anchors_name']} | {r['input']} | {grids} | {r['num_anchors']:,} | {r['num_boxes']:,} "
                   f"| {r['num_anchors'] * r['num_boxes'] / 1e6:.1f} M | {fmt(r['median_s'])} | {mem} "
                   f"| {100 * r['key_fraction']:.0f}% |")
    return out


def render_memory(memory: dict) -> List[str]:
    out = ["", "## Peak memory of a training step", "",
           "Fresh subprocess per row: build the LA student and the frozen teacher (read from its "
           "files) and the batch, then run the steps; `before` is the RSS after building (weights "
           "of both models, the inputs), `peak` the peak RSS during the steps (VmHWM reset before "
           "the first step). \"SNet + LA + CSKD\" attaches the teacher; \"SNet + LA student\" "
           "trains the student alone (the teacher's weights still resident).", "",
           "| configs | step | input / batch | steps | RSS before (MB) | peak RSS (MB) | rise (MB) "
           "| peak after each step (MB) |",
           "|---|---|---|---|---|---|---|---|"]
    for r in memory["rows"]:
        name = "SNet + LA + CSKD" if r["variant"] == "cskd" else "SNet + LA student"
        out.append(f"| `{r['config_dir']}` | {name} | {r['size']} / {r['batch']} | {r['steps']} "
                   f"| {r['rss_before_kb'] / 1024:.0f} | {r['peak_kb'] / 1024:.0f} "
                   f"| {r['delta_kb'] / 1024:.0f} "
                   f"| {', '.join(f'{p / 1024:.0f}' for p in r['peak_after_step_kb'])} |")
    return out


def render_targets(tr: dict, threads: int) -> List[str]:
    c = tr["medians"]["cskd"]
    la, t, lf = tr["medians"]["la"]["step"], c["teacher"], tr["loss_fwd_bwd"]["total"]
    f_ok = tr["akdp_loss_fraction"] <= TARGET_AKDP_LOSS_FRACTION
    r_ok = tr["step_ratio"] <= TARGET_STEP_RATIO
    return [
        "", "## Targets", "", "| target | measured | met |", "|---|---|---|",
        f"| AKDP + distillation loss <= {100 * TARGET_AKDP_LOSS_FRACTION:.0f}% of the CSKD step "
        f"| ({fmt(c['akdp'])} + {fmt(lf, 4)}) s / {fmt(c['step'])} s = "
        f"{100 * tr['akdp_loss_fraction']:.1f}% | {'met' if f_ok else 'NOT met'} |",
        f"| CSKD step <= {TARGET_STEP_RATIO}x (student step + teacher forward) "
        f"| {fmt(c['step'])} s / ({fmt(la)} + {fmt(t)}) s = "
        f"{tr['step_ratio']:.3f}x | {'met' if r_ok else 'NOT met'} |",
        "",
        f"- AKDP is {pct(c['akdp'], c['step'])} and the loss (forward + backward) "
        f"{pct(lf, c['step'], 2)} of the CSKD step"
        + ("." if f_ok else "; AKDP and the loss exceed the budget (their cost grows with anchors x "
           "boxes, see the AKDP table)."),
        f"- The CSKD step costs {c['step'] - la - t:+.3f} s against (student step + teacher forward): AKDP, "
        "the loss, the 2x upsampled student maps, the profiler's per-op cost and run-to-run noise of "
        "the shared machine (student step and CSKD step are separate runs).",
        f"- All shares are at {threads} thread(s); on CPU the teacher forward at 2x input "
        f"({100 * t / c['step']:.0f}% of the step) and the student's own forward and backward "
        "dominate the step."]


#: (label, model, time key) of the rows of the device's training-step table.
DEVICE_STEP_ROWS = (
    ("SNet step", "snet", "step"),
    ("SNet + LA student step", "la", "step"),
    ("**SNet + LA + CSKD step**", "cskd", "step"),
    ("- student forward", "cskd", "student_forward"),
    ("- teacher forward (`zoominnet.teacher`)", "cskd", "teacher"),
    ("- AKDP (`zoominnet.akdp`)", "cskd", "akdp"),
    ("- distillation loss forward (`zoominnet.distill_loss`)", "cskd", "loss"),
    ("- backward", "cskd", "backward"),
    ("- optimizer step", "cskd", "optimizer"),
)


def render_device(dev: dict) -> List[str]:
    out = ["", f"## Inference and training step on `{dev['device']}`, AMP off and on", ""]
    if "skipped" in dev:
        return out + [f"Skipped: {dev['skipped']}."]
    fp, amp = dev["runs"]["fp32"], dev["runs"]["amp"]
    tr = fp["train"]
    out += [f"Device: {dev['name']}. The inference and training-step measurements above, with the models "
            f"and inputs on `{dev['device']}` and a device synchronisation closing every timed piece; "
            "AMP is `SOLVER.AMP.ENABLED` as Detectron2's `AMPTrainer` runs it (forward under "
            "`torch.autocast`, float16 on CUDA and bfloat16 on the CPU, loss scaled by a `GradScaler`). "
            f"Inference at {fp['inference']['size']} (TNet at 2x), batch 1; training batch {tr['batch']} "
            f"at {tr['size']}; {tr['warmup']} warm-up + {tr['repeats']} timed rounds.", "",
            "| model | input | time / image, fp32 (s) | time / image, AMP (s) | AMP speed-up |",
            "|---|---|---|---|---|"]
    for r, a in zip(fp["inference"]["rows"], amp["inference"]["rows"]):
        out.append(f"| {r['model']} | {r['input']}x{r['input']} | {fmt(r['median_s'], 4)} | {fmt(a['median_s'], 4)} "
                   f"| {r['median_s'] / a['median_s']:.2f}x |")
    out += ["", "| step / component | fp32 (s) | AMP (s) |", "|---|---|---|"]
    mf, ma = fp["train"]["medians"], amp["train"]["medians"]
    for label, name, key in DEVICE_STEP_ROWS:
        out.append(f"| {label} | {fmt(mf[name][key], 4)} | {fmt(ma[name][key], 4)} |")
    return out


def render_markdown(res: dict, extra: Optional[Dict[str, Callable[[dict], List[str]]]] = None) -> str:
    """The report of the results ``res`` of ``tools/benchmark.py``; ``extra`` maps the names of
    further sections present in ``res`` to their renderers (appended last)."""
    threads = res["machine"]["threads"]
    out = render_header(res)
    if "threads" in res:
        out += render_threads(res["threads"], threads)
    if "inference" in res:
        out += render_inference(res["inference"])
    if "train" in res:
        out += render_train(res["train"])
    if "akdp" in res:
        out += render_akdp(res["akdp"])
    if "memory" in res:
        out += render_memory(res["memory"])
    if "train" in res:
        out += render_targets(res["train"], threads)
    if "device" in res:
        out += render_device(res["device"])
    for name, render in (extra or {}).items():
        if name in res:
            out += [""] + render(res[name])
    return "\n".join(out) + "\n"
