"""The harmful content detection system on the System API (cheap to import)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mlsd.system import Option, ReplayConfig, RunConfig, ServeConfig, TaskType, Workspace

if TYPE_CHECKING:
    from mlsd.reporting import DesignReport
    from mlsd.serving.protocols import ScoringService
    from mlsd.simulation.replay import ReplaySource

CLASSES = ("hate", "offensive", "neither")
FAMILIES = ("tfidf_lr", "minilm_head", "blend_minilm_head", "minilm_finetuned", "blend_minilm_finetuned")


class HarmfulSystem:
    """Harmful content detection: hate / offensive / neither per post, and remove / demote / allow."""

    name = "harmful"
    task = TaskType.MULTICLASS
    summary = "harmful content: hate / offensive / neither per post, with an action (Davidson et al. 2017)"
    datasets = ("davidson-hate-speech",)
    route = "/v1/harmful/classify"
    p99_budget_ms = 25.0
    model_name = "harmful-davidson"
    options = (Option("finetune_epochs", 2, "epochs of MiniLM fine-tuning at most (early stopping on validation)",
                      int),
               Option("finetune_seeds", 1, "fine-tunings from seeds 0..N-1 on the paper's split, reported as "
                      "mean ± sd (the served model is seed 0's)", int))
    window_s = 3600.0
    compute_threads = 2  # each request runs a MiniLM forward: two intra-op threads halve it (benchmarks/RESULTS.md)

    def build(self, ws: Workspace, config: RunConfig) -> dict[str, Any]:
        from mlsd.systems.harmful.build import build_harmful

        epochs = int(config.options.get("finetune_epochs", 2))
        return build_harmful(ws, config.data, small=config.small, progress=config.progress, finetune_epochs=epochs,
                             finetune_seeds=int(config.options.get("finetune_seeds", 1)))

    def format_results(self, results: Mapping[str, Any]) -> str:
        models = results["models"]
        head = f"{'model':24s}" + "".join(f" {c[:4] + ' P':>7s} {c[:4] + ' R':>7s} {c[:4] + ' F1':>8s}"
                                          for c in CLASSES[:2])
        lines = [head + f" {'hate F1 95% CI':>15s} {'hate AP':>8s} {'macro F1':>9s} {'wtd F1':>7s} {'95% CI':>13s}"]
        for family in FAMILIES:
            if family not in models:
                continue
            m = models[family]
            cells = "".join(f" {m[c]['precision']:7.3f} {m[c]['recall']:7.3f} {m[c]['f1']:8.3f}" for c in CLASSES[:2])
            hate, weighted = m["ci95"]["hate_f1"], m["ci95"]["weighted_f1"]
            lines.append(f"{family:24s}{cells} {f'{hate[0]:.3f}-{hate[1]:.3f}':>15s} {m['hate']['pr_auc']:8.3f} "
                         f"{m['macro_f1']:9.3f} {m['weighted_f1']:7.3f} {f'{weighted[0]:.3f}-{weighted[1]:.3f}':>13s}")
        split, served = results["split"], results["served"]
        lines.append(f"test: {split['test']:,} posts ({'/'.join(map(str, split['test_counts']))} hate/offensive/"
                     f"neither), the paper notebook's split; intervals: bootstrap over test posts")
        lines.append(spread_line("over split seeds", results["seeds_by_family"]))
        if "finetune_seeds" in results:
            lines.append(spread_line("paper's split, fine-tuning seeds", results["finetune_seeds"]))
        lines.append(f"served: v{served['champion']} ({served['champion_family']}), chosen on {served['promoted_on']}")
        return "\n".join(lines)

    def json_summary(self, results: Mapping[str, Any]) -> dict[str, Any]:
        served = results["served"]["champion_family"]
        best = results["models"][served]
        test = {c: {k: best[c][k] for k in ("precision", "recall", "f1", "pr_auc")} for c in CLASSES}
        test.update({k: best[k] for k in ("macro_f1", "weighted_f1", "confusion", "ci95")})
        return {"model": served, "test": test, "seeds": results["seeds"], "models": results["models"],
                "seeds_by_family": results["seeds_by_family"], "finetune_seeds": results.get("finetune_seeds"),
                "split": results["split"],
                "served": results["served"], "seconds": results.get("seconds")}

    def service(self, ws: Workspace, config: ServeConfig) -> ScoringService:
        from mlsd.systems.harmful.serve import HarmfulService

        return HarmfulService(ws.home, ab_share=config.ab_share, window_s=config.window_s,
                              label_delay_s=config.label_delay_s, thresholds=config.thresholds())

    def traffic(self, ws: Workspace, config: ReplayConfig) -> ReplaySource:
        from mlsd.systems.harmful.simulate import PostReplay

        return PostReplay(ws, limit=config.limit)

    def report(self, ws: Workspace, report: DesignReport) -> None:
        from mlsd.systems.harmful.report import fill_harmful_report

        fill_harmful_report(ws, report)


def spread_line(label: str, by_family: Mapping[str, Any]) -> str:
    """One line of each family's hate and weighted F1, mean ± sd over the seeds it names."""
    seeds = next(iter(by_family.values()))["seeds"]
    return f"{label} {', '.join(map(str, seeds))}: " + ", ".join(
        f"{f} hate F1 {s['hate_f1_mean']:.3f} ± {s['hate_f1_sd']:.3f}, weighted F1 {s['weighted_f1_mean']:.3f} ± "
        f"{s['weighted_f1_sd']:.3f}" for f, s in by_family.items())


SYSTEM = HarmfulSystem()
