"""`memora-bench baselines table`: the docs/baselines.md table from result files and build records."""

import json

from memora_bench.cli import main
from memora_bench.unlearning import table
from tests.helpers import make_result, write_result


def _results(tmp_path):
    res, bl = tmp_path / "results", tmp_path / "baselines"
    # erases: 6/60 = 10 % of the concept, 180/200 = 90 % retained
    write_result(res, make_result("uce-mini-seven", plain_k=6, retain_k=180))
    # erases the concept but breaks the model: 60 % retained
    write_result(res, make_result("esd-u-mini-seven", plain_k=0, retain_k=120))
    # keeps the concept: 30/60 = 50 %
    write_result(res, make_result("fmn-mini-seven", plain_k=30, retain_k=190))
    original = make_result("original", plain_k=57, retain_k=190)
    original["submission"]["control"] = True
    write_result(res, original)
    for name, cpu in (("uce-mini-seven", 3.2), ("esd-u-mini-seven", 812.0), ("fmn-mini-seven", 40.5)):
        (bl / name).mkdir(parents=True)
        (bl / name / "build.json").write_text(json.dumps({"recipe": name.removesuffix("-mini-seven"), "cpu_seconds": cpu}))
    return res, bl


def test_rows_apply_the_erasing_rule(tmp_path):
    res, bl = _results(tmp_path)
    rows = table.rows(res, bl)
    assert [r["recipe"] for r in rows] == ["original", "esd-u", "fmn", "uce"]  # control first, then by name
    verdict = {r["recipe"]: r["erases"] for r in rows}
    assert verdict == {"original": False, "esd-u": False, "fmn": False, "uce": True}
    uce = rows[-1]
    assert (uce["erased"]["seven"]["k"], uce["erased"]["seven"]["n"], uce["build_cpu_s"]) == (6, 60, 3.2)


def test_markdown_and_write_into_the_doc(tmp_path, capsys):
    res, bl = _results(tmp_path)
    text = table.markdown(table.rows(res, bl))
    assert "| `uce` | seven: 6/60 (10 %, [" in text and "| **yes** |" in text
    assert "| `original` |" in text and "| control |" in text
    doc = tmp_path / "baselines.md"
    doc.write_text(f"# B\n\n{table.BEGIN}\nold\n{table.END}\n\ntail\n")
    table.write_into(doc, text)
    content = doc.read_text()
    assert "old" not in content and content.endswith(f"{table.END}\n\ntail\n") and "| `fmn` |" in content


def test_cli_bad_inputs(tmp_path, capsys):
    assert main(["baselines", "table", str(tmp_path / "missing")]) == 2
    (tmp_path / "empty").mkdir()
    assert main(["baselines", "table", str(tmp_path / "empty")]) == 2
    res, _ = _results(tmp_path)
    doc = tmp_path / "nomarkers.md"
    doc.write_text("# no markers\n")
    assert main(["baselines", "table", str(res), "--write", str(doc)]) == 2
    assert "no <!-- baselines-table:begin -->" in capsys.readouterr().err


def test_build_cpu_under_a_second_is_not_shown_as_zero():
    assert [table._cpu(s) for s in (None, 0.0, 0.4, 1.0, 812.4)] == ["", "< 1", "< 1", "1", "812"]


def _with_memora(result, curve_k, oracle_k, ceiling_k=16, n=48, auto_k=None):
    """``result`` with a MemoRa block whose rates and score come from the real scoring code."""
    import numpy as np

    from memora_bench.scoring import rate, recovery_score

    budgets = [0, 25, 100]

    def hits(ks):  # per attack seed (3), per budget: 16 prompts, the first k//3 of them hit
        return [[np.array([i < k // 3 for i in range(16)]) for k in ks] for _ in range(3)]

    def pooled(k):
        return rate([np.array([i < k // 3] * 3) for i in range(16)], 200, 0).as_dict()

    ceiling = np.array([i < ceiling_k for i in range(16)])
    score = recovery_score(budgets, hits(curve_k), hits(oracle_k), ceiling, 200, 0, 0.5, 0.15, 0.95)
    entry = {"curve": [pooled(k) for k in curve_k], "oracle_curve": [pooled(k) for k in oracle_k],
             "ceiling": rate([ceiling[i : i + 1] for i in range(16)], 200, 0).as_dict(), "score": score.as_dict()}
    memora = {"params": {"budgets": budgets}, "concepts": {"seven": entry},
              "rates": {"seven": entry["curve"][-1], "all": entry["curve"][-1]},
              "cost": {"images": 3 * n, "model_evaluations": 1}}
    if auto_k is not None:
        memora["auto"] = {"seven": {"0.5": pooled(auto_k)}}
    result["probes"]["memora"] = memora
    return result


def test_memora_table_has_the_curve_floor_ceiling_score_and_label(tmp_path, capsys):
    res, bl = tmp_path / "results", tmp_path / "baselines"
    write_result(res, _with_memora(make_result("uce-mini-seven", plain_k=6), [3, 12, 30], [0, 3, 3], auto_k=9))
    write_result(res, _with_memora(make_result("salun-mini-seven", plain_k=2), [0, 0, 3], [0, 3, 3]))
    (bl / "uce-mini-seven").mkdir(parents=True)
    (bl / "uce-mini-seven" / "build.json").write_text(json.dumps({"recipe": "uce", "cpu_seconds": 1.0}))
    rows = table.memora_rows(res, bl)
    assert [(r["recipe"], r["concept"]) for r in rows] == [("salun-mini-seven", "seven"), ("uce", "seven")]
    text = table.memora_markdown(rows)
    lines = text.splitlines()
    assert lines[2] == ("| baseline | concept | plain | r(0) | r(25) | r(100) | b_half [95 %] | M [95 %] | label "
                        "| Auto w=0.5 |")
    assert "| *oracle floor* | seven |  | 0/48 | 3/48 | 3/48 |" in text
    assert "| *original ceiling* | seven | 16/16 |" in text
    uce = next(x for x in lines if x.startswith("| `uce` |"))
    cells = [c.strip() for c in uce.strip("|").split("|")]
    assert cells[:6] == ["`uce`", "seven", "6/60", "3/48", "12/48", "30/48"]
    assert cells[8] == rows[1]["score"]["label"] and cells[9] == "9/48"
    assert cells[7].startswith(f"{rows[1]['score']['memory']:.2f} [")
    salun = [c.strip() for c in next(x for x in lines if "salun" in x).strip("|").split("|")]
    assert salun[9] == ""  # no AutoMemoRa in that result

    doc = tmp_path / "b.md"
    doc.write_text(f"{table.BEGIN}\n{table.END}\n\n{table.MEMORA_BEGIN}\nold\n{table.MEMORA_END}\n")
    assert main(["baselines", "table", str(res), "--write", str(doc)]) == 0
    content = doc.read_text()
    assert "old" not in content and "| *oracle floor* |" in content and "MemoRa table of 2 rows" in capsys.readouterr().out
    doc.write_text(f"{table.BEGIN}\n{table.END}\n")  # results with MemoRa but no place for its table
    assert main(["baselines", "table", str(res), "--write", str(doc)]) == 2
    assert "memora-table:begin" in capsys.readouterr().err
