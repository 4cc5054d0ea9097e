"""report.json → report.md: one heading per section, a table of its figures or the reason it has none."""

from __future__ import annotations

from typing import Any, Callable, Optional


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def _cell(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.2f}"
    return str(v)


def _environment(d: dict[str, Any]) -> list[str]:
    rows = [
        ["device", f"{d['kind']} · {d['name']} × {d['count']}"],
        ["device memory", None if d.get("memory_gib") is None else f"{d['memory_gib']:.1f} GiB"],
        ["AMP", d["amp"] + (f" ({d['note']})" if d.get("note") else "")],
        ["backend settings", d.get("tuning") or "none needed"],
        ["torch / torch_mlu", f"{d['torch']} / {d.get('torch_mlu') or '–'}"],
        ["CPU cores for this process", d["cores"]],
        ["load average (1, 5, 15 min)", ", ".join(f"{x:.1f}" for x in d["load_average"])],
        ["host", d["host"]],
    ]
    return table(["", ""], rows)


def _device_tests(d: dict[str, Any]) -> list[str]:
    return [f"`{d['summary']}` (exit {d['exit']})"]


def _train_row(r: dict[str, Any]) -> list[Any]:
    total = r["data_time_s"] + r["compute_time_s"]
    return [r["batch_size"], r["image_size"], r["images_per_s"], r["images_per_s_per_card"],
            f"{100 * r['data_time_s'] / max(total, 1e-9):.0f}%", r["peak_memory_mib"], r["warmup_s"]]  # fmt: skip


TRAIN_HEADER = ["batch/card", "px", "img/s", "img/s per card", "data time", "peak MiB", "warm-up s"]


def _train_synthetic(d: dict[str, Any]) -> list[str]:
    lines = table(TRAIN_HEADER, [_train_row(d["record"])]) if d.get("record") else []
    tried = ", ".join(f"{a['batch']}: {a['result']}" for a in d["attempts"])
    return [*lines, "", f"Batch sizes tried, largest first: {tried}"]


def _train_real(d: dict[str, Any]) -> list[str]:
    return [*table(TRAIN_HEADER, [_train_row(d)]), "",
            f"{d['jpegs']} generated 500×375 JPEGs, cycled; {d['workers']} loader workers"]  # fmt: skip


def _infer(d: dict[str, Any]) -> list[str]:
    rows = [[r["precision"], r["batch_size"], r["images_per_s"], r["latency_mean_ms"], r["latency_p90_ms"],
             r["latency_p95_ms"], r["latency_p99_ms"]] for r in d["rows"]]  # fmt: skip
    return table(["precision", "batch", "img/s", "mean ms", "p90 ms", "p95 ms", "p99 ms"], rows)


def _input_pipeline(d: dict[str, Any]) -> list[str]:
    rows = [[r["path"], r["workers"], r["images_per_s"], r["images_per_s"] / r["workers"]] for r in d["rows"]]
    note = f"{d['images']} JPEGs, train transform at {d['crop']} px; old = the port's PIL path, new = ours"
    return [*table(["path", "workers", "img/s", "img/s per worker"], rows), "", note]


def _compile(d: dict[str, Any]) -> list[str]:
    lines = ["Training:", "", *table(TRAIN_HEADER, [_train_row(d["train"])]), "", "Inference:", ""]
    rows = [[r["batch_size"], r["images_per_s"], r["latency_p99_ms"], r["warmup_s"]] for r in d["infer"]]
    lines += table(["batch", "img/s", "p99 ms", "compile warm-up s"], rows)
    if d.get("infer_error"):
        lines += ["", f"Inference stopped: {d['infer_error']}"]
    return lines


def _peak_memory(d: dict[str, Any]) -> list[str]:
    rows = [[r["run"], r["batch"], r["peak_mib"]] for r in d["rows"]]
    card = d.get("card_gib")
    return [
        *table(["run", "batch/card", "peak MiB"], rows),
        "",
        f"The card has {card:.1f} GiB." if card else "",
    ]


def _published(d: dict[str, Any]) -> list[str]:
    if "card" not in d:
        return _source(d["source"])
    lines = [f"{d['card']} ({d['system']}), 1 GPU:", ""]
    train = [[r["precision"], r["published_batch"], r["published_images_per_s"], r["ours_batch"],
              r["ours_images_per_s"]] for r in d["training"]]  # fmt: skip
    if train:
        lines += table(["precision", "NVIDIA batch", "NVIDIA img/s", "our batch", "our img/s"], train) + [""]
    infer = [[r["precision"], r["batch"], r["published_images_per_s"], r["ours_images_per_s"],
              r["published_latency_p99_ms"], r["ours_latency_p99_ms"]] for r in d["inference"]]  # fmt: skip
    if infer:
        header = ["precision", "batch", "NVIDIA img/s", "our img/s", "NVIDIA p99 ms", "our p99 ms"]
        lines += table(header, infer) + [""]
    return lines + _source(d["source"])


def _source(src: dict[str, Any]) -> list[str]:
    return [
        "",
        f"Source: {src['what']}, {src['url']} ({src['container']}; {src['settings']}). {src['note']}.",
    ]


RENDER: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "environment": _environment,
    "device_tests": _device_tests,
    "train_synthetic": _train_synthetic,
    "train_real": _train_real,
    "input_pipeline": _input_pipeline,
    "infer": _infer,
    "compile": _compile,
    "peak_memory": _peak_memory,
    "published": _published,
}


def render_markdown(report: dict[str, Any]) -> str:
    env = next((s["data"] for s in report["sections"] if s["id"] == "environment"), None)
    device = f"{env['kind']} · {env['name']}" if env else "unknown device"
    lines = [f"# ResNet-50 v1.5 device report: {device}", "",
             f"`{report['command']}` · {report['generated']} · {report['elapsed_s']:.0f} s"
             + (" · **--quick**: shrunk sizes, not figures to compare" if report["quick"] else ""), ""]  # fmt: skip
    for i, s in enumerate(report["sections"], 1):
        lines += [f"## {i}. {s['title']}", ""]
        lines += _body(s) + [""]
    return "\n".join(lines)


def _body(s: dict[str, Any]) -> list[str]:
    status: Optional[str] = None
    if s["status"] != "ok":
        status = f"**{s['status'].capitalize()}:** {s['reason']}"
    elif s["reason"]:
        status = f"*{s['reason']}*"
    try:  # a failed section may hold part of its figures: show what there is
        figures = RENDER[s["id"]](s["data"]) if s["data"] and s["id"] in RENDER else []
    except (KeyError, TypeError, IndexError):
        figures = []
    return ([status, ""] if status else []) + figures + ["", f"<sub>{s['seconds']:.0f} s</sub>"]
