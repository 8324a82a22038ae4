"""easyedit_summary.py REPORT_EASYEDIT_JSON REPORT_JSON: reads `xledit report --format easyedit`
the way EasyEdit's summarizer reads its logs/results.json (easyeditor/editors/utils.py,
summary_metrics: per phase the mean of every record's rewrite_acc / rephrase_acc values, and per
locality / portability key ending in "acc" the mean over records of each record's mean), and
checks the numbers against `xledit report --format json` (report.json): every post-edit mean
and its count against mean[edit][test] and n[edit][test], the pre-edit means (one record per
case and test language) against pre[test]. Standard library only (Debian's python3 in CI).
Exits 1 with the differences, 0 printing how many values agree."""
import json
import sys


def mean(xs):
    return sum(xs) / len(xs)


def summary(records, phase):
    """EasyEdit's summary_metrics for one phase: {key: (mean, count)}."""
    out = {}
    for key in ("rewrite_acc", "rephrase_acc"):
        values = [v for r in records if key in r.get(phase, {}) for v in r[phase][key]]
        if values:
            out[key] = (mean(values), sum(1 for r in records if key in r.get(phase, {})))
    for section in ("locality", "portability"):
        keys = {k for r in records for k in r.get(phase, {}).get(section, {}) if k.endswith("acc")}
        for k in keys:
            per = [mean(r[phase][section][k]) for r in records if k in r.get(phase, {}).get(section, {})]
            out[section + "." + k] = (mean(per), len(per))
    return out


XLEDIT_NAME = {"rewrite_acc": "rel_acc", "rephrase_acc": "gen_acc",
               "locality.neighborhood_acc": "loc_acc", "portability.one_hop_acc": "port_acc"}


def main():
    easy = json.load(open(sys.argv[1], encoding="utf-8"))
    rep = json.load(open(sys.argv[2], encoding="utf-8"))
    edits, tests = rep["edit_langs"], rep["test_langs"]
    methods = {m["method"]: m["metrics"] for m in rep["methods"]}
    bad, checked = [], 0
    for cell, records in easy.items():
        method, edit, test = cell.split("/")
        for required in ("case_id", "requested_rewrite", "pre", "post"):
            if any(required not in r for r in records):
                bad.append(f"{cell}: a record without {required}")
        for ekey, (value, count) in summary(records, "post").items():
            xk = XLEDIT_NAME[ekey]
            want = methods[method][xk]["mean"][edits.index(edit)][tests.index(test)]
            want_n = methods[method][xk]["n"][edits.index(edit)][tests.index(test)]
            checked += 1
            if want is None or abs(value - want) > 1e-9 or count != want_n:
                bad.append(f"{cell} post {ekey}: {value} over {count}, report.json {xk} {want} over {want_n}")
    # pre-edit: the unedited model's values, once per (case, test language)
    for method in methods:
        seen = {}
        for cell, records in easy.items():
            if cell.split("/")[0] != method:
                continue
            for r in records:
                seen[(r["case_id"], cell.split("/")[2])] = r
        for test in tests:
            recs = [r for (c, t), r in seen.items() if t == test]
            for ekey, (value, _) in summary(recs, "pre").items():
                if ekey not in XLEDIT_NAME:
                    continue
                want = methods[method][XLEDIT_NAME[ekey]]["pre"][tests.index(test)]
                checked += 1
                if want is None or abs(value - want) > 1e-9:
                    bad.append(f"{method} pre {test} {ekey}: {value}, report.json {want}")
    if bad or checked == 0:
        print("\n".join(bad) or "nothing checked", file=sys.stderr)
        return 1
    print(f"easyedit_summary: {checked} means agree with report.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
