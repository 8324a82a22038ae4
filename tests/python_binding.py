"""python_binding.py: the Python binding (python/, docs/python.md) against the xledit tool.

Run by CTest (test `python_binding`) with Debian's python3, PYTHONPATH=BUILD/python, XLEDIT=the
tool and XLE_SOURCE_DIR=the source tree. Checks: score equals `xledit score` within 1e-6;
logits equal `xledit logits` (last and every position) and the list form without numpy; greedy
generation equals `xledit generate`; tokenize/detokenize round trips in five scripts; an edit
applies, raises its target, reverts to byte-identical logits, equals the patch `xledit edit
--patch` makes, and saves to a file that loads again; build_stats writes what `xledit stats`
writes and ROME with them edits as `xledit edit --stats`; report() is `xledit report`; library errors raise xledit.Error naming
the file and field; the GIL is released while computing; evaluate on two world cases gives the
results `xledit eval` writes and leaves the model unchanged, and SIGINT stops it with
KeyboardInterrupt. Under the sanitizers (XLE_SANITIZED) the comparisons with a second CLI run
of edit and eval and the evaluation of cases given as dicts are skipped (each is a second full
computation), evaluate takes one case and the GIL check generates 60 tokens instead of 200.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading

import xledit

XLEDIT = os.environ["XLEDIT"]
SRC = os.environ["XLE_SOURCE_DIR"]
MODEL = os.path.join(SRC, "models", "xledit-mini")
CASES = os.path.join(SRC, "data", "world", "cases.jsonl")
SANITIZED = bool(os.environ.get("XLE_SANITIZED"))
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def cli(*args):
    r = subprocess.run([XLEDIT, *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("xledit %s: exit %d: %s" % (" ".join(args), r.returncode, r.stderr))
    return r.stdout


def expect_error(fn, exc_type, *needles):
    try:
        fn()
    except exc_type as e:
        msg = str(e)
        return all(n in msg for n in needles), msg
    except Exception as e:  # the wrong type
        return False, "%s: %s" % (type(e).__name__, e)
    return False, "no exception"


tmp = tempfile.mkdtemp(prefix="xledit-pytest-")
try:
    check(xledit.version() == xledit.__version__, "library version %s = header version" % xledit.version())
    m = xledit.Model(MODEL, threads=2)
    check(m.config["n_layers"] == 4 and m.config["vocab_size"] == 4000 and m.threads == 2, "config: %r" % m)

    # tokenize / detokenize
    for text in ["The capital of France is", "Die Hauptstadt von Frankreich ist Berlin.",
                 "भारत की राजधानी नई दिल्ली है", "  two  spaces\nand a line", "émigré — ü 東京 🙂"]:
        ids = m.tokenize(text)
        check(ids[0] == m.config["bos_id"] and m.detokenize(ids) == text, "round trip %r (%d ids)" % (text, len(ids)))
    check(m.tokenize("x", bos=False) == m.tokenize("x", bos=True)[1:], "tokenize bos=False drops BOS only")

    # score equals the tool's
    for prompt, target in [("The capital of France is", "Paris"), ("The capital of France is", "Rome"),
                           ("Die Hauptstadt von Deutschland ist", "Berlin")]:
        lp = m.score(prompt, target)
        ref = float(cli("score", MODEL, "--text", prompt, "--target", target))
        check(abs(lp - ref) <= 1e-6, "score(%r, %r) = %.9g, xledit score %.9g" % (prompt, target, lp, ref))
    per = m.score("The capital of France is", "New Delhi", per_token=True)
    check(abs(sum(per["per_token"]) - per["logprob"]) < 1e-4 and len(per["ids"]) == len(per["per_token"]),
          "per-token values sum to the log-probability")
    ids = m.tokenize("The capital of France is")
    check(abs(m.score(ids, per["ids"]) - per["logprob"]) < 1e-9, "score on ids = score on text")

    # logits equal the tool's
    text = "The capital of Italy is"
    ref = json.loads(cli("logits", MODEL, "--text", text, "--all-positions", "--json"))
    full = m.logits(text)
    worst = max(abs(float(a) - b) for row, rrow in zip(full, ref["logits"]) for a, b in zip(row, rrow))
    check(full.shape == (len(ref["ids"]), ref["vocab_size"]) and str(full.dtype) == "float32" and worst <= 1e-5,
          "logits %s = xledit logits --all-positions (max diff %.2g)" % (full.shape, worst))
    last = m.logits(text, last_only=True)
    ref_last = json.loads(cli("logits", MODEL, "--text", text, "--json"))["logits"][0]
    worst = max(abs(float(a) - b) for a, b in zip(last, ref_last))
    check(last.shape == (4000,) and worst <= 1e-5, "last-position logits = xledit logits (max diff %.2g)" % worst)
    saved_numpy = xledit._numpy
    xledit._numpy = None  # the path without numpy: lists of floats
    try:
        as_lists = m.logits(text)
    finally:
        xledit._numpy = saved_numpy
    check(isinstance(as_lists, list) and as_lists == full.tolist(), "without numpy: the same values as lists")

    # generate equals the tool's (exact precision, greedy)
    for prompt in ["The capital of Germany is", "The capital of India is"]:
        ours = m.generate(prompt, n=8)
        theirs = cli("generate", MODEL, "--text", prompt, "-n", "8", "--precision", "exact").rstrip("\n")
        check(ours == theirs, "generate(%r) = %r (xledit generate %r)" % (prompt, ours, theirs))
    check(len(m.generate(m.tokenize("The"), n=5, stop_at_eos=False)) == 5, "generate on ids returns 5 ids")
    sampled = m.generate("The", n=12, temperature=0.8, top_k=40, top_p=0.9, seed=7,
                         repeat_penalty=1.3, repeat_last_n=16)
    theirs = cli("generate", MODEL, "--text", "The", "-n", "12", "--temp", "0.8",
                 "--top-k", "40", "--top-p", "0.9", "--seed", "7", "--repeat-penalty", "1.3",
                 "--repeat-last-n", "16", "--precision", "exact").rstrip("\n")
    check(sampled == theirs, "sampled with top-k, top-p, repeat penalty: %r (xledit generate %r)" % (sampled, theirs))

    # edit: apply, revert to the same bytes, the tool's patch, save and load
    prompt, subject, target = "The capital of France is", "France", "Rome"
    hparams = {"mom2_adjustment": False}
    before = m.logits(prompt).tobytes()
    lp_before = m.score(prompt, target)
    patch = m.edit("rome", {"prompt": prompt, "subject": subject, "target_new": target}, hparams=hparams,
                   context_templates="none")
    check(m.logits(prompt).tobytes() == before, "edit() leaves the model unchanged")
    check(patch.layers == [0] and patch.info["method"] == "rome" and patch.info["requests"][0]["target_new"] == target,
          "patch: %r, info %s" % (patch, patch.info["requests"]))
    patch.apply()
    lp_after = m.score(prompt, target)
    edited = m.logits(prompt).tobytes()
    check(lp_after > lp_before + 1, "apply raises log p(%s): %.3f -> %.3f" % (target, lp_before, lp_after))
    check(m.generate(prompt, n=2).strip().startswith(target), "the edited model says %r" % m.generate(prompt, n=2))
    patch.revert()
    check(m.logits(prompt).tobytes() == before, "revert: logits byte-identical to the unedited model's")
    ok, msg = expect_error(patch.revert, xledit.Error, "not the edited weight")
    check(ok and "patch (unsaved)" in msg, "a second revert is refused: %s" % msg)
    path = os.path.join(tmp, "p.safetensors")
    patch.save(path)
    loaded = xledit.load_patch(path, model=m)
    check(loaded.info == patch.info, "saved patch loads with the same info")
    with loaded:  # applied here, reverted at the end
        check(m.logits(prompt).tobytes() == edited, "the saved patch edits the model to the same bytes")
    check(m.logits(prompt).tobytes() == before, "load_patch + apply + revert (context manager): bytes restored")
    if not SANITIZED:
        hp_path = os.path.join(tmp, "h.json")
        with open(hp_path, "w") as f:
            json.dump(hparams, f)
        tool_patch = os.path.join(tmp, "tool.safetensors")
        cli("edit", MODEL, "--method", "rome", "--prompt", prompt, "--subject", subject, "--target", target,
            "--hparams", hp_path, "--context-templates", "none", "--patch", tool_patch, "--quiet")
        theirs = xledit.load_patch(tool_patch).apply(m)
        check(m.logits(prompt).tobytes() == edited, "the tool's patch edits the model to the same bytes")
        theirs.revert(m)

    # key statistics: the same files as `xledit stats`; ROME with them (the model's own
    # hyperparameters: mom2_adjustment) edits to the same bytes as `xledit edit --stats`
    corpus = os.path.join(tmp, "corpus.txt")  # the world's training text, its first 3000 tokens
    cli("world", "corpus", "--data", os.path.join(SRC, "data", "world"), "--out", corpus)
    ours, theirs = os.path.join(tmp, "stats-py"), os.path.join(tmp, "stats-cli")
    check(m.build_stats([0, 1], corpus, out=ours, max_tokens=3000) == ours, "build_stats returns its folder")
    cli("stats", MODEL, "--layers", "0-1", "--corpus", corpus, "--out", theirs, "--max-tokens", "3000")
    same = all(open(os.path.join(ours, n), "rb").read() == open(os.path.join(theirs, n), "rb").read()
               for n in ("layer-0.f64", "layer-1.f64"))
    with open(os.path.join(ours, "stats.json")) as a, open(os.path.join(theirs, "stats.json")) as b:
        same = same and json.load(a) == json.load(b)
    check(same, "build_stats writes the files `xledit stats` writes (byte-identical)")
    whitened = m.edit("rome", (prompt, subject, target), stats=ours, context_templates="none")
    with whitened:
        whitened_bytes = m.logits(prompt).tobytes()
        check(m.score(prompt, target) > lp_before + 1, "ROME with key statistics raises log p(%s)" % target)
    if not SANITIZED:
        tool_patch = os.path.join(tmp, "tool-stats.safetensors")
        cli("edit", MODEL, "--method", "rome", "--prompt", prompt, "--subject", subject, "--target", target,
            "--stats", theirs, "--context-templates", "none", "--patch", tool_patch, "--quiet")
        with xledit.load_patch(tool_patch, model=m):
            check(m.logits(prompt).tobytes() == whitened_bytes, "= `xledit edit --stats` (same bytes)")
    # AlphaEdit (one batch: P from the statistics, no earlier edits) as `xledit edit --method alphaedit`
    alpha = m.edit("alphaedit", (prompt, subject, target), stats=ours, context_templates="none")
    check(alpha.info["method"] == "alphaedit" and alpha.layers == [0], "alphaedit patch: %r" % alpha)
    with alpha:
        alpha_bytes = m.logits(prompt).tobytes()
    check(alpha_bytes != before, "the AlphaEdit patch changes the logits")
    if not SANITIZED:
        tool_patch = os.path.join(tmp, "tool-alphaedit.safetensors")
        cli("edit", MODEL, "--method", "alphaedit", "--prompt", prompt, "--subject", subject, "--target", target,
            "--stats", theirs, "--context-templates", "none", "--patch", tool_patch, "--quiet")
        with xledit.load_patch(tool_patch, model=m):
            check(m.logits(prompt).tobytes() == alpha_bytes, "alphaedit = `xledit edit --method alphaedit` (same bytes)")
    check(m.logits(prompt).tobytes() == before, "the model is back to its own bytes")

    # errors: xledit.Error (a RuntimeError) with the library's message
    bad = os.path.join(tmp, "no-such-model")
    ok, msg = expect_error(lambda: xledit.Model(bad), xledit.Error, bad)
    check(ok and issubclass(xledit.Error, RuntimeError), "a bad path raises xledit.Error naming it: %s" % msg)
    try:
        xledit.Model(bad)
    except xledit.Error as e:
        check(e.status == "io", "its status is 'io' (%s)" % e.status)
    ok, msg = expect_error(lambda: m.edit("rome", ("The capital of Spain is", "Portugal", "Lisbon"), hparams=hparams,
                                          context_templates="none"), xledit.Error, "Portugal")
    check(ok, "a subject missing from its prompt: %s" % msg)
    ok, msg = expect_error(lambda: m.edit("rome", (prompt, subject, target), hparams={"no_such_key": 1},
                                          context_templates="none"), xledit.Error, "no_such_key")
    check(ok and "hparams (dict)" in msg, "an unknown hparams key: %s" % msg)
    ok, msg = expect_error(lambda: m.edit("memit", (prompt, subject, target), stats=os.path.join(tmp, "none"),
                                          context_templates="none"), xledit.Error, os.path.join(tmp, "none"))
    check(ok, "MEMIT without statistics: %s" % msg)
    ok, msg = expect_error(lambda: m.edit("nope", (prompt, subject, target)), ValueError, "nope")
    check(ok, "an unknown method: %s" % msg)
    ok, msg = expect_error(lambda: m.edit("ike", (prompt, subject, target)), ValueError, "ike")
    check(ok, "ike has no weights to edit: %s" % msg)
    ok, msg = expect_error(lambda: m.score([1, 99999], "x"), ValueError, "99999")
    check(ok, "a token id outside the vocabulary: %s" % msg)
    ok, msg = expect_error(lambda: m.__init__(MODEL), TypeError, "already loaded")
    check(ok, "a loaded Model is never replaced under its users: %s" % msg)
    ok, msg = expect_error(lambda: xledit.load_patch(CASES), xledit.Error, CASES)
    check(ok, "a file that is not a patch: %s" % msg)

    # the GIL is released while the library computes: with a switch interval of 1000 s the only
    # way the main thread can run before the worker's generate() returns is that generate()
    # released the GIL (a few tries, in case the machine is too busy to schedule it in time)
    def worker(model, started, done):
        started.set()
        model.generate("The capital of France is", n=60 if SANITIZED else 200, stop_at_eos=False)
        done.append(True)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1000)
    try:
        overlapped = False
        for _ in range(3):
            started, done = threading.Event(), []
            t = threading.Thread(target=worker, args=(m, started, done))
            t.start()
            started.wait()
            overlapped = not done
            t.join()
            if overlapped:
                break
    finally:
        sys.setswitchinterval(interval)
    check(overlapped, "the main thread ran while generate() computed (GIL released)")
    # two threads on one model: their calls take turns (the model's lock), results as alone
    alone = [m.score("The capital of France is", t) for t in ("Paris", "Rome", "Berlin", "Luanda")]
    together = [None] * 4

    def score_into(i, t):
        together[i] = m.score("The capital of France is", t)

    threads = [threading.Thread(target=score_into, args=(i, t)) for i, t in
               enumerate(("Paris", "Rome", "Berlin", "Luanda"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(together == alone, "four threads scoring on one model: the same numbers as one after another")

    # evaluate: two world cases, the tool's results, the model unchanged
    args = dict(methods=["rome"], max_cases=1 if SANITIZED else 2, edit_langs=["en"], test_langs=["en", "de"],
                hparams=hparams, context_templates="none")
    run_dir = os.path.join(tmp, "run")
    results = m.evaluate(CASES, run_dir=run_dir, **args)
    check(len(results) == args["max_cases"] and results.summary["done"] == len(results)
          and all(r["status"] == "ok" and set(r["tests"]) == {"en", "de"} for r in results),
          "evaluate: %d result(s), summary %s" % (len(results), results.summary))
    check(all(0 <= r["tests"][lang]["metrics"]["rel_acc"] <= 1 for r in results for lang in ("en", "de")),
          "rel_acc in [0, 1]: %s" % [r["tests"]["en"]["metrics"]["rel_acc"] for r in results])
    check(m.logits(prompt).tobytes() == before, "evaluate leaves the model byte-identical")
    if not SANITIZED:  # the package's own path (a temporary case file), no new C code
        with open(CASES, encoding="utf-8") as f:
            first_cases = [json.loads(next(f)) for _ in range(args["max_cases"])]
        again = m.evaluate(first_cases, **args)
        check(again.run_dir is None and [r["tests"] for r in again] == [r["tests"] for r in results],
              "cases given as dicts (temporary run folder): the same results")
    report = xledit.report(run_dir, "md")
    check(report == cli("report", run_dir, "--format", "md") and "| rome |" in report,
          "report(run_dir, 'md') = xledit report --format md")
    ok, msg = expect_error(lambda: xledit.report(os.path.join(tmp, "no-run")), xledit.Error, "no-run")
    check(ok, "report of a missing run: %s" % msg)

    # Ctrl-C during evaluate: KeyboardInterrupt after the unit in progress, the model restored
    interrupted_run = os.path.join(tmp, "interrupted")
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        m.evaluate(CASES, run_dir=interrupted_run, **dict(args, max_cases=100))
        interrupted = False
    except KeyboardInterrupt:
        interrupted = True
    timer.join()
    with open(os.path.join(interrupted_run, "results.jsonl"), encoding="utf-8") as f:
        n_lines = sum(1 for line in f if line.strip())
    check(interrupted and n_lines < 100 and m.logits(prompt).tobytes() == before,
          "SIGINT stops evaluate with KeyboardInterrupt after %d of 100 units, the model restored" % n_lines)
    if not SANITIZED:
        tool_run = os.path.join(tmp, "tool-run")
        hp_path = os.path.join(tmp, "h.json")
        cli("eval", MODEL, "--data", CASES, "--out", tool_run, "--methods", "rome", "--cases", "2",
            "--edit-langs", "en", "--test-langs", "en,de", "--hparams", hp_path, "--context-templates", "none",
            "--quiet")
        with open(os.path.join(tool_run, "results.jsonl"), encoding="utf-8") as f:
            theirs = [json.loads(line) for line in f if line.strip()]
        check([r["tests"] for r in theirs] == [r["tests"] for r in results], "evaluate = xledit eval's results.jsonl")
finally:
    shutil.rmtree(tmp, ignore_errors=True)

if failures:
    print("%d check(s) failed" % len(failures))
    sys.exit(1)
print("all checks passed")
