"""Security: model files cannot run code, the digest and the browser escape alert strings, SQL cannot fetch code.

Issue 11, items 16 (skops allowlist and the cached default model's SHA-256), 17 (escaping in the
digest page and the widget) and 18 (DuckDB extensions off and locked; ``safe=True``).
"""

from __future__ import annotations

import hashlib
import json
import warnings
import zipfile
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

import lsstuk_kit as lk
from lsstuk_kit import realbogus as rb
from lsstuk_kit.batch import AlertBatch
from lsstuk_kit.sql import SQLError

# ------------------------------------------------------------------ 16: model files
PAYLOAD_TYPE = "sklearn.utils._testing.assert_run_python_script_without_output"


def evil_skops(path, marker):
    """A .skops file whose loading calls a scikit-learn test helper that runs Python source in a subprocess."""
    source = f"open({str(marker)!r}, 'w').write('pwned')"
    module, name = PAYLOAD_TYPE.rsplit(".", 1)
    schema = {
        "__class__": name, "__module__": module, "__loader__": "ConstructorFromReduceNode",
        "content": {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode",
                    "content": [{"__class__": "str", "__module__": "builtins", "__loader__": "JsonNode",
                                 "content": json.dumps(source), "is_json": True, "__id__": 2}],
                    "__id__": 1},
        "__id__": 0, "protocol": 2, "_skops_version": "0.16.0",
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("schema.json", json.dumps(schema))
    return path


def test_crafted_model_file_runs_code_under_the_old_rule(tmp_path):
    """The attack: every type the file names starts with ``sklearn.``, so the old rule trusted it all."""
    import skops.io as sio

    marker = tmp_path / "marker"
    path = evil_skops(tmp_path / "evil.skops", marker)
    assert path.stat().st_size < 600
    untrusted = sio.get_untrusted_types(file=path)
    assert untrusted == [PAYLOAD_TYPE] and all(t.startswith("sklearn.") for t in untrusted)
    sio.load(path, trusted=untrusted)  # what load_model did
    assert marker.read_text() == "pwned"


def test_load_model_refuses_the_crafted_file(tmp_path):
    marker = tmp_path / "marker"
    path = evil_skops(tmp_path / "evil.skops", marker)
    with pytest.raises(ValueError, match="untrusted") as exc:
        rb.load_model(path)
    assert not marker.exists()
    assert isinstance(exc.value, rb.UntrustedModelError)
    assert exc.value.types == [PAYLOAD_TYPE] and exc.value.path == str(path)
    assert PAYLOAD_TYPE in str(exc.value) and str(path) in str(exc.value)
    # trusted= adds exact names only: a prefix widens nothing
    with pytest.raises(rb.UntrustedModelError):
        rb.load_model(path, trusted=["sklearn.", "sklearn.utils._testing"])
    with pytest.raises(TypeError):
        rb.load_model(path, trusted=PAYLOAD_TYPE)  # a bare string, not a list of names
    assert not marker.exists()


def test_other_sklearn_functions_are_refused(tmp_path):
    import skops.io as sio
    from sklearn.utils._testing import ignore_warnings

    sio.dump({"f": ignore_warnings}, tmp_path / "f.skops")
    with pytest.raises(ValueError, match="ignore_warnings"):
        rb.load_model(tmp_path / "f.skops")


def test_trusted_list_is_what_the_kits_models_need(tmp_path):
    """TRUSTED is exactly the types skops does not trust by itself in the kit's fitted pipelines."""
    import skops.io as sio

    X, lab = rb.make_training_set(600, seed=2)
    needed = set()
    for kind in ("features", "pixels"):
        model = rb.make_model(kind).set_params(classifier__max_iter=5).fit(X, lab["real"].to_numpy())
        path = rb.save_model(model, tmp_path / f"{kind}.skops")
        needed |= set(sio.get_untrusted_types(file=path))
        again = rb.load_model(path)
        assert np.allclose(again.predict_proba(X[:50]), model.predict_proba(X[:50]))
    assert set(rb.TRUSTED) == needed
    assert all(not t.endswith(".") for t in rb.TRUSTED)


def test_load_model_checks_an_expected_sha256(tmp_path):
    X, lab = rb.make_training_set(800, seed=2)
    model = rb.make_model().set_params(classifier__max_iter=5).fit(X, lab["real"].to_numpy())
    path = rb.save_model(model, tmp_path / "m.skops")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    rb.load_model(path, sha256=digest)
    with pytest.raises(rb.ModelFileError, match="SHA-256"):
        rb.load_model(path, sha256="0" * 64)


def test_not_a_model_file(tmp_path):
    p = tmp_path / "junk.skops"
    p.write_bytes(b"not a zip")
    with pytest.raises(rb.ModelFileError, match="junk.skops"):
        rb.load_model(p)


def test_tampered_cached_default_model_is_detected(tmp_path, monkeypatch):
    monkeypatch.setenv("LSSTUK_KIT_CACHE", str(tmp_path))
    make_model = rb.make_model  # the same pipeline with few trees: the test is about the cache, not the model
    monkeypatch.setattr(rb, "make_model", lambda kind="features", seed=0:
                        make_model(kind, seed=seed).set_params(classifier__max_iter=5))
    model = rb.default_model(n=1500)
    [path] = tmp_path.glob("realbogus-*.skops")
    X, _ = rb.make_training_set(50, seed=8)

    # the file replaced by a crafted one: detected by its hash, rebuilt, nothing run
    marker = tmp_path / "marker"
    evil_skops(path, marker)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = rb.default_model(n=1500)
    assert not marker.exists()
    assert any("SHA-256" in str(w.message) and issubclass(w.category, UserWarning) for w in caught)
    assert np.allclose(again.predict_proba(X), model.predict_proba(X))
    record = json.loads(rb._sidecar(path).read_text())
    assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest() and record["n"] == 1500

    # the file and its record both forged: the allowlist still refuses it
    evil_skops(path, marker)
    rb._sidecar(path).write_text(json.dumps({"sha256": hashlib.sha256(path.read_bytes()).hexdigest()}))
    with pytest.raises(rb.UntrustedModelError):
        rb.default_model(n=1500)
    assert not marker.exists()

    # a model without its record (an older kit's cache) is rebuilt, with a warning
    rb._sidecar(path).unlink()
    path.unlink()
    rb.default_model(n=1500)
    rb._sidecar(path).unlink()
    with pytest.warns(UserWarning, match="SHA-256"):
        rb.default_model(n=1500)
    assert rb._sidecar(path).is_file()


# ------------------------------------------------------------------ 17: digest page and widget
HOSTILE = [
    '"><script>alert(1)</script>',
    "'><script>alert(2)</script>",
    '" onmouseover="alert(3)',
    "' onmouseover='alert(4)",
    "javascript:alert(5)",
    "<img src=x onerror=alert(6)>",
    "a'b\"c&d<e>f",
    "</h2></div><svg onload=alert(7)>",
]


def hostile_batch(n=4):
    """The first ``n`` sample alerts with every string field that reaches the page made hostile."""
    base = lk.load_sample()[:n]
    st = base._store
    pos = base._pos
    sources = st.sources.iloc[pos].reset_index(drop=True)
    sid = {old: f"{HOSTILE[i % len(HOSTILE)]}#{i}" for i, old in enumerate(sources["diaSourceId"])}
    oid = {old: f"{HOSTILE[(i + 3) % len(HOSTILE)]}@{i}" for i, old in enumerate(pd.unique(sources["diaObjectId"]))}
    sources["diaSourceId"] = sources["diaSourceId"].map(sid).astype(object)
    sources["diaObjectId"] = sources["diaObjectId"].map(oid).astype(object)
    sources["band"] = [HOSTILE[i % len(HOSTILE)] for i in range(len(sources))]
    sources["survey"] = HOSTILE[0]
    keep = np.zeros(len(st.sources), bool)
    keep[pos] = True
    remap = np.full(len(st.sources), -1)
    remap[pos] = np.arange(len(pos))
    history = st.history[keep[st.history["_alert"].to_numpy()]].copy()
    history["_alert"] = remap[history["_alert"].to_numpy()]
    history["diaObjectId"] = history["diaObjectId"].map(oid).astype(object)
    history["diaSourceId"] = history["diaSourceId"].map(lambda v: sid.get(v, v)).astype(object)
    objects = st.objects[keep[st.objects["_alert"].to_numpy()]].copy()
    objects["_alert"] = remap[objects["_alert"].to_numpy()]
    objects["diaObjectId"] = objects["diaObjectId"].map(oid).astype(object)
    cutouts = {k: v.take(pos) for k, v in st.cutouts.items()}
    return AlertBatch._from_parts(sources=sources, history=history, objects=objects, cutouts=cutouts,
                                  ref_ids=st.ref_ids[pos], rec_ids=st.rec_ids[pos], refs=st.refs, errors=[])


class Page(HTMLParser):
    """Every element, attribute and text of an HTML document or fragment."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.tags, self.attrs, self.scripts, self.text = [], [], [], []
        self._in_script = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend((tag, k, v) for k, v in attrs)
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        (self.scripts if self._in_script else self.text).append(data)


def assert_inert(html_text, *, scripts=0, shown=()):
    page = Page(html_text)
    assert page.tags.count("script") == scripts, "a <script> element came from the data"
    assert "svg" not in page.tags
    assert not [a for a in page.attrs if a[1].lower().startswith("on")], "an on* handler came from the data"
    for tag, name, value in page.attrs:
        assert not (value or "").strip().lower().startswith("javascript:"), (tag, name, value)
    text = "".join(page.text)
    for s in shown:  # the hostile values are shown, as text
        assert s in text, s
    return page


def test_digest_escapes_every_string(tmp_path):
    from lsstuk_kit import digest

    batch = hostile_batch()
    s = batch.sources
    classes = pd.Series([HOSTILE[(i + 5) % len(HOSTILE)] for i in range(len(s))], index=s.index)
    title = "<script>alert('title')</script>"
    path = digest.to_html(batch, tmp_path / "d.html", title=title, classes=classes, select=False, max_alerts=4)
    text = path.read_text()
    page = assert_inert(text, scripts=1, shown=[*s.index, *s["diaObjectId"], *s["band"], *classes, title])
    assert "".join(page.scripts).strip() == digest._SCRIPT.strip()  # the page's own script, nothing else
    allowed = {"lang", "charset", "id", "class", "href", "alt", "src"}
    assert {name for _, name, _ in page.attrs} <= allowed
    ids = [v for _, name, v in page.attrs if name == "id"]
    assert len(ids) == len(set(ids))
    hrefs = [v for tag, name, v in page.attrs if tag == "a" and name == "href"]
    assert len(hrefs) == 4 and all(h.startswith("#") and h[1:] in ids for h in hrefs)
    assert all(v.startswith("data:image/png;base64,") for tag, name, v in page.attrs if name == "src")
    alts = [v for _, name, v in page.attrs if name == "alt"]
    assert all(any(str(sid) in a for sid in s.index) for a in alts)


def test_digest_anchors_stay_readable_for_plain_ids(tmp_path):
    from lsstuk_kit import digest

    batch = lk.load_sample()
    path = digest.to_html(batch, tmp_path / "d.html", select=False, max_alerts=2)
    sid = batch.sources.index[0]
    page = Page(path.read_text())
    assert ("div", "id", f"a{sid}") in page.attrs and ("a", "href", f"#a{sid}") in page.attrs


def test_widget_escapes_every_string():
    pytest.importorskip("ipywidgets")
    from lsstuk_kit.widgets import AlertBrowser

    batch = hostile_batch()
    s = batch.sources
    classes = pd.Series([HOSTILE[(i + 5) % len(HOSTILE)] for i in range(len(s))], index=s.index)
    info = pd.DataFrame({"name": [HOSTILE[(i + 2) % len(HOSTILE)] for i in range(len(s))],
                         HOSTILE[1]: HOSTILE[4]}, index=pd.Index(s.index, name=HOSTILE[6]))
    browser = AlertBrowser(batch, classes=classes, info=info)
    for sid in s.index:
        browser.select(sid)
        assert browser.selected == sid
        html_parts = [browser.table.value, browser.info_html.value, browser.count.value]
        assert_inert("".join(html_parts), shown=[sid, s.loc[sid, "diaObjectId"], classes[sid], info.loc[sid, "name"]])
    assert_inert(browser.table.value, shown=[*s.index, *s["band"], *classes])


# ------------------------------------------------------------------ 18: SQL
def test_sql_connection_cannot_fetch_code(batch):
    row = batch.sql("SELECT current_setting('autoinstall_known_extensions') AS ai, "
                    "current_setting('autoload_known_extensions') AS al, "
                    "current_setting('allow_community_extensions') AS ce, "
                    "current_setting('lock_configuration') AS lock").iloc[0]
    assert not row["ai"] and not row["al"] and not row["ce"] and row["lock"]
    for q in ["SET autoinstall_known_extensions = true", "SET autoload_known_extensions = true",
              "SET allow_community_extensions = true", "RESET lock_configuration",
              "SET lock_configuration = false"]:
        with pytest.raises(SQLError, match="locked"):
            batch.sql(q)
    for q in ["INSTALL httpfs", "FORCE INSTALL httpfs FROM core", "LOAD httpfs", "INSTALL h3 FROM community",
              "UPDATE EXTENSIONS", "SELECT 1; INSTALL httpfs"]:
        with pytest.raises(SQLError, match="extensions"):
            batch.sql(q)


def test_sql_reads_local_files_unless_safe(batch, tmp_path):
    csv = tmp_path / "mine.csv"
    csv.write_text("a,b\n1,2\n")
    assert batch.sql(f"SELECT a FROM read_csv('{csv}')")["a"].tolist() == [1]  # the user's own SQL
    for q in [f"SELECT * FROM read_csv('{csv}')", "SELECT * FROM read_text('/etc/hostname')",
              "SELECT * FROM read_csv('/etc/passwd')", f"COPY (SELECT 1 AS x) TO '{tmp_path / 'out.csv'}'",
              "SELECT * FROM glob('/etc/*')", f"ATTACH '{tmp_path / 'x.db'}' AS x", "INSTALL httpfs", "LOAD httpfs"]:
        with pytest.raises(SQLError, match="safe=True|extensions"):
            batch.sql(q, safe=True)
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "x.db").exists()


def test_sql_safe_mode_filters_still_work(batch):
    from lsstuk_kit import sql

    q = ("SELECT s.diaSourceId, s.mag, o.nDiaSources FROM sources s JOIN objects o USING (diaObjectId) "
         "WHERE s.mag < 21 AND s.diaObjectId IN (SELECT diaObjectId FROM history GROUP BY 1 HAVING count(*) > 1)")
    assert batch.sql(q, safe=True).equals(batch.sql(q))
    sub = batch.sql("SELECT diaSourceId FROM sources WHERE reliability > 0.5", as_batch=True, safe=True)
    assert len(sub) == int((batch.sources["reliability"] > 0.5).sum()) > 0
    extra = pd.DataFrame({"diaSourceId": batch.sources.index[:3], "tag": ["x", "y", "z"]})
    got = sql.query(batch, "SELECT count(*) AS n FROM sources JOIN extra USING (diaSourceId)", safe=True, extra=extra)
    assert int(got["n"].iloc[0]) == 3


def test_sql_does_not_see_python_variables(batch):
    with pytest.raises(SQLError, match="frames|df|result"):
        batch.sql("SELECT * FROM frames")
    with pytest.raises(SQLError):
        batch.sql("SELECT * FROM df")
