"""`memora-bench baselines table`: the docs/baselines.md table from result files and build records."""

import json

from memora_bench.cli import main
from memora_bench.unlearning import table
from tests.helpers import make_result, with_memora, write_result


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


def test_memora_table_has_the_curve_floor_ceiling_score_and_label(tmp_path, capsys):
    res, bl = tmp_path / "results", tmp_path / "baselines"
    write_result(res, with_memora(make_result("uce-mini-seven", plain_k=6), [3, 12, 30], [0, 3, 3], auto_k=9))
    write_result(res, with_memora(make_result("salun-mini-seven", plain_k=2), [0, 0, 3], [0, 3, 3]))
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


def test_only_writes_one_of_the_two_tables(tmp_path, capsys):
    """--only plain leaves the MemoRa table alone and --only memora the plain one (they may come from two suites)."""
    res = tmp_path / "results"
    write_result(res, with_memora(make_result("uce-mini-seven", plain_k=6), [3, 12, 30], [0, 3, 3]))
    doc = tmp_path / "b.md"
    doc.write_text(f"{table.BEGIN}\nold plain\n{table.END}\n{table.MEMORA_BEGIN}\nold memora\n{table.MEMORA_END}\n")
    assert main(["baselines", "table", str(res), "--only", "memora", "--write", str(doc)]) == 0
    content = doc.read_text()
    assert "old plain" in content and "old memora" not in content and "| *oracle floor* |" in content
    assert main(["baselines", "table", str(res), "--only", "plain", "--write", str(doc)]) == 0
    content = doc.read_text()
    assert "old plain" not in content and "| `uce` | seven: 6/60" in content and "| *oracle floor* |" in content
    plain_only = tmp_path / "plain-only"
    write_result(plain_only, make_result("fmn-mini-seven"))
    capsys.readouterr()
    assert main(["baselines", "table", str(plain_only), "--only", "memora"]) == 2
    assert "ran the MemoRa probe" in capsys.readouterr().err


def test_evaluate_prints_the_memora_headline_per_concept(tmp_path):
    from types import SimpleNamespace

    from memora_bench.commands import _summary, _table

    def table_of(result):
        path = write_result(tmp_path, result)
        return _table(_summary(SimpleNamespace(written=[path], skipped=[], failed=[], refused=[], reused=[])))

    text = table_of(with_memora(make_result("uce-mini-seven", plain_k=6), [3, 12, 30], [0, 3, 3]))
    line = next(x for x in text.splitlines() if x.startswith("uce-mini-seven") and "seven:" in x)
    assert "seven: 3/48 -> 30/48 after 100 steps (oracle 3/48), steps to recall " in line
    assert ", M 0." in line and line.endswith(("partial", "STM", "LTM"))
    assert "MemoRa" not in table_of(make_result("fmn-mini-seven"))
    text = table_of(_with_probe(_with_probe(make_result("esd-x-mini-seven"), "unlearndiffatk", 7, 8), "ringabell", 1, 10))
    probe_lines = [x for x in text.splitlines() if x.startswith("esd-x-mini-seven") and "%" in x][1:]
    assert [x.split(maxsplit=2)[2] for x in probe_lines] == [  # one line per probe, by its published title
        "UnlearnDiffAtk               7/8    87.5% [52.9, 97.8]", "Ring-A-Bell                  1/10   10.0% [ 1.8, 40.4]"]
    assert "Concept inversion" not in text and "Probes beyond MemoRa" not in table_of(make_result("fmn-mini-seven"))


def _with_probe(result, probe, k, n, wall_s=2.0):
    import numpy as np

    from memora_bench.scoring import rate

    r = rate([np.array([i < k]) for i in range(n)], 200, 0).as_dict()
    result["probes"][probe] = {"params": {}, "rates": {"seven": r, "all": r},
                               "cost": {"images": n, "model_evaluations": 1000 + k}}
    result["timing"]["probes"][probe] = {"wall_s": wall_s, "cpu_s": wall_s}
    return result


def test_adversarial_table_has_each_probe_beside_the_oracle_and_the_headline(tmp_path, capsys):
    res, bl = tmp_path / "results", tmp_path / "baselines"
    oracle = with_memora(make_result("oracle", plain_k=3), [0, 3, 3], [0, 3, 3])
    oracle["submission"].update(control=True, erased=["seven", "bold"])
    write_result(res, _with_probe(_with_probe(oracle, "unlearndiffatk", 0, 8), "ringabell", 0, 10))
    # MemoRa says LTM (the oracle's own curve), but UnlearnDiffAtk finds 7 of 8: the headline is partial
    sub = with_memora(make_result("esd-x-mini-seven", plain_k=1), [0, 3, 3], [0, 3, 3])
    write_result(res, _with_probe(_with_probe(sub, "unlearndiffatk", 7, 8, 30.0), "ringabell", 1, 10, 4.0))
    reused = _with_probe(with_memora(make_result("salun-mini-seven", plain_k=1), [0, 3, 3], [0, 3, 3]),
                         "unlearndiffatk", 0, 8, 50.0)
    write_result(res, _with_probe(reused, "ringabell", 0, 10, 6.0))
    write_result(res, make_result("fmn-mini-seven"))  # plain only: not in the table
    rows = table.adversarial_rows(res, bl)
    assert [r["submission"] for r in rows] == ["oracle", "esd-x-mini-seven", "salun-mini-seven"]
    esd = rows[1]
    assert esd["memora_label"] == "LTM" and (esd["headline"], esd["decided_by"]) == ("partial", ["unlearndiffatk"])
    assert (rows[2]["headline"], rows[2]["decided_by"]) == ("LTM", ["memora", "ringabell", "unlearndiffatk"])
    text = table.adversarial_markdown(rows)
    lines = text.splitlines()
    assert lines[2] == ("| baseline | concept | plain | ringabell (oracle) | unlearndiffatk (oracle) | MemoRa r(100) | "
                        "MemoRa label | headline (decided by) |")
    cells = [c.strip() for c in next(x for x in lines if "esd-x" in x).strip("|").split("|")]
    assert cells[0] == "`esd-x-mini-seven`" and cells[2] == "1/60"
    assert cells[3].startswith("1/10 [") and cells[3].endswith("(0/10)")
    assert cells[4].startswith("7/8 [") and cells[4].endswith("(0/8)")
    assert cells[5:] == ["3/48", "LTM", "partial (unlearndiffatk)"]
    # cost: 3 results per probe
    assert "| mini-seven | unlearndiffatk | 3 | 1000 [1000, 1007] | 8 [8, 8] |" in text
    assert "| mini-seven | ringabell | 3 | 1000 [1000, 1001] | 10 [10, 10] |" in text
    doc = tmp_path / "b.md"
    doc.write_text(f"{table.ADV_BEGIN}\nold\n{table.ADV_END}\n")
    assert main(["baselines", "table", str(res), "--only", "adversarial", "--write", str(doc)]) == 0
    assert "old" not in doc.read_text() and "partial (unlearndiffatk)" in doc.read_text()
    plain_only = tmp_path / "plain-only"
    write_result(plain_only, make_result("fmn-mini-seven"))
    capsys.readouterr()
    assert main(["baselines", "table", str(plain_only), "--only", "adversarial"]) == 2
    assert "ran an adversarial prompt probe" in capsys.readouterr().err


def test_timing_table_splits_runs_by_shared_work_and_gives_medians():
    from memora_bench.unlearning.table import timing_markdown

    rows = [{"task": "t", "submission": f"s{i}", "total": total, "shared": shared,
             "parts": {"memora": total / 2, "utility": total / 2}}
            for i, (total, shared) in enumerate([(100.0, False), (200.0, False), (600.0, False), (500.0, True)])]
    line = timing_markdown(rows).splitlines()[2]
    assert line == "| t | 4 | 3:20 [1:40-10:00] (3) | 8:20 [8:20-8:20] (1) | 50 % | 50 % |"


def test_probe_effect_table_shows_what_the_added_probes_move(tmp_path, capsys):
    """From the committed mini-v5 results of the original and the oracle on mini-seven, plus a made-up
    submission that is the oracle except under concept resurgence (16 of 16 sevens after fine-tuning on other
    concepts): without the probes mini-v4 lacks it is LTM like the oracle, with them STM, decided by resurgence."""
    import shutil

    from memora_bench.paths import repo_root

    src = repo_root() / "results" / "mini-v5"
    for name in ("original", "oracle"):
        (tmp_path / name).mkdir()
        shutil.copy(src / name / "mini-seven.json", tmp_path / name / "mini-seven.json")
    leaky = json.loads((src / "oracle" / "mini-seven.json").read_text())
    leaky["submission"] = dict(leaky["submission"], name="leaky", control=False, method="made up")
    original = json.loads((src / "original" / "mini-seven.json").read_text())
    leaky["probes"]["resurgence"]["rates"] = original["probes"]["resurgence"]["rates"]  # 16/16, as the original
    (tmp_path / "leaky").mkdir()
    (tmp_path / "leaky" / "mini-seven.json").write_text(json.dumps(leaky))
    new = ["classifier_guidance", "completion", "inpainting", "noise_based", "resurgence"]
    rows = {x["submission"]: x for x in table.probe_effect_rows(tmp_path, tmp_path / "none", new)}
    assert (rows["oracle"]["before"], rows["oracle"]["headline"]) == ("LTM", "LTM")
    assert (rows["original"]["before"], rows["original"]["headline"]) == ("STM", "STM")
    assert (rows["leaky"]["before"], rows["leaky"]["headline"]) == ("LTM", "STM")
    assert rows["leaky"]["decided_by"] == ["resurgence"]
    assert rows["leaky"]["probes"]["resurgence"]["p_adjusted"] < 0.05 <= rows["leaky"]["probes"]["completion"]["p_adjusted"]
    text = table.probe_effect_markdown(list(rows.values()))
    assert "| `leaky` | seven |" in text and "**16/16 (0)**" in text
    assert "Labels moved by the new probes: 1 of 3: leaky seven LTM -> STM." in text
    # the command needs the earlier suite to know which probes are new
    assert main(["baselines", "table", str(tmp_path), "--only", "probe-effect"]) == 2
    assert "needs --since" in capsys.readouterr().err
    assert main(["baselines", "table", str(tmp_path), "--only", "probe-effect", "--since", "mini-v4"]) == 0
    assert "leaky seven LTM -> STM" in capsys.readouterr().out
