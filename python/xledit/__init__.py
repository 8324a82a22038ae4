"""xledit: cross-lingual knowledge editing of Llama-family models on a CPU, from Python.

The package is a thin layer over libxledit (the C extension xledit._xledit, which wraps
include/xledit.h). It adds what is easier in Python: numpy arrays, hyperparameters given as
dicts, patches kept in temporary files, evaluation results as dicts. docs/python.md shows a
session.

    import xledit
    m = xledit.Model("models/xledit-mini")
    m.score("The capital of France is", "Paris")
"""
import array
import contextlib
import json
import os
import shutil
import tempfile
import weakref

from . import _xledit
from ._xledit import Error, report, threads_available, version

try:
    import numpy as _numpy
except ImportError:  # numpy is optional: logits come as lists then
    _numpy = None

__all__ = ["Model", "Patch", "Error", "load_patch", "report", "version", "threads_available"]
__version__ = _xledit.HEADER_VERSION


def _default_stats_dir(model):
    """Where `xledit stats` keeps a model's key statistics (the same cache the tool reads)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.environ.get("HOME") or ".", ".cache")
    return os.path.join(base, "xledit", "stats", model.fingerprint()[:16])


def _request_tuple(req):
    if isinstance(req, dict):
        target = req.get("target_new", req.get("target"))
        missing = [k for k, v in (("prompt", req.get("prompt")), ("subject", req.get("subject")),
                                  ("target_new", target)) if not isinstance(v, str) or not v]
        if missing:
            raise ValueError("request: %s: missing or not a non-empty string" % ", ".join(missing))
        return (req["prompt"], req["subject"], target)
    prompt, subject, target = req
    return (prompt, subject, target)


class _TempFiles:
    """A private temporary folder, removed when this object is garbage-collected (a patch keeps
    its own alive) or at exit."""

    def __init__(self, prefix):
        self.dir = tempfile.mkdtemp(prefix=prefix)
        self._finalizer = weakref.finalize(self, shutil.rmtree, self.dir, True)

    def path(self, name):
        return os.path.join(self.dir, name)


@contextlib.contextmanager
def _named_temp_files(names):
    """Library messages name files; a temporary file the package wrote for the caller is named
    by what the caller passed instead (names: {temporary path: label})."""
    try:
        yield
    except Error as e:
        msg = str(e)
        for path, label in names.items():
            if path:
                msg = msg.replace(path, label)
        e.args = (msg,)
        raise


def _hparams_path(hparams, temp, name):
    """A JSON file for hparams: None, a path (str or os.PathLike), or a dict written to temp."""
    if hparams is None:
        return None
    if isinstance(hparams, dict):
        path = temp.path(name)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(hparams, f)
        return path
    return os.fspath(hparams)


class Patch:
    """An edit as a file: the deltas plus the original bytes of every tensor they change.

    apply() adds the deltas to the model, revert() puts the original bytes back (the model is then
    bitwise what it was), save(path) writes the patch for `xledit patch apply|revert`. Used as a
    context manager it is applied on entry and reverted on exit.
    """

    def __init__(self, path, model=None, details=None, _temp=None):
        self._patch = _xledit.Patch(os.fspath(path))
        self._path = os.fspath(path)
        self._temp = _temp  # keeps the temporary folder of an unsaved patch alive
        self.model = model
        self.details = dict(details or {})

    @property
    def info(self):
        """The patch's description: method, requests, layers, seed, model fingerprint."""
        return json.loads(self._patch.info_json)

    @property
    def layers(self):
        return self._patch.layers

    def _target(self, model):
        model = model if model is not None else self.model
        if model is None:
            raise ValueError("this patch was loaded from a file: pass the model to apply it to")
        return model

    def _names(self):
        return {self._path if self._temp is not None else None: "patch (unsaved)"}

    def apply(self, model=None):
        """Adds the deltas to model (default: the model it was made on)."""
        with _named_temp_files(self._names()):
            self._patch.apply(self._target(model))
        return self

    def revert(self, model=None):
        """Puts the original bytes back into model (default: the model it was made on)."""
        with _named_temp_files(self._names()):
            self._patch.revert(self._target(model))
        return self

    def save(self, path):
        """Writes the patch file to path, atomically (a temporary file beside it, then rename)."""
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix=".xledit-patch-", dir=folder)
        try:
            with os.fdopen(fd, "wb") as out, open(self._path, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return path

    def __enter__(self):
        return self.apply()

    def __exit__(self, *exc):
        self.revert()
        return False

    def __repr__(self):
        info = self.info
        return "<xledit.Patch %s layers %s, %d request(s)>" % (
            info.get("method"), self.layers, len(info.get("requests", [])))


def load_patch(path, model=None):
    """A patch written by Patch.save or `xledit edit --patch`; model: the one apply() and revert()
    change when called without one (and the one `with patch:` edits)."""
    return Patch(path, model=model)


class Model(_xledit.Model):
    """A model loaded from an HF folder, a GGUF file or a llama2.c checkpoint.

    Model(path, threads=None): the weights are memory-mapped copy-on-write, the files are never
    written. threads: threads per compute call (None: OMP_NUM_THREADS or every CPU). Every
    compute call releases the GIL; calls on one model from several threads run one at a time.

    Inherited from the C layer: tokenize(text, bos=None, special=False), detokenize(ids),
    score(prompt, continuation, per_token=False), generate(prompt, n=32, temperature=0.0,
    top_k=0, seed=0, stop_at_eos=True), fingerprint(), config, path, threads, precision.
    """

    def __repr__(self):
        c = self.config
        return "<xledit.Model %s: %s, %d layers, d=%d, vocab %d>" % (
            self.path, c["arch"], c["n_layers"], c["dim"], c["vocab_size"])

    def logits(self, text_or_ids, last_only=False):
        """Logits at every position of the input (str, encoded with BOS as the tokenizer's files
        say, or token ids): a float32 numpy array [positions, vocab] ([vocab] with last_only), or
        lists of floats when numpy is not installed."""
        raw, rows, vocab = self._logits(text_or_ids, last_only)
        if _numpy is not None:
            out = _numpy.frombuffer(raw, dtype=_numpy.float32).reshape(rows, vocab)
            return out[0] if last_only else out
        flat = array.array("f")
        flat.frombytes(bytes(raw))
        out = [flat[i * vocab:(i + 1) * vocab].tolist() for i in range(rows)]
        return out[0] if last_only else out

    def edit(self, method, requests, hparams=None, stats=None, layers=None, context_templates=None,
             seed=None, model_hparams=True):
        """Runs an edit and returns it as a Patch (not applied: call .apply(), or use `with`).

        method: "rome", "memit", "ft-l", "ft-m" or "alphaedit" (one batch, P from the statistics;
        `xledit edit --alphaedit-state` keeps a sequence). requests: one request or a list, each a dict
        {"prompt", "subject", "target_new"} or a (prompt, subject, target) tuple; the prompt holds
        the subject (or "{}" in its place) and ends where the target begins. hparams: a dict of
        EasyEdit-named keys or a JSON file, applied over the defaults and the model folder's
        edit-hparams/<method>.json (model_hparams=False skips that file). stats: the key-statistics
        folder (default: the cache `xledit stats` fills). context_templates: None (sampled from
        the model, as `xledit edit`), "none", or a file with one template per line.
        """
        if isinstance(requests, (dict, tuple)):
            requests = [requests]
        reqs = [_request_tuple(r) for r in requests]
        temp = _TempFiles("xledit-edit-")
        hp_path = _hparams_path(hparams, temp, "hparams.json")
        stats_dir = os.fspath(stats) if stats is not None else _default_stats_dir(self)
        ctx = os.fspath(context_templates) if context_templates is not None else None
        patch_path = temp.path("edit.patch.safetensors")
        names = {hp_path if isinstance(hparams, dict) else None: "hparams (dict)"}
        with _named_temp_files(names):
            details = self._edit(method, reqs, patch_path, hp_path, stats_dir, layers, ctx, seed,
                                 model_hparams)
        return Patch(patch_path, model=self, details=details, _temp=temp)

    def build_stats(self, layers, corpus, out=None, max_tokens=0, max_len=0):
        """Key statistics E[k kᵀ] of the given layers over a corpus, as `xledit stats` makes them
        (needed by MEMIT and by ROME with mom2_adjustment): corpus is a file or a list of files
        (plain text, one document per line, or .jsonl with a "text" field); out is the folder
        (default: the cache edit() and evaluate() read). Resumes an interrupted pass (Ctrl-C:
        KeyboardInterrupt) and returns at once when the statistics are complete. Returns out."""
        if isinstance(corpus, (str, os.PathLike)):
            corpus = [corpus]
        out = os.fspath(out) if out is not None else _default_stats_dir(self)
        os.makedirs(out, exist_ok=True)
        if isinstance(layers, int):
            layers = [layers]
        return self._build_stats(list(layers), [os.fspath(c) for c in corpus], out, max_tokens, max_len)

    def evaluate(self, cases, methods=("rome", "memit"), run_dir=None, hparams=None, edit_langs=None,
                 test_langs=None, max_cases=0, resume=False, stats=None, context_templates=None,
                 subject_match="exact", seed=None, model_hparams=True):
        """Edits every case with each method in each edit language and evaluates it in every test
        language, as `xledit eval` does; returns the results: one dict per (case, method, edit
        language), as results.jsonl holds them (docs/evaluation.md). The model is unchanged
        afterwards (bitwise).

        cases: a case file (docs/case-format.md) or a list of case dicts. run_dir: where the run is
        written (kept; `xledit report RUN_DIR` reads it); None: a temporary folder, removed after.
        Ctrl-C stops after the unit in progress (KeyboardInterrupt); resume=True continues a run.
        """
        if isinstance(methods, str):
            methods = [methods]
        temp = _TempFiles("xledit-eval-")
        if isinstance(cases, (list, tuple)):
            cases_path = temp.path("cases.jsonl")
            with open(cases_path, "w", encoding="utf-8") as f:
                for case in cases:
                    f.write(json.dumps(case, ensure_ascii=False) + "\n")
        else:
            cases_path = os.fspath(cases)
        out_dir = os.fspath(run_dir) if run_dir is not None else temp.path("run")
        hp_path = _hparams_path(hparams, temp, "hparams.json")
        stats_dir = os.fspath(stats) if stats is not None else _default_stats_dir(self)
        ctx = os.fspath(context_templates) if context_templates is not None else None
        names = {hp_path if isinstance(hparams, dict) else None: "hparams (dict)",
                 cases_path if isinstance(cases, (list, tuple)) else None: "cases (list)"}
        with _named_temp_files(names):
            summary = self._evaluate(cases_path, out_dir, list(methods), hp_path,
                                     list(edit_langs) if edit_langs is not None else None,
                                     list(test_langs) if test_langs is not None else None,
                                     max_cases, resume, stats_dir, ctx, subject_match, seed,
                                     model_hparams)
        results = []
        with open(os.path.join(out_dir, "results.jsonl"), encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    results.append(json.loads(line))
        return _Results(results, summary, run_dir is not None and out_dir or None)


class _Results(list):
    """A list of result dicts with the run's counts in .summary (cases, units, done, skipped,
    failed, resumed) and .run_dir (None when the run went to a temporary folder)."""

    def __init__(self, items, summary, run_dir):
        super().__init__(items)
        self.summary = summary
        self.run_dir = run_dir
